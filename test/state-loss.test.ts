import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { ROOT, startHarness, type Harness } from './helpers/harness.js';
import { startRedis, type OwnRedis } from './helpers/redis-server.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';
import { startGateway, type RunningGateway } from '../gateway/server.js';
import { DeviceRegistry } from '../identity/devices.js';
import { exportJWK, generateKeyPair } from 'jose';

// Synthetic officials of demo/roster.csv.
const LOCKED = '056085000001'; // Nguyễn Văn An, ho-tich-reader: locked by the SOC in these tests
const CLERK = '056080000005'; // Hoàng Văn Em, van-thu: reaches the echo service only under the approved version v2
const ADMIN_A = '056179000006';
const ADMIN_B = '056082000003';

const filePolicy = readFileSync(`${ROOT}/test/fixtures/gateway-policy.csv`, 'utf8');

interface Setup {
  h: Harness;
  redis: OwnRedis;
  admin: Redis;
  prefix: string;
  db: TestDatabase | null;
}

async function setUp(durable: boolean): Promise<Setup> {
  const redis = await startRedis();
  const db = durable ? await createTestDatabase('state') : null;
  const prefix = `ztgate-state-${randomBytes(4).toString('hex')}:`;
  const h = await startHarness({
    configure(doc) {
      doc.state = { backend: 'redis', redisUrl: redis.url, keyPrefix: prefix, checkIntervalMs: 100, ...(db ? { durable: { postgresUrl: db.url } } : {}) };
      doc.identity.roster = { source: 'file', file: 'demo/roster.csv' };
    },
  });
  return { h, redis, admin: redis.client(), prefix, db };
}

async function tearDown(s: Setup | undefined): Promise<void> {
  await s?.h.close();
  s?.admin.disconnect();
  await s?.redis.stop();
  await s?.db?.drop();
}

async function call(h: Harness, gatewayUrl: string, nationalId: string) {
  const res = await fetch(`${gatewayUrl}/echo/x`, { headers: { authorization: `Bearer ${await h.token(nationalId)}` } });
  await res.arrayBuffer();
  const event = await h.sink.forRequest(res.headers.get('x-request-id'));
  return { status: res.status, reasons: event.ztgate.reasons as string[] };
}

/** Lock one official and approve v2 (four-eyes), as the SOC and two admins would. */
async function governanceChanges(h: Harness): Promise<string> {
  const rt = h.gateway.runtime;
  await rt.locks.set({ kind: 'user', value: LOCKED, reason: 'SOC: điều tra sự cố (giả lập)', lockedBy: ADMIN_A, seconds: 3600 });
  const base = (await rt.policies.versions.get(rt.policies.currentId())).sources;
  const draft = await rt.policies.versions.createDraft({ author: ADMIN_A, comment: 'Văn thư được đọc dịch vụ ghi nhận', sources: { ...base, policy: `${filePolicy}p, van-thu, *, echo, /*, GET, allow\n` } });
  await rt.policies.versions.submit(draft.id, ADMIN_A);
  const v2 = await rt.policies.versions.approve(draft.id, ADMIN_B, 'Đồng ý');
  await rt.policies.announce(v2);
  return v2.id;
}

async function until<T>(what: string, fn: () => Promise<T | false>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const alerts = (h: Harness, rule: string) => h.sink.events.filter((e) => e.event?.kind === 'alert' && e.rule?.id === rule);

/** An approved device of the registry, as an admin leaves it. */
async function approvedDevice(h: Harness): Promise<string> {
  const registry = new DeviceRegistry(h.gateway.runtime.store);
  const { publicKey } = await generateKeyPair('ES256');
  const device = await registry.enrol({ jwk: await exportJWK(publicKey), name: 'Máy trạm phòng hộ tịch (giả lập)', ownerNationalId: CLERK });
  await registry.approve(device.id, ADMIN_B, { hardwareKey: true });
  return device.id;
}

const deviceStatus = async (h: Harness, id: string) => (await new DeviceRegistry(h.gateway.runtime.store).get(id))?.status;

describe('state loss with a durable store (PostgreSQL)', () => {
  let s: Setup;
  let v2: string;
  let device: string;
  beforeAll(async () => {
    s = await setUp(true);
    v2 = await governanceChanges(s.h);
    device = await approvedDevice(s.h);
  });
  afterAll(() => tearDown(s));

  it('before any loss: the lock holds and the approved version v2 is in force', async () => {
    expect(await call(s.h, s.h.gateway.url, LOCKED)).toMatchObject({ status: 403, reasons: ['locked-user'] });
    expect((await call(s.h, s.h.gateway.url, CLERK)).status).toBe(200);
  });

  it('regression: FLUSHALL is refused with 503 state-lost while not rebuilt, never served against the empty store', async () => {
    // FLUSHALL, and another "instance" holding the rebuild for a moment: the window is observable.
    await s.admin.multi().flushall().set(`${s.prefix}state:rebuild-lock`, 'another-instance', 'PX', 1500).exec();
    for (const who of [LOCKED, CLERK]) {
      const r = await call(s.h, s.h.gateway.url, who);
      expect(r).toMatchObject({ status: 503, reasons: ['state-lost'] });
    }
    const lost = alerts(s.h, 'state-lost');
    expect(lost.length).toBe(1);
    expect(lost[0]!.ztgate.alert.detail).toMatchObject({ durable: true });
  });

  it('regression: the state is rebuilt without a restart — the lock still holds, v2 still in force, the roster reloaded', async () => {
    await until('the rebuild', async () => alerts(s.h, 'state-rebuilt').length === 1 || false);
    expect(s.h.gateway.runtime.state.healthy()).toBe(true);
    expect(await call(s.h, s.h.gateway.url, LOCKED)).toMatchObject({ status: 403, reasons: ['locked-user'] });
    expect(await call(s.h, s.h.gateway.url, CLERK)).toMatchObject({ status: 200, reasons: ['policy-allowed'] });
    expect(s.h.gateway.runtime.policies.currentId()).toBe(v2);
    expect((await s.h.gateway.runtime.locks.list()).map((l) => l.value)).toEqual([LOCKED]);
    expect(await deviceStatus(s.h, device)).toBe('approved');
  });

  it('regression: Redis restarted without persistence: back to work without a gateway restart, same lock, same policy', async () => {
    const rebuilt = alerts(s.h, 'state-rebuilt').length;
    const port = s.redis.port;
    await s.redis.kill();
    await s.redis.stop();
    s.redis = await startRedis({ port });
    await until('the rebuild after the restart', async () => alerts(s.h, 'state-rebuilt').length > rebuilt || false, 10_000);
    expect(await call(s.h, s.h.gateway.url, CLERK)).toMatchObject({ status: 200, reasons: ['policy-allowed'] });
    expect(await call(s.h, s.h.gateway.url, LOCKED)).toMatchObject({ status: 403, reasons: ['locked-user'] });
    expect(s.h.gateway.runtime.policies.currentId()).toBe(v2);
  });

  it('regression: a gateway restarted on an empty Redis keeps the lock and the approved policy (not the file)', async () => {
    const config = s.h.config;
    await s.h.gateway.close();
    await s.admin.flushall();
    const g = await startGateway(config, { decisionLog: s.h.sink });
    // The harness closes whichever gateway is current.
    (s.h as { gateway: RunningGateway }).gateway = g;
    expect(g.runtime.policies.currentId()).toBe(v2);
    expect(await call(s.h, g.url, LOCKED)).toMatchObject({ status: 403, reasons: ['locked-user'] });
    expect(await call(s.h, g.url, CLERK)).toMatchObject({ status: 200, reasons: ['policy-allowed'] });
    expect(await deviceStatus(s.h, device)).toBe('approved');
  });
});

describe('state loss without a durable store', () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setUp(false);
    await governanceChanges(s.h);
  });
  afterAll(() => tearDown(s));

  it('regression: after FLUSHALL every request is refused with 503 state-lost until Redis is restored, never 200 or official-not-on-roster', async () => {
    const marker = await s.admin.get(`${s.prefix}state:epoch`);
    const dump = await s.admin.dumpBuffer(`${s.prefix}lock:user:${LOCKED}`);
    await s.admin.flushall();
    for (let i = 0; i < 3; i++) {
      for (const who of [LOCKED, CLERK]) expect(await call(s.h, s.h.gateway.url, who)).toMatchObject({ status: 503, reasons: ['state-lost'] });
      await new Promise((r) => setTimeout(r, 150));
    }
    expect(alerts(s.h, 'state-lost').length).toBe(1);
    // The operator restores Redis (from its AOF, a backup): the marker comes back and service resumes.
    await s.admin.restore(`${s.prefix}lock:user:${LOCKED}`, 0, dump!);
    await s.admin.set(`${s.prefix}state:epoch`, marker!);
    await until('service again', async () => s.h.gateway.runtime.state.healthy() || false);
  });
});
