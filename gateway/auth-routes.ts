import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { decodeJwt } from 'jose';
import * as oidc from 'openid-client';
import { GatewayError } from './errors.js';
import type { Reason } from '../core/reasons.js';
import type { Runtime } from './runtime.js';
import { StoreError } from '../core/store.js';
import { AUTH_PATH_PREFIX, safeReturnPath } from './auth-paths.js';
import { clearCookieHeader, cookieAttributes, cookieValue } from './cookies.js';
import type { Principal } from '../core/principal.js';
import { acrValuesFor, assuranceLevelOf } from '../identity/assurance.js';
import { RpError, type RpErrorCode } from '../identity/oidc-rp.js';
import type { SessionRecord } from '../identity/sessions.js';
import { sha256hex } from '../identity/digest.js';

/**
 * The gateway's own browser endpoints, on the data plane under /.ztgate/auth/ and answered before
 * any route (gateway/pipeline.ts):
 *
 *   GET  login               → the IdP's authorization endpoint (code flow, PKCE, state, nonce)
 *   GET  callback            → verify, create the session, back to the page the official wanted
 *   GET logout               → a page asking to confirm (a form that POSTs)
 *   POST logout              → same-origin only: end the session here, then at the IdP (RP-Initiated Logout 1.0)
 *   POST backchannel-logout  ← the IdP ends sessions (OIDC Back-Channel Logout 1.0)
 *   GET  frontchannel-logout ← the IdP ends sessions from an iframe in the browser (OIDC Front-Channel Logout 1.0)
 *   GET  signed-out          → where the IdP sends the browser after sign-out
 *
 * Each answers with exactly one decision event, like any other request.
 */

export const AUTH_PATHS = {
  login: `${AUTH_PATH_PREFIX}login`,
  callback: `${AUTH_PATH_PREFIX}callback`,
  logout: `${AUTH_PATH_PREFIX}logout`,
  backchannelLogout: `${AUTH_PATH_PREFIX}backchannel-logout`,
  frontchannelLogout: `${AUTH_PATH_PREFIX}frontchannel-logout`,
  signedOut: `${AUTH_PATH_PREFIX}signed-out`,
} as const;

interface Transaction {
  readonly nonce: string;
  readonly codeVerifier: string;
  readonly returnTo: string;
  readonly minAssuranceLevel: number;
  readonly maxAgeSeconds: number | null;
  /** SHA-256 of the value of this browser's transaction cookie: the callback must come from the browser that started. */
  readonly browser: string;
}

const FORM_LIMIT_BYTES = 64 * 1024; // a logout token is a few KiB
const MAX_AGE_LIMIT_SECONDS = 30 * 86_400;

export const transactionKey = (state: string) => `auth-tx:${sha256hex(state)}`;

function signInFailed(reason: Reason, detail?: string, cause?: unknown): GatewayError {
  return new GatewayError('ZTG_ERR_SIGN_IN_FAILED', reason, { detail, cause });
}

/** Each way the code exchange can fail has its own reason, so the SOC and the operator see which step it was. */
const SIGN_IN_FAILURES: Record<RpErrorCode, Reason> = {
  ERR_IDP_UNREACHABLE: 'identity-provider-unavailable',
  ERR_AUTHORIZATION_ERROR: 'auth-idp-error',
  ERR_GRANT_REJECTED: 'auth-code-rejected',
  ERR_CLIENT_AUTH_FAILED: 'auth-client-authentication-failed',
  ERR_ID_TOKEN_INVALID: 'auth-id-token-invalid',
  ERR_ID_TOKEN_CLOCK_SKEW: 'auth-clock-skew',
  ERR_LOGOUT_TOKEN_INVALID: 'auth-id-token-invalid',
};

function storeGuard(err: unknown): never {
  if (err instanceof StoreError) throw new GatewayError('ZTG_ERR_IDP_UNAVAILABLE', 'session-store-unavailable', { cause: err });
  throw err;
}

/** A principal for the event of a sign-out, built from the session record: who signed out, and when. */
function principalOfRecord(record: SessionRecord, handle: string): Principal {
  return Object.freeze({ nationalId: record.nationalId, agency: null, roles: [], clearance: 'none', assuranceLevel: 0, sessionId: handle, acr: record.acr, issuer: record.issuer, authTime: record.authTime });
}

export async function registerAuthRoutes(app: FastifyInstance, runtime: Runtime): Promise<void> {
  const { sessions, rp } = runtime.identity;
  const { authenticator } = runtime;
  const browser = runtime.config.identity.browser;
  if (!sessions || !rp || !browser) return; // not configured: /.ztgate/auth/* is 404 like any unknown path
  const { store, config } = runtime;
  const secure = sessions.secure;
  const txCookie = secure ? '__Host-ztgate-auth' : 'ztgate-auth';
  const attrs = cookieAttributes(secure);
  const issuerConfig = config.identity.issuers.find((i) => i.issuer === browser.issuer)!;
  const signedOutUrl = `${config.publicUrl}${AUTH_PATHS.signedOut}`;

  const noStore = (reply: FastifyReply) => reply.header('cache-control', 'no-store').header('pragma', 'no-cache');

  async function login(request: FastifyRequest<{ Querystring: Record<string, string | undefined> }>, reply: FastifyReply) {
    const q = request.query;
    const returnTo = q.return === undefined ? '/' : safeReturnPath(q.return);
    if (returnTo === null) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'auth-return-path-invalid', { detail: 'Đường dẫn quay lại phải là một đường dẫn trên cổng này / The return path must be a path on this gateway' });
    const level = q.level === undefined ? 0 : Number(q.level);
    if (!(level === 0 || level === 1 || level === 2)) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: 'level must be 0, 1 or 2' });
    const maxAge = q.max_age === undefined ? null : Number(q.max_age);
    if (maxAge !== null && !(Number.isInteger(maxAge) && maxAge >= 0 && maxAge <= MAX_AGE_LIMIT_SECONDS)) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: 'max_age must be a whole number of seconds' });

    // A step-up this browser already went through, and still short of the level: asking again would loop.
    const existing = cookieValue(request.headers.cookie, sessions!.cookieName);
    if (existing && level > 0) {
      const resolved = await sessions!.resolve(existing).catch(storeGuard);
      if ('record' in resolved) {
        const had = assuranceLevelOf({ acr: resolved.record.acr, amr: resolved.record.amr }, issuerConfig.assurance ?? {});
        if ((resolved.record.requested?.minAssuranceLevel ?? 0) >= level && had < level) {
          throw new GatewayError('ZTG_ERR_FORBIDDEN', 'assurance-insufficient', { detail: 'Tài khoản định danh không đạt mức yêu cầu / The identity does not reach the required assurance level' });
        }
      }
    }

    const state = oidc.randomState();
    const binding = randomBytes(32).toString('base64url');
    const tx: Transaction = { nonce: oidc.randomNonce(), codeVerifier: oidc.randomPKCECodeVerifier(), returnTo, minAssuranceLevel: level, maxAgeSeconds: maxAge, browser: sha256hex(binding) };
    await store.set(transactionKey(state), JSON.stringify(tx), { ttlMs: browser!.loginTimeoutSeconds * 1000 }).catch(storeGuard);
    let url: URL;
    try {
      url = await rp!.authorizationUrl({
        state,
        nonce: tx.nonce,
        codeVerifier: tx.codeVerifier,
        acrValues: level > 0 ? (issuerConfig.stepUpAcrValues?.[String(level) as '1' | '2'] ?? acrValuesFor(level, issuerConfig.assurance ?? {})) : undefined,
        maxAgeSeconds: maxAge,
      });
    } catch (err) {
      throw new GatewayError('ZTG_ERR_IDP_UNAVAILABLE', 'identity-provider-unavailable', { cause: err });
    }
    request.zt.reasons.push('sign-in-started');
    request.zt.allowedWithoutPolicy = true;
    noStore(reply).header('set-cookie', `${txCookie}=${binding}; ${attrs}; Max-Age=${browser!.loginTimeoutSeconds}`);
    return reply.redirect(url.href, 302);
  }

  async function callback(request: FastifyRequest, reply: FastifyReply) {
    const url = new URL(request.url, config.publicUrl);
    const state = url.searchParams.get('state');
    const binding = cookieValue(request.headers.cookie, txCookie);
    const clearTx = clearCookieHeader(txCookie, secure);
    reply.header('set-cookie', clearTx);
    if (!state || !binding) throw signInFailed('auth-state-invalid', 'Thiếu state hoặc cookie đăng nhập / missing state or sign-in cookie');
    const key = transactionKey(state);
    const json = await store.get(key).catch(storeGuard);
    // Single use: of two callbacks racing with the same state, only the one that deletes it goes on.
    if (json === null || (await store.del(key).catch(storeGuard)) === 0) throw signInFailed('auth-state-invalid', 'state không hợp lệ, đã dùng hoặc đã hết hạn / unknown, used or expired state');
    const tx = JSON.parse(json) as Transaction;
    if (tx.browser !== sha256hex(binding)) throw signInFailed('auth-state-invalid', 'state thuộc về trình duyệt khác / state bound to another browser');

    let grant;
    try {
      grant = await rp!.exchangeCode(url, { state, nonce: tx.nonce, codeVerifier: tx.codeVerifier, maxAgeSeconds: tx.maxAgeSeconds });
    } catch (err) {
      const code = err instanceof RpError ? err.code : 'ERR_IDP_UNREACHABLE';
      const reason = SIGN_IN_FAILURES[code];
      // The official sees "sign-in failed"; the operator needs the step and the IdP's own words.
      request.log.warn({ reason, code, err }, `sign-in failed (${reason}): ${(err as Error).message}`);
      if (code === 'ERR_IDP_UNREACHABLE') throw new GatewayError('ZTG_ERR_IDP_UNAVAILABLE', reason, { cause: err });
      throw signInFailed(reason, undefined, err);
    }
    const id = grant.idClaims!;
    // The access token is checked like any bearer token: same issuer rules, same roster.
    const principal = await authenticator.verifyAccessToken(grant.accessToken);
    let accessSub: unknown;
    try {
      accessSub = decodeJwt(grant.accessToken).sub;
    } catch {
      accessSub = undefined; // opaque: introspection already matched it to the official
    }
    if (accessSub !== undefined && accessSub !== id.sub) throw signInFailed('auth-id-token-invalid', 'ID token and access token name different subjects');

    const previous = cookieValue(request.headers.cookie, sessions!.cookieName);
    if (previous) {
      // A new sign-in never continues an old session id (session fixation).
      const old = await sessions!.resolve(previous).catch(storeGuard);
      if (old.handle) await sessions!.end(old.handle).catch(storeGuard);
    }
    const created = await sessions!
      .create({
        nationalId: principal.nationalId,
        issuer: browser!.issuer,
        sub: id.sub,
        sid: id.sid,
        acr: id.acr,
        amr: id.amr,
        authTime: id.authTime,
        accessToken: grant.accessToken,
        accessTokenExpiresAt: grant.accessTokenExpiresAt,
        refreshToken: grant.refreshToken,
        idToken: grant.idToken!,
        requested: tx.minAssuranceLevel > 0 || tx.maxAgeSeconds !== null ? { minAssuranceLevel: tx.minAssuranceLevel, maxAgeSeconds: tx.maxAgeSeconds } : null,
        client: { address: request.socket.remoteAddress ?? null, userAgent: request.headers['user-agent']?.slice(0, 300) ?? null },
      })
      .catch(storeGuard);
    request.zt.principal = Object.freeze({ ...principal, sessionId: created.handle, acr: id.acr ?? principal.acr, authTime: id.authTime ?? principal.authTime });
    request.zt.reasons.push('session-created');
    request.zt.allowedWithoutPolicy = true;
    const lifetime = config.identity.session.absoluteLifetimeSeconds;
    noStore(reply).header('set-cookie', [clearTx, `${sessions!.cookieName}=${created.id}; ${attrs}; Max-Age=${lifetime}`]);
    return reply.redirect(tx.returnTo, 303);
  }

  // Sign-out changes state: only a page of this gateway may ask for it, never another site.
  const ownOrigin = new URL(config.publicUrl).origin;

  /**
   * A small page of the gateway's own: no script, no external resource, forms only to itself —
   * and, on the sign-out page, to exactly the IdP's end-session origin: CSP form-action also
   * governs the redirects after a submission (CSP 3 §6.2.1), so without it a browser stops the
   * 303 to end_session_endpoint and the IdP session survives.
   */
  function gatewayPage(request: FastifyRequest, reply: FastifyReply, title: string, body: string, formTargets: readonly string[] = []) {
    request.zt.reasons.push('public-endpoint');
    request.zt.allowedWithoutPolicy = true;
    const formAction = ["'self'", ...formTargets].join(' ');
    return noStore(reply)
      .type('text/html; charset=utf-8')
      .header('content-security-policy', `default-src 'none'; base-uri 'none'; form-action ${formAction}; frame-ancestors 'none'`)
      .header('x-content-type-options', 'nosniff')
      .send(`<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8"><title>${title}</title></head>\n<body>${body}</body></html>`);
  }

  async function confirmLogout(request: FastifyRequest, reply: FastifyReply) {
    let endSession: string | null = null;
    try {
      endSession = await rp!.endSessionOrigin();
    } catch (err) {
      // Sign-out still ends the gateway session; the POST then lands on the signed-out page.
      request.log.warn({ err }, 'IdP discovery failed; the sign-out page allows forms to this gateway only');
    }
    return gatewayPage(
      request,
      reply,
      'Đăng xuất — Sign out',
      `<h1>Đăng xuất khỏi ztgate?</h1><p lang="en">Sign out of ztgate?</p>
<form method="post" action="${AUTH_PATHS.logout}"><button type="submit">Đăng xuất / Sign out</button></form>
<p><a href="/">Ở lại / Stay signed in</a></p>`,
      endSession && endSession !== ownOrigin ? [endSession] : [],
    );
  }

  async function logout(request: FastifyRequest, reply: FastifyReply) {
    const origin = request.headers.origin;
    const site = request.headers['sec-fetch-site'];
    // Origin, when sent, must be this gateway's; Sec-Fetch-Site, when sent, same-origin; one of them must be there.
    if ((origin === undefined && site === undefined) || (origin !== undefined && origin !== ownOrigin) || (site !== undefined && site !== 'same-origin')) {
      throw new GatewayError('ZTG_ERR_FORBIDDEN', 'logout-cross-site', { detail: 'Yêu cầu đăng xuất không đến từ trang của cổng / the sign-out request did not come from a page of this gateway' });
    }
    const id = cookieValue(request.headers.cookie, sessions!.cookieName);
    let idToken: string | null = null;
    if (id) {
      const resolved = await sessions!.resolve(id).catch(storeGuard);
      if ('record' in resolved) {
        idToken = resolved.record.idToken;
        request.zt.principal = principalOfRecord(resolved.record, resolved.handle);
      }
      if (resolved.handle) await sessions!.end(resolved.handle).catch(storeGuard);
    }
    request.zt.reasons.push('signed-out');
    request.zt.allowedWithoutPolicy = true;
    noStore(reply).header('set-cookie', clearCookieHeader(sessions!.cookieName, secure));
    let target: URL | null = null;
    try {
      target = await rp!.endSessionUrl(idToken, signedOutUrl);
    } catch (err) {
      // Signed out here already; the IdP session ends on its own expiry.
      request.log.warn({ err }, 'end_session_endpoint unavailable; signed out at the gateway only');
    }
    return reply.redirect(target?.href ?? AUTH_PATHS.signedOut, 303);
  }

  async function backchannelLogout(request: FastifyRequest<{ Body: URLSearchParams | undefined }>, reply: FastifyReply) {
    const token = request.body instanceof URLSearchParams ? request.body.get('logout_token') : null;
    if (!token) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'logout-token-invalid', { detail: 'logout_token is required (application/x-www-form-urlencoded)' });
    let logout;
    try {
      logout = await rp!.verifyLogoutToken(token);
    } catch (err) {
      if (err instanceof RpError && err.code === 'ERR_LOGOUT_TOKEN_INVALID') throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'logout-token-invalid', { detail: err.message, cause: err });
      throw new GatewayError('ZTG_ERR_IDP_UNAVAILABLE', 'identity-provider-unavailable', { cause: err });
    }
    // §2.6 step 10: a logout token is used once.
    const ttlMs = Math.max(logout.exp * 1000 - Date.now(), 0) + config.identity.clockSkewSeconds * 1000 + 60_000;
    const first = await store.set(`logout-jti:${sha256hex(`${browser!.issuer}\n${logout.jti}`)}`, '1', { ifAbsent: true, ttlMs }).catch(storeGuard);
    if (!first) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'logout-token-invalid', { detail: 'logout token already used (jti)' });
    // With a sid, only that IdP session ends; with only a sub, every session of that subject.
    if (logout.sid) await sessions!.endByIdpSession(browser!.issuer, logout.sid).catch(storeGuard);
    else await sessions!.endByIdpSubject(browser!.issuer, logout.sub!).catch(storeGuard);
    request.zt.reasons.push('backchannel-logout');
    request.zt.allowedWithoutPolicy = true;
    return noStore(reply).code(200).send();
  }

  const idpOrigin = new URL(browser.issuer).origin;

  /**
   * OIDC Front-Channel Logout 1.0 §2: the IdP's logout page loads this in an iframe with `iss` and
   * `sid`. A GET any page can make, so: `iss` must be the configured IdP, `sid` is required, only
   * an iframe load counts (Sec-Fetch-Dest, when sent), and only sessions of that IdP end. With
   * frontchannelLogout `sub` (IdPs whose `sid` is the subject) whoever knows an official's subject
   * can sign them out — a nuisance, never access; docs/identity-providers.md weighs it.
   */
  async function frontchannelLogout(request: FastifyRequest<{ Querystring: Record<string, string | string[] | undefined> }>, reply: FastifyReply) {
    const { iss, sid } = request.query;
    const refuse = (detail: string) => new GatewayError('ZTG_ERR_BAD_REQUEST', 'frontchannel-logout-invalid', { detail });
    if (typeof iss !== 'string' || typeof sid !== 'string' || !iss || !sid) throw refuse('iss and sid are required, once each');
    if (iss !== browser!.issuer) throw refuse('iss is not the configured identity provider');
    if (sid.length > 256 || /[\u0000-\u001f\u007f]/.test(sid)) throw refuse('sid is malformed');
    const dest = request.headers['sec-fetch-dest'];
    if (dest !== undefined && dest !== 'iframe') throw refuse(`front-channel logout is loaded in an iframe, not as ${String(dest)}`);
    const ended = browser!.frontchannelLogout === 'sub' ? await sessions!.endByIdpSubject(iss, sid).catch(storeGuard) : await sessions!.endByIdpSession(iss, sid).catch(storeGuard);
    request.log.info({ ended, mode: browser!.frontchannelLogout }, 'front-channel logout from the IdP');
    request.zt.reasons.push('frontchannel-logout');
    request.zt.allowedWithoutPolicy = true;
    // Shown inside the IdP's page only: framing by anyone else is refused.
    return noStore(reply)
      .type('text/html; charset=utf-8')
      .header('content-security-policy', `default-src 'none'; frame-ancestors ${idpOrigin}`)
      .header('x-content-type-options', 'nosniff')
      .send('<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8"><title>ztgate</title></head><body>Đã đăng xuất / Signed out</body></html>');
  }

  async function signedOut(request: FastifyRequest, reply: FastifyReply) {
    return gatewayPage(request, reply, 'Đã đăng xuất — Signed out', `<h1>Đã đăng xuất khỏi ztgate</h1><p lang="en">You have signed out of ztgate.</p><p><a href="/">Trang chủ / Home</a></p>`);
  }

  await app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_LIMIT_BYTES }, (_request, body, done) => {
      done(null, new URLSearchParams(body as string));
    });
    scope.get(AUTH_PATHS.login, login);
    scope.get(AUTH_PATHS.callback, callback);
    scope.get(AUTH_PATHS.logout, confirmLogout);
    scope.post(AUTH_PATHS.logout, logout);
    scope.post(AUTH_PATHS.backchannelLogout, backchannelLogout);
    if (browser.frontchannelLogout !== 'off') scope.get(AUTH_PATHS.frontchannelLogout, frontchannelLogout);
    scope.get(AUTH_PATHS.signedOut, signedOut);
  });
}
