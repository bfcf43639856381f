import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../gateway/config.js';
import { startGateway, type RunningGateway } from '../gateway/server.js';
import { EventSink, freePort, ROOT, startHarness, TEST_AUDIENCE, assertEventMatchesSchema, type Harness } from './helpers/harness.js';
import { deleteKeysWithPrefix, redisUrl } from './helpers/redis.js';
import { UsageError } from '../core/errors.js';
import { runAccessCommand } from '../gateway/access/cli.js';

/**
 * Just-in-time access and break-glass across two gateway instances sharing one real Redis, through
 * real HTTP: a grant approved on one instance is enforced, expired and revoked on the other.
 */

const REQUESTER = '056085000001';
const APPROVER = '056080000005';
const APPROVER_2 = '056094000008';
const OTHER_AGENCY_APPROVER = '056190000002';
const BREAK_GLASS = '056092000004';
const BREAK_GLASS_2 = '056088000003';
const ADMIN = '056179000006';
const HEAD_OF_HEALTH = '056170000021'; // synthetic head of Sở Y tế

const WHO: Record<string, { agency: string; roles: string[] }> = {
  [REQUESTER]: { agency: 'so-tu-phap', roles: ['ho-tich-reader'] },
  [APPROVER]: { agency: 'so-tu-phap', roles: ['access-approver'] },
  [APPROVER_2]: { agency: 'so-tu-phap', roles: ['access-approver'] },
  [OTHER_AGENCY_APPROVER]: { agency: 'so-y-te', roles: ['access-approver'] },
  [BREAK_GLASS]: { agency: 'so-y-te', roles: ['break-glass'] },
  [BREAK_GLASS_2]: { agency: 'so-y-te', roles: ['break-glass'] },
  [ADMIN]: { agency: 'cong-an-tinh', roles: ['security-admin'] },
  [HEAD_OF_HEALTH]: { agency: 'so-y-te', roles: ['agency-head'] },
};

interface Hook {
  url: string;
  attempts: { body: string; signatureOk: boolean; delivery: string }[];
  failFirst: number;
  close(): Promise<void>;
}

async function startReceiver(secret: Buffer): Promise<Hook> {
  const hook: Hook = { url: '', attempts: [], failFirst: 2, close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(req.headers['x-ztgate-signature']));
      const expected = m ? createHmac('sha256', secret).update(`${m[1]}.${body}`).digest() : null;
      const signatureOk = !!m && !!expected && timingSafeEqual(expected, Buffer.from(m[2]!, 'hex')) && Math.abs(Date.now() / 1000 - Number(m[1])) < 300;
      hook.attempts.push({ body, signatureOk, delivery: String(req.headers['x-ztgate-delivery']) });
      // The receiver is down for its first answers: the gateway must retry, with backoff, in order.
      res.writeHead(hook.attempts.length <= hook.failFirst ? 503 : 204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  hook.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/ztgate`;
  hook.close = () =>
    new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return hook;
}

let h: Harness;
let b: RunningGateway;
const sinkB = new EventSink();
let prefix: string;
let spoolDir: string;
let hook: Hook;

beforeAll(async () => {
  prefix = `ztgate-test-access-${randomBytes(4).toString('hex')}:`;
  spoolDir = mkdtempSync(join(tmpdir(), 'ztgate-access-'));
  const secret = randomBytes(32);
  writeFileSync(join(spoolDir, 'hook.key'), secret);
  hook = await startReceiver(secret);
  const url = await redisUrl();
  let captured: Record<string, any> = {};
  h = await startHarness({
    configure: (doc) => {
      doc.admin.minAssuranceLevel = 0;
      doc.state = { backend: 'redis', redisUrl: url, keyPrefix: prefix };
      doc.policy = { model: 'policies/model.conf', policy: 'test/fixtures/access-policy.csv', conditions: 'test/fixtures/access-conditions.yaml' };
      const upstream = doc.routes[1].upstream;
      const approval = doc.routes[1].approval;
      doc.routes.push(
        { id: 'suc-khoe', name: 'Sức khỏe (kiểm thử)', pathPrefix: '/suc-khoe', upstream, ownerAgency: 'so-y-te', securityLevel: 4, classification: 'sensitive-personal-data', approval, minDeviceTier: 'unknown' },
        { id: 'kho-mat', name: 'Kho mật (kiểm thử)', pathPrefix: '/kho-mat', upstream, ownerAgency: 'so-tu-phap', securityLevel: 4, classification: 'mat', approval, minDeviceTier: 'unknown' },
      );
      doc.access = { sweepIntervalMs: 100, breakGlass: { confirmWindowSeconds: 1 }, spoolDir, webhooks: [{ route: 'echo', url: hook.url, secretFile: join(spoolDir, 'hook.key'), retryMaxMs: 200 }] };
      captured = doc;
    },
  });
  // The second instance: same Redis and prefix, its own listeners and webhook spool.
  const docB = structuredClone(captured);
  const port = await freePort();
  docB.listen = { host: '127.0.0.1', port };
  docB.publicUrl = `http://127.0.0.1:${port}`;
  docB.access.spoolDir = join(spoolDir, 'b');
  b = await startGateway(parseConfig(docB, 'instance-b', ROOT), { decisionLog: sinkB });
});

afterAll(async () => {
  await b?.close();
  await h?.close();
  await hook?.close();
  if (prefix) await deleteKeysWithPrefix(prefix);
  if (spoolDir) rmSync(spoolDir, { recursive: true, force: true });
});

async function token(nationalId: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const who = WHO[nationalId]!;
  return h.testIssuer.sign({ iss: h.testIssuer.issuer, aud: TEST_AUDIENCE, sub: nationalId, national_id: nationalId, agency: who.agency, roles: who.roles, iat: now, exp: now + 600 });
}

const sinkOf = (base: string) => (base === b.url || base === b.adminUrl ? sinkB : h.sink);

async function call(base: string, method: string, path: string, as: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${await token(as)}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  const json = text.startsWith('{') ? JSON.parse(text) : text;
  return { status: res.status, body: json as any, event: await sinkOf(base).forRequest(res.headers.get('x-request-id')) };
}

const A = () => h.gateway.url;
const B = () => b.url;
const request = (as: string, body: Record<string, unknown>) => call(A(), 'POST', '/.ztgate/access/requests', as, { purpose: 'Giải quyết hồ sơ khiếu nại (kiểm thử)', caseRef: 'HS-2026/0042', ...body });

/** Lifecycle events (event.action access-grant / access-alert) for one request, from both instances. */
function lifecycle(id: string): Record<string, any>[] {
  return [...h.sink.events, ...sinkB.events].filter((e) => e.ztgate?.access?.id === id && (e.event.action === 'access-grant' || e.event.action === 'access-alert'));
}

async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('just-in-time access across two instances (real HTTP, real Redis)', () => {
  it('request on A → approval by an owner-agency approver on A → grant enforced on B at once → expired on B within a second of its end', async () => {
    const before = await call(B(), 'GET', '/echo/ho-so/1', REQUESTER);
    expect(before.status).toBe(403);
    expect(before.event.ztgate.reasons).toEqual(['policy-no-match']);

    const created = await request(REQUESTER, { route: 'echo', role: 'ho-so-reader', durationSeconds: 3 });
    expect(created.status).toBe(201);
    expect(created.body.request).toMatchObject({ state: 'pending', requiredApprovals: 1, routeId: 'echo', caseRef: 'HS-2026/0042' });
    expect(created.event.ztgate).toMatchObject({ decision: 'allow', reasons: ['access-requested'], access: { operation: 'create', state: 'pending' } });
    const id = created.body.request.id;

    // The official sees the state of their request.
    const mine = await call(B(), 'GET', '/.ztgate/access/requests', REQUESTER);
    expect(mine.body.mine.find((r: any) => r.id === id).state).toBe('pending');
    // The approver sees it waiting for their review.
    const queue = await call(B(), 'GET', '/.ztgate/access/requests', APPROVER);
    expect(queue.body.toReview.map((r: any) => r.id)).toContain(id);

    const approved = await call(A(), 'POST', `/.ztgate/access/requests/${id}/approve`, APPROVER, { note: 'Đúng hồ sơ đang xử lý' });
    expect(approved.status).toBe(200);
    expect(approved.body.request.state).toBe('active');
    expect(approved.event.ztgate.reasons).toEqual(['access-approved']);
    const approvedAt = Date.now();

    const onB = await call(B(), 'GET', '/echo/ho-so/1', REQUESTER);
    expect(Date.now() - approvedAt).toBeLessThan(1000);
    expect(onB.status).toBe(200);
    expect(onB.event.ztgate).toMatchObject({ decision: 'allow', reasons: ['policy-allowed'], grant: { id, kind: 'access-request', role: 'ho-so-reader', break_glass: false } });
    expect(onB.event.ztgate.rule).toBe('p, ho-so-reader, *, echo, /ho-so/*, GET, allow');

    const expiresAt = Date.parse(approved.body.request.expiresAt);
    const denied = await until('denial on B after expiry', async () => {
      const r = await call(B(), 'GET', '/echo/ho-so/1', REQUESTER);
      return r.status === 403 ? r : null;
    });
    expect(Date.now() - expiresAt).toBeLessThan(1000);
    expect(denied.event.ztgate.reasons).toEqual(['policy-no-match']);
    expect(denied.event.ztgate.grant).toBeUndefined();

    // Every step is an event for the SOC, the end included (reported once, by one instance).
    const steps = await until('the expired event', async () => {
      const ops = lifecycle(id).map((e) => e.ztgate.access.operation);
      return ops.includes('expired') ? ops : null;
    });
    expect(steps).toEqual(['requested', 'approved', 'expired']);
    lifecycle(id).forEach((e) => assertEventMatchesSchema(e));
    const past = await call(h.gateway.adminUrl!, 'GET', '/api/v1/access-requests?state=past', ADMIN);
    expect(past.body.items.find((r: any) => r.id === id).state).toBe('expired');
  });

  it('attack: self-approval is refused, and so is an approver of another agency; nothing changes', async () => {
    const created = await request(REQUESTER, { route: 'echo', role: 'ho-so-reader', durationSeconds: 600 });
    const id = created.body.request.id;
    const self = await call(A(), 'POST', `/.ztgate/access/requests/${id}/approve`, REQUESTER, {});
    expect(self.status).toBe(403);
    expect(self.event.ztgate).toMatchObject({ decision: 'deny', reasons: ['access-self-approval'], error_code: 'ZTG_ERR_ACCESS_SELF_APPROVAL' });
    const foreign = await call(B(), 'POST', `/.ztgate/access/requests/${id}/approve`, OTHER_AGENCY_APPROVER, {});
    expect(foreign.status).toBe(403);
    expect(foreign.event.ztgate.reasons).toEqual(['access-reviewer-required']);
    expect((await call(B(), 'GET', '/echo/ho-so/1', REQUESTER)).status).toBe(403);
    const pending = await call(h.gateway.adminUrl!, 'GET', '/api/v1/access-requests?state=pending', ADMIN);
    expect(pending.body.items.find((r: any) => r.id === id)).toMatchObject({ state: 'pending', approvals: [] });
    // Revoked by an admin on A: ends at once, for everyone.
    const revoked = await call(h.gateway.adminUrl!, 'POST', `/api/v1/access-requests/${id}/revoke`, ADMIN, { reason: 'Không còn cần thiết (kiểm thử)' });
    expect(revoked.body.state).toBe('revoked');
    expect(revoked.event.ztgate.admin).toMatchObject({ operation: 'access.revoke', target: id });
  });

  it('level 4 needs two different approvers; a grant revoked on A is refused on B from the next request', async () => {
    const created = await request(REQUESTER, { route: 'suc-khoe', role: 'suc-khoe-reader', durationSeconds: 3600 });
    expect(created.body.request.requiredApprovals).toBe(2);
    // The owner agency of suc-khoe is so-y-te: so-tu-phap's approvers are not its reviewers.
    expect((await call(A(), 'POST', `/.ztgate/access/requests/${created.body.request.id}/approve`, APPROVER, {})).event.ztgate.reasons).toEqual(['access-reviewer-required']);
    await call(A(), 'POST', `/.ztgate/access/requests/${created.body.request.id}/cancel`, REQUESTER, {});

    const long = await request(REQUESTER, { route: 'echo', role: 'ho-so-reader', durationSeconds: 600 });
    expect((await request(REQUESTER, { route: 'echo', role: 'ho-so-reader', durationSeconds: 60 })).status).toBe(201);
    const id = long.body.request.id;
    const first = await call(A(), 'POST', `/.ztgate/access/requests/${id}/approve`, APPROVER, {});
    expect(first.body.request.state).toBe('active');
    expect((await call(B(), 'GET', '/echo/ho-so/7', REQUESTER)).status).toBe(200);
    // A second active grant on the same service is refused.
    const again = await request(REQUESTER, { route: 'echo', role: 'ho-so-reader', durationSeconds: 60 });
    expect(again.status).toBe(409);
    expect(again.event.ztgate.reasons).toEqual(['access-state-conflict']);
    await call(h.gateway.adminUrl!, 'POST', `/api/v1/access-requests/${id}/revoke`, ADMIN, { reason: 'Thu hồi khẩn (kiểm thử)' });
    const after = await call(B(), 'GET', '/echo/ho-so/7', REQUESTER);
    expect(after.status).toBe(403);
    expect(after.event.ztgate.grant).toBeUndefined();
  });

  it('two approvals at level 4: the same approver cannot count twice', async () => {
    const requester = BREAK_GLASS; // an official of so-y-te's province office asking for suc-khoe
    WHO[requester] = { agency: 'so-tu-phap', roles: [] };
    const approverA = OTHER_AGENCY_APPROVER;
    WHO['056179000099'] = { agency: 'so-y-te', roles: ['access-approver'] };
    try {
      const created = await request(requester, { route: 'suc-khoe', role: 'suc-khoe-reader', durationSeconds: 60 });
      const id = created.body.request.id;
      const one = await call(A(), 'POST', `/.ztgate/access/requests/${id}/approve`, approverA, {});
      expect(one.body.request).toMatchObject({ state: 'pending', approvals: [{ nationalId: approverA }] });
      expect(one.event.ztgate.reasons).toEqual(['access-approval-recorded']);
      const twice = await call(B(), 'POST', `/.ztgate/access/requests/${id}/approve`, approverA, {});
      expect(twice.status).toBe(409);
      expect((await call(B(), 'GET', '/suc-khoe/x', requester)).status).toBe(403);
      const two = await call(B(), 'POST', `/.ztgate/access/requests/${id}/approve`, '056179000099', {});
      expect(two.body.request.state).toBe('active');
      expect((await call(A(), 'GET', '/suc-khoe/x', requester)).status).toBe(200);
      await call(A(), 'POST', `/.ztgate/access/requests/${id}/cancel`, requester, {});
    } finally {
      WHO[requester] = { agency: 'so-y-te', roles: ['break-glass'] };
    }
  });

  it('two approvers approving at the same moment on two instances: both approvals count, the grant starts once', async () => {
    // Straight into each instance's service, in the same tick, so both read the request before either writes.
    const approver = (nationalId: string) => ({ nationalId, agency: 'so-y-te', roles: ['access-approver'], clearance: 'none' as const, assuranceLevel: 2 as const, sessionId: null, acr: null, issuer: 'test', authTime: null });
    for (let round = 0; round < 5; round++) {
      const created = await request(REQUESTER, { route: 'suc-khoe', role: 'suc-khoe-reader', durationSeconds: 60 });
      const id = created.body.request.id;
      const results = await Promise.all([h.gateway.runtime.access.approve(approver(OTHER_AGENCY_APPROVER), id, null), b.runtime.access.approve(approver('056179000098'), id, null)]);
      expect(results.map((r) => r.state).sort()).toEqual(['active', 'pending']);
      const final = await h.gateway.runtime.access.get(id);
      expect(final).toMatchObject({ state: 'active' });
      expect(final!.approvals.map((x) => x.nationalId).sort()).toEqual([OTHER_AGENCY_APPROVER, '056179000098'].sort());
      expect(lifecycle(id).filter((e) => e.ztgate.access.operation === 'approved')).toHaveLength(1);
      await call(A(), 'POST', `/.ztgate/access/requests/${id}/cancel`, REQUESTER, {});
    }
  });

  it('policy decides what grants unlock: never a state-secret service without clearance, whatever the grant', async () => {
    const notUnlockable = await request(REQUESTER, { route: 'echo', role: 'security-admin', durationSeconds: 60 });
    expect(notUnlockable.status).toBe(400);
    expect(notUnlockable.event.ztgate.reasons).toEqual(['grant-not-unlockable']);

    const created = await request(REQUESTER, { route: 'kho-mat', role: 'mat-reader', durationSeconds: 600 });
    const id = created.body.request.id;
    await call(A(), 'POST', `/.ztgate/access/requests/${id}/approve`, APPROVER, {});
    await call(A(), 'POST', `/.ztgate/access/requests/${id}/approve`, APPROVER_2, {});
    const r = await call(B(), 'GET', '/kho-mat/ho-so/1', REQUESTER);
    expect(r.status).toBe(403);
    expect(r.event.ztgate).toMatchObject({ decision: 'deny', reasons: ['clearance-insufficient'], grant: { id, role: 'mat-reader' } });
    await call(h.gateway.adminUrl!, 'POST', `/api/v1/access-requests/${id}/revoke`, ADMIN, { reason: 'Dọn dẹp (kiểm thử)' });
  });

  it('a grant record that cannot be read refuses the request (503), never decides without it', async () => {
    const { Redis } = await import('ioredis');
    const redis = new Redis(await redisUrl(), { keyPrefix: prefix });
    try {
      await redis.set(`access:grant:${REQUESTER}:echo`, '{not json', 'PX', 5000);
      const r = await call(B(), 'GET', '/echo/ho-so/1', REQUESTER);
      expect(r.status).toBe(503);
      expect(r.event.ztgate).toMatchObject({ decision: 'deny', reasons: ['grant-state-unavailable'], error_code: 'ZTG_ERR_ACCESS_UNAVAILABLE' });
    } finally {
      await redis.del(`access:grant:${REQUESTER}:echo`);
      redis.disconnect();
    }
  });

  it('expiry under load: no request sent after the end of the grant is allowed, on either instance', async () => {
    const created = await request(REQUESTER, { route: 'echo', role: 'ho-so-reader', durationSeconds: 2 });
    const approved = await call(A(), 'POST', `/.ztgate/access/requests/${created.body.request.id}/approve`, APPROVER, {});
    const expiresAt = Date.parse(approved.body.request.expiresAt);
    const auth = { authorization: `Bearer ${await token(REQUESTER)}` };
    const results: { sentAt: number; status: number }[] = [];
    const worker = async (base: string) => {
      while (Date.now() < expiresAt + 1000) {
        const sentAt = Date.now();
        const res = await fetch(`${base}/echo/ho-so/${results.length}`, { headers: auth });
        await res.arrayBuffer();
        results.push({ sentAt, status: res.status });
      }
    };
    await Promise.all(Array.from({ length: 16 }, (_, i) => worker(i % 2 ? B() : A())));
    expect(results.length).toBeGreaterThan(100);
    expect(results.filter((r) => r.sentAt < expiresAt - 200).every((r) => r.status === 200)).toBe(true);
    const lateAllows = results.filter((r) => r.sentAt >= expiresAt && r.status === 200);
    expect(lateAllows).toEqual([]);
    expect(results.filter((r) => r.sentAt >= expiresAt).length).toBeGreaterThan(10);
  });
});

describe('break-glass', () => {
  it('opens at once, flags every decision, alerts the SOC, and ends by itself when nobody confirms in time', async () => {
    const opened = await call(A(), 'POST', '/.ztgate/access/break-glass', BREAK_GLASS, { route: 'suc-khoe', role: 'suc-khoe-reader', reason: 'Cấp cứu bệnh nhân bất tỉnh (kiểm thử)', durationSeconds: 600 });
    expect(opened.status).toBe(201);
    const id = opened.body.request.id;
    expect(opened.event.ztgate.reasons).toEqual(['break-glass-opened']);
    const alert = lifecycle(id).find((e) => e.event.kind === 'alert');
    expect(alert).toMatchObject({ event: { action: 'access-alert' }, rule: { id: 'break-glass-opened', ruleset: 'ztgate-access' } });
    assertEventMatchesSchema(alert!);

    const onB = await call(B(), 'GET', '/suc-khoe/benh-an/1', BREAK_GLASS);
    expect(onB.status).toBe(200);
    expect(onB.event.ztgate).toMatchObject({ reasons: ['policy-allowed', 'break-glass-access'], grant: { id, kind: 'break-glass', break_glass: true, confirmed: false } });

    const confirmBy = Date.parse(opened.body.request.confirmBy);
    await until('break-glass to end on B', async () => (await call(B(), 'GET', '/suc-khoe/benh-an/1', BREAK_GLASS)).status === 403);
    expect(Date.now() - confirmBy).toBeLessThan(1000);
    const ended = await until('the unconfirmed alert', async () => lifecycle(id).find((e) => e.ztgate.access.operation === 'break-glass-unconfirmed' && e.event.kind === 'alert'));
    expect(ended.ztgate.access.state).toBe('ended-unconfirmed');
    // Too late to confirm now.
    const late = await call(A(), 'POST', `/.ztgate/access/break-glass/${id}/confirm`, BREAK_GLASS_2, {});
    expect(late.status).toBe(409);
  });

  it('a second eligible official confirms (not the opener); the use waits for its after-the-fact review, listed by agency', async () => {
    const notEligible = await call(A(), 'POST', '/.ztgate/access/break-glass', REQUESTER, { route: 'suc-khoe', role: 'suc-khoe-reader', reason: 'Không đủ điều kiện (kiểm thử)', durationSeconds: 60 });
    expect(notEligible.status).toBe(403);
    expect(notEligible.event.ztgate.reasons).toEqual(['break-glass-not-eligible']);
    const noReason = await call(A(), 'POST', '/.ztgate/access/break-glass', BREAK_GLASS, { route: 'suc-khoe', role: 'suc-khoe-reader', reason: '', durationSeconds: 60 });
    expect(noReason.status).toBe(400);
    expect(noReason.body.error.message).toContain('reason');

    const opened = await call(A(), 'POST', '/.ztgate/access/break-glass', BREAK_GLASS, { route: 'suc-khoe', role: 'suc-khoe-reader', reason: 'Ngộ độc tập thể, cần tra cứu tiền sử (kiểm thử)', durationSeconds: 30 });
    const id = opened.body.request.id;
    const self = await call(B(), 'POST', `/.ztgate/access/break-glass/${id}/confirm`, BREAK_GLASS, {});
    expect(self.event.ztgate.reasons).toEqual(['access-self-approval']);
    const ok = await call(B(), 'POST', `/.ztgate/access/break-glass/${id}/confirm`, BREAK_GLASS_2, {});
    expect(ok.body.request.confirmedBy.nationalId).toBe(BREAK_GLASS_2);
    await new Promise((r) => setTimeout(r, 1300)); // past the confirmation window
    const still = await call(B(), 'GET', '/suc-khoe/benh-an/2', BREAK_GLASS);
    expect(still.status).toBe(200);
    expect(still.event.ztgate.grant).toMatchObject({ break_glass: true, confirmed: true });

    // The head of Sở Y tế sees the use of their official until it is reviewed; another agency's head does not.
    expect((await call(B(), 'GET', '/.ztgate/access/requests', HEAD_OF_HEALTH)).body.unreviewedBreakGlass.map((r: any) => r.id)).toContain(id);
    expect((await call(B(), 'GET', '/.ztgate/access/requests', APPROVER)).body.unreviewedBreakGlass).toEqual([]);
    const summary = await call(h.gateway.adminUrl!, 'GET', '/api/v1/access-requests/summary', ADMIN);
    expect(summary.body.unreviewedByAgency['so-y-te'].map((r: any) => r.id)).toContain(id);
    const short = await call(h.gateway.adminUrl!, 'POST', `/api/v1/access-requests/${id}/review`, ADMIN, { note: 'ngắn' });
    expect(short.status).toBe(400);
    const reviewed = await call(h.gateway.adminUrl!, 'POST', `/api/v1/access-requests/${id}/review`, ADMIN, { note: 'Đã đối chiếu bệnh án, sử dụng chính đáng (kiểm thử)' });
    expect(reviewed.body.review.by).toBe(ADMIN);
    const after = await call(h.gateway.adminUrl!, 'GET', '/api/v1/access-requests/summary', ADMIN);
    expect((after.body.unreviewedByAgency['so-y-te'] ?? []).map((r: any) => r.id)).not.toContain(id);
    expect((await call(B(), 'GET', '/.ztgate/access/requests', HEAD_OF_HEALTH)).body.unreviewedBreakGlass.map((r: any) => r.id)).not.toContain(id);
    await call(h.gateway.adminUrl!, 'POST', `/api/v1/access-requests/${id}/revoke`, ADMIN, { reason: 'Kết thúc (kiểm thử)' });
  });
});

describe('webhook and page', () => {
  it('every step of an echo request reaches its webhook, HMAC-signed, retried with backoff until the receiver takes it, in order', async () => {
    const created = await request(REQUESTER, { route: 'echo', role: 'ho-so-reader', durationSeconds: 60 });
    const id = created.body.request.id;
    await call(A(), 'POST', `/.ztgate/access/requests/${id}/cancel`, REQUESTER, {});
    const got = await until(
      'webhook deliveries',
      async () => {
        const ok = hook.attempts
          .slice(hook.failFirst)
          .map((a) => JSON.parse(a.body))
          .filter((n) => n.request.id === id);
        return ok.length >= 2 ? ok : null;
      },
      8000,
    );
    expect(got.map((n) => n.type)).toEqual(['ztgate.access.requested', 'ztgate.access.cancelled']);
    expect(hook.attempts.every((a) => a.signatureOk)).toBe(true);
    // The first notifications were refused (503) and sent again: the same delivery id more than once.
    const first = hook.attempts[0]!.delivery;
    expect(hook.attempts.filter((a) => a.delivery === first).length).toBeGreaterThanOrEqual(3);
  });

  it('serves the official a Vietnamese-first page; a form post from another site is refused', async () => {
    const res = await fetch(`${A()}/.ztgate/access`, { headers: { authorization: `Bearer ${await token(APPROVER)}` } });
    const html = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(html).toContain('Truy cập theo yêu cầu');
    expect(html).toContain('Chờ tôi duyệt');
    const cross = await fetch(`${A()}/.ztgate/access/requests`, { method: 'POST', headers: { authorization: `Bearer ${await token(REQUESTER)}`, 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' }, body: 'route=echo&role=ho-so-reader&durationMinutes=5&purpose=abcdef&caseRef=HS-1' });
    expect(cross.status).toBe(403);
    expect((await h.sink.forRequest(cross.headers.get('x-request-id'))).ztgate.reasons).toEqual(['request-cross-site']);
  });
});

describe('ztgate access (CLI)', () => {
  async function cli(as: string, ...args: string[]) {
    let out = '';
    let err = '';
    const code = await runAccessCommand(args, { out: { write: (s: string) => (out += s) }, err: { write: (s: string) => (err += s) }, env: { ZTGATE_TOKEN: await token(as) } });
    return { code, out: out ? JSON.parse(out) : null, err };
  }

  it('requests, approves and revokes over the API; a refusal exits 1 with the gateway error; bad usage is named', async () => {
    const created = await cli(REQUESTER, 'request', '--gateway', A(), '--route', 'echo', '--role', 'ho-so-reader', '--minutes', '5', '--purpose', 'Đối chiếu hồ sơ (kiểm thử)', '--case', 'CV-118/STP');
    expect(created.code).toBe(0);
    const id = created.out.request.id;
    const self = await cli(REQUESTER, 'approve', id, '--gateway', B());
    expect(self.code).toBe(1);
    expect(self.err).toContain('access-self-approval');
    expect((await cli(APPROVER, 'approve', id, '--gateway', B(), '--note', 'Đồng ý')).out.request.state).toBe('active');
    const listed = await cli(ADMIN, 'admin-list', '--admin', b.adminUrl!, '--state', 'active');
    expect(listed.out.items.map((r: any) => r.id)).toContain(id);
    expect((await cli(ADMIN, 'revoke', id, '--admin', b.adminUrl!, '--reason', 'Xong việc (kiểm thử)')).out.state).toBe('revoked');
    await expect(cli(REQUESTER, 'request', '--gateway', A(), '--route', 'echo')).rejects.toThrow(UsageError);
    await expect(cli(REQUESTER, 'request', '--gateway', A(), '--route', 'echo', '--role', 'x', '--minutes', 'ten', '--purpose', 'p', '--case', 'c')).rejects.toThrow('--minutes');
  });
});
