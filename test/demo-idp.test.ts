import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createRemoteJWKSet, decodeJwt, importJWK, jwtVerify, type JWK } from 'jose';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_CLI_CLIENT_ID, DEMO_CLI_REDIRECT_URI, defaultOfficialsFile, startDemoIdp, type DemoIdp } from '../demo/idp.js';
import { DemoTokenError, obtainDemoToken } from '../demo/token.js';

const AN = '056085000001'; // Nguyễn Văn An (giả lập), so-tu-phap, ho-tich-reader, VNeID level 2
const CUONG = '056088000003'; // Lê Văn Cường (giả lập), VNeID level 1

async function jwksFor(issuer: string) {
  const discovery = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as {
    issuer: string;
    jwks_uri: string;
  };
  expect(discovery.issuer).toBe(issuer);
  return createRemoteJWKSet(new URL(discovery.jwks_uri));
}

/** Starts an authorization request by hand and returns the interaction (login) page. */
async function openLoginPage(issuer: string) {
  const auth = new URL(`${issuer}/auth`);
  auth.search = new URLSearchParams({
    client_id: DEMO_CLI_CLIENT_ID,
    response_type: 'code',
    redirect_uri: DEMO_CLI_REDIRECT_URI,
    scope: 'openid',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', // RFC 7636 appendix B
    code_challenge_method: 'S256',
  }).toString();
  const first = await fetch(auth, { redirect: 'manual' });
  const location = first.headers.get('location');
  expect(location).toMatch(/^\/interaction\/[\w-]+$/);
  const cookie = first.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
  const url = new URL(location as string, issuer).href;
  return { url, cookie, page: await fetch(url, { headers: { cookie } }) };
}

async function refusal(promise: Promise<unknown>): Promise<DemoTokenError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DemoTokenError);
  return err as DemoTokenError;
}

describe('demo IdP', () => {
  let idp: DemoIdp;

  beforeAll(async () => {
    idp = await startDemoIdp({ port: 0 });
  });
  afterAll(async () => {
    await idp?.close();
  });

  it('issues an ES256 at+jwt access token for the data audience through the code flow with PKCE', async () => {
    const tokens = await obtainDemoToken({ issuer: idp.issuer, nationalId: AN });
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.expires_in).toBeGreaterThan(0);
    expect(tokens.expires_in).toBeLessThanOrEqual(600);

    const { payload, protectedHeader } = await jwtVerify(tokens.access_token, await jwksFor(idp.issuer), {
      issuer: idp.issuer,
      audience: idp.audience,
      typ: 'at+jwt',
      algorithms: ['ES256'],
    });
    expect(protectedHeader.typ).toBe('at+jwt');
    expect(protectedHeader.alg).toBe('ES256');
    expect(protectedHeader.kid).toEqual(expect.any(String));
    expect(payload.iss).toBe(idp.issuer);
    expect(payload.aud).toBe('urn:ztgate:data');
    expect(payload.sub).toBe(AN);
    expect(payload.client_id).toBe(DEMO_CLI_CLIENT_ID);
    expect(payload.national_id).toBe(AN);
    expect(payload.agency).toBe('so-tu-phap');
    expect(payload.roles).toEqual(['ho-tich-reader']);
    expect(payload.acr).toBe('vneid-level-2');
    expect(payload.auth_time).toEqual(expect.any(Number));
    expect(JSON.stringify(payload)).not.toContain('"demo"');
  });

  it('puts the profile claims on the ID token and never the password', async () => {
    const tokens = await obtainDemoToken({ issuer: idp.issuer, nationalId: AN });
    expect(tokens.id_token).toEqual(expect.any(String));
    const { payload } = await jwtVerify(tokens.id_token as string, await jwksFor(idp.issuer), {
      issuer: idp.issuer,
      audience: DEMO_CLI_CLIENT_ID,
    });
    expect(payload).toMatchObject({
      sub: AN,
      national_id: AN,
      agency: 'so-tu-phap',
      roles: ['ho-tich-reader'],
      acr: 'vneid-level-2',
      amr: ['pwd'],
    });
    expect(payload.name).toContain('giả lập');
    expect(JSON.stringify(payload)).not.toContain('password');
  });

  it('maps VNeID level 1 to acr vneid-level-1', async () => {
    const { access_token } = await obtainDemoToken({ issuer: idp.issuer, nationalId: CUONG });
    expect(decodeJwt(access_token).acr).toBe('vneid-level-1');
  });

  it('grants the data scope and a refresh token when asked', async () => {
    const tokens = await obtainDemoToken({
      issuer: idp.issuer,
      nationalId: AN,
      scope: 'openid profile data offline_access',
      resource: idp.audience,
    });
    expect(decodeJwt(tokens.access_token).scope).toBe('openid data');
    expect(tokens.refresh_token).toEqual(expect.any(String));
  });

  it('refuses a wrong password with ERR_DEMO_LOGIN_REFUSED', async () => {
    const err = await refusal(obtainDemoToken({ issuer: idp.issuer, nationalId: AN, password: 'not-the-password' }));
    expect(err.code).toBe('ERR_DEMO_LOGIN_REFUSED');
    expect(err.reason).toBe('wrong-password');
    expect(err.status).toBe(401);
    expect(err.message).toContain('wrong password');
  });

  it('refuses an unknown national ID', async () => {
    const err = await refusal(obtainDemoToken({ issuer: idp.issuer, nationalId: '056000999999' }));
    expect(err.code).toBe('ERR_DEMO_LOGIN_REFUSED');
    expect(err.reason).toBe('unknown-official');
    expect(err.status).toBe(401);
  });

  it('refuses an unknown resource indicator at the authorization endpoint', async () => {
    const err = await refusal(obtainDemoToken({ issuer: idp.issuer, nationalId: AN, resource: 'urn:other:api' }));
    expect(err.code).toBe('ERR_DEMO_TOKEN_EXCHANGE');
  });

  it('requires https for a non-loopback issuer', async () => {
    const err = await refusal(obtainDemoToken({ issuer: 'http://idp.example.vn', nationalId: AN }));
    expect(err.code).toBe('ERR_DEMO_INSECURE_ISSUER');
  });

  it('renders a self-contained login page listing the synthetic officials', async () => {
    const { page } = await openLoginPage(idp.issuer);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await page.text();
    expect(html).toContain('DỮ LIỆU GIẢ LẬP / SYNTHETIC DEMO DATA');
    expect(html).toContain('Nguyễn Văn An (giả lập)');
    expect(html).toContain('ho-tich-reader');
    expect(html).not.toMatch(/<script|<link|@import|https?:\/\//i);
  });

  it('re-renders the form with 401 and a bilingual error on a wrong password', async () => {
    const { url, cookie } = await openLoginPage(idp.issuer);
    const res = await fetch(`${url}/login`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: AN, password: 'nope' }),
      redirect: 'manual',
    });
    expect(res.status).toBe(401);
    const html = await res.text();
    expect(html).toContain('Mật khẩu không đúng.');
    expect(html).toContain('Wrong password.');
    expect(html).toContain(`value="${AN}"`);
  });
});

describe('demo IdP with a suspended official and a second instance', () => {
  const SUSPENDED = '056099000009';
  let dir: string;
  let first: DemoIdp;
  let second: DemoIdp;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ztgate-idp-'));
    const file = JSON.parse(await readFile(defaultOfficialsFile(), 'utf8')) as {
      officials: Record<string, unknown>[];
    };
    file.officials.push({
      nationalId: SUSPENDED,
      name: 'Đỗ Văn Tạm <b>Ngừng</b> (giả lập)',
      agency: 'so-tu-phap',
      unit: 'Văn phòng Sở',
      position: 'Chuyên viên',
      roles: ['ho-tich-reader'],
      clearance: 'none',
      assuranceLevel: 2,
      status: 'suspended',
    });
    const officialsFile = join(dir, 'officials.json');
    await writeFile(officialsFile, JSON.stringify(file));
    [first, second] = await Promise.all([startDemoIdp({ officialsFile }), startDemoIdp({ officialsFile })]);
  });
  afterAll(async () => {
    await Promise.all([first?.close(), second?.close()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('escapes what it renders', async () => {
    const html = await (await openLoginPage(first.issuer)).page.text();
    expect(html).toContain('Đỗ Văn Tạm &#60;b&#62;Ngừng&#60;/b&#62; (giả lập)');
    expect(html).not.toContain('<b>Ngừng');
  });

  it('refuses a suspended official', async () => {
    const err = await refusal(obtainDemoToken({ issuer: first.issuer, nationalId: SUSPENDED }));
    expect(err.code).toBe('ERR_DEMO_LOGIN_REFUSED');
    expect(err.reason).toBe('account-inactive');
    expect(err.status).toBe(403);
  });

  it("does not accept a second instance's token against the first's JWKS", async () => {
    expect(second.issuer).not.toBe(first.issuer);
    const { access_token } = await obtainDemoToken({ issuer: second.issuer, nationalId: AN });
    await expect(jwtVerify(access_token, await jwksFor(second.issuer), { audience: second.audience })).resolves.toBeDefined();
    await expect(jwtVerify(access_token, await jwksFor(first.issuer))).rejects.toMatchObject({
      code: 'ERR_JWKS_NO_MATCHING_KEY',
    });
    // Not only a kid mismatch: no key of the first instance verifies the signature.
    const { keys } = (await (await fetch(`${first.issuer}/jwks`)).json()) as { keys: JWK[] };
    expect(keys.some((k) => 'd' in k || 'p' in k)).toBe(false);
    const ecKeys = keys.filter((k) => k.kty === 'EC');
    expect(ecKeys.length).toBeGreaterThan(0);
    for (const key of ecKeys) {
      await expect(jwtVerify(access_token, await importJWK(key, 'ES256'))).rejects.toMatchObject({
        code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
      });
    }
  });

  it('closes cleanly and can be started again', async () => {
    for (let i = 0; i < 3; i++) {
      const idp = await startDemoIdp();
      await obtainDemoToken({ issuer: idp.issuer, nationalId: AN });
      await idp.close();
      await expect(fetch(`${idp.issuer}/jwks`)).rejects.toThrow();
    }
  });
});
