import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, TEST_AUDIENCE, type Harness } from './helpers/harness.js';

/**
 * Bypass attempts against the policy, the obligations, the response headers and the management
 * plane, each as the request that would exploit it: real HTTP through the gateway, real IdP
 * tokens, assertions on the decision events.
 */

const AN = '056085000001'; // Nguyễn Văn An (giả lập), Sở Tư pháp, ho-tich-reader
const COMMUNE = '056088000003'; // Lê Văn Cường (giả lập), phường Nha Trang, ho-tich-reader
const ADMIN = '056179000006'; // security-admin, VNeID level 2

const POLICY = `# bypass attacks (synthetic)
p, ho-tich-reader, *, echo, /*, GET, allow
p, ho-tich-reader, *, echo, /admin, GET, deny
p, ho-tich-reader, *, echo, /admin/*, GET, deny
p, ho-tich-reader, *, ho-tich, /records, GET|HEAD, allow
p, ho-tich-reader, *, ho-tich, /records/*, GET|HEAD|POST, allow
p, ho-tich-reader, so-tu-phap, ho-tich, /records/:id/notes, POST, deny
p, ho-tich-reader, *, rogue, /*, GET|HEAD, allow
p, ho-tich-reader, *, leaky, /*, GET, allow
`;
const CONDITIONS = `
roles: [ho-tich-reader, security-admin]
communes: [phuong-nha-trang, phuong-bac-nha-trang, xa-dien-khanh]
conditions:
  - name: cap-xa
    when: { routes: [ho-tich, rogue], communeOfficials: true }
    obligations: { communeScope: { recordField: noiDangKy } }
  - name: han-muc
    when: { routes: [rogue], methods: [GET] }
    obligations: { maxRecordsPerResponse: 10 }
`;

let h: Harness;
let rogue: Server;
let leaky: Server;
const tmp = mkdtempSync(join(tmpdir(), 'ztgate-bypass-'));
const records = (n: number, commune: string) => Array.from({ length: n }, (_, i) => ({ id: `R-${i}`, noiDangKy: commune, hoTen: 'Giả Lập' }));

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  // Records of another commune, in a container the gateway does not know.
  rogue = createServer((req, res) => {
    const url = req.url ?? '';
    const own = records(1, 'phuong-nha-trang');
    const foreign = records(4, 'xa-cam-lam');
    const [status, body]: [number, unknown] = url.startsWith('/wrapped')
      ? [200, { data: records(40, 'xa-dien-khanh') }]
      : url.startsWith('/items-and-data')
        ? [200, { items: own, data: foreign }]
        : url.startsWith('/item-and-items')
          ? [200, { items: [], item: foreign[0] }]
          : url.startsWith('/nested')
            ? [200, { items: own, meta: { related: foreign[0] } }]
            : url.startsWith('/not-found')
              ? [404, { items: foreign }]
              : [200, { items: records(2, 'phuong-nha-trang') }];
    res.writeHead(status, { 'content-type': 'application/json', etag: '"v1"' }).end(JSON.stringify(body));
  });
  // Headers that are the gateway's to set, not the upstream's.
  leaky = createServer((_req, res) => {
    res
      .writeHead(200, [
        ['content-type', 'application/json'],
        ['set-cookie', 'ztgate-session=attacker-chosen; Path=/leaky; HttpOnly'],
        ['set-cookie', '__Host-ztgate-session=attacker-chosen; Path=/; Secure'],
        ['set-cookie', 'app-pref=vi; Path=/leaky'],
        ['access-control-allow-origin', '*'],
        ['access-control-allow-credentials', 'true'],
        ['x-ztgate-error', 'forged'],
        ['x-ztgate-decision', 'allow'],
        ['x-request-id', 'forged-id'],
        ['server', 'Apache/2.4.1 (Ubuntu)'],
        ['x-powered-by', 'Express'],
        ['x-app-version', '1.2.3'],
      ])
      .end('{"ok":true}');
  });
  const [rogueUrl, leakyUrl] = await Promise.all([listen(rogue), listen(leaky)]);
  writeFileSync(join(tmp, 'policy.csv'), POLICY);
  writeFileSync(join(tmp, 'conditions.yaml'), CONDITIONS);
  h = await startHarness({
    configure: (doc) => {
      doc.policy = { model: 'policies/model.conf', policy: join(tmp, 'policy.csv'), conditions: join(tmp, 'conditions.yaml') };
      const approval = { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-01' };
      const route = (id: string, upstream: string) => ({ id, name: id, pathPrefix: `/${id}`, upstream, ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'personal-data', approval });
      doc.routes = [...doc.routes.filter((r: { id: string }) => r.id !== 'cong-thuong'), route('rogue', rogueUrl), route('leaky', leakyUrl)];
    },
  });
});

afterAll(async () => {
  await h?.close();
  await Promise.all([new Promise((r) => rogue?.close(r)), new Promise((r) => leaky?.close(r))]);
  rmSync(tmp, { recursive: true, force: true });
});

async function call(path: string, nationalId: string, init: RequestInit = {}) {
  const res = await fetch(`${h.gateway.url}${path}`, { ...init, headers: { authorization: `Bearer ${await h.token(nationalId)}`, ...(init.headers as Record<string, string>) } });
  const event = await h.sink.forRequest(res.headers.get('x-request-id'));
  return { res, event };
}

describe('deny rules cannot be walked around by case or a trailing slash', () => {
  it('attack: /echo/Admin, /echo/ADMIN/users and /echo/admin/ are denied by the /admin rules, not allowed by /*', async () => {
    const before = h.upstreams.recording.received.length;
    // adm%C4%B1n: a dotless ı, which case-insensitive upstreams (Java equalsIgnoreCase) read as i.
    for (const path of ['/echo/Admin', '/echo/ADMIN/users', '/echo/admin/', '/echo/aDmIn/users/', '/echo/adm%C4%B1n']) {
      const { res, event } = await call(path, AN);
      expect(res.status, path).toBe(403);
      expect(event.ztgate, path).toMatchObject({ decision: 'deny', reasons: ['policy-denied'] });
      expect(event.ztgate.rule, path).toMatch(/^p, ho-tich-reader, \*, echo, \/admin(\/\*)?, GET, deny$/);
    }
    expect(h.upstreams.recording.received.length).toBe(before);
  });

  it('attack: a denied note POST sent to /notes/ or /Notes is denied like /notes', async () => {
    for (const path of ['/ho-tich/records/HT-2024-000002/notes/', '/ho-tich/records/HT-2024-000002/Notes', '/ho-tich/records/HT-2024-000002/NOTES/']) {
      const { res, event } = await call(path, AN, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ note: 'ghi chú (kiểm thử)' }) });
      expect(res.status, path).toBe(403);
      expect(event.ztgate, path).toMatchObject({ decision: 'deny', reasons: ['policy-denied'], rule: 'p, ho-tich-reader, so-tu-phap, ho-tich, /records/:id/notes, POST, deny' });
    }
  });

  it('the upstream still receives the path as sent', async () => {
    const { res, event } = await call('/echo/Reports/2026/', AN);
    expect(res.status).toBe(200);
    expect(event.ztgate).toMatchObject({ decision: 'allow', rule: 'p, ho-tich-reader, *, echo, /*, GET, allow' });
    expect(h.upstreams.recording.received.at(-1)!.url).toBe('/api/Reports/2026/');
  });
});

describe('record obligations hold whatever shape or status the upstream answers with', () => {
  it('attack: an upstream wraps 40 records of another commune in {"data": …} → 502 obligation-failed, nothing delivered', async () => {
    const { res, event } = await call('/rogue/wrapped', COMMUNE);
    expect(res.status).toBe(502);
    const body = await res.text();
    expect(body).not.toContain('xa-dien-khanh');
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['policy-allowed', 'obligation-failed'], error_code: 'ZTG_ERR_OBLIGATION_FAILED' });
  });

  it.each([
    ['/rogue/items-and-data', 'records of another commune beside the items container'],
    ['/rogue/item-and-items', 'a second container (item) beside items'],
    ['/rogue/nested', 'a record of another commune nested in a metadata object'],
    ['/rogue/not-found', 'records of another commune in a 404 body'],
  ])('attack: %s (%s) → withheld, 502 obligation-failed', async (path) => {
    const { res, event } = await call(path, COMMUNE);
    expect(res.status).toBe(502);
    expect(await res.text()).not.toContain('xa-cam-lam');
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['policy-allowed', 'obligation-failed'] });
  });

  it('attack: HEAD under obligations does not reveal the length or validators of the unchecked body', async () => {
    const { res, event } = await call('/rogue/list', COMMUNE, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBeNull();
    expect(res.headers.get('etag')).toBeNull();
    expect(event.ztgate).toMatchObject({ decision: 'allow' });
  });

  it('the known containers still count: items of the official’s own commune pass', async () => {
    const { res, event } = await call('/rogue/list', COMMUNE);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { items: unknown[] }).items).toHaveLength(2);
    expect(event.ztgate).toMatchObject({ decision: 'allow', records: 2 });
  });

  it('attack: a commune official posts a note on a record of another commune → refused by the data service (scope claim)', async () => {
    // HT-2024-000002 is registered in phường Bắc Nha Trang; the official is of phường Nha Trang.
    const { res, event } = await call('/ho-tich/records/HT-2024-000002/notes', COMMUNE, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ note: 'ghi chú (kiểm thử)' }) });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toBe('outside-scope');
    // The gateway allowed the write (it cannot see what a write touches); the service enforced scope.commune.
    expect(event.ztgate).toMatchObject({ decision: 'allow' });
    expect(event.http.response.status_code).toBe(403);
    const got = await call('/ho-tich/records/HT-2024-000003/notes', COMMUNE, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ note: 'ghi chú (kiểm thử)' }) });
    expect(got.res.status).toBe(201);
    expect(((await got.res.json()) as { note: { recordId: string } }).note.recordId).toBe('HT-2024-000003');
  });
});

describe('upstream response headers that are the gateway’s to set are dropped', () => {
  it('attack: an upstream sets the gateway session cookie, CORS, X-Ztgate-* and server details → all dropped', async () => {
    const { res, event } = await call('/leaky/x', AN);
    expect(res.status).toBe(200);
    expect(res.headers.getSetCookie()).toEqual(['app-pref=vi; Path=/leaky']);
    for (const name of ['access-control-allow-origin', 'access-control-allow-credentials', 'x-ztgate-error', 'x-ztgate-decision', 'server', 'x-powered-by']) {
      expect(res.headers.get(name), name).toBeNull();
    }
    expect(res.headers.get('x-request-id')).toBe(event.http.request.id);
    expect(res.headers.get('x-app-version')).toBe('1.2.3');
    expect(await res.json()).toEqual({ ok: true });
    expect(event.ztgate).toMatchObject({ decision: 'allow' });
  });
});

describe('the management plane demands VNeID level 2', () => {
  it('attack: a security-admin token without acr (assurance 0) → 401 step-up challenge (RFC 9470), not the admin API', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await h.testIssuer.sign({ iss: h.testIssuer.issuer, aud: TEST_AUDIENCE, sub: ADMIN, national_id: ADMIN, agency: 'cong-an-tinh', roles: ['security-admin'], iat: now, exp: now + 300 });
    const res = await fetch(`${h.gateway.adminUrl}/api/v1/whoami`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(401);
    const challenge = res.headers.get('www-authenticate')!;
    expect(challenge).toContain('error="insufficient_user_authentication"');
    expect(challenge).toMatch(/acr_values="[^"]*vneid-level-2/);
    const event = await h.sink.forRequest(res.headers.get('x-request-id'));
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['assurance-insufficient'], error_code: 'ZTG_ERR_STEP_UP_REQUIRED' });
  });

  it('the same admin signed in at VNeID level 2 reaches it', async () => {
    const res = await fetch(`${h.gateway.adminUrl}/api/v1/whoami`, { headers: { authorization: `Bearer ${await h.token(ADMIN)}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ nationalId: ADMIN, assuranceLevel: 2 });
    const event = await h.sink.forRequest(res.headers.get('x-request-id'));
    expect(event.ztgate).toMatchObject({ decision: 'allow' });
  });
});
