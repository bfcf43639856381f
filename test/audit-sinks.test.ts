import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startHarness, type Harness } from './helpers/harness.js';
import { redisUrl } from './helpers/redis.js';
import { SyslogReceiver, until } from './helpers/syslog-receiver.js';
import { readFilesForVerify, verifyChain } from '../gateway/audit/verify.js';
import { frame, toCef, toSyslog } from '../gateway/audit/syslog.js';

const ALLOWED = '056085000001'; // Nguyễn Văn An, ho-tich-reader
const NO_RULE = '056080000005'; // Hoàng Văn Em, van-thu

const schema = JSON.parse(readFileSync(new URL('../gateway/audit/decision-event.schema.json', import.meta.url), 'utf8'));
const ajv = new Ajv2020({ allErrors: true, strict: false });
const validateEvent = ajv.compile(schema);

let h: Harness;
let receiver: SyslogReceiver;
let dir: string;
let redis: Redis;
let prefix: string;
let stream: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ztgate-sinks-'));
  receiver = new SyslogReceiver(await freePort());
  await receiver.start();
  const url = await redisUrl();
  prefix = `ztgate-test:${randomBytes(6).toString('hex')}:`;
  stream = `${prefix}events`;
  redis = new Redis(url);
  h = await startHarness({
    configure(doc) {
      doc.state = { backend: 'redis', redisUrl: url, keyPrefix: prefix };
      doc.audit = {
        sinks: [{ type: 'stdout' }, { type: 'syslog', name: 'siem', host: '127.0.0.1', port: receiver.port, transport: 'tcp', format: 'json', confirmAfterMs: 300, reconnectMaxMs: 200 }, { type: 'redis-stream', name: 'soc', stream, group: 'soc', maxLen: 10_000 }],
        spoolDir: join(dir, 'spool'),
        chain: { file: join(dir, 'audit', 'decisions.log'), checkpointEvery: 10 },
      };
    },
  });
});

afterAll(async () => {
  await h?.close();
  await receiver?.stop().catch(() => undefined);
  if (redis) {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  }
  rmSync(dir, { recursive: true, force: true });
});

async function call(path: string, token?: string) {
  const res = await fetch(`${h.gateway.url}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  await res.arrayBuffer();
  const id = res.headers.get('x-request-id')!;
  const event = await h.sink.forRequest(id);
  return { status: res.status, id, event };
}

describe('SOC sinks', () => {
  it('every decision reaches the syslog receiver and the Redis stream, with its event id', async () => {
    const token = await h.token(ALLOWED);
    const ids: string[] = [];
    for (const p of ['/ho-tich/records?limit=1', '/echo/things/1', '/ho-tich/records/HT-2024-000001']) ids.push((await call(p, token)).id);
    ids.push((await call('/ho-tich/records')).id); // 401
    await until('syslog delivery', () => ids.every((id) => receiver.ids().includes(id)) || undefined);
    const entries = await until('stream delivery', async () => {
      const all = (await redis.xrange(stream, '-', '+')) as [string, string[]][];
      return ids.every((id) => all.some(([, f]) => f[1] === id)) ? all : undefined;
    });
    const one = entries.find(([, f]) => f[1] === ids[0])!;
    expect(one[1][0]).toBe('id');
    expect(one[1][2]).toBe('event');
    expect(JSON.parse(one[1][3]!).ztgate.decision).toBe('allow');
    // The gateway created the consumer group the SOC reads with.
    const groups = (await redis.xinfo('GROUPS', stream)) as unknown[][];
    expect(groups.map((g) => g[1])).toContain('soc');
    const read = (await redis.xreadgroup('GROUP', 'soc', 'analyst-1', 'COUNT', 1000, 'STREAMS', stream, '>')) as [string, [string, string[]][]][];
    expect(read[0]![1].length).toBeGreaterThanOrEqual(ids.length);
  });

  it('a SIEM collector that dies mid-stream: requests are still served, and after it returns every event arrived exactly once after de-duplication', async () => {
    const token = await h.token(ALLOWED);
    const before: string[] = [];
    for (let i = 0; i < 5; i++) before.push((await call('/ho-tich/records?limit=1', token)).id);
    await until('first events', () => before.every((id) => receiver.ids().includes(id)) || undefined);

    await receiver.stop();
    const during: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await call(i % 4 === 0 ? '/ho-tich/records' : '/ho-tich/records?limit=1', i % 4 === 0 ? undefined : token);
      expect([200, 401]).toContain(r.status);
      during.push(r.id);
    }
    // Nothing delivered while it is down…
    expect(during.some((id) => receiver.ids().includes(id))).toBe(false);
    await receiver.start();
    const after: string[] = [];
    for (let i = 0; i < 5; i++) after.push((await call('/echo/x', token)).id);

    const expected = [...before, ...during, ...after];
    await until('redelivery after the collector came back', () => expected.every((id) => receiver.ids().includes(id)) || undefined, 20_000);
    const got = receiver.ids();
    const unique = new Set(got);
    for (const id of expected) expect(unique.has(id), id).toBe(true);
    // At-least-once: duplicates are possible, losses are not; de-duplicated, each is there once.
    expect([...unique].filter((id) => expected.includes(id))).toHaveLength(expected.length);
    // In order: the first copies of the events arrive in the order they were written.
    const firstSeen = expected.map((id) => got.indexOf(id));
    expect([...firstSeen].sort((a, b) => a - b)).toEqual(firstSeen);
  });

  it('the local hash chain holds every event and verifies', async () => {
    const { id } = await call('/ho-tich/records?limit=1', await h.token(ALLOWED));
    const text = readFileSync(join(dir, 'audit', 'decisions.log'), 'utf8');
    expect(text).toContain(id);
    const r = verifyChain(readFilesForVerify([join(dir, 'audit', 'decisions.log')]));
    expect(r.problem).toBeNull();
    expect(r.events).toBeGreaterThan(30);
  });

  it('every event the gateway wrote validates against the published JSON Schema', async () => {
    await call('/y-te/records', await h.token(ALLOWED)); // 404
    await call('/ho-tich/records', await h.token(NO_RULE)); // 403
    await call('/cong-thuong/records', await h.token(ALLOWED)); // not approved
    await call('/.well-known/jwks.json');
    expect(h.sink.events.length).toBeGreaterThan(30);
    for (const e of h.sink.events) {
      const ok = validateEvent(e);
      expect(ok, `${JSON.stringify(validateEvent.errors)} in ${JSON.stringify(e)}`).toBe(true);
    }
  });

  it('the minimum log fields are always present: account (when known), time, IP address and source port', () => {
    for (const e of h.sink.events.filter((x) => x.event.kind === 'event')) {
      expect(e['@timestamp']).toMatch(/^\d{4}-\d{2}-\d{2}T/);
      expect(e.source.ip).toBeTruthy();
      expect(e.source.port).toBeGreaterThan(0);
      if (e.ztgate.reasons.includes('policy-allowed')) expect(e.user.id).toMatch(/^\d{12}$/);
    }
  });
});

describe('syslog and CEF rendering', () => {
  const ev = {
    '@timestamp': '2026-11-23T07:50:01.188Z',
    event: { kind: 'event', action: 'access-decision', outcome: 'failure', id: '6c8471a6-0000-4000-8000-000000000001' },
    ztgate: { decision: 'deny', reasons: ['policy-no-match'], rule: 'p, a|b, *, x=y, /records, GET, allow', policy_version: 'sha256:581d175636d7c71e', route: { id: 'y-te', security_level: 4 } },
    user: { id: '056085000001' },
    organization: { id: 'so-tu-phap' },
    source: { ip: '127.0.0.1', port: 57340 },
    http: { request: { id: '6c8471a6-0000-4000-8000-000000000001', method: 'GET' }, response: { status_code: 403 } },
    url: { path: '/y-te/records' },
  };

  it('renders CEF with header and extension escaping', () => {
    const cef = toCef(ev);
    expect(cef).toMatch(/^CEF:0\|ztgate\|ztgate\|[^|]+\|policy-no-match\|access-decision deny\|5\|/);
    expect(cef).toContain('suser=056085000001');
    expect(cef).toContain('src=127.0.0.1 spt=57340');
    expect(cef).toContain('externalId=6c8471a6-0000-4000-8000-000000000001');
    expect(cef).toContain('cs2=p, a|b, *, x\\=y, /records, GET, allow');
    expect(cef).toContain('rt=1795420201188');
  });

  it('frames RFC 5424 messages with octet counting (RFC 6587), the length in bytes', () => {
    const msg = toSyslog({ ...ev, user: { id: 'Nguyễn' } }, { facility: 13, format: 'json' });
    expect(msg).toMatch(/^<108>1 2026-11-23T07:50:01.188Z \S+ ztgate \d+ access-decision - \{/);
    const framed = frame(msg);
    const sp = framed.indexOf(0x20);
    expect(Number(framed.subarray(0, sp).toString())).toBe(Buffer.byteLength(msg));
  });
});
