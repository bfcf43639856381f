import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { startIdentityHarness, type IdentityHarness } from './helpers/browser.js';
import { obtainDemoToken } from '../demo/token.js';
import { join } from 'node:path';
import { parseRosterCsv, parseRosterJson, readRosterFile, RosterError } from '../identity/roster.js';
import { parseConfig } from '../gateway/config.js';
import { TEST_AUDIENCE, ROOT } from './helpers/harness.js';
import { assuranceLevelOf } from '../identity/assurance.js';

const AN = '056085000001'; // on the roster, active
const HANH = '056187000007'; // on the roster, suspended (and refused by the IdP)
const KHOA = '056094000008'; // active at the IdP, not on the roster (transferred out)
const ADMIN = '056179000006';

const HEADER = 'nationalId,name,agency,unit,position,roles,clearance,status';

describe('roster files are checked in full, all or nothing', () => {
  it('reads quoted CSV fields, Vietnamese clearance labels and | separated roles', () => {
    const [e] = parseRosterCsv(`${HEADER}\n056085000001,"Nguyễn Văn An (giả lập)",so-tu-phap,"Phòng A, B",Chuyên viên,a-reader|b-editor,Tối mật,active\n`);
    expect(e).toEqual({ nationalId: '056085000001', name: 'Nguyễn Văn An (giả lập)', agency: 'so-tu-phap', unit: 'Phòng A, B', position: 'Chuyên viên', roles: ['a-reader', 'b-editor'], clearance: 'toi-mat', status: 'active' });
  });

  it('names the row and column of every problem and accepts nothing', () => {
    const csv = [
      HEADER,
      '056085000001,An,so-tu-phap,U,P,ho-tich-reader,none,active',
      '05608500000,Short,so-tu-phap,U,P,ho-tich-reader,none,active',
      '056085000002,Bad agency,Sở Tư Pháp,U,P,ho-tich-reader,none,active',
      '056085000003,Bad role,so-tu-phap,U,P,1admin,none,active',
      '056085000004,Bad clearance,so-tu-phap,U,P,r,secret,active',
      '056085000005,Bad status,so-tu-phap,U,P,r,none,on-leave',
      '056085000001,Duplicate,so-tu-phap,U,P,r,none,active',
      '056085000006,Too few',
    ].join('\n');
    let err: RosterError | undefined;
    try {
      parseRosterCsv(csv, 'roster.csv');
    } catch (e) {
      err = e as RosterError;
    }
    expect(err).toBeInstanceOf(RosterError);
    expect(err!.problems).toEqual([
      'row 3, column nationalId: "05608500000" is not a 12-digit national ID / không phải số định danh 12 chữ số',
      'row 4, column agency: "Sở Tư Pháp" must be a lower-case agency id like so-tu-phap',
      'row 5, column roles: "1admin" is not a role name (lower case, starting with a letter)',
      'row 6, column clearance: "secret" must be one of none, mat, toi-mat, tuyet-mat (or Không, Mật, Tối mật, Tuyệt mật)',
      'row 7, column status: "on-leave" must be one of active, suspended, retired',
      'row 9: 2 fields, expected 8',
      'row 8, column nationalId: 056085000001 is already on row 2 / trùng số định danh',
    ]);
    expect(err!.message).toMatch(/^roster\.csv: danh sách cán bộ không hợp lệ, không có gì được thay đổi/);
  });

  it('refuses unknown columns and keys instead of ignoring them', () => {
    expect(() => parseRosterCsv(`${HEADER},password\n`)).toThrow(/unknown column "password"/);
    expect(() => parseRosterJson({ officials: [{ nationalId: AN, name: 'x', agency: 'a', unit: 'u', position: 'p', roles: [], status: 'active', salary: 1 }] })).toThrow(/unknown key "salary"/);
  });
});

describe('the demo roster', () => {
  it('lists every demo official of the IdP, with the same agency, roles and status, except one transferred out', async () => {
    const { readDemoOfficials } = await import('../demo/idp.js');
    const roster = new Map((await readRosterFile(join(ROOT, 'demo', 'roster.csv'))).map((e) => [e.nationalId, e]));
    for (const o of (await readDemoOfficials()).officials) {
      if (o.nationalId === KHOA) {
        expect(roster.has(KHOA)).toBe(false);
        continue;
      }
      expect(roster.get(o.nationalId), o.nationalId).toMatchObject({ agency: o.agency, roles: o.roles, clearance: o.clearance, status: o.status });
    }
  });
});

describe('claim presets and assurance mapping', () => {
  const doc = (issuer: Record<string, unknown>) => ({
    publicUrl: 'http://127.0.0.1:8080',
    identity: { issuers: [{ issuer: 'https://sso.example.gov.vn', audience: 'urn:ztgate:data', ...issuer }] },
    policy: { model: 'policies/model.conf', policy: 'policies/demo-policy.csv' },
    routes: [],
  });

  it('a preset supplies the claim names; an explicit claim overrides it', () => {
    const config = parseConfig(doc({ claimsPreset: 'vneid', claims: { agency: 'donVi' } }), 'test', ROOT);
    expect(config.identity.issuers[0]!.claims).toEqual({ nationalId: 'citizenPid', agency: 'donVi', roles: 'roles', acr: 'acr', assuranceLevel: 'accountLevel' });
    expect(parseConfig(doc({ claimsPreset: 'dvc' }), 'test', ROOT).identity.issuers[0]!.claims.nationalId).toBe('SoDinhDanh');
  });

  it('unknown values count as the lowest level; the highest known value wins', () => {
    const mapping = { 'vneid-level-1': 1, 'vneid-level-2': 2, '2': 2 } as const;
    expect(assuranceLevelOf({ acr: 'urn:unknown' }, mapping)).toBe(0);
    expect(assuranceLevelOf({ acr: 'vneid-level-1', level: 2 }, mapping)).toBe(2);
    expect(assuranceLevelOf({ amr: ['pwd', 'vneid-level-1'] }, mapping)).toBe(1);
    expect(assuranceLevelOf({ acr: '__proto__' }, mapping)).toBe(0);
  });

  it('refuses browser sign-in against an issuer that is not trusted for tokens', () => {
    const bad = { ...doc({}), identity: { ...doc({}).identity, browser: { issuer: 'https://other.example', clientId: 'c', clientSecret: 's' } } };
    expect(() => parseConfig(bad, 'test', ROOT)).toThrow(/identity\.browser\.issuer: "https:\/\/other\.example" must also be listed in identity\.issuers/);
  });
});

describe('the roster decides who is an official', () => {
  let h: IdentityHarness;
  let admin: string;
  beforeAll(async () => {
    h = await startIdentityHarness({ instances: 2 });
    admin = (await obtainDemoToken({ issuer: h.idp.issuer, nationalId: ADMIN, resource: TEST_AUDIENCE })).access_token;
  });
  afterAll(async () => {
    await h?.close();
  });

  const call = async (url: string, token: string) => {
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    return { res, event: await h.sink.forRequest(res.headers.get('x-request-id')) };
  };
  const adminCall = async (path: string, init: RequestInit = {}) => {
    const res = await fetch(`${h.gateways[0]!.adminUrl}/api/v1${path}`, { ...init, headers: { authorization: `Bearer ${admin}`, ...(init.headers as Record<string, string>) } });
    return { res, body: (await res.json()) as any, event: await h.sink.forRequest(res.headers.get('x-request-id')) };
  };

  it('a valid IdP token for someone not on the roster → 403 official-not-on-roster', async () => {
    const token = (await obtainDemoToken({ issuer: h.idp.issuer, nationalId: KHOA, resource: TEST_AUDIENCE })).access_token;
    const { res, event } = await call(`${h.gateways[0]!.url}/echo/x`, token);
    expect(res.status).toBe(403);
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['official-not-on-roster'], error_code: 'ZTG_ERR_IDENTITY_REFUSED' });
    // Who tried, for the SOC: the presented national ID, marked as not verified.
    expect(event.user).toEqual({ id: KHOA, verified: false, id_type: 'national-id', issuer: h.idp.issuer });
    expect(event.organization).toBeUndefined();
  });

  it('a valid token without a national ID is refused, and the event names its sub (unverified)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await h.testIssuer.sign({ iss: h.testIssuer.issuer, aud: TEST_AUDIENCE, sub: 'svc-account-7', roles: ['ho-tich-reader'], iat: now, exp: now + 300 });
    const { res, event } = await call(`${h.gateways[0]!.url}/echo/x`, token);
    expect(res.status).toBe(403);
    expect(event.ztgate.reasons).toEqual(['identity-national-id-missing']);
    expect(event.user).toEqual({ id: 'svc-account-7', verified: false, id_type: 'sub', issuer: h.testIssuer.issuer });
  });

  it('a valid token for a suspended official → 403 official-suspended', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await h.testIssuer.sign({ iss: h.testIssuer.issuer, aud: TEST_AUDIENCE, sub: HANH, national_id: HANH, roles: ['ho-tich-reader'], iat: now, exp: now + 300 });
    const { res, event } = await call(`${h.gateways[0]!.url}/echo/x`, token);
    expect(res.status).toBe(403);
    expect(event.ztgate.reasons).toEqual(['official-suspended']);
    expect(event.user).toEqual({ id: HANH, verified: false, id_type: 'national-id', issuer: h.testIssuer.issuer });
  });

  it('agency, roles and clearance come from the roster, not from the token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await h.testIssuer.sign({ iss: h.testIssuer.issuer, aud: TEST_AUDIENCE, sub: AN, national_id: AN, agency: 'so-y-te', roles: ['security-admin'], iat: now, exp: now + 300 });
    const { res, event } = await call(`${h.gateways[0]!.url}/echo/x`, token);
    expect(res.status).toBe(200);
    expect(event.user).toEqual({ id: AN, roles: ['ho-tich-reader'] });
    expect(event.organization).toEqual({ id: 'so-tu-phap' });
  });

  it('an admin suspends an official: refused at once on every instance, audited; reinstated, allowed again', async () => {
    const token = (await obtainDemoToken({ issuer: h.idp.issuer, nationalId: AN, resource: TEST_AUDIENCE })).access_token;
    expect((await call(`${h.gateways[1]!.url}/echo/x`, token)).res.status).toBe(200);
    const suspended = await adminCall(`/roster/${AN}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status: 'suspended', reason: 'Tạm đình chỉ công tác (kiểm thử)' }) });
    expect(suspended.res.status).toBe(200);
    expect(suspended.body.official.status).toBe('suspended');
    expect(suspended.event.ztgate.admin).toMatchObject({ operation: 'roster.status', target: AN, detail: { before: 'active', after: 'suspended' } });
    const refused = await call(`${h.gateways[1]!.url}/echo/x`, token);
    expect(refused.res.status).toBe(403);
    expect(refused.event.ztgate.reasons).toEqual(['official-suspended']);
    const back = await adminCall(`/roster/${AN}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status: 'active', reason: 'Hết thời hạn đình chỉ' }) });
    expect(back.res.status).toBe(200);
    expect((await call(`${h.gateways[0]!.url}/echo/x`, token)).res.status).toBe(200);
  });

  it('a roster import with one bad row changes nothing and names the row; a good one replaces the roster', async () => {
    const demoRoster = await readRosterFile(join(ROOT, 'demo', 'roster.csv'));
    const before = await adminCall('/roster');
    expect(before.body.count).toBe(demoRoster.length);
    const bad = await adminCall('/roster', { method: 'PUT', headers: { 'content-type': 'text/csv' }, body: `${HEADER}\n${KHOA},Bùi Văn Khoa (giả lập),so-tu-phap,U,P,ho-tich-reader,none,active\n${ADMIN},Giang,cong-an-tinh,U,P,security-admin,toi-mat,retired-ish\n` });
    expect(bad.res.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'ZTG_ERR_ROSTER_INVALID', reason: 'roster-invalid' });
    expect(bad.body.error.message).toContain('row 3, column status');
    expect((await adminCall('/roster')).body.count).toBe(demoRoster.length);

    // The importing admin's own entry stays as it is: changing it is another admin's job (roster-self-change).
    const csv = `${HEADER}\n${KHOA},Bùi Văn Khoa (giả lập),so-tu-phap,U,P,ho-tich-reader,none,active\n${ADMIN},Vũ Thị Giang (giả lập),cong-an-tinh,"Phòng An ninh mạng và phòng, chống tội phạm sử dụng công nghệ cao",P,security-admin,toi-mat,active\n`;
    const good = await adminCall('/roster', { method: 'PUT', headers: { 'content-type': 'text/csv' }, body: csv });
    expect(good.res.status).toBe(200);
    expect(good.body.count).toBe(2);
    expect(good.event.ztgate.admin).toMatchObject({ operation: 'roster.import', detail: { count: 2, format: 'text/csv' } });
    const khoa = (await obtainDemoToken({ issuer: h.idp.issuer, nationalId: KHOA, resource: TEST_AUDIENCE })).access_token;
    expect((await call(`${h.gateways[1]!.url}/echo/x`, khoa)).res.status).toBe(200);
    const an = (await obtainDemoToken({ issuer: h.idp.issuer, nationalId: AN, resource: TEST_AUDIENCE })).access_token;
    expect((await call(`${h.gateways[1]!.url}/echo/x`, an)).event.ztgate.reasons).toEqual(['official-not-on-roster']);
  });

  it('unknown kid flood: every token refused, and the issuer JWKS fetched a bounded number of times', async () => {
    // An issuer that counts how often its keys are fetched.
    let fetches = 0;
    const server = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/.well-known/openid-configuration') res.end(JSON.stringify({ issuer: h.testIssuer.issuer, jwks_uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks` }));
      else {
        fetches++;
        res.end(JSON.stringify({ keys: [h.testIssuer.publicJwk] }));
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { startGateway } = await import('../gateway/server.js');
    const { EventSink, freePort } = await import('./helpers/harness.js');
    const port = await freePort();
    const base = structuredClone(h.configs[0]!) as any;
    const config = parseConfig(
      {
        ...base,
        listen: { host: '127.0.0.1', port },
        publicUrl: `http://127.0.0.1:${port}`,
        admin: undefined,
        state: { backend: 'memory' },
        identity: { ...base.identity, jwksCooldownMs: 60_000, browser: undefined, issuers: [{ ...base.identity.issuers[1], jwksUri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks` }] },
      },
      'flood',
      ROOT,
    );
    const sink = new EventSink();
    const gw = await startGateway(config, { decisionLog: sink });
    try {
      const now = Math.floor(Date.now() / 1000);
      const claims = { iss: h.testIssuer.issuer, aud: TEST_AUDIENCE, sub: AN, national_id: AN, iat: now, exp: now + 300 };
      const results = await Promise.all(
        Array.from({ length: 40 }, async (_, i) => {
          const token = await h.testIssuer.sign(claims, { kid: `forged-${i}` });
          const res = await fetch(`${gw.url}/echo/x`, { headers: { authorization: `Bearer ${token}` } });
          return { status: res.status, event: await sink.forRequest(res.headers.get('x-request-id')) };
        }),
      );
      expect(results.every((r) => r.status === 401 && r.event.ztgate.reasons[0] === 'token-key-unknown')).toBe(true);
      // One fetch to load the keys, at most one more for unknown kids within the cooldown.
      expect(fetches).toBeLessThanOrEqual(2);
      const good = await fetch(`${gw.url}/echo/x`, { headers: { authorization: `Bearer ${await h.testIssuer.sign(claims)}` } });
      expect(good.status).toBe(200);
    } finally {
      await gw.close();
      await new Promise((r) => server.close(r));
    }
  });

  it('assertion keys rotate with overlap: the old key stays published while its assertions live', async () => {
    const token = (await obtainDemoToken({ issuer: h.idp.issuer, nationalId: KHOA, resource: TEST_AUDIENCE })).access_token;
    const gw = h.gateways[0]!;
    const before = h.recording.received.length;
    expect((await call(`${gw.url}/echo/a`, token)).res.status).toBe(200);
    const oldAssertion = String(h.recording.received[before]!.headers['x-ztgate-assertion']);
    const oldKid = decodeProtectedHeader(oldAssertion).kid;
    const jwksBefore = (await (await fetch(`${gw.url}/.well-known/jwks.json`)).json()) as any;
    const rotated = await adminCall('/assertion-keys/rotate', { method: 'POST' });
    expect(rotated.res.status).toBe(200);
    expect(rotated.body.retiredKid).toBe(oldKid);
    // The new key was already published as "next" before it signed anything.
    expect(jwksBefore.keys.map((k: any) => k.kid)).toContain(rotated.body.kid);
    expect(rotated.event.ztgate.admin).toMatchObject({ operation: 'assertion-keys.rotate', target: rotated.body.kid });
    expect((await call(`${gw.url}/echo/b`, token)).res.status).toBe(200);
    const newAssertion = String(h.recording.received.at(-1)!.headers['x-ztgate-assertion']);
    expect(decodeProtectedHeader(newAssertion).kid).toBe(rotated.body.kid);
    const jwks = createRemoteJWKSet(new URL(`${gw.url}/.well-known/jwks.json`));
    const opts = { issuer: gw.url, audience: 'echo', typ: 'ztgate-assertion+jwt' };
    await expect(jwtVerify(oldAssertion, jwks, opts)).resolves.toBeTruthy();
    await expect(jwtVerify(newAssertion, jwks, opts)).resolves.toBeTruthy();
  });
});

describe('opaque access tokens (RFC 7662 introspection)', () => {
  let h: IdentityHarness;
  beforeAll(async () => {
    h = await startIdentityHarness({
      opaqueAccessTokens: true,
      configure: (doc) => {
        doc.identity.issuers[0].introspection.cacheMaxAgeSeconds = 0; // see revocation at once
        doc.identity.browser = undefined;
      },
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  const call = async (token: string) => {
    const res = await fetch(`${h.gateways[0]!.url}/echo/x`, { headers: { authorization: `Bearer ${token}` } });
    return { res, event: await h.sink.forRequest(res.headers.get('x-request-id')) };
  };

  it('an active opaque token is accepted; once revoked → 401 token-inactive', async () => {
    const tokens = await obtainDemoToken({ issuer: h.idp.issuer, nationalId: AN, resource: TEST_AUDIENCE, scope: 'openid profile offline_access' });
    expect(tokens.access_token.split('.')).toHaveLength(1); // opaque
    const ok = await call(tokens.access_token);
    expect(ok.res.status).toBe(200);
    expect(ok.event.user.id).toBe(AN);
    // A refresh token is "active" too, but is not an access token.
    const refresh = await call(tokens.refresh_token!);
    expect(refresh.res.status).toBe(401);
    expect(refresh.event.ztgate.reasons).toEqual(['token-type-invalid']);
    const revoke = await fetch(`${h.idp.issuer}/token/revocation`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: tokens.access_token, client_id: 'ztgate-cli' }) });
    expect(revoke.status).toBe(200);
    const gone = await call(tokens.access_token);
    expect(gone.res.status).toBe(401);
    expect(gone.event.ztgate.reasons).toEqual(['token-inactive']);
  });
});
