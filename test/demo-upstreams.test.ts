import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';

import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { demoDataDir, startDemoUpstream, type DemoDatasetId, type DemoUpstream } from '../demo/upstreams.js';

const ISSUER = 'http://127.0.0.1:8080';
const SUB = '056085000001';
const AGENCY = 'so-tu-phap';

let jwksServer: Server;
let jwksUrl: string;
let gatewayKey: CryptoKey;
let otherKey: CryptoKey;
const upstreams = new Map<DemoDatasetId, DemoUpstream>();

interface SignOptions {
  key?: CryptoKey;
  kid?: string;
  aud?: string;
  iss?: string;
  typ?: string;
  sub?: string;
  agency?: string | null;
  iatOffset?: number;
  expOffset?: number;
  http?: { method: string; path: string };
}

async function sign(o: SignOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {
    roles: ['ho-tich-reader'],
    route: o.aud ?? 'ho-tich',
    rule: 'p, role:ho-tich-reader, ho-tich, GET',
    policy_version: 'test-1',
  };
  if (o.agency !== null) claims['agency'] = o.agency ?? AGENCY;
  if (o.http) claims['http'] = o.http;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', typ: o.typ ?? 'ztgate-assertion+jwt', kid: o.kid ?? 'gw-1' })
    .setIssuer(o.iss ?? ISSUER)
    .setAudience(o.aud ?? 'ho-tich')
    .setSubject(o.sub ?? SUB)
    .setIssuedAt(now + (o.iatOffset ?? 0))
    .setExpirationTime(now + (o.expOffset ?? 60))
    .setJti(`dec-${Math.random().toString(36).slice(2)}`)
    .sign(o.key ?? gatewayKey);
}

async function call(dataset: DemoDatasetId, path: string, init: { token?: string; method?: string; body?: unknown } = {}): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (init.token !== undefined) headers['x-ztgate-assertion'] = init.token;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(upstreams.get(dataset)!.url + path, {
    method: init.method ?? 'GET',
    headers,
    body: init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

beforeAll(async () => {
  const gw = await generateKeyPair('ES256');
  gatewayKey = gw.privateKey;
  otherKey = (await generateKeyPair('ES256')).privateKey;
  const publicJwk: JWK = { ...(await exportJWK(gw.publicKey)), kid: 'gw-1', alg: 'ES256', use: 'sig' };
  jwksServer = createServer((req, res) => {
    if (req.url === '/.well-known/jwks.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [publicJwk] }));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
  for (const dataset of ['ho-tich', 'dat-dai', 'y-te'] as const) {
    upstreams.set(dataset, await startDemoUpstream({ dataset, gatewayIssuer: ISSUER, gatewayJwksUrl: jwksUrl }));
  }
});

afterAll(async () => {
  await Promise.all([...upstreams.values()].map((u) => u.close()));
  jwksServer.closeAllConnections();
  await new Promise<void>((resolve) => jwksServer.close(() => resolve()));
});

describe('demo datasets', () => {
  it.each(['ho-tich', 'dat-dai', 'y-te'] as const)('%s.json is marked synthetic and well-formed', async (dataset) => {
    const file = JSON.parse(await readFile(`${demoDataDir()}/${dataset}.json`, 'utf8'));
    expect(file._note).toBe('DỮ LIỆU GIẢ LẬP — SYNTHETIC DEMO DATA');
    expect(file.title).toMatch(/^Cơ sở dữ liệu /);
    expect(file.records.length).toBeGreaterThanOrEqual(20);
    const ids = new Set(file.records.map((r: { id: string }) => r.id));
    expect(ids.size).toBe(file.records.length);
    for (const r of file.records) {
      const nid = r.soDinhDanh ?? r.chuSuDung?.soDinhDanh;
      expect(nid).toMatch(/^056[0-3]\d{2}9\d{5}$/);
    }
  });
});

describe('demo upstream: assertion is mandatory (defence in depth)', () => {
  it('rejects a request without an assertion', async () => {
    const r = await call('ho-tich', '/records');
    expect(r.status).toBe(401);
    expect(r.body.error).toBe('assertion-invalid');
    expect(r.body.message).toMatch(/missing/);
  });

  it('has no unauthenticated bypass, not even for unknown paths', async () => {
    for (const path of ['/', '/health', '/records/HT-2024-000001', '/nope']) {
      const r = await call('ho-tich', path);
      expect(r.status, path).toBe(401);
    }
  });

  it('rejects a garbage assertion', async () => {
    const r = await call('ho-tich', '/records', { token: 'not-a-jwt' });
    expect(r.status).toBe(401);
    expect(r.body.error).toBe('assertion-invalid');
  });

  it('rejects an assertion signed by another key (same kid)', async () => {
    const r = await call('ho-tich', '/records', { token: await sign({ key: otherKey }) });
    expect(r.status).toBe(401);
    expect(r.body.error).toBe('assertion-invalid');
  });

  it('rejects an assertion signed by another key (unknown kid)', async () => {
    const r = await call('ho-tich', '/records', { token: await sign({ key: otherKey, kid: 'attacker' }) });
    expect(r.status).toBe(401);
  });

  it('rejects an assertion for another dataset (wrong aud)', async () => {
    const token = await sign({ aud: 'y-te' });
    expect((await call('ho-tich', '/records', { token })).status).toBe(401);
    // ...while the dataset it was minted for accepts it.
    expect((await call('y-te', '/records', { token })).status).toBe(200);
  });

  it('rejects an assertion from another issuer', async () => {
    const r = await call('ho-tich', '/records', { token: await sign({ iss: 'http://evil.example' }) });
    expect(r.status).toBe(401);
  });

  it('rejects an expired assertion', async () => {
    const r = await call('ho-tich', '/records', { token: await sign({ iatOffset: -90, expOffset: -30 }) });
    expect(r.status).toBe(401);
    expect(r.body.message).toMatch(/exp/);
  });

  it('rejects an assertion older than 120 s even if exp is far away', async () => {
    const r = await call('ho-tich', '/records', { token: await sign({ iatOffset: -600, expOffset: 600 }) });
    expect(r.status).toBe(401);
  });

  it('rejects an assertion with the wrong typ', async () => {
    for (const typ of ['JWT', 'at+jwt']) {
      const r = await call('ho-tich', '/records', { token: await sign({ typ }) });
      expect(r.status, typ).toBe(401);
    }
  });

  it('rejects an assertion whose sub is not a 12-digit national ID, or without agency', async () => {
    expect((await call('ho-tich', '/records', { token: await sign({ sub: 'alice' }) })).status).toBe(401);
    expect((await call('ho-tich', '/records', { token: await sign({ agency: null }) })).status).toBe(401);
  });
});

describe('demo upstream: an assertion is good for the request it was issued for', () => {
  it('attack: an assertion for GET /records/HT-2024-000001 replayed for GET /records → 401', async () => {
    const token = await sign({ http: { method: 'GET', path: '/records/HT-2024-000001' } });
    expect((await call('ho-tich', '/records/HT-2024-000001', { token })).status).toBe(200);
    const replay = await call('ho-tich', '/records', { token });
    expect(replay.status).toBe(401);
    expect(replay.body.error).toBe('assertion-invalid');
  });

  it('attack: an assertion for GET replayed for POST on the same path → 401', async () => {
    const token = await sign({ http: { method: 'GET', path: '/records/HT-2024-000001/notes' } });
    const r = await call('ho-tich', '/records/HT-2024-000001/notes', { token, method: 'POST', body: { note: 'x' } });
    expect(r.status).toBe(401);
  });
});

describe('demo upstream: records', () => {
  it('lists records for a valid assertion and reports who the gateway allowed', async () => {
    const r = await call('ho-tich', '/records', { token: await sign() });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      dataset: 'ho-tich',
      title: 'Cơ sở dữ liệu Hộ tịch',
      synthetic: true,
      total: 25,
      limit: 20,
      offset: 0,
      requestedBy: { nationalId: SUB, agency: AGENCY },
    });
    expect(r.body.items).toHaveLength(20);
    expect(r.body.items[0].id).toBe('HT-2024-000001');
  });

  it('serves each dataset under its own audience', async () => {
    for (const [dataset, prefix, title] of [
      ['dat-dai', 'DD-', 'Cơ sở dữ liệu Đất đai'],
      ['y-te', 'YT-', 'Cơ sở dữ liệu Y tế'],
    ] as const) {
      const r = await call(dataset, '/records', { token: await sign({ aud: dataset, sub: '056092000004', agency: 'x' }) });
      expect(r.status).toBe(200);
      expect(r.body.title).toBe(title);
      expect(r.body.items[0].id.startsWith(prefix)).toBe(true);
      expect(r.body.requestedBy).toEqual({ nationalId: '056092000004', agency: 'x' });
    }
  });

  it('paginates within bounds', async () => {
    const token = await sign();
    const page = await call('ho-tich', '/records?limit=10&offset=20', { token });
    expect(page.status).toBe(200);
    expect(page.body.items).toHaveLength(5);
    expect(page.body.items[0].id).toBe('HT-2024-000021');
    const max = await call('ho-tich', '/records?limit=100', { token });
    expect(max.body.items).toHaveLength(25);
    const past = await call('ho-tich', '/records?offset=1000', { token });
    expect(past.status).toBe(200);
    expect(past.body.items).toHaveLength(0);
  });

  it('rejects out-of-range pagination with 400', async () => {
    const token = await sign();
    for (const q of ['limit=101', 'limit=0', 'limit=-1', 'limit=abc', 'limit=1.5', 'offset=-1', 'limit=1&limit=2']) {
      const r = await call('ho-tich', `/records?${q}`, { token });
      expect(r.status, q).toBe(400);
      expect(r.body.error).toBe('invalid-query');
      expect(r.body.requestedBy.nationalId).toBe(SUB);
    }
    const r = await call('ho-tich', '/records?limit=101', { token });
    expect(r.body.message).toBe('limit must be an integer between 1 and 100');
  });

  it('returns one record, or 404', async () => {
    const token = await sign();
    const found = await call('ho-tich', '/records/HT-2024-000007', { token });
    expect(found.status).toBe(200);
    expect(found.body.item.id).toBe('HT-2024-000007');
    expect(found.body.synthetic).toBe(true);
    expect(found.body.requestedBy.nationalId).toBe(SUB);
    const missing = await call('ho-tich', '/records/HT-2024-999999', { token });
    expect(missing.status).toBe(404);
    expect(missing.body.error).toBe('not-found');
    expect(missing.body.requestedBy.nationalId).toBe(SUB);
  });

  it('is read-only apart from notes', async () => {
    const token = await sign();
    expect((await call('ho-tich', '/records', { token, method: 'POST', body: { x: 1 } })).status).toBe(404);
    expect((await call('ho-tich', '/records/HT-2024-000001', { token, method: 'DELETE' })).status).toBe(404);
  });
});

describe('demo upstream: notes', () => {
  it('accepts a note and records the asserted author', async () => {
    const token = await sign({ aud: 'dat-dai', sub: '056092000004', agency: 'so-nong-nghiep-moi-truong' });
    const r = await call('dat-dai', '/records/DD-000003/notes', {
      token,
      method: 'POST',
      body: { note: 'Đã đối chiếu hồ sơ địa chính.' },
    });
    expect(r.status).toBe(201);
    expect(r.body.note).toMatchObject({
      recordId: 'DD-000003',
      note: 'Đã đối chiếu hồ sơ địa chính.',
      author: '056092000004',
      agency: 'so-nong-nghiep-moi-truong',
    });
    expect(r.body.requestedBy).toEqual({ nationalId: '056092000004', agency: 'so-nong-nghiep-moi-truong' });
    const rec = await call('dat-dai', '/records/DD-000003', { token });
    expect(rec.body.item.notes).toHaveLength(1);
  });

  it('validates the note body', async () => {
    const token = await sign();
    const path = '/records/HT-2024-000001/notes';
    const bad: unknown[] = [{}, { note: '' }, { note: '   ' }, { note: 42 }, ['x'], { note: 'a'.repeat(501) }];
    for (const body of bad) {
      const r = await call('ho-tich', path, { token, method: 'POST', body });
      expect(r.status, JSON.stringify(body).slice(0, 40)).toBe(400);
    }
    const tooLong = await call('ho-tich', path, { token, method: 'POST', body: { note: 'ệ'.repeat(501) } });
    expect(tooLong.body.message).toMatch(/500/);
    expect((await call('ho-tich', path, { token, method: 'POST', body: { note: 'ệ'.repeat(500) } })).status).toBe(201);
    expect((await call('ho-tich', path, { token, method: 'POST', body: '{not json' })).status).toBe(400);
    expect((await call('ho-tich', path, { token, method: 'POST' })).status).toBe(400);
  });

  it('404s notes for an unknown record and requires an assertion', async () => {
    const body = { note: 'x' };
    expect((await call('ho-tich', '/records/nope/notes', { token: await sign(), method: 'POST', body })).status).toBe(404);
    expect((await call('ho-tich', '/records/HT-2024-000001/notes', { method: 'POST', body })).status).toBe(401);
  });
});

describe('demo upstream: lifecycle', () => {
  it('close() fully closes the server', async () => {
    const u = await startDemoUpstream({ dataset: 'y-te', gatewayIssuer: ISSUER, gatewayJwksUrl: jwksUrl });
    const ok = await fetch(`${u.url}/records?limit=1`, { headers: { 'x-ztgate-assertion': await sign({ aud: 'y-te' }) } });
    expect(ok.status).toBe(200);
    await u.close();
    await u.close(); // idempotent
    await expect(fetch(`${u.url}/records`)).rejects.toThrow();
  });
});
