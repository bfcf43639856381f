import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDpopProof } from '../demo/device-cli.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { startRedis, type OwnRedis } from './helpers/redis-server.js';

const OWNER = '056085000001';
const ADMIN = '056179000006';

/** A loopback TCP relay in front of Redis that records each write a client makes: one write is one round trip. */
class CountingRelay {
  writes: string[] = [];
  private server!: Server;
  private sockets = new Set<Socket>();
  constructor(private readonly target: number) {}
  async start(): Promise<number> {
    this.server = createServer((client) => {
      const upstream = connect(this.target, '127.0.0.1');
      this.sockets.add(client).add(upstream);
      client.on('data', (c) => {
        this.writes.push(c.toString('latin1'));
        upstream.write(c);
      });
      upstream.on('data', (c) => client.write(c));
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.on('error', () => undefined);
      upstream.on('error', () => undefined);
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return (this.server.address() as AddressInfo).port;
  }
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

let redis: OwnRedis;
let relay: CountingRelay;
let h: Harness;

beforeAll(async () => {
  redis = await startRedis();
  relay = new CountingRelay(redis.port);
  const port = await relay.start();
  h = await startHarness({
    configure(doc) {
      doc.state = { backend: 'redis', redisUrl: `redis://127.0.0.1:${port}`, keyPrefix: `ztgate-test:${randomUUID()}:` };
      doc.policy.policy = 'test/fixtures/device-policy.csv';
      doc.routes[0].minDeviceTier = 'registered';
      doc.routes.push({ ...doc.routes[1], id: 'open', name: 'Dịch vụ cấp độ 1 (kiểm thử)', pathPrefix: '/open', securityLevel: 1 });
    },
  });
});

afterAll(async () => {
  await h?.close();
  await relay?.close();
  await redis?.stop();
});

/** The commands of one write (RESP arrays of bulk strings): name and arguments. */
function parseCommands(write: string): string[][] {
  const out: string[][] = [];
  let i = 0;
  const line = () => {
    const end = write.indexOf('\r\n', i);
    const text = write.slice(i, end);
    i = end + 2;
    return text;
  };
  while (i < write.length) {
    const n = Number(line().slice(1));
    const args: string[] = [];
    for (let k = 0; k < n; k++) {
      const len = Number(line().slice(1));
      args.push(write.slice(i, i + len));
      i += len + 2;
    }
    out.push(args);
  }
  return out;
}

/**
 * The shared state a request reads or writes: the proof's jti, the device record, the state marker
 * with the locks, a grant, a session, a quota. Everything else in a write comes from writers off the
 * request path, on their own timers or after the response, never awaited by a request (the state
 * keeper's check of the marker, statistics, detection, the what-if recorder, the service and policy
 * resyncs, the access sweep).
 */
const REQUEST_STATE = /:(dpop:jti|device|lock|access:grant|session|quota):/;
const ofRequest = (c: readonly string[]) => c[0]!.toUpperCase() === 'MGET' || c.slice(1).some((a) => REQUEST_STATE.test(a));

/** The request's writes to Redis, each as its commands in alphabetical order: `GET+MGET+SET`. */
const commands = (writes: readonly string[]) =>
  writes
    .map((w) =>
      parseCommands(w)
        .filter(ofRequest)
        .map((c) => c[0]!.toUpperCase())
        .sort()
        .join('+'),
    )
    .filter((w) => w !== '');

async function quietRequest(url: string, headers: () => Promise<Record<string, string>>) {
  await new Promise((r) => setTimeout(r, 400));
  const h2 = await headers();
  relay.writes = [];
  const res = await fetch(url, { headers: h2 });
  const body = await res.text();
  return { res, body, writes: [...relay.writes] };
}

describe('Redis round trips per request', () => {
  it('an allowed request with a device proof reads and writes the shared state in one round trip: the jti (SET NX PX), the device record, the state marker and the locks', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const publicJwk: JWK = await exportJWK(publicKey);
    const device = { privateKey: privateKey as CryptoKey, publicJwk, id: await calculateJwkThumbprint(publicJwk, 'sha256'), alg: 'ES256' };
    const token = await h.token(OWNER);
    const enrol = await fetch(`${h.gateway.url}/.ztgate/devices`, { method: 'POST', headers: { authorization: `Bearer ${token}`, dpop: await createDpopProof(device, 'POST', `${h.config.publicUrl}/.ztgate/devices`, token), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Máy trạm (giả lập)' }) });
    expect(enrol.status).toBe(201);
    const approve = await fetch(`${h.gateway.adminUrl}/api/v1/devices/${device.id}/approve`, { method: 'POST', headers: { authorization: `Bearer ${await h.token(ADMIN)}`, 'content-type': 'application/json' }, body: '{}' });
    expect(approve.status).toBe(200);

    const url = `${h.config.publicUrl}/ho-tich/records?limit=1`;
    for (let i = 0; i < 3; i++) {
      const { res, writes } = await quietRequest(url, async () => ({ authorization: `Bearer ${token}`, dpop: await createDpopProof(device, 'GET', url, token) }));
      expect(res.status).toBe(200);
      const event = await h.sink.forRequest(res.headers.get('x-request-id'));
      expect(event.ztgate).toMatchObject({ decision: 'allow', device: { id: device.id, tier: 'registered' } });
      expect(commands(writes), JSON.stringify(writes.map(parseCommands))).toEqual(['GET+MGET+SET']);
    }

    // The same proof again: refused as a replay, still in one round trip.
    const proof = await createDpopProof(device, 'GET', url, token);
    expect((await fetch(url, { headers: { authorization: `Bearer ${token}`, dpop: proof } })).status).toBe(200);
    const replayed = await quietRequest(url, async () => ({ authorization: `Bearer ${token}`, dpop: proof }));
    expect(replayed.res.status).toBe(401);
    expect((await h.sink.forRequest(replayed.res.headers.get('x-request-id'))).ztgate.reasons).toEqual(['device-proof-replayed']);
    expect(commands(replayed.writes)).toEqual(['GET+MGET+SET']);
  });

  it('an allowed request without a device: one round trip (the state marker and the locks)', async () => {
    const token = await h.token(OWNER);
    const { res, writes } = await quietRequest(`${h.gateway.url}/open/ping`, async () => ({ authorization: `Bearer ${token}` }));
    expect(res.status).toBe(200);
    expect(commands(writes)).toEqual(['MGET']);
  });
});
