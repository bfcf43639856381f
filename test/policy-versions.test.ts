import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type GatewayConfig } from '../gateway/config.js';
import { startGateway, type RunningGateway } from '../gateway/server.js';
import { createFileKv, createPolicyVersions } from '../policies/versions.js';
import { EventSink, ROOT, startRecordingUpstream, startTestIssuer, TEST_AUDIENCE, type RecordingUpstream, type TestIssuer } from './helpers/harness.js';
import { redisUrl } from './helpers/redis.js';

/**
 * Policy versions through the admin API of two gateway instances sharing one Redis: drafts
 * checked at submission, four-eyes approval, rollback, what-if, and both instances switching.
 */

const V1 = `# v1 (synthetic)
p, ho-tich-reader, *, echo, /records, GET, allow
p, ho-tich-reader, *, echo, /records/:id, GET, allow
`;
const ADMIN_A = '056179000006';
const ADMIN_B = '056179000007';
const READER = '056085000001';

let issuer: TestIssuer;
let upstream: RecordingUpstream;
const gateways: RunningGateway[] = [];
const sinks: EventSink[] = [];
let redis: Redis;
const prefix = `ztgate-test-${randomBytes(6).toString('hex')}:`;
const tmp = mkdtempSync(join(tmpdir(), 'ztgate-versions-'));

beforeAll(async () => {
  issuer = await startTestIssuer();
  upstream = await startRecordingUpstream(() => gateways[0]?.url ?? '', 'echo');
  writeFileSync(join(tmp, 'policy.csv'), V1);
  const approval = { status: 'approved', approvedBy: ADMIN_A, approvedAt: '2026-01-01' };
  const doc = (port: number) => ({
    listen: { host: '127.0.0.1', port },
    publicUrl: `http://127.0.0.1:${port}`,
    // Test-issuer tokens carry no acr: this suite is about policy versions, not assurance.
    admin: { listen: { host: '127.0.0.1', port: 0 }, minDeviceTier: 'unknown', minAssuranceLevel: 0 },
    identity: { issuers: [{ issuer: issuer.issuer, audience: TEST_AUDIENCE, algorithms: ['ES256'] }] },
    devices: { defaultMinTierBySecurityLevel: { '3': 'unknown' } },
    state: { backend: 'redis', redisUrl: process.env.__REDIS, keyPrefix: prefix },
    policy: { model: join(ROOT, 'policies/model.conf'), policy: join(tmp, 'policy.csv'), syncIntervalMs: 500 },
    routes: [{ id: 'echo', name: 'echo', pathPrefix: '/echo', upstream: upstream.url, ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'internal', approval }],
  });
  process.env.__REDIS = await redisUrl();
  for (let i = 0; i < 2; i++) {
    const sink = new EventSink();
    // Port 0 for each instance; the recording upstream only checks assertions of the first.
    const config: GatewayConfig = parseConfig(doc(0), `instance-${i}`, tmp);
    gateways.push(await startGateway(config, { decisionLog: sink }));
    sinks.push(sink);
  }
  redis = new Redis(process.env.__REDIS);
});

afterAll(async () => {
  for (const g of gateways) await g.close();
  await Promise.all([issuer?.close(), upstream?.close()]);
  if (redis) {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  }
  rmSync(tmp, { recursive: true, force: true });
});

async function token(nationalId: string, roles: string[]): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return issuer.sign({ iss: issuer.issuer, aud: TEST_AUDIENCE, sub: nationalId, national_id: nationalId, agency: roles.includes('security-admin') ? 'cong-an-tinh' : 'so-tu-phap', roles, iat: now, exp: now + 300 });
}

async function admin(instance: number, who: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${gateways[instance]!.adminUrl}/api/v1/policies${path}`, {
    method,
    headers: { authorization: `Bearer ${await token(who, ['security-admin'])}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const json: any = await res.json();
  const event = await sinks[instance]!.forRequest(res.headers.get('x-request-id'));
  return { status: res.status, body: json, event };
}

async function read(instance: number, path: string) {
  const res = await fetch(`${gateways[instance]!.url}/echo${path}`, { headers: { authorization: `Bearer ${await token(READER, ['ho-tich-reader'])}` } });
  await res.text();
  return { status: res.status, event: await sinks[instance]!.forRequest(res.headers.get('x-request-id')) };
}

/** Waits for a condition the system promises to reach (no assertion on how long it took). */
async function until(what: string, check: () => boolean, limitMs = 10_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('policy versions', () => {
  let v1: string;
  let v2: string;

  it('the configured files are the first active version, on both instances', async () => {
    const { status, body } = await admin(0, ADMIN_A, 'GET', '/versions');
    expect(status).toBe(200);
    expect(body.items).toHaveLength(1);
    v1 = body.items[0].id;
    expect(body.items[0]).toMatchObject({ state: 'active', author: 'config' });
    expect(gateways.map((g) => g.runtime.policies.currentId())).toEqual([v1, v1]);
  });

  it('a malformed draft is refused with file:line, nothing is stored, the active version stays', async () => {
    const { status, body, event } = await admin(0, ADMIN_A, 'POST', '/versions', { comment: 'thêm luật sai', policy: `${V1}p, ho-tich-reader, *, echo, records, GET, allow\np, ho-tich-reader, *, thue, /x, GET, allow\n` });
    expect(status).toBe(400);
    expect(body.error.code).toBe('ZTG_ERR_POLICY_INVALID');
    expect(body.error.message).toMatch(/draft\/policy\.csv:4: path "records"/);
    expect(body.error.message).toMatch(/draft\/policy\.csv:5: service "thue" is not a configured route/);
    expect(event.ztgate.reasons).toContain('policy-invalid');
    expect((await admin(0, ADMIN_A, 'GET', '/versions')).body.items).toHaveLength(1);
    expect((await read(0, '/records/1')).status).toBe(200);
  });

  it('a draft records its author, comment, parent and diff; it changes nothing until approved', async () => {
    const policy = V1.replace('p, ho-tich-reader, *, echo, /records/:id, GET, allow\n', '');
    const { status, body, event } = await admin(0, ADMIN_A, 'POST', '/versions', { comment: 'bỏ quyền đọc từng hồ sơ', policy });
    expect(status).toBe(201);
    v2 = body.id;
    expect(body).toMatchObject({ state: 'draft', author: ADMIN_A, parent: v1, comment: 'bỏ quyền đọc từng hồ sơ' });
    expect(body.diff).toContain('- p, ho-tich-reader, *, echo, /records/:id, GET, allow');
    expect(event.ztgate.admin).toMatchObject({ operation: 'policy.draft', target: v2 });
    expect((await admin(0, ADMIN_A, 'GET', `/versions/${v2}/diff`)).body.diff).toContain('- p, ho-tich-reader, *, echo, /records/:id, GET, allow');
    expect((await read(1, '/records/1')).status).toBe(200);
  });

  it('what-if lists the recent requests whose decision the draft would flip', async () => {
    await read(0, '/records/42');
    await read(1, '/records');
    const { status, body } = await admin(0, ADMIN_A, 'POST', `/versions/${v2}/what-if`, {});
    expect(status).toBe(200);
    expect(body.evaluated).toBeGreaterThanOrEqual(2);
    const flipped = body.flips.map((f: any) => `${f.method} ${f.path} ${f.before.effect}→${f.after.effect}`);
    expect(flipped).toContain('GET /records/42 allow→deny');
    expect(flipped).not.toContain('GET /records allow→deny');
    // Decision inputs, never credentials.
    expect(JSON.stringify(body)).not.toMatch(/Bearer|eyJ/);
  });

  it('four-eyes: the author cannot approve their own draft', async () => {
    expect((await admin(0, ADMIN_A, 'POST', `/versions/${v2}/approve`, { comment: 'tự duyệt' })).status).toBe(409); // not submitted yet
    expect((await admin(0, ADMIN_A, 'POST', `/versions/${v2}/submit`)).status).toBe(200);
    const { status, body, event } = await admin(0, ADMIN_A, 'POST', `/versions/${v2}/approve`, { comment: 'tự duyệt' });
    expect(status).toBe(403);
    expect(body.error.code).toBe('ZTG_ERR_POLICY_SAME_APPROVER');
    expect(event.ztgate.reasons).toContain('policy-same-approver');
    expect(event.ztgate.admin).toMatchObject({ operation: 'policy.approve-refused', target: v2 });
    expect(gateways.map((g) => g.runtime.policies.currentId())).toEqual([v1, v1]);
  });

  it('another admin approves on one instance: both instances switch, and decide with the new version', async () => {
    const { status, body, event } = await admin(1, ADMIN_B, 'POST', `/versions/${v2}/approve`, { comment: 'đã rà soát' });
    expect(status).toBe(200);
    expect(body).toMatchObject({ id: v2, state: 'active', review: { by: ADMIN_B, outcome: 'approved' } });
    expect(event.ztgate.admin).toMatchObject({ operation: 'policy.approve', target: v2 });
    await until('both instances run v2', () => gateways.every((g) => g.runtime.policies.currentId() === v2));
    for (const i of [0, 1]) {
      const { status: s, event: e } = await read(i, '/records/1');
      expect(s).toBe(403);
      expect(e.ztgate.policy_version).toBe(body.hash);
    }
    const list = (await admin(0, ADMIN_A, 'GET', '/versions')).body.items;
    expect(list.find((v: any) => v.id === v1).state).toBe('superseded');
  });

  it('a version once approved cannot be approved or rejected again', async () => {
    expect((await admin(0, ADMIN_B, 'POST', `/versions/${v2}/reject`, { comment: 'muộn' })).status).toBe(409);
  });

  it('a rejected draft never becomes active', async () => {
    const draft = (await admin(0, ADMIN_B, 'POST', '/versions', { comment: 'mở rộng', policy: `${V1}p, ho-tich-reader, *, echo, /*, GET, allow\n` })).body;
    expect((await admin(0, ADMIN_B, 'POST', `/versions/${draft.id}/submit`)).status).toBe(200);
    const { status, body } = await admin(0, ADMIN_A, 'POST', `/versions/${draft.id}/reject`, { comment: 'quá rộng' });
    expect(status).toBe(200);
    expect(body).toMatchObject({ state: 'rejected', review: { by: ADMIN_A, outcome: 'rejected' } });
    expect((await admin(0, ADMIN_A, 'POST', `/versions/${draft.id}/approve`, { comment: 'duyệt lại' })).status).toBe(409);
    expect(gateways[0]!.runtime.policies.currentId()).toBe(v2);
  });

  it('rollback creates a new version with the earlier texts and switches every instance to it', async () => {
    const { status, body, event } = await admin(0, ADMIN_A, 'POST', `/versions/${v1}/rollback`, { comment: 'khôi phục' });
    expect(status).toBe(200);
    expect(body).toMatchObject({ state: 'active', rollbackOf: v1, author: ADMIN_A });
    expect(body.id).not.toBe(v1);
    expect(event.ztgate.admin).toMatchObject({ operation: 'policy.rollback', detail: { rollbackOf: v1 } });
    await until('both instances run the rollback', () => gateways.every((g) => g.runtime.policies.currentId() === body.id));
    expect((await read(1, '/records/1')).status).toBe(200);
    expect((await admin(0, ADMIN_A, 'GET', `/versions/${body.id}`)).body.sources.policy).toBe(V1);
  });

  it('a version that was never active cannot be rolled back to', async () => {
    const draft = (await admin(0, ADMIN_B, 'POST', '/versions', { comment: 'nháp' })).body;
    expect((await admin(0, ADMIN_A, 'POST', `/versions/${draft.id}/rollback`, { comment: 'quay lại' })).status).toBe(409);
  });

  it('an official without the security-admin role cannot touch policies', async () => {
    const res = await fetch(`${gateways[0]!.adminUrl}/api/v1/policies/versions`, { headers: { authorization: `Bearer ${await token(READER, ['ho-tich-reader'])}` } });
    expect(res.status).toBe(403);
  });
});

describe('file-backed versions (the embedded demo)', () => {
  it('keep drafts, approvals and the active pointer across restarts', async () => {
    const dir = join(tmp, 'versions');
    const a = createPolicyVersions(createFileKv(dir));
    const sources = { model: readFileSync(join(ROOT, 'policies/model.conf'), 'utf8'), policy: V1, conditions: null };
    const first = await a.bootstrap(sources);
    const draft = await a.createDraft({ author: ADMIN_A, comment: 'c', sources: { ...sources, policy: `${V1}# x\n` } });
    await a.submit(draft.id, ADMIN_A);
    await expect(a.approve(draft.id, ADMIN_A, 'x')).rejects.toMatchObject({ code: 'ERR_POLICY_SAME_APPROVER' });
    await a.approve(draft.id, ADMIN_B, 'ok');
    const b = createPolicyVersions(createFileKv(dir));
    expect(await b.activeId()).toBe(draft.id);
    expect((await b.get(first.id)).state).toBe('superseded');
    expect((await b.bootstrap(sources)).id).toBe(draft.id); // the files do not override an active version
  });
});
