import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { STATE_EPOCH_KEY, type Store } from '../../core/store.js';
import { createMemoryStore } from '../../gateway/store-backends.js';
import { AUTHENTICATION_REASONS, createAuthenticator, type Authenticator } from '../../gateway/steps/authenticate.js';
import { REASONS } from '../../core/reasons.js';
import { TokenError } from '../../identity/authentication-errors.js';
import { createBearerTokenVerifier, type BearerTokenVerifier } from '../../identity/bearer-token.js';
import { createBrowserSessionAuthenticator } from '../../identity/browser-session.js';
import { createStoreRoster, type Roster } from '../../identity/roster.js';
import { createSessionManager, type SessionManager } from '../../identity/sessions.js';
import { inProcessConfig, inProcessIssuer, refusalOf, type InProcessIssuer } from '../helpers/in-process.js';

/**
 * Step 3 alone: identity/bearer-token.ts and identity/browser-session.ts with in-process keys and
 * the memory store, seen through the gateway's adapter (gateway/steps/authenticate.ts), which
 * turns identity's typed errors into the reason and answer of the decision.
 */

const OFFICIAL = '056080000001';
const NOT_ON_ROSTER = '056080000002';
const SUSPENDED = '056080000003';

let issuer: InProcessIssuer;
let store: Store;
let roster: Roster;
let sessions: SessionManager;
let bearer: BearerTokenVerifier;
let auth: Authenticator;

beforeAll(async () => {
  issuer = await inProcessIssuer();
  store = createMemoryStore();
  // The shared state's marker (gateway/state-keeper.ts): without it every roster read is "state lost".
  await store.set(STATE_EPOCH_KEY, 'test');
  roster = createStoreRoster(store);
  await roster.replace([
    { nationalId: OFFICIAL, name: 'Nguyễn Văn A', agency: 'so-tu-phap', unit: 'phong-ho-tich', position: 'chuyen-vien', roles: ['ho-tich-reader'], clearance: 'none', status: 'active' },
    { nationalId: SUSPENDED, name: 'Trần Thị B', agency: 'so-tu-phap', unit: 'phong-ho-tich', position: 'chuyen-vien', roles: ['ho-tich-reader'], clearance: 'none', status: 'suspended' },
  ]);
  const { identity } = inProcessConfig(issuer);
  sessions = createSessionManager(store, { absoluteLifetimeSeconds: 3600, idleTimeoutSeconds: 600, refreshLockTtlMs: 1000, secure: false, tokenKey: randomBytes(32) });
  bearer = createBearerTokenVerifier(identity, { fetch: issuer.fetch, store, roster });
  const browserSessions = createBrowserSessionAuthenticator({ identity, sessions, rp: null, bearer });
  auth = createAuthenticator({ bearer, browser: { sessions: browserSessions, cookieName: sessions.cookieName, secure: false } });
});

const bearerHeaders = (token: string) => ({ authorization: `Bearer ${token}` });
const navigation = { 'sec-fetch-mode': 'navigate', accept: 'text/html' };
const page = { method: 'GET', url: '/echo/records?page=2' };

describe('bearer access tokens', () => {
  it('allows a valid token of an official on the roster, with what the roster says', async () => {
    const principal = await auth.authenticate(bearerHeaders(await issuer.token(OFFICIAL)), page);
    expect(principal).toMatchObject({ nationalId: OFFICIAL, issuer: issuer.issuer, unit: 'phong-ho-tich', roles: ['ho-tich-reader'], sessionId: null, assuranceLevel: 0, assuranceFrom: 'issuer-default' });
  });

  it('refuses a request without credentials: 401 token-missing, a challenge without an error attribute (RFC 6750 §3)', async () => {
    const err = await refusalOf(() => auth.authenticate({}, { method: 'POST', url: '/echo/x' }));
    expect([err.statusCode, err.code, err.reason]).toEqual([401, 'ZTG_ERR_UNAUTHENTICATED', 'token-missing']);
    expect(err.headers['www-authenticate']).toBe('Bearer realm="ztgate"');
  });

  it('refuses an Authorization header that is not a Bearer token: token-malformed', async () => {
    const err = await refusalOf(() => auth.authenticate({ authorization: 'Basic dXNlcjpwYXNz' }));
    expect(err.reason).toBe('token-malformed');
  });

  it('refuses an expired token: 401 token-expired with error="invalid_token"', async () => {
    const token = await issuer.token(OFFICIAL, { iat: Math.floor(Date.now() / 1000) - 7200, exp: Math.floor(Date.now() / 1000) - 3600 });
    const err = await refusalOf(() => auth.authenticate(bearerHeaders(token)));
    expect([err.statusCode, err.reason]).toEqual([401, 'token-expired']);
    expect(err.headers['www-authenticate']).toContain('error="invalid_token"');
  });

  it('refuses a token from an issuer that is not configured: token-issuer-untrusted', async () => {
    const err = await refusalOf(async () => auth.authenticate(bearerHeaders(await issuer.token(OFFICIAL, { iss: 'https://elsewhere.invalid' }))));
    expect(err.reason).toBe('token-issuer-untrusted');
  });

  it('refuses a token whose signature does not verify: token-signature-invalid', async () => {
    const token = await issuer.token(OFFICIAL);
    const [h, p] = token.split('.');
    const forged = await issuer.token(NOT_ON_ROSTER);
    const err = await refusalOf(() => auth.authenticate(bearerHeaders(`${h}.${p}.${forged.split('.')[2]}`)));
    expect(err.reason).toBe('token-signature-invalid');
  });

  it('refuses an ID token presented as an access token: token-id-token-presented', async () => {
    const err = await refusalOf(async () => auth.authenticate(bearerHeaders(await issuer.token(OFFICIAL, { nonce: 'n-1' }))));
    expect(err.reason).toBe('token-id-token-presented');
  });

  it('refuses a verified token without a national ID: 403 identity-national-id-missing, naming who tried', async () => {
    const err = await refusalOf(async () => auth.authenticate(bearerHeaders(await issuer.token(OFFICIAL, { national_id: undefined }))));
    expect([err.statusCode, err.code, err.reason]).toEqual([403, 'ZTG_ERR_IDENTITY_REFUSED', 'identity-national-id-missing']);
    expect(err.presented).toEqual({ issuer: issuer.issuer, sub: `sub-${OFFICIAL}`, nationalId: null });
  });

  it('refuses an official not on the roster, and a suspended one, naming the national ID presented', async () => {
    const missing = await refusalOf(async () => auth.authenticate(bearerHeaders(await issuer.token(NOT_ON_ROSTER))));
    expect([missing.statusCode, missing.reason]).toEqual([403, 'official-not-on-roster']);
    expect(missing.presented).toEqual({ issuer: issuer.issuer, sub: `sub-${NOT_ON_ROSTER}`, nationalId: NOT_ON_ROSTER });
    const suspended = await refusalOf(async () => auth.authenticate(bearerHeaders(await issuer.token(SUSPENDED))));
    expect(suspended.reason).toBe('official-suspended');
  });

  it('refuses with 503 state-lost when the roster is read while the shared state is lost, never "not on the roster"', async () => {
    const lost = createMemoryStore();
    const verifier = createAuthenticator({ bearer: createBearerTokenVerifier(inProcessConfig(issuer).identity, { fetch: issuer.fetch, roster: createStoreRoster(lost) }), browser: null });
    const err = await refusalOf(async () => verifier.authenticate(bearerHeaders(await issuer.token(OFFICIAL))));
    expect([err.statusCode, err.code, err.reason]).toEqual([503, 'ZTG_ERR_STATE_LOST', 'state-lost']);
  });

  it('identity throws its own typed error with a stable code, no HTTP in it', async () => {
    const token = await issuer.token(OFFICIAL, { iat: Math.floor(Date.now() / 1000) - 7200, exp: Math.floor(Date.now() / 1000) - 3600 });
    const err = await bearer.verify(token).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenError);
    expect((err as TokenError).code).toBe('ERR_TOKEN_EXPIRED');
  });

  it('every authentication error code maps to a reason of the closed list', () => {
    for (const reason of Object.values(AUTHENTICATION_REASONS)) expect(Object.keys(REASONS)).toContain(reason);
  });
});

describe('the issuer cannot be asked', () => {
  it('refuses with 503 identity-provider-unavailable when the JWKS cannot be fetched, never trusting the token', async () => {
    const other = await inProcessIssuer('https://idp-down.test.invalid');
    other.jwks = 'down';
    const verifier = createAuthenticator({ bearer: createBearerTokenVerifier(inProcessConfig(other).identity, { fetch: other.fetch }), browser: null });
    const err = await refusalOf(async () => verifier.authenticate(bearerHeaders(await other.token(OFFICIAL))));
    expect([err.statusCode, err.code, err.reason]).toEqual([503, 'ZTG_ERR_IDP_UNAVAILABLE', 'identity-provider-unavailable']);
  });

  it('regression: a JWKS endpoint answering 503 is the IdP unavailable (503), not a malformed token (401)', async () => {
    const other = await inProcessIssuer('https://idp-503.test.invalid');
    other.jwks = 503;
    const verifier = createAuthenticator({ bearer: createBearerTokenVerifier(inProcessConfig(other).identity, { fetch: other.fetch }), browser: null });
    const err = await refusalOf(async () => verifier.authenticate(bearerHeaders(await other.token(OFFICIAL))));
    expect([err.statusCode, err.reason]).toEqual([503, 'identity-provider-unavailable']);
    expect(other.jwksFetches).toBeGreaterThan(0);
  });
});

describe('browser sessions', () => {
  async function newSession(overrides: { accessTokenExpiresAt?: number; acr?: string | null } = {}) {
    const accessToken = await issuer.token(OFFICIAL);
    return sessions.create({
      nationalId: OFFICIAL,
      issuer: issuer.issuer,
      sub: `sub-${OFFICIAL}`,
      sid: null,
      acr: overrides.acr ?? null,
      amr: [],
      authTime: Math.floor(Date.now() / 1000),
      accessToken,
      accessTokenExpiresAt: overrides.accessTokenExpiresAt ?? Date.now() + 600_000,
      refreshToken: null,
      idToken: 'id-token',
      requested: null,
    });
  }
  const cookie = (id: string) => ({ cookie: `other=1; ${sessions.cookieName}=${id}` });

  it('allows a live session: the principal carries the session handle', async () => {
    const { id, handle } = await newSession();
    const principal = await auth.authenticate({ ...cookie(id), ...navigation }, page);
    expect(principal).toMatchObject({ nationalId: OFFICIAL, sessionId: handle, roles: ['ho-tich-reader'] });
  });

  it('sends browser navigation without a session to sign in (302 session-missing), keeping the page to come back to', async () => {
    const err = await refusalOf(() => auth.authenticate(navigation, page));
    expect([err.statusCode, err.reason]).toEqual([302, 'session-missing']);
    expect(err.headers.location).toBe(`/.ztgate/auth/login?return=${encodeURIComponent('/echo/records?page=2')}`);
    expect(err.headers['set-cookie']).toBeUndefined();
  });

  it('refuses an unknown session: a page load is sent to sign in, an API call gets 401; both lose the cookie', async () => {
    const unknown = randomBytes(32).toString('base64url');
    const asPage = await refusalOf(() => auth.authenticate({ ...cookie(unknown), ...navigation }, page));
    expect([asPage.statusCode, asPage.reason]).toEqual([302, 'session-unknown']);
    expect(asPage.headers['set-cookie']).toMatch(new RegExp(`^${sessions.cookieName}=; .*Max-Age=0`));
    const asApi = await refusalOf(() => auth.authenticate(cookie(unknown), { method: 'POST', url: '/echo/x' }));
    expect([asApi.statusCode, asApi.reason]).toEqual([401, 'session-unknown']);
    expect(asApi.headers['set-cookie']).toMatch(/Max-Age=0/);
  });

  it('refuses an ended session: session-revoked', async () => {
    const { id, handle } = await newSession();
    await sessions.end(handle);
    const err = await refusalOf(() => auth.authenticate(cookie(id), { method: 'GET', url: '/echo/x' }));
    expect(err.reason).toBe('session-revoked');
  });

  it('refuses a session whose access token is about to expire and cannot be refreshed: session-refresh-failed, and ends it', async () => {
    const { id, handle } = await newSession({ accessTokenExpiresAt: Date.now() + 1000 });
    const err = await refusalOf(() => auth.authenticate(cookie(id), { method: 'GET', url: '/echo/x' }));
    expect(err.reason).toBe('session-refresh-failed');
    expect(await sessions.read(handle)).toBeNull();
  });

  it('refuses the session cookie sent twice (400 cookie-duplicate) instead of picking one', async () => {
    const { id } = await newSession();
    const err = await refusalOf(() => auth.authenticate({ cookie: `${sessions.cookieName}=${id}; ${sessions.cookieName}=${id}` }, page));
    expect([err.statusCode, err.reason]).toEqual([400, 'cookie-duplicate']);
  });
});
