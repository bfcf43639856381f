import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, SESSION_COOKIE, sha256, startIdentityHarness, type IdentityHarness } from './helpers/browser.js';
import { obtainDemoToken } from '../demo/token.js';
import { TEST_AUDIENCE } from './helpers/harness.js';
import { openTokens, sealTokens, sessionTokenKey } from '../identity/session-crypto.js';
import { randomBytes } from 'node:crypto';

const AN = '056085000001'; // Nguyễn Văn An, Sở Tư pháp, ho-tich-reader, VNeID level 2
const CUONG = '056088000003'; // Lê Văn Cường, phường Nha Trang, ho-tich-reader, VNeID level 1
const ADMIN = '056179000006'; // Vũ Thị Giang, security-admin

let h: IdentityHarness;
let g0: string;
let g1: string;

beforeAll(async () => {
  h = await startIdentityHarness({ instances: 2 });
  g0 = h.gateways[0]!.url;
  g1 = h.gateways[1]!.url;
});
afterAll(async () => {
  await h?.close();
});

const event = (requestId: string | null) => h.sink.forRequest(requestId);
/** An event not tied to a response this test holds (e.g. a request the IdP made), written once its response ended. */
async function eventWhere(match: (e: Record<string, any>) => boolean, from = 0): Promise<Record<string, any>> {
  for (let i = 0; i < 100; i++) {
    const found = h.sink.events.slice(from).find(match);
    if (found) return found;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no such event; have: ${JSON.stringify(h.sink.events.slice(from).map((e) => [e.url.path, e.ztgate.reasons]))}`);
}
const hopTo = (b: Browser, part: string) => b.hops.find((x) => x.url.includes(part));

async function signedIn(nationalId = AN, path = '/ho-tich/records?limit=1'): Promise<Browser> {
  const b = new Browser();
  const page = await b.signIn(`${g0}${path}`, nationalId);
  expect(page.res.status).toBe(200);
  await page.res.body?.cancel();
  return b;
}

async function sessionRecord(b: Browser) {
  const id = b.cookie('127.0.0.1', SESSION_COOKIE)!;
  const json = await h.redis.get(`session:${sha256(id)}`);
  return json ? JSON.parse(json) : null;
}

/** The tokens of a session, opened with the key every instance derives from the client secret. */
async function tokensOf(b: Browser) {
  const handle = sha256(b.cookie('127.0.0.1', SESSION_COOKIE)!);
  const key = sessionTokenKey({ clientSecret: h.configs[0]!.identity.browser!.clientSecret });
  return openTokens(key, handle, (await sessionRecord(b)).tokens);
}

async function writeRecord(b: Browser, change: (r: any) => void) {
  const key = `session:${sha256(b.cookie('127.0.0.1', SESSION_COOKIE)!)}`;
  const record = JSON.parse((await h.redis.get(key))!);
  change(record);
  await h.redis.set(key, JSON.stringify(record), 'PX', 3_600_000);
}

describe('browser sign-in (authorization code flow with PKCE)', () => {
  it('an API request without credentials gets 401 JSON, never a redirect', async () => {
    const res = await fetch(`${g0}/ho-tich/records`, { headers: { accept: 'application/json' }, redirect: 'manual' });
    expect(res.status).toBe(401);
    expect(res.headers.get('location')).toBeNull();
    expect(((await res.json()) as any).error.reason).toBe('token-missing');
    expect((await event(res.headers.get('x-request-id'))).ztgate.reasons).toEqual(['token-missing']);
  });

  it('a person opens a service, is sent to sign in, signs in at the IdP and comes back to the data', async () => {
    const b = new Browser();
    const first = await b.request(`${g0}/ho-tich/records?limit=1`);
    expect(first.status).toBe(302);
    expect(first.headers.get('location')).toBe('/.ztgate/auth/login?return=%2Fho-tich%2Frecords%3Flimit%3D1');
    const e1 = await event(first.headers.get('x-request-id'));
    expect(e1.ztgate).toMatchObject({ decision: 'deny', reasons: ['session-missing'], error_code: 'ZTG_ERR_SIGN_IN_REQUIRED' });

    const page = await b.follow(first, `${g0}/ho-tich/records?limit=1`);
    // The authorization request: code flow, PKCE S256, state and nonce, to the gateway's callback.
    const authorize = new URL(hopTo(b, '/.ztgate/auth/login')!.location!);
    expect(authorize.origin).toBe(h.idp.issuer);
    expect(Object.fromEntries(authorize.searchParams)).toMatchObject({
      response_type: 'code',
      client_id: 'ztgate-gateway',
      redirect_uri: `${g0}/.ztgate/auth/callback`,
      code_challenge_method: 'S256',
    });
    for (const p of ['state', 'nonce', 'code_challenge']) expect(authorize.searchParams.get(p)).toMatch(/^[A-Za-z0-9_-]{22,}$/);
    expect((await event(hopTo(b, '/.ztgate/auth/login')!.requestId)).ztgate).toMatchObject({ decision: 'allow', reasons: ['sign-in-started'] });

    const back = await b.submitLogin(page, AN);
    expect(back.res.status).toBe(200);
    expect(back.url).toBe(`${g0}/ho-tich/records?limit=1`);
    const body = (await back.res.json()) as any;
    expect(body.requestedBy).toEqual({ nationalId: AN, agency: 'so-tu-phap' });

    const callback = hopTo(b, '/.ztgate/auth/callback')!;
    expect(callback.status).toBe(303);
    expect(callback.location).toBe('/ho-tich/records?limit=1');
    const cookie = callback.setCookie.find((c) => c.startsWith(`${SESSION_COOKIE}=`))!;
    expect(cookie).toMatch(/; Path=\/; HttpOnly; SameSite=Lax; Max-Age=3600$/); // no Secure over plain http (README)
    const id = b.cookie('127.0.0.1', SESSION_COOKIE)!;
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/); // 256 random bits
    const created = await event(callback.requestId);
    expect(created.ztgate).toMatchObject({ decision: 'allow', reasons: ['session-created'] });
    expect(created.user).toEqual({ id: AN, roles: ['ho-tich-reader'] });

    const final = await event(b.hops.at(-1)!.requestId);
    expect(final.ztgate).toMatchObject({ decision: 'allow', reasons: ['policy-allowed'] });
    expect(final.user.id).toBe(AN);
    // The cookie value is never logged, and the store keys the session by its hash only.
    expect(JSON.stringify(h.sink.events)).not.toContain(id);
    expect(await h.redis.get(`session:${sha256(id)}`)).not.toBeNull();
    expect(await h.redis.get(`session:${id}`)).toBeNull();
  });

  it('the session works on another gateway instance sharing Redis, and the upstream learns its id', async () => {
    const b = await signedIn();
    const before = h.recording.received.length;
    const res = await b.request(`${g1}/echo/x`);
    expect(res.status).toBe(200);
    const e = await event(res.headers.get('x-request-id'));
    expect(e.ztgate.decision).toBe('allow');
    const got = h.recording.received[before]!;
    expect(got.headers.cookie).toBeUndefined();
    // The recording upstream verifies against instance 0's JWKS; instance 1 signs with its own key.
    const payload = JSON.parse(Buffer.from(String(got.headers['x-ztgate-assertion']).split('.')[1]!, 'base64url').toString());
    expect(payload).toMatchObject({ sub: AN, sid: sha256(b.cookie('127.0.0.1', SESSION_COOKIE)!), acr: 'vneid-level-2', assurance_level: 2, jti: e.event.id, unit: 'Phòng Hành chính tư pháp', clearance: 'none' });
    expect(typeof payload.auth_time).toBe('number');
  });

  it('sign-out ends the session at the gateway and at the IdP (RP-Initiated Logout)', async () => {
    const b = await signedIn();
    const id = b.cookie('127.0.0.1', SESSION_COOKIE)!;
    // GET only asks to confirm: the session survives a link or an <img> from another site.
    const page = await b.request(`${g0}/.ztgate/auth/logout`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<form method="post" action="\/\.ztgate\/auth\/logout">/);
    expect(b.cookie('127.0.0.1', SESSION_COOKIE)).toBe(id);
    const out = await b.request(`${g0}/.ztgate/auth/logout`, { method: 'POST', body: new URLSearchParams(), headers: { origin: g0, 'sec-fetch-site': 'same-origin' } });
    expect(out.status).toBe(303);
    const endSession = new URL(out.headers.get('location')!);
    expect(endSession.origin).toBe(h.idp.issuer);
    expect(endSession.searchParams.get('post_logout_redirect_uri')).toBe(`${g0}/.ztgate/auth/signed-out`);
    expect(endSession.searchParams.get('id_token_hint')).toBeTruthy();
    expect(b.cookie('127.0.0.1', SESSION_COOKIE)).toBeUndefined();
    const e = await event(out.headers.get('x-request-id'));
    expect(e.ztgate).toMatchObject({ decision: 'allow', reasons: ['signed-out'] });
    expect(e.user.id).toBe(AN);

    // The IdP asks to confirm; confirming ends the IdP session and lands on the gateway's page.
    const confirm = await b.follow(out, `${g0}/.ztgate/auth/logout`);
    const html = await confirm.res.text();
    const form = /<form[^>]*action="([^"]+)"[^>]*id="op.logoutForm"|<form[^>]*id="op.logoutForm"[^>]*action="([^"]+)"/.exec(html)!;
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)![1]!;
    const done = await b.follow(await b.request(new URL(form[1] ?? form[2]!, confirm.url), { method: 'POST', body: new URLSearchParams({ xsrf, logout: 'yes' }) }), confirm.url);
    expect(done.url).toBe(`${g0}/.ztgate/auth/signed-out`);
    expect(await done.res.text()).toContain('Đã đăng xuất');

    // The old cookie, replayed, names a session that no longer exists anywhere.
    const again = await fetch(`${g1}/ho-tich/records`, { headers: { cookie: `${SESSION_COOKIE}=${id}`, accept: 'application/json' } });
    expect(again.status).toBe(401);
    expect((await event(again.headers.get('x-request-id'))).ztgate.reasons).toEqual(['session-revoked']);
    // Signing in again needs the login form: the IdP session is gone too.
    const next = await b.open(`${g0}/ho-tich/records`);
    expect(next.url).toContain('/interaction/');
  });

  it('back-channel logout from the IdP ends the session on every instance at once', async () => {
    const b = await signedIn();
    const id = b.cookie('127.0.0.1', SESSION_COOKIE)!;
    expect((await b.request(`${g1}/echo/x`)).status).toBe(200);
    // The official signs out at the IdP itself (not through the gateway).
    const confirm = await b.open(`${h.idp.issuer}/session/end`);
    const html = await confirm.res.text();
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)![1]!;
    const action = /id="op.logoutForm"[^>]*action="([^"]+)"|action="([^"]+)"[^>]*id="op.logoutForm"/.exec(html)!;
    const eventsBefore = h.sink.events.length;
    const done = await b.request(new URL(action[1] ?? action[2]!, confirm.url), { method: 'POST', body: new URLSearchParams({ xsrf, logout: 'yes' }) });
    expect(done.status).toBeLessThan(400);
    const bcl = await eventWhere((e) => e.url.path === '/.ztgate/auth/backchannel-logout', eventsBefore);
    expect(bcl.ztgate).toMatchObject({ decision: 'allow', reasons: ['backchannel-logout'] });
    expect(bcl.http.request.method).toBe('POST');
    // Delivered to instance 0; the session is gone on instance 1 as well.
    const res = await fetch(`${g1}/echo/x`, { headers: { cookie: `${SESSION_COOKIE}=${id}`, accept: 'application/json' } });
    expect(res.status).toBe(401);
    expect((await event(res.headers.get('x-request-id'))).ztgate.reasons).toEqual(['session-revoked']);
  });
});

describe('attacks on sign-in', () => {
  /** Starts a sign-in and stops at the IdP's redirect back to the gateway, without following it. */
  async function toCallback(b = new Browser(), nationalId = AN): Promise<{ b: Browser; callback: URL }> {
    const page = await b.open(`${g0}/.ztgate/auth/login?return=%2Fecho%2Fx`);
    const html = await page.res.text();
    const tag = /<form\b[^>]*\bid="login-form"[^>]*>/.exec(html)![0];
    const action = new URL(/\baction="([^"]+)"/.exec(tag)![1]!.replace(/&amp;/g, '&'), page.url);
    let res = await b.request(action, { method: 'POST', body: new URLSearchParams({ username: nationalId, password: 'demo' }) });
    let url = action.href;
    while (res.status === 303 || res.status === 302) {
      const next = new URL(res.headers.get('location')!, url);
      if (next.pathname === '/.ztgate/auth/callback') return { b, callback: next };
      url = next.href;
      res = await b.request(next);
    }
    throw new Error(`no callback reached, ended at ${url} (${res.status})`);
  }

  async function callbackRefused(b: Browser, url: URL | string, reason: string, status = 400) {
    const res = await b.request(url);
    expect(res.status).toBe(status);
    expect(res.headers.get('location')).toBeNull();
    const e = await event(res.headers.get('x-request-id'));
    expect(e.ztgate).toMatchObject({ decision: 'deny', reasons: [reason] });
    expect(b.cookie('127.0.0.1', SESSION_COOKIE)).toBeUndefined();
    return e;
  }

  it('attack: another site signs an official out (a link, an <img>, a cross-site form) → the session survives, 403 logout-cross-site', async () => {
    const b = await signedIn();
    const id = b.cookie('127.0.0.1', SESSION_COOKIE)!;
    // A link or an <img>: GET only shows the confirmation page.
    const viaGet = await b.request(`${g0}/.ztgate/auth/logout`, { headers: { 'sec-fetch-site': 'cross-site' } });
    expect(viaGet.status).toBe(200);
    expect(viaGet.headers.getSetCookie()).toEqual([]);
    // A form on another site posting here; and a POST proving no origin at all.
    for (const headers of [{ origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }, { origin: 'null' }, { 'sec-fetch-site': 'same-site' }, {} as Record<string, string>]) {
      const res = await b.request(`${g0}/.ztgate/auth/logout`, { method: 'POST', body: new URLSearchParams(), headers });
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(res.headers.get('location')).toBeNull();
      const e = await event(res.headers.get('x-request-id'));
      expect(e.ztgate).toMatchObject({ decision: 'deny', reasons: ['logout-cross-site'], error_code: 'ZTG_ERR_FORBIDDEN' });
    }
    expect(b.cookie('127.0.0.1', SESSION_COOKIE)).toBe(id);
    const still = await b.request(`${g0}/echo/x`, { headers: { accept: 'application/json' } });
    expect(still.status).toBe(200);
  });

  it('a callback without state → 400 auth-state-invalid, no session', async () => {
    const { b, callback } = await toCallback();
    callback.searchParams.delete('state');
    const e = await callbackRefused(b, callback, 'auth-state-invalid');
    expect(e.ztgate.error_code).toBe('ZTG_ERR_SIGN_IN_FAILED');
  });

  it('a tampered state → 400 auth-state-invalid', async () => {
    const { b, callback } = await toCallback();
    callback.searchParams.set('state', `${callback.searchParams.get('state')}x`);
    await callbackRefused(b, callback, 'auth-state-invalid');
  });

  it('a forged callback carried to another browser (login CSRF) → 400 auth-state-invalid', async () => {
    const { callback } = await toCallback();
    const victim = new Browser();
    await victim.open(`${g0}/.ztgate/auth/login`); // the victim has a sign-in of its own under way
    await callbackRefused(victim, callback, 'auth-state-invalid');
  });

  it('a replayed callback (state used once already) → 400 auth-state-invalid', async () => {
    const { b, callback } = await toCallback();
    const ok = await b.request(callback);
    expect(ok.status).toBe(303);
    b.setCookie('127.0.0.1', 'ztgate-auth', 'anything');
    const res = await b.request(callback);
    expect(res.status).toBe(400);
    expect((await event(res.headers.get('x-request-id'))).ztgate.reasons).toEqual(['auth-state-invalid']);
  });

  it('an authorization code used a second time, under a fresh state → 400 auth-code-rejected', async () => {
    const first = await toCallback();
    expect((await first.b.request(first.callback)).status).toBe(303);
    const second = await toCallback();
    const reused = new URL(second.callback);
    reused.searchParams.set('code', first.callback.searchParams.get('code')!);
    await callbackRefused(second.b, reused, 'auth-code-rejected');
  });

  it('an ID token whose nonce is not the one this sign-in sent (replayed nonce) → 400 auth-id-token-invalid', async () => {
    const { b, callback } = await toCallback();
    const key = `auth-tx:${sha256(callback.searchParams.get('state')!)}`;
    const tx = JSON.parse((await h.redis.get(key))!);
    await h.redis.set(key, JSON.stringify({ ...tx, nonce: 'nonce-of-an-earlier-sign-in' }), 'PX', 60_000);
    await callbackRefused(b, callback, 'auth-id-token-invalid');
  });

  it('the IdP answers with an error (official cancelled) → 400 auth-idp-error', async () => {
    const b = new Browser();
    const page = await b.open(`${g0}/.ztgate/auth/login`);
    const html = await page.res.text();
    const abort = /<form method="post" action="([^"]+\/abort)"/.exec(html)![1]!;
    const res = await b.follow(await b.request(new URL(abort, page.url), { method: 'POST', body: new URLSearchParams({}) }), page.url);
    expect(res.res.status).toBe(400);
    expect((await event(b.hops.at(-1)!.requestId)).ztgate.reasons).toEqual(['auth-idp-error']);
  });

  it.each([
    ['//evil.example/phish', 'protocol-relative'],
    ['https://evil.example/', 'absolute URL'],
    ['/\\evil.example', 'backslash'],
    ['javascript:alert(1)', 'script URL'],
    ['evil.example', 'not a path'],
    ['/.//evil.example/phish', 'dot segment that normalises to protocol-relative'],
    ['/a/..//evil.example/phish', 'parent segment that normalises to protocol-relative'],
    ['/%2e//evil.example/phish', 'encoded dot segment that normalises to protocol-relative'],
    ['/%0d%0aLocation:%20https://evil.example', 'header injection'],
  ])('open redirect attempt %s (%s) → 400 auth-return-path-invalid', async (target) => {
    const b = new Browser();
    const res = await b.request(`${g0}/.ztgate/auth/login?return=${encodeURIComponent(decodeURIComponent(target))}`);
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    expect((await event(res.headers.get('x-request-id'))).ztgate.reasons).toEqual(['auth-return-path-invalid']);
  });
});

describe('session lifetime', () => {
  it('an absolutely expired session → a browser is sent to sign in again, an API call gets 401 session-expired', async () => {
    const b = await signedIn();
    await writeRecord(b, (r) => {
      r.expiresAt = Date.now() - 1000;
    });
    const id = b.cookie('127.0.0.1', SESSION_COOKIE)!;
    const res = await b.request(`${g0}/echo/x`);
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/.ztgate/auth/login?return=%2Fecho%2Fx');
    expect(res.headers.get('set-cookie')).toContain(`${SESSION_COOKIE}=;`);
    expect((await event(res.headers.get('x-request-id'))).ztgate).toMatchObject({ decision: 'deny', reasons: ['session-expired'] });
    const api = await fetch(`${g1}/echo/x`, { headers: { cookie: `${SESSION_COOKIE}=${id}` } });
    expect(api.status).toBe(401);
    expect((await event(api.headers.get('x-request-id'))).ztgate.reasons).toEqual(['session-revoked']); // ended when it was found expired
  });

  it('a session idle longer than the idle timeout → 401 session-idle-timeout', async () => {
    const b = await signedIn();
    const id = b.cookie('127.0.0.1', SESSION_COOKIE)!;
    // Idle time lives in its own key: 11 minutes ago, with a 10-minute idle timeout.
    await h.redis.set(`session-seen:${sha256(id)}`, String(Date.now() - 11 * 60_000), 'PX', 60_000);
    const res = await fetch(`${g0}/echo/x`, { headers: { cookie: `${SESSION_COOKIE}=${id}` } });
    expect(res.status).toBe(401);
    expect((await event(res.headers.get('x-request-id'))).ztgate.reasons).toEqual(['session-idle-timeout']);
  });

  it('a forged session cookie → 401 session-unknown', async () => {
    const res = await fetch(`${g0}/echo/x`, { headers: { cookie: `${SESSION_COOKIE}=${'A'.repeat(43)}` } });
    expect(res.status).toBe(401);
    expect((await event(res.headers.get('x-request-id'))).ztgate.reasons).toEqual(['session-unknown']);
  });

  it('an admin revokes every session of an official, on every instance at once', async () => {
    const b1 = await signedIn();
    const b2 = await signedIn();
    const adminToken = (await obtainDemoToken({ issuer: h.idp.issuer, nationalId: ADMIN, resource: TEST_AUDIENCE })).access_token;
    const url = `${h.gateways[1]!.adminUrl}/api/v1/officials/${AN}/sessions`;
    // Without a reason nothing ends: the revocation must say why.
    const noReason = await fetch(url, { method: 'DELETE', headers: { authorization: `Bearer ${adminToken}` } });
    expect(noReason.status).toBe(400);
    expect((await event(noReason.headers.get('x-request-id'))).ztgate.reasons).toEqual(['request-malformed']);
    const res = await fetch(url, { method: 'DELETE', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'Nghi lộ mật khẩu (giả lập)' }) });
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).sessionsEnded).toBeGreaterThanOrEqual(2);
    const audit = await event(res.headers.get('x-request-id'));
    expect(audit.ztgate.admin).toMatchObject({ operation: 'sessions.revoke', target: AN, detail: { reason: 'Nghi lộ mật khẩu (giả lập)' } });
    for (const b of [b1, b2]) {
      const r = await fetch(`${g0}/echo/x`, { headers: { cookie: `${SESSION_COOKIE}=${b.cookie('127.0.0.1', SESSION_COOKIE)}` } });
      expect(r.status).toBe(401);
      expect((await event(r.headers.get('x-request-id'))).ztgate.reasons).toEqual(['session-revoked']);
    }
  });

  it('concurrent requests on two instances with an expiring access token refresh it once (lock), and all succeed', async () => {
    const b = await signedIn();
    const before = (await tokensOf(b))!;
    expect(before.refreshToken).toBeTruthy();
    await writeRecord(b, (r) => {
      r.accessTokenExpiresAt = Date.now() - 1000;
    });
    const cookie = `${SESSION_COOKIE}=${b.cookie('127.0.0.1', SESSION_COOKIE)}`;
    const responses = await Promise.all(Array.from({ length: 8 }, (_, i) => fetch(`${i % 2 ? g1 : g0}/echo/x`, { headers: { cookie } })));
    expect(responses.map((r) => r.status)).toEqual(Array(8).fill(200));
    const events = await Promise.all(responses.map((r) => event(r.headers.get('x-request-id'))));
    expect(events.filter((e) => e.ztgate.reasons.includes('session-refreshed'))).toHaveLength(1);
    const after = (await tokensOf(b))!;
    expect(after.refreshToken).not.toBe(before.refreshToken); // rotated by the IdP
    expect((await sessionRecord(b)).accessTokenExpiresAt).toBeGreaterThan(Date.now());
    // The IdP revokes the whole grant when a rotated refresh token is reused: one more refresh proves it was not.
    await writeRecord(b, (r) => {
      r.accessTokenExpiresAt = Date.now() - 1000;
    });
    const again = await fetch(`${g0}/echo/x`, { headers: { cookie } });
    expect(again.status).toBe(200);
    expect((await event(again.headers.get('x-request-id'))).ztgate.reasons).toContain('session-refreshed');
  });
});

describe('session tokens are encrypted at rest', () => {
  const recordKey = (b: Browser) => `session:${sha256(b.cookie('127.0.0.1', SESSION_COOKIE)!)}`;
  const cookieOf = (b: Browser) => `${SESSION_COOKIE}=${b.cookie('127.0.0.1', SESSION_COOKIE)}`;
  async function expectUnknown(b: Browser) {
    const res = await fetch(`${g0}/echo/x`, { headers: { cookie: cookieOf(b) } });
    expect(res.status).toBe(401);
    expect(res.headers.get('set-cookie')).toContain(`${SESSION_COOKIE}=;`);
    // forRequest fails unless exactly one event was written for the request.
    const e = await event(res.headers.get('x-request-id'));
    expect(e.ztgate).toMatchObject({ decision: 'deny', reasons: ['session-unknown'] });
  }

  it('a read of Redis yields no token: not the access, refresh or ID token, nor any JWT', async () => {
    const b = await signedIn();
    const raw = (await h.redis.get(recordKey(b)))!;
    const tokens = (await tokensOf(b))!;
    expect(tokens.accessToken.length).toBeGreaterThan(20);
    expect(tokens.refreshToken).toBeTruthy();
    for (const token of [tokens.accessToken, tokens.refreshToken!, tokens.idToken]) expect(raw).not.toContain(token);
    // No JWT anywhere (three dot-separated base64url parts from a JSON header); the ciphertext is
    // random base64url, so "eyJ" alone turns up inside it about once in 130 records.
    expect(raw).not.toMatch(/eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/);
    const record = JSON.parse(raw);
    expect(raw.replace(record.tokens.ct, '')).not.toContain('eyJ');
    expect(Object.keys(record.tokens).sort()).toEqual(['ct', 'iv', 'tag', 'v']);
    expect(record.tokens.v).toBe(1);
    expect(Buffer.from(record.tokens.iv, 'base64url')).toHaveLength(12);
    for (const field of ['accessToken', 'refreshToken', 'idToken']) expect(record).not.toHaveProperty(field);
    expect(record).toMatchObject({ nationalId: AN, acr: 'vneid-level-2' }); // the rest stays readable
  });

  it('every write uses a fresh IV, and the session still works and refreshes', async () => {
    const b = await signedIn();
    const first = JSON.parse((await h.redis.get(recordKey(b)))!).tokens;
    await writeRecord(b, (r) => {
      r.accessTokenExpiresAt = Date.now() - 1000;
    });
    const res = await b.request(`${g1}/echo/x`);
    expect(res.status).toBe(200);
    expect((await event(res.headers.get('x-request-id'))).ztgate).toMatchObject({ decision: 'allow', reasons: expect.arrayContaining(['session-refreshed']) });
    const raw = (await h.redis.get(recordKey(b)))!;
    const second = JSON.parse(raw).tokens;
    expect(second.iv).not.toBe(first.iv);
    expect(raw).not.toContain('eyJ');
    const again = await b.request(`${g0}/echo/x`);
    expect(again.status).toBe(200);
  });

  it('attack: the ciphertext or its tag altered in Redis → 401 session-unknown, one deny event', async () => {
    const b = await signedIn();
    const raw = JSON.parse((await h.redis.get(recordKey(b)))!);
    const ct = Buffer.from(raw.tokens.ct, 'base64url');
    ct[5] = ct[5]! ^ 0x01;
    await h.redis.set(recordKey(b), JSON.stringify({ ...raw, tokens: { ...raw.tokens, ct: ct.toString('base64url') } }), 'PX', 3_600_000);
    await expectUnknown(b);

    const c = await signedIn();
    const rawC = JSON.parse((await h.redis.get(recordKey(c)))!);
    const tag = Buffer.from(rawC.tokens.tag, 'base64url');
    tag[0] = tag[0]! ^ 0x80;
    await h.redis.set(recordKey(c), JSON.stringify({ ...rawC, tokens: { ...rawC.tokens, tag: tag.toString('base64url') } }), 'PX', 3_600_000);
    await expectUnknown(c);
  });

  it('attack: tokens sealed under another key, or a record with plain-text tokens → 401 session-unknown', async () => {
    const b = await signedIn();
    const tokens = (await tokensOf(b))!;
    const handle = sha256(b.cookie('127.0.0.1', SESSION_COOKIE)!);
    const raw = JSON.parse((await h.redis.get(recordKey(b)))!);
    await h.redis.set(recordKey(b), JSON.stringify({ ...raw, tokens: sealTokens(randomBytes(32), handle, tokens) }), 'PX', 3_600_000);
    await expectUnknown(b);

    const c = await signedIn();
    const { tokens: _sealed, ...rest } = JSON.parse((await h.redis.get(recordKey(c)))!);
    await h.redis.set(recordKey(c), JSON.stringify({ ...rest, ...tokens }), 'PX', 3_600_000);
    await expectUnknown(c);
  });

  it("attack: one session's record copied under another session's key → 401 session-unknown", async () => {
    const victim = await signedIn(AN);
    const attacker = await signedIn(CUONG);
    // Whoever can write Redis moves the victim's sealed tokens (or the whole record) into their own session.
    const stolen = JSON.parse((await h.redis.get(recordKey(victim)))!);
    const own = JSON.parse((await h.redis.get(recordKey(attacker)))!);
    await h.redis.set(recordKey(attacker), JSON.stringify({ ...own, tokens: stolen.tokens }), 'PX', 3_600_000);
    await expectUnknown(attacker);

    const other = await signedIn(CUONG);
    await h.redis.set(recordKey(other), JSON.stringify(stolen), 'PX', 3_600_000);
    await expectUnknown(other);

    const still = await victim.request(`${g0}/echo/x`);
    expect(still.status).toBe(200); // the victim's own session is untouched
  });
});

describe('assurance and step-up', () => {
  it('an API client below the route minimum gets 401 insufficient_user_authentication (RFC 9470)', async () => {
    const token = (await obtainDemoToken({ issuer: h.idp.issuer, nationalId: CUONG, resource: TEST_AUDIENCE })).access_token;
    const res = await fetch(`${g0}/strong/x`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="ztgate", error="insufficient_user_authentication", error_description="a higher assurance level is required", acr_values="vneid-level-2"');
    const e = await event(res.headers.get('x-request-id'));
    expect(e.ztgate).toMatchObject({ decision: 'deny', reasons: ['assurance-insufficient'], error_code: 'ZTG_ERR_STEP_UP_REQUIRED' });
    const level2 = (await obtainDemoToken({ issuer: h.idp.issuer, nationalId: AN, resource: TEST_AUDIENCE })).access_token;
    expect((await fetch(`${g0}/strong/x`, { headers: { authorization: `Bearer ${level2}` } })).status).toBe(200);
  });

  it('a browser below the minimum is sent to sign in again with acr_values, and refused when the IdP cannot do better', async () => {
    const b = await signedIn(CUONG, '/echo/x');
    const res = await b.request(`${g0}/strong/x`);
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/.ztgate/auth/login?return=%2Fstrong%2Fx&level=2');
    expect((await event(res.headers.get('x-request-id'))).ztgate.reasons).toEqual(['assurance-insufficient']);
    const page = await b.follow(res, `${g0}/strong/x`);
    const authorize = new URL(hopTo(b, '/.ztgate/auth/login?return=%2Fstrong')!.location!);
    expect(authorize.searchParams.get('acr_values')).toBe('vneid-level-2');
    expect(authorize.searchParams.get('prompt')).toBe('login');
    // The IdP asks for the password again, but Cường's identity is level 1: no loop, a clear refusal.
    const end = await b.submitLogin(page, CUONG);
    expect(end.res.status).toBe(403);
    expect((await event(b.hops.at(-1)!.requestId)).ztgate.reasons).toEqual(['assurance-insufficient']);
  });

  it('an authentication older than the route allows sends the browser to sign in again with max_age, then lets it through', async () => {
    const b = await signedIn(AN, '/echo/x');
    await writeRecord(b, (r) => {
      r.authTime = Math.floor(Date.now() / 1000) - 3600;
    });
    const res = await b.request(`${g0}/fresh/x`);
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/.ztgate/auth/login?return=%2Ffresh%2Fx&max_age=300');
    expect((await event(res.headers.get('x-request-id'))).ztgate.reasons).toEqual(['authentication-too-old']);
    const page = await b.follow(res, `${g0}/fresh/x`);
    expect(new URL(hopTo(b, '/.ztgate/auth/login?return=%2Ffresh')!.location!).searchParams.get('max_age')).toBe('300');
    const end = await b.submitLogin(page, AN);
    expect(end.res.status).toBe(200);
    expect(end.url).toBe(`${g0}/fresh/x`);
  });
});
