import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { startHarness, TEST_AUDIENCE, type Harness } from './helpers/harness.js';
import { startRedis, type OwnRedis } from './helpers/redis-server.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

/**
 * Grants and access records are governance records: when Redis loses its data they come back from
 * the durable copy (PostgreSQL) with the time they had left — an approved grant is neither lost
 * nor extended, and the break-glass use still waits for its review.
 */

const REQUESTER = '056085000001';

let h: Harness;
let redis: OwnRedis;
let admin: Redis;
let db: TestDatabase;

beforeAll(async () => {
  redis = await startRedis();
  db = await createTestDatabase('access');
  admin = redis.client();
  const prefix = `ztgate-access-${randomBytes(4).toString('hex')}:`;
  h = await startHarness({
    configure(doc) {
      doc.state = { backend: 'redis', redisUrl: redis.url, keyPrefix: prefix, checkIntervalMs: 100, durable: { postgresUrl: db.url } };
      doc.policy = { model: 'policies/model.conf', policy: 'test/fixtures/access-policy.csv', conditions: 'test/fixtures/access-ui-conditions.yaml' };
      const echo = doc.routes.find((r: { id: string }) => r.id === 'echo');
      doc.routes.push({ ...echo, id: 'suc-khoe', pathPrefix: '/suc-khoe' }, { ...echo, id: 'kho-mat', pathPrefix: '/kho-mat' });
    },
  });
}, 60_000);

afterAll(async () => {
  await h?.close();
  admin?.disconnect();
  await redis?.stop();
  await db?.drop();
});

async function token(nationalId: string, roles: string[]): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return h.testIssuer.sign({ iss: h.testIssuer.issuer, aud: TEST_AUDIENCE, sub: nationalId, national_id: nationalId, agency: 'so-tu-phap', roles, iat: now, exp: now + 600 });
}

async function get(path: string, bearer: string) {
  const res = await fetch(`${h.gateway.url}${path}`, { headers: { authorization: `Bearer ${bearer}` } });
  await res.arrayBuffer();
  return { status: res.status, event: await h.sink.forRequest(res.headers.get('x-request-id')) };
}

describe('grants survive the loss of Redis', () => {
  it('an approved grant holds again after FLUSHALL and the rebuild, ending when it would have; the records stay', async () => {
    const rt = h.gateway.runtime;
    const official = { nationalId: REQUESTER, agency: 'so-tu-phap', roles: ['ho-tich-reader'], clearance: 'none' as const, assuranceLevel: 2 as const, sessionId: null, acr: null, issuer: 'test', authTime: null };
    const approver = { ...official, nationalId: '056080000005', roles: ['access-approver'] };
    const created = await rt.access.create(official, { route: 'echo', role: 'ho-so-reader', purpose: 'Xác minh hồ sơ (kiểm thử)', caseRef: 'HS-2026/0001', durationSeconds: 600 });
    const approved = await rt.access.approve(approver, created.id, null);
    const bearer = await token(REQUESTER, ['ho-tich-reader']);
    expect((await get('/echo/ho-so/1', bearer)).status).toBe(200);

    await admin.flushall();
    const deadline = Date.now() + 10_000;
    let after: Awaited<ReturnType<typeof get>>;
    for (;;) {
      after = await get('/echo/ho-so/1', bearer);
      if (after.status === 200 || Date.now() > deadline) break;
      // Never allowed without its grant: while the state is lost, refused as such.
      expect(after.event.ztgate.reasons).toEqual(['state-lost']);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(after.status).toBe(200);
    expect(after.event.ztgate.grant).toMatchObject({ id: created.id, role: 'ho-so-reader' });
    const record = await rt.access.get(created.id);
    expect(record).toMatchObject({ state: 'active', expiresAt: approved.expiresAt });
    const ttl = await admin.pttl(`${(h.config.state as { keyPrefix: string }).keyPrefix}access:grant:${REQUESTER}:echo`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(Date.parse(approved.expiresAt!) - Date.now() + 1000);
    expect((await rt.access.list({ state: 'active' })).map((r) => r.id)).toContain(created.id);
  });
});
