import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, startIdentityHarness, type IdentityHarness } from './helpers/browser.js';
import { ROOT, TEST_AUDIENCE } from './helpers/harness.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';
import { replicated, startCluster, startSentinelTopology, type ClusterTopology, type SentinelTopology } from './helpers/redis-server.js';
import { obtainDemoToken } from '../demo/token.js';

// Synthetic officials of demo/roster.csv, all ho-tich-reader.
const AN = '056085000001'; // signs in with a browser session; refused /echo/secret by the approved v2
const CUONG = '056088000003'; // locked by the SOC
const ADMIN_A = '056179000006';
const ADMIN_B = '056082000003';
const STORE_DOWN = new Set(['state-lost', 'lock-state-unavailable', 'roster-unavailable', 'session-store-unavailable', 'device-registry-unavailable', 'quota-unavailable']);

interface Outcome {
  what: 'session' | 'locked' | 'v2';
  status: number;
  id: string;
}

/**
 * Two gateway instances on one HA Redis, with a session, a lock and an approved policy version;
 * the Redis master dies under traffic. Every request in the window gets the right answer or 503,
 * never a 200 decided against stale or missing state; afterwards nothing is lost.
 */
async function failoverUnderTraffic(h: IdentityHarness, kill: () => Promise<void>): Promise<void> {
  const [g0, g1] = h.gateways.map((g) => g.url) as [string, string];
  const browser = new Browser();
  const page = await browser.signIn(`${g0}/echo/x`, AN);
  expect(page.res.status).toBe(200);
  await page.res.body?.cancel();
  const anToken = (await obtainDemoToken({ issuer: h.idp.issuer, nationalId: AN, resource: TEST_AUDIENCE })).access_token;
  const cuongToken = (await obtainDemoToken({ issuer: h.idp.issuer, nationalId: CUONG, resource: TEST_AUDIENCE })).access_token;

  const rt = h.gateways[1]!.runtime;
  await rt.locks.set({ kind: 'user', value: CUONG, reason: 'SOC: điều tra (giả lập)', lockedBy: ADMIN_A, seconds: 3600 });
  const base = readFileSync(`${ROOT}/test/fixtures/identity-policy.csv`, 'utf8');
  const draft = await rt.policies.versions.createDraft({ author: ADMIN_A, comment: 'Chặn /secret', sources: { ...(await rt.policies.versions.get(rt.policies.currentId())).sources, policy: `${base}p, ho-tich-reader, *, echo, /secret, GET, deny\n` } });
  await rt.policies.versions.submit(draft.id, ADMIN_A);
  const v2 = await rt.policies.versions.approve(draft.id, ADMIN_B, 'Đồng ý');
  await rt.policies.announce(v2);
  for (const g of h.gateways) await g.runtime.policies.sync();

  const outcomes: Outcome[] = [];
  const one = async (what: Outcome['what'], gateway: string): Promise<Outcome> => {
    const res = what === 'session' ? await browser.request(`${gateway}/echo/x`) : await fetch(`${gateway}/echo/${what === 'v2' ? 'secret' : 'x'}`, { headers: { authorization: `Bearer ${what === 'v2' ? anToken : cuongToken}` } });
    await res.arrayBuffer();
    const o = { what, status: res.status, id: res.headers.get('x-request-id')! };
    outcomes.push(o);
    return o;
  };
  const round = async () => {
    const r: Outcome[] = [];
    for (const g of [g0, g1]) r.push(...(await Promise.all([one('session', g), one('locked', g), one('v2', g)])));
    return r;
  };
  const correct = (o: Outcome) => (o.what === 'session' ? o.status === 200 : o.status === 403);

  const first = await round();
  expect(first.map((o) => [o.what, o.status])).toEqual(first.map((o) => [o.what, o.what === 'session' ? 200 : 403]));
  const traffic = (async () => {
    for (let i = 0; i < 5; i++) await round();
  })();
  await kill();
  await traffic;
  // Back to full service on both instances, within the failover time.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await round();
    if (r.every(correct)) break;
    if (Date.now() > deadline) {
      const reasons = await Promise.all(r.map(async (o) => [o.what, o.status, (await h.sink.forRequest(o.id)).ztgate.reasons]));
      throw new Error(`no recovery: ${JSON.stringify(reasons)}`);
    }
    await new Promise((res) => setTimeout(res, 200));
  }

  const refusedForState = outcomes.filter((o) => o.status === 503);
  for (const o of outcomes) {
    const event = await h.sink.forRequest(o.id);
    if (o.status === 503) expect(STORE_DOWN.has(event.ztgate.reasons[0]), `503 for ${event.ztgate.reasons}`).toBe(true);
    // Never served against stale or missing state: the locked official, the path v2 refuses, a session that vanished.
    else if (o.what === 'locked') expect(event.ztgate.reasons).toEqual(['locked-user']);
    else if (o.what === 'v2') expect(event.ztgate.reasons).toEqual(['policy-denied']);
    else expect(o.status).toBe(200);
  }
  expect(refusedForState.length).toBeGreaterThan(0);
  for (const g of h.gateways) expect(g.runtime.policies.currentId()).toBe(v2.id);
  expect((await rt.locks.list()).map((l) => l.value)).toEqual([CUONG]);
}

describe('Redis Sentinel', () => {
  let topo: SentinelTopology;
  let db: TestDatabase;
  let h: IdentityHarness;
  beforeAll(async () => {
    topo = await startSentinelTopology();
    db = await createTestDatabase('sentinel');
    const keyPrefix = `ztgate-ha-${randomBytes(4).toString('hex')}:`;
    h = await startIdentityHarness({
      instances: 2,
      configure(doc) {
        doc.state = { backend: 'redis', sentinel: { masterName: topo.masterName, sentinels: [`127.0.0.1:${topo.sentinel.port}`] }, keyPrefix, checkIntervalMs: 200, commandTimeoutMs: 500, durable: { postgresUrl: db.url } };
      },
    });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    await topo?.stop();
    await db?.drop();
  });

  it('a master killed under traffic: the replica takes over, no lock, session or approved policy is lost, the window is 503', async () => {
    await failoverUnderTraffic(h, async () => {
      const master = await topo.master();
      await replicated(master);
      await master.kill();
    });
    expect((await topo.master()).port).not.toBe(topo.nodes[0]!.port);
  }, 60_000);
});

describe('Redis Cluster', () => {
  let cluster: ClusterTopology;
  let db: TestDatabase;
  let h: IdentityHarness;
  const tag = `ztgate-${randomBytes(4).toString('hex')}`;
  beforeAll(async () => {
    cluster = await startCluster();
    db = await createTestDatabase('cluster');
    h = await startIdentityHarness({
      instances: 2,
      configure(doc) {
        doc.state = { backend: 'redis', cluster: { nodes: cluster.nodes.slice(0, 3).map((n) => `127.0.0.1:${n.port}`) }, keyPrefix: `{${tag}}:`, checkIntervalMs: 200, commandTimeoutMs: 500, durable: { postgresUrl: db.url } };
      },
    });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    await cluster?.stop();
    await db?.drop();
  }, 30_000);

  it('the master of the hash-tagged slot killed under traffic: its replica takes over, nothing is lost, the window is 503', async () => {
    const before = await cluster.masterOf(tag);
    await failoverUnderTraffic(h, async () => {
      await replicated(before, 1, tag);
      await before.kill();
    });
    expect((await cluster.masterOf(tag)).port).not.toBe(before.port);
  }, 60_000);
});
