import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../gateway/config.js';
import { startGateway, type RunningGateway } from '../gateway/server.js';
import { startDemoUpstream, type DemoUpstream } from '../demo/upstreams.js';
import { EventSink, freePort, ROOT, startTestIssuer, TEST_AUDIENCE, type TestIssuer } from './helpers/harness.js';
import { redisUrl } from './helpers/redis.js';

/**
 * Obligations through the real proxy: the demo Hộ tịch data service (real records, real
 * assertion checks), upstreams that misbehave, quotas counted in real Redis.
 */

const POLICY = `# test policy (synthetic)
p, ho-tich-reader, *, ho-tich, /records, GET, allow
p, ho-tich-reader, *, ho-tich, /records/:id, GET, allow
p, ho-tich-registrar, *, ho-tich, /records, GET, allow
p, ho-tich-reader, *, rogue, /*, GET, allow
p, ho-tich-reader, *, plain, /*, GET, allow
p, y-te-reader, *, suc-khoe, /*, GET, allow
`;
const CONDITIONS = `
roles: [ho-tich-reader, ho-tich-registrar, y-te-reader]
communes: [phuong-nha-trang, xa-cam-lam]
purposes: { codes: [thanh-tra, thong-ke] }
conditions:
  - name: cap-xa
    when: { routes: [ho-tich, rogue], communeOfficials: true }
    obligations: { communeScope: { recordField: noiDangKy } }
  - name: che
    when: { routes: [ho-tich, plain], exceptRoles: [ho-tich-registrar] }
    obligations: { maskFields: [soDinhDanh, soDienThoai, diaChi] }
  - name: han-muc
    when: { routes: [ho-tich] }
    obligations: { maxRecordsPerResponse: 10, maxRecordsPerDay: 15 }
  - name: muc-dich
    when: { routes: [suc-khoe] }
    require: { purpose: true }
`;

const PROVINCE = { national_id: '056085000001', agency: 'so-tu-phap', roles: ['ho-tich-reader'] };
const COMMUNE = { national_id: '056088000003', agency: 'phuong-nha-trang', roles: ['ho-tich-reader'] };

let issuer: TestIssuer;
let gateway: RunningGateway;
let hoTich: DemoUpstream;
let rogue: Server;
let plain: Server;
let sink: EventSink;
let redis: Redis;
const prefix = `ztgate-test-${randomBytes(6).toString('hex')}:`;
const tmp = mkdtempSync(join(tmpdir(), 'ztgate-obligations-'));
const records = (n: number, commune: string) => Array.from({ length: n }, (_, i) => ({ id: `R-${i}`, noiDangKy: commune, soDinhDanh: `05622499${String(1000 + i)}`, hoTen: 'Giả Lập' }));

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  issuer = await startTestIssuer();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  hoTich = await startDemoUpstream({ dataset: 'ho-tich', gatewayIssuer: url, gatewayJwksUrl: `${url}/.well-known/jwks.json` });
  // Ignores the commune scope the assertion carries: returns another commune's records.
  rogue = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ items: [...records(1, 'phuong-nha-trang'), ...records(1, 'xa-cam-lam')] })));
  // Not JSON: nothing the gateway could mask.
  plain = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/csv' }).end('soDinhDanh\n056224990470\n'));
  const [rogueUrl, plainUrl] = await Promise.all([listen(rogue), listen(plain)]);
  writeFileSync(join(tmp, 'policy.csv'), POLICY);
  writeFileSync(join(tmp, 'conditions.yaml'), CONDITIONS);
  const approval = { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-01' };
  const route = (id: string, upstream: string) => ({ id, name: id, pathPrefix: `/${id}`, upstream, ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'personal-data', approval });
  const config = parseConfig(
    {
      listen: { host: '127.0.0.1', port },
      publicUrl: url,
      identity: { issuers: [{ issuer: issuer.issuer, audience: TEST_AUDIENCE, algorithms: ['ES256'] }] },
      // Device trust is another step's business: these routes do not ask for a device.
      devices: { defaultMinTierBySecurityLevel: { '3': 'unknown' } },
      state: { backend: 'redis', redisUrl: await redisUrl(), keyPrefix: prefix },
      policy: { model: join(ROOT, 'policies/model.conf'), policy: join(tmp, 'policy.csv'), conditions: join(tmp, 'conditions.yaml') },
      routes: [route('ho-tich', hoTich.url), route('rogue', rogueUrl), route('plain', plainUrl), route('suc-khoe', rogueUrl)],
    },
    'obligations-test',
    tmp,
  );
  sink = new EventSink();
  gateway = await startGateway(config, { decisionLog: sink });
  redis = new Redis(await redisUrl());
});

afterAll(async () => {
  await gateway?.close();
  await Promise.all([issuer?.close(), hoTich?.close(), new Promise((r) => rogue?.close(r)), new Promise((r) => plain?.close(r))]);
  if (redis) {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  }
  rmSync(tmp, { recursive: true, force: true });
});

async function token(claims: Record<string, unknown>): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return issuer.sign({ iss: issuer.issuer, aud: TEST_AUDIENCE, sub: claims.national_id as string, iat: now, exp: now + 300, ...claims });
}

async function call(path: string, claims: Record<string, unknown>, headers: Record<string, string> = {}) {
  const res = await fetch(`${gateway.url}${path}`, { headers: { authorization: `Bearer ${await token(claims)}`, ...headers } });
  const text = await res.text();
  const event = await sink.forRequest(res.headers.get('x-request-id'));
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { res, text, body, event };
}

describe('masking for officials without need-to-know', () => {
  it('national ID, phone and address are masked in the upstream response; other fields are not', async () => {
    const { res, body, event } = await call('/ho-tich/records?limit=3', { ...PROVINCE, national_id: '056085000101' });
    expect(res.status, JSON.stringify([body, event.ztgate])).toBe(200);
    expect(body.items).toHaveLength(3);
    for (const item of body.items) {
      expect(item.soDinhDanh).toMatch(/^056\*{7}\d{2}$/);
      expect(item.soDienThoai).toMatch(/^\d{3}\*+\d{2}$/);
      expect(item.diaChi).toMatch(/^\*\*\*, /);
      expect(item.hoTen).not.toContain('*');
    }
    expect(event.ztgate.decision).toBe('allow');
    expect(event.ztgate.records).toBe(3);
  });

  it('a registrar (need-to-know role) sees them unmasked', async () => {
    const { res, body } = await call('/ho-tich/records?limit=3', { national_id: '056191000102', agency: 'so-tu-phap', roles: ['ho-tich-registrar'] });
    expect(res.status).toBe(200);
    for (const item of body.items) expect(item.soDinhDanh).toMatch(/^\d{12}$/);
  });

  it('attack: a response that is not JSON cannot be masked, so it is withheld (502 obligation-failed)', async () => {
    const { res, text, event } = await call('/plain/export.csv', PROVINCE);
    expect(res.status).toBe(502);
    expect(text).not.toContain('056224990470');
    expect(event.ztgate.decision).toBe('deny');
    expect(event.ztgate.reasons).toContain('obligation-failed');
    expect(event.ztgate.error_code).toBe('ZTG_ERR_OBLIGATION_FAILED');
  });
});

describe('commune officials see only their commune', () => {
  it('the demo data service filters by the scope in the assertion; every record is of the commune', async () => {
    const { res, body, event } = await call('/ho-tich/records?limit=10', { ...COMMUNE, national_id: '056088000103' });
    expect(res.status).toBe(200);
    expect(body.scope).toEqual({ commune: 'phuong-nha-trang' });
    expect(body.items.length).toBeGreaterThan(0);
    expect(body.items.every((r: any) => r.noiDangKy === 'phuong-nha-trang')).toBe(true);
    expect(body.total).toBe(9); // of 25 synthetic records, 9 are registered in phường Nha Trang
    expect(event.ztgate.records).toBe(body.items.length);
  });

  it('a record of another commune is not found for them', async () => {
    const { res } = await call('/ho-tich/records/HT-2024-000001', { ...COMMUNE, national_id: '056088000104' }); // registered in xã Diên Khánh
    expect(res.status).toBe(404);
  });

  it('a province official is not scoped', async () => {
    const { body } = await call('/ho-tich/records?limit=10', { ...PROVINCE, national_id: '056085000105' });
    expect(body.total).toBe(25);
  });

  it('attack: an upstream that ignores the scope → 502, nothing of the other commune is delivered', async () => {
    const { res, text, event } = await call('/rogue/records', { ...COMMUNE, national_id: '056088000106' });
    expect(res.status).toBe(502);
    expect(text).not.toContain('xa-cam-lam');
    expect(event.ztgate.reasons).toContain('obligation-failed');
  });
});

describe('record caps and daily quotas against mass extraction', () => {
  it('attack: more records in one response than the cap → 429, body withheld', async () => {
    const { res, text, event } = await call('/ho-tich/records?limit=11', { ...PROVINCE, national_id: '056085000107' });
    expect(res.status).toBe(429);
    expect(text).not.toMatch(/HT-2024/);
    expect(event.ztgate.reasons).toContain('records-per-response-exceeded');
    expect(event.ztgate.decision).toBe('deny');
  });

  it('attack: paging past the daily quota → 429 quota-exceeded; refused records are not counted; a used-up quota refuses before forwarding', async () => {
    const who = { ...PROVINCE, national_id: '056085000108' };
    expect((await call('/ho-tich/records?limit=10', who)).res.status).toBe(200);
    const over = await call('/ho-tich/records?limit=10&offset=10', who);
    expect(over.res.status).toBe(429);
    expect(over.event.ztgate.reasons).toContain('quota-exceeded');
    expect(over.text).not.toMatch(/HT-2024/);
    // 10 delivered so far: 5 more fit exactly.
    expect((await call('/ho-tich/records?limit=5&offset=10', who)).res.status).toBe(200);
    const keys = await redis.keys(`${prefix}quota:records:056085000108:*`);
    expect(keys).toHaveLength(1);
    expect(await redis.get(keys[0]!)).toBe('15');
    expect(await redis.pttl(keys[0]!)).toBeGreaterThan(0);
    const after = await call('/ho-tich/records?limit=1', who);
    expect(after.res.status).toBe(429);
    expect(after.event.ztgate.reasons).toContain('quota-exceeded');
    expect(after.event.ztgate.records).toBeUndefined(); // refused before the upstream was asked
  });

  it('the quota is per official: a colleague is not affected', async () => {
    expect((await call('/ho-tich/records?limit=5', { ...PROVINCE, national_id: '056085000109' })).res.status).toBe(200);
  });
});

describe('purpose of access', () => {
  const health = { national_id: '056190000110', agency: 'so-y-te', roles: ['y-te-reader'] };

  it('missing where required → 403 purpose-required', async () => {
    const { res, body, event } = await call('/suc-khoe/records?limit=1', health);
    expect(res.status).toBe(403);
    expect(body.error.code).toBe('ZTG_ERR_PURPOSE_REQUIRED');
    expect(event.ztgate.reasons).toEqual(['purpose-required']);
  });

  it('a code outside the list → 400 purpose-invalid', async () => {
    const { res, event } = await call('/suc-khoe/records?limit=1', health, { 'x-purpose': 'to-mo', 'x-case-ref': 'TT-2026/1' });
    expect(res.status).toBe(400);
    expect(event.ztgate.reasons).toContain('purpose-invalid');
  });

  it('a purpose without a case reference → 400 purpose-invalid', async () => {
    const { res } = await call('/suc-khoe/records?limit=1', health, { 'x-purpose': 'thanh-tra' });
    expect(res.status).toBe(400);
  });

  it('a valid purpose is allowed and logged with its case reference', async () => {
    const { res, event } = await call('/suc-khoe/records?limit=1', health, { 'x-purpose': 'thanh-tra', 'x-case-ref': 'TT-2026/014' });
    expect(res.status).toBe(200);
    expect(event.ztgate.purpose).toEqual({ code: 'thanh-tra', case_ref: 'TT-2026/014' });
  });
});
