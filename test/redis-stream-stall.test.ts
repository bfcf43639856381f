import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './helpers/harness.js';
import { redisStreamTransport } from '../gateway/audit/kinds/redis-stream.js';
import { connectionsReceived, startRedis, type OwnRedis } from './helpers/redis-server.js';

const ALLOWED = '056085000001'; // Nguyễn Văn An, ho-tich-reader (synthetic)

let h: Harness;
let redis: OwnRedis;
let reader: Redis;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ztgate-stall-'));
  redis = await startRedis();
  reader = redis.client();
  h = await startHarness({
    configure(doc) {
      doc.audit = {
        sinks: [{ type: 'stdout' }, { type: 'redis-stream', name: 'soc', redisUrl: redis.url, stream: 'soc-events', group: 'soc', maxLen: 10_000, commandTimeoutMs: 1000, reconnectMaxMs: 1000 }],
        spoolDir: join(dir, 'spool'),
      };
    },
  });
});

afterAll(async () => {
  await h?.close();
  reader?.disconnect();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function call(token: string): Promise<string> {
  const res = await fetch(`${h.gateway.url}/ho-tich/api/records`, { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return res.headers.get('x-request-id')!;
}

async function streamIds(): Promise<Set<string>> {
  const all = (await reader.xrange('soc-events', '-', '+')) as [string, string[]][];
  return new Set(all.map(([, f]) => f[f.indexOf('id') + 1]!));
}

async function until(what: string, fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('Redis-stream SOC sink after a Redis stall', () => {
  it("regression: the previous client's late close event does not break the new connection", async () => {
    const cfg = { type: 'redis-stream', name: 'probe', stream: 'probe-events', group: 'soc', maxLen: 100, commandTimeoutMs: 1000, reconnectMaxMs: 1000 } as const;
    const transport = redisStreamTransport(cfg, redis.url);
    let brokenAfterReconnect = 0;
    for (let i = 0; i < 5; i++) {
      await transport.connect();
      await transport.close(false);
      await transport.connect();
      // Long enough for the replaced client's close event to arrive.
      await new Promise((r) => setTimeout(r, 30));
      if (transport.broken()) brokenAfterReconnect++;
      await transport.send([JSON.stringify({ event: { id: `probe-${i}` } })]);
      await transport.close(true);
    }
    expect(brokenAfterReconnect).toBe(0);
    expect(await reader.xlen('probe-events')).toBe(5);
  });

  it('regression: a sink whose connections keep breaking reconnects with backoff, not in a loop', async () => {
    const sink = () => h.gateway.runtime.decisionLog.status().sinks.find((s) => s.name === 'soc')!;
    await until('the sink connected', async () => sink().connected, 5000);
    // Only the sink's connections are counted: the test's reader stays away meanwhile.
    reader.disconnect();
    const admin = redis.client();
    const start = await connectionsReceived(admin);
    // Every normal client the server has is cut, every 10 ms, for 2 s (the test's own reader reconnects too).
    const until2s = Date.now() + 2000;
    const token = await h.token(ALLOWED);
    while (Date.now() < until2s) {
      // Traffic, so the sink has events to deliver and finds out its connection is gone.
      await Promise.all([admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes').catch(() => undefined), call(token)]);
      await new Promise((r) => setTimeout(r, 10));
    }
    const reconnects = (await connectionsReceived(admin)) - start;
    admin.disconnect();
    reader = redis.client();
    // At least 100 ms between attempts (20 in 2 s), more after each failure: not one per kill.
    expect(reconnects).toBeLessThan(25);
  }, 15_000);

  it('regression: a Redis stalled (SIGSTOP) and resumed gets every event, without a reconnect storm', async () => {
    const token = await h.token(ALLOWED);
    const before = await call(token);
    await until('the first event in the stream', async () => (await streamIds()).has(before), 5000);

    redis.pause();
    const during: string[] = [];
    for (let i = 0; i < 8; i++) {
      during.push(await call(token));
      await new Promise((r) => setTimeout(r, 500));
    }
    redis.resume();
    const connectionsAtResume = await connectionsReceived(reader);
    const after = await call(token);

    // Everything written during the stall and after it arrives, without restarting Redis.
    await until(
      'the events of the stall in the stream',
      async () => {
        const ids = await streamIds();
        return [...during, after].every((id) => ids.has(id));
      },
      8000,
    );
    // Once delivery works again the sink stays on its one connection: no reconnect loop.
    await new Promise((r) => setTimeout(r, 1500));
    const storm = (await connectionsReceived(reader)) - connectionsAtResume;
    expect(storm).toBeLessThan(10);
    const sink = h.gateway.runtime.decisionLog.status().sinks.find((s) => s.name === 'soc')!;
    expect(sink.connected).toBe(true);
  }, 30_000);
});
