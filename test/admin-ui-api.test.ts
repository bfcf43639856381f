import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './helpers/harness.js';
import { redisUrl } from './helpers/redis.js';
import { createRedisStore } from '../gateway/store-backends.js';
import { clearServiceOverrides, createServiceRegistry } from '../gateway/service-registry.js';
import { createDecisionFeed, monthOf } from '../gateway/audit/decision-feed.js';
import { csvCell, toCsv } from '../gateway/admin/decisions-routes.js';

/**
 * The admin API behind the screens, through real HTTP with real access tokens from the demo IdP:
 * run-time service changes (and their effect on the data plane), the live decision feed, the
 * per-agency counts and their CSV, and the OpenAPI document. The browser itself is in
 * test/admin-ui.test.ts.
 */

const ADMIN = '056179000006'; // Vũ Thị Giang, security-admin
const SECOND_ADMIN = '056083000007'; // Đặng Văn Hùng, security-admin
const OFFICIAL = '056085000001'; // Nguyễn Văn An, so-tu-phap, ho-tich-reader

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

async function admin(method: string, path: string, body?: unknown, token?: string) {
  const headers: Record<string, string> = { authorization: `Bearer ${token ?? (await h.token(ADMIN))}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${h.gateway.adminUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  // Not res.text(): it would drop the byte-order mark the CSV exports start with.
  const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(await res.arrayBuffer());
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {}
  const event = await h.sink.forRequest(res.headers.get('x-request-id'));
  return { res, text, body: json, event };
}

async function data(path: string, nationalId = OFFICIAL) {
  const res = await fetch(`${h.gateway.url}${path}`, { headers: { authorization: `Bearer ${await h.token(nationalId)}` } });
  await res.arrayBuffer();
  return { res, event: await h.sink.forRequest(res.headers.get('x-request-id')) };
}

describe('services: run-time attributes', () => {
  it('lists the configured services with the attributes in force', async () => {
    const { res, body } = await admin('GET', '/api/v1/services');
    expect(res.status).toBe(200);
    const congThuong = body.items.find((s: any) => s.id === 'cong-thuong');
    expect(congThuong).toMatchObject({ securityLevel: 3, classification: 'internal', approval: { status: 'pending' }, overridden: false });
    expect(body.items.map((s: any) => s.id)).toEqual(['ho-tich', 'echo', 'cong-thuong']);
  });

  it('refuses an approval without a reason: 400, and nothing changes', async () => {
    const { res, body, event } = await admin('PATCH', '/api/v1/services/cong-thuong', { approval: { status: 'approved', reason: '   ' } });
    expect(res.status).toBe(400);
    expect(body.error.message).toMatch(/lý do|reason/);
    expect(event.ztgate.decision).toBe('deny');
    const missing = await admin('PATCH', '/api/v1/services/cong-thuong', { approval: { status: 'approved' } });
    expect(missing.res.status).toBe(400);
    expect(missing.body.error.message).toMatch(/reason/);
    const { body: after } = await admin('GET', '/api/v1/services/cong-thuong');
    expect(after.approval.status).toBe('pending');
  });

  it('an approval with a reason waits for a second admin (four-eyes); once confirmed the service is in use on the data plane at once, audited with who and why', async () => {
    const before = await data('/cong-thuong/anything');
    expect(before.event.ztgate.reasons).toEqual(['route-not-approved']);

    const proposed = await admin('PATCH', '/api/v1/services/cong-thuong', { approval: { status: 'approved', reason: 'Đã đánh giá cấp độ 3 (kiểm thử)' } });
    expect(proposed.res.status).toBe(202);
    expect(proposed.event.ztgate.admin).toMatchObject({ operation: 'services.change.propose', target: 'cong-thuong', detail: { reason: 'Đã đánh giá cấp độ 3 (kiểm thử)' } });
    expect((await data('/cong-thuong/anything')).event.ztgate.reasons).toEqual(['route-not-approved']);

    const { res, body, event } = await admin('POST', `/api/v1/services/cong-thuong/changes/${proposed.body.pending.id}/confirm`, { comment: 'Đồng ý (kiểm thử)' }, await h.token(SECOND_ADMIN));
    expect(res.status).toBe(200);
    expect(body).toMatchObject({ id: 'cong-thuong', securityLevel: 3, approval: { status: 'approved', approvedBy: SECOND_ADMIN, proposedBy: ADMIN, reason: 'Đã đánh giá cấp độ 3 (kiểm thử)' }, overridden: true, updatedBy: SECOND_ADMIN });
    expect(event.ztgate.admin).toMatchObject({
      operation: 'services.change.confirm',
      target: 'cong-thuong',
      detail: { proposedBy: ADMIN, before: { approvalStatus: 'pending', securityLevel: 3 }, after: { approvalStatus: 'approved', securityLevel: 3 }, reason: 'Đã đánh giá cấp độ 3 (kiểm thử)', comment: 'Đồng ý (kiểm thử)' },
    });
    expect(event.user.id).toBe(SECOND_ADMIN);

    // Past the route step now: the policy decides (no rule allows cong-thuong in the fixture).
    const after = await data('/cong-thuong/anything');
    expect(after.event.ztgate.reasons).toEqual(['policy-no-match']);
    expect(after.event.ztgate.route).toMatchObject({ id: 'cong-thuong', security_level: 3 });

    // Raising the security level raises what the service demands, at once: a level-4 service wants a compliant device.
    const raised = await admin('PATCH', '/api/v1/services/cong-thuong', { securityLevel: 4 });
    expect(raised.event.ztgate.admin).toMatchObject({ operation: 'services.update', detail: { after: { securityLevel: 4 } } });
    const level4 = await data('/cong-thuong/anything');
    expect(level4.event.ztgate.route).toMatchObject({ id: 'cong-thuong', security_level: 4 });
    expect(level4.event.ztgate.reasons).not.toEqual(['policy-no-match']);

    const suspended = await admin('PATCH', '/api/v1/services/cong-thuong', { approval: { status: 'suspended', reason: 'Sự cố an toàn (kiểm thử)' } });
    expect(suspended.body.approval.status).toBe('suspended');
    const refused = await data('/cong-thuong/anything');
    expect(refused.res.status).toBe(403);
    expect(refused.event.ztgate.reasons).toEqual(['route-not-approved']);
  });

  it('refuses unknown services and unknown attributes (upstream comes from the configuration only)', async () => {
    expect((await admin('PATCH', '/api/v1/services/khong-co', { securityLevel: 2 })).res.status).toBe(404);
    const upstream = await admin('PATCH', '/api/v1/services/echo', { upstream: 'http://evil.example' });
    expect(upstream.res.status).toBe(400);
    expect((await admin('PATCH', '/api/v1/services/echo', { securityLevel: 9 })).res.status).toBe(400);
    expect((await admin('PATCH', '/api/v1/services/echo', {})).res.status).toBe(400);
  });

  it('refuses a change from an official without the security-admin role', async () => {
    const { res, event } = await admin('PATCH', '/api/v1/services/ho-tich', { approval: { status: 'suspended', reason: 'x' } }, await h.token(OFFICIAL));
    expect(res.status).toBe(403);
    expect(event.ztgate.reasons).toEqual(['admin-role-required']);
    expect((await admin('GET', '/api/v1/services/ho-tich')).body.approval.status).toBe('approved');
  });

  it('a change made on one instance applies on another through Redis', async () => {
    const url = await redisUrl();
    const keyPrefix = `ztgate-test:${randomBytes(6).toString('hex')}:`;
    const [storeA, storeB] = await Promise.all([createRedisStore({ url, keyPrefix }), createRedisStore({ url, keyPrefix })]);
    const routes = h.config.routes;
    const [a, b] = await Promise.all([createServiceRegistry(routes, storeA), createServiceRegistry(routes, storeB)]);
    try {
      const base = routes.find((r) => r.id === 'ho-tich')!;
      await a.update('ho-tich', { approval: { status: 'suspended', reason: 'kiểm thử đa phiên bản' }, classification: 'sensitive-personal-data' }, ADMIN);
      for (let i = 0; i < 200 && b.current(base).approval.status !== 'suspended'; i++) await new Promise((r) => setTimeout(r, 10));
      expect(b.current(base)).toMatchObject({ approval: { status: 'suspended', approvedBy: ADMIN }, classification: 'sensitive-personal-data' });
      // A third instance starting later reads the same override from the Store.
      const c = await createServiceRegistry(routes, storeA);
      expect(c.current(base).approval.status).toBe('suspended');
      await c.close();
    } finally {
      await clearServiceOverrides(
        storeA,
        routes.map((r) => r.id),
      );
      await Promise.all([a.close(), b.close()]);
      await Promise.all([storeA.close(), storeB.close()]);
    }
  });
});

describe('live decisions', () => {
  it('lists recent decisions with filters by outcome, agency, service and official', async () => {
    const allowed = await data('/ho-tich/records?limit=1');
    const denied = await data('/echo/personal/1', OFFICIAL);
    expect(allowed.res.status).toBe(200);
    const all = await admin('GET', '/api/v1/decisions?kind=access');
    const ids = all.body.items.map((d: any) => d.id);
    expect(ids).toContain(allowed.event.event.id);
    const allow = await admin('GET', `/api/v1/decisions?outcome=allow&official=${OFFICIAL}&service=ho-tich&agency=so-tu-phap`);
    expect(allow.body.items.length).toBeGreaterThan(0);
    expect(allow.body.items.every((d: any) => d.decision === 'allow' && d.official === OFFICIAL && d.service === 'ho-tich' && d.agency === 'so-tu-phap')).toBe(true);
    const found = allow.body.items.find((d: any) => d.id === allowed.event.event.id);
    expect(found).toMatchObject({ method: 'GET', path: '/ho-tich/records', status: 200, rule: expect.stringContaining('ho-tich-reader') });
    // No query string: it may carry citizens' personal data.
    expect(JSON.stringify(allow.body)).not.toContain('limit=1');
    const deny = await admin('GET', '/api/v1/decisions?outcome=deny&kind=access');
    expect(deny.body.items.every((d: any) => d.decision === 'deny')).toBe(true);
    expect(denied.event.ztgate.decision).toBeDefined();
  });

  it('refuses a filter that is not one (400), rather than ignoring it', async () => {
    expect((await admin('GET', '/api/v1/decisions?outcome=maybe')).res.status).toBe(400);
    expect((await admin('GET', '/api/v1/decisions?official=abc')).res.status).toBe(400);
    expect((await admin('GET', '/api/v1/decisions?user=x')).res.status).toBe(400);
  });

  it('streams new decisions as Server-Sent Events, filtered', async () => {
    const controller = new AbortController();
    const res = await fetch(`${h.gateway.adminUrl}/api/v1/decisions/stream?outcome=allow&service=ho-tich`, {
      headers: { authorization: `Bearer ${await h.token(ADMIN)}` },
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    const denied = await data('/ho-tich/nothing-allowed-here', '056080000005');
    const allowed = await data('/ho-tich/records?limit=1');
    try {
      while (!buffer.includes(`id: ${allowed.event.event.id}`)) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value);
      }
      expect(buffer).toContain(`id: ${allowed.event.event.id}`);
      const events = buffer.split('\n\n').filter((b) => b.startsWith('event: decision'));
      const payloads = events.map((e) => JSON.parse(e.split('\ndata: ')[1]!));
      expect(payloads.every((p) => p.decision === 'allow' && p.service === 'ho-tich')).toBe(true);
      expect(buffer).not.toContain(denied.event.event.id);
    } finally {
      controller.abort();
    }
  });

  it('counts decisions per agency and service, and exports them as CSV for the yearly report', async () => {
    await data('/ho-tich/records?limit=1');
    const year = Number(monthOf(new Date().toISOString()).slice(0, 4));
    const { body } = await admin('GET', `/api/v1/decisions/counts?year=${year}`);
    const row = body.rows.find((r: any) => r.agency === 'so-tu-phap' && r.service === 'ho-tich');
    expect(row.allowed).toBeGreaterThan(0);
    expect(body).toMatchObject({ from: `${year}-01`, to: `${year}-12` });

    const csv = await admin('GET', `/api/v1/decisions/counts.csv?year=${year}`);
    expect(csv.res.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(csv.res.headers.get('content-disposition')).toMatch(/attachment/);
    expect(csv.text.charCodeAt(0)).toBe(0xfeff);
    const lines = csv.text.slice(1).trim().split('\r\n');
    expect(lines[0]).toBe('Từ tháng (from),Đến tháng (to),Cơ quan (agency),Dịch vụ (service),Cho phép (allowed),Từ chối (denied),Tổng (total)');
    expect(lines).toContain(`${year}-01,${year}-12,so-tu-phap,ho-tich,${row.allowed},${row.denied},${row.allowed + row.denied}`);
    expect(csv.event.ztgate.admin).toMatchObject({ operation: 'decisions.counts.export' });

    expect((await admin('GET', `/api/v1/decisions/counts?from=${year}-05&to=${year}-02`)).res.status).toBe(400);
  });

  it('exports recent decisions as CSV', async () => {
    const csv = await admin('GET', '/api/v1/decisions.csv?kind=access&outcome=allow');
    expect(csv.res.status).toBe(200);
    expect(csv.text.slice(1).split('\r\n')[0]).toMatch(/^Thời điểm \(time\),Quyết định \(decision\)/);
    expect(csv.text).toContain(',allow,policy-allowed,');
  });

  it('attack: a value a spreadsheet would run as a formula is exported as text', () => {
    expect(csvCell('=HYPERLINK("http://evil")')).toBe(`"'=HYPERLINK(""http://evil"")"`);
    expect(csvCell('+1')).toBe(`"'+1"`);
    expect(csvCell('@cmd')).toBe(`"'@cmd"`);
    expect(csvCell('so-tu-phap')).toBe('so-tu-phap');
    expect(toCsv(['a'], [['x,y']])).toBe('\uFEFFa\r\n"x,y"\r\n');
  });

  it('the ring keeps the most recent decisions only, oldest first', () => {
    const feed = createDecisionFeed();
    const line = (i: number) => JSON.stringify({ '@timestamp': new Date().toISOString(), event: { id: `r${i}`, action: 'access-decision' }, ztgate: { decision: 'allow', reasons: [] } });
    for (let i = 0; i < 2005; i++) feed.ingest(line(i));
    const recent = feed.recent();
    expect(recent).toHaveLength(2000);
    expect(recent[0]!.id).toBe('r5');
    expect(recent.at(-1)!.id).toBe('r2004');
    expect(feed.recent({}, 3).map((d) => d.id)).toEqual(['r2002', 'r2003', 'r2004']);
    feed.ingest('not json');
    expect(feed.recent({}, 1)[0]!.id).toBe('r2004');
    void feed.close();
  });

  it('months are counted in Vietnam time (UTC+7)', () => {
    expect(monthOf('2026-09-30T17:30:00.000Z')).toBe('2026-10');
    expect(monthOf('2026-09-30T16:59:59.000Z')).toBe('2026-09');
  });
});

describe('OpenAPI', () => {
  it('describes every admin route from the code', async () => {
    const { res, body } = await admin('GET', '/api/v1/openapi.json');
    expect(res.status).toBe(200);
    expect(body.openapi).toBe('3.1.0');
    expect(Object.keys(body.paths)).toEqual(expect.arrayContaining(['/api/v1/services', '/api/v1/services/{id}', '/api/v1/decisions/stream', '/api/v1/csrf', '/api/v1/openapi.json']));
    const patch = body.paths['/api/v1/services/{id}'].patch;
    expect(patch.requestBody.content['application/json'].schema.properties.approval.required).toEqual(['status', 'reason']);
    expect(patch.parameters).toEqual([expect.objectContaining({ name: 'id', in: 'path', required: true })]);
    expect(body.paths['/api/v1/decisions/counts.csv'].get.responses['200'].content).toHaveProperty('text/csv');
  });
});
