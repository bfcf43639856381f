import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../errors.js';
import type { Reason } from '../../core/reasons.js';
import { LOGIN_PATH, safeReturnPath } from '../auth-paths.js';
import { clearCookieHeader, cookieValue } from '../cookies.js';
import { AuthenticationError, IdentityRefusedError, IdentityUnavailableError, SessionError, TokenError, type AuthenticationErrorCode } from '../../identity/authentication-errors.js';
import type { BearerTokenVerifier } from '../../identity/bearer-token.js';
import type { BrowserSessionAuthenticator } from '../../identity/browser-session.js';
import type { Principal } from '../../core/principal.js';

/**
 * Step 3, authenticate: who is asking, tied to a national ID. The credentials are read from the
 * request here — a bearer access token (RFC 6750 §2.1) or the gateway's session cookie — and
 * checked by identity/ (identity/bearer-token.ts, identity/browser-session.ts); identity's typed
 * errors become the decision's reason (AUTHENTICATION_REASONS below) and the HTTP answer here.
 * Unauthenticated browser navigation is sent to sign in; an API call gets 401 JSON, never a redirect.
 */

/** What the data plane knows about the request beyond its headers, to answer a browser with a sign-in redirect. */
export interface RequestInfo {
  readonly method: string;
  /** Path and query, as received. */
  readonly url: string;
  /** Adds a reason to the request's decision event (e.g. session-refreshed). */
  readonly note?: (reason: Reason) => void;
}

export interface Authenticator {
  authenticate(headers: IncomingHttpHeaders, request?: RequestInfo): Promise<Principal>;
  /** The principal an access token stands for (bearer rules, roster applied). */
  verifyAccessToken(token: string): Promise<Principal>;
  /** True when `request` is browser navigation that should be sent to sign in rather than refused with JSON. */
  isBrowserNavigation(headers: IncomingHttpHeaders, request?: RequestInfo): boolean;
}

export interface AuthenticatorParts {
  readonly bearer: BearerTokenVerifier;
  /** Null when browser sign-in is not configured (no identity.browser). */
  readonly browser: { readonly sessions: BrowserSessionAuthenticator; readonly cookieName: string; readonly secure: boolean } | null;
}

/** The decision reason of each of identity's authentication errors. */
export const AUTHENTICATION_REASONS: Readonly<Record<AuthenticationErrorCode, Reason>> = {
  ERR_TOKEN_MISSING: 'token-missing',
  ERR_TOKEN_MALFORMED: 'token-malformed',
  ERR_TOKEN_EXPIRED: 'token-expired',
  ERR_TOKEN_NOT_YET_VALID: 'token-not-yet-valid',
  ERR_TOKEN_AUDIENCE_INVALID: 'token-audience-invalid',
  ERR_TOKEN_ISSUER_UNTRUSTED: 'token-issuer-untrusted',
  ERR_TOKEN_CLAIM_INVALID: 'token-claim-invalid',
  ERR_TOKEN_ALGORITHM_NOT_ALLOWED: 'token-algorithm-not-allowed',
  ERR_TOKEN_SIGNATURE_INVALID: 'token-signature-invalid',
  ERR_TOKEN_KEY_UNKNOWN: 'token-key-unknown',
  ERR_TOKEN_TYPE_INVALID: 'token-type-invalid',
  ERR_TOKEN_ID_TOKEN_PRESENTED: 'token-id-token-presented',
  ERR_TOKEN_INACTIVE: 'token-inactive',
  ERR_NATIONAL_ID_MISSING: 'identity-national-id-missing',
  ERR_NATIONAL_ID_INVALID: 'identity-national-id-invalid',
  ERR_CLAIM_INVALID: 'token-claim-invalid',
  ERR_NOT_ON_ROSTER: 'official-not-on-roster',
  ERR_OFFICIAL_SUSPENDED: 'official-suspended',
  ERR_SESSION_UNKNOWN: 'session-unknown',
  ERR_SESSION_EXPIRED: 'session-expired',
  ERR_SESSION_IDLE_TIMEOUT: 'session-idle-timeout',
  ERR_SESSION_REVOKED: 'session-revoked',
  ERR_SESSION_REFRESH_FAILED: 'session-refresh-failed',
  ERR_IDP_UNAVAILABLE: 'identity-provider-unavailable',
  ERR_ROSTER_UNAVAILABLE: 'roster-unavailable',
  ERR_SESSION_STORE_UNAVAILABLE: 'session-store-unavailable',
  ERR_STATE_LOST: 'state-lost',
};

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const REALM = 'Bearer realm="ztgate"';

/** 401 with the RFC 6750 §3 challenge; no error attribute when no credentials were sent at all. */
function unauthenticated(reason: Reason, description: string | null, cause?: unknown, extra: Record<string, string> = {}): GatewayError {
  const challenge = description ? `${REALM}, error="invalid_token", error_description="${description}"` : REALM;
  return new GatewayError('ZTG_ERR_UNAUTHENTICATED', reason, { headers: { 'www-authenticate': challenge, ...extra }, cause });
}

export function createAuthenticator(parts: AuthenticatorParts): Authenticator {
  const { bearer, browser } = parts;

  function isBrowserNavigation(headers: IncomingHttpHeaders, request?: RequestInfo): boolean {
    if (!request || !browser || headers.authorization) return false;
    if (request.method !== 'GET' && request.method !== 'HEAD') return false;
    // Fetch Metadata, when sent, says for sure; otherwise the Accept header of a page load.
    const mode = headers['sec-fetch-mode'];
    if (typeof mode === 'string') return mode === 'navigate';
    return /\btext\/html\b/i.test(String(headers.accept ?? ''));
  }

  /** A browser goes to sign in (302); anything else gets 401 with the reason. A session that stands for nobody loses its cookie. */
  function sessionRefused(reason: Reason, headers: IncomingHttpHeaders, request: RequestInfo | undefined, clearCookie: boolean): GatewayError {
    const extra: Record<string, string> = clearCookie && browser ? { 'set-cookie': clearCookieHeader(browser.cookieName, browser.secure) } : {};
    if (isBrowserNavigation(headers, request)) {
      const returnTo = safeReturnPath(request!.url) ?? '/';
      return new GatewayError('ZTG_ERR_SIGN_IN_REQUIRED', reason, { headers: { ...extra, location: `${LOGIN_PATH}?return=${encodeURIComponent(returnTo)}` } });
    }
    return unauthenticated(reason, 'session is not valid', undefined, extra);
  }

  /** Identity's typed errors as the gateway's; anything else is not identity's to explain and goes on unchanged. */
  function refusal(err: unknown, headers: IncomingHttpHeaders, request: RequestInfo | undefined): unknown {
    if (!(err instanceof AuthenticationError)) return err;
    const reason = AUTHENTICATION_REASONS[err.code];
    if (err instanceof TokenError) return unauthenticated(reason, err.description, err);
    if (err instanceof IdentityRefusedError) return new GatewayError('ZTG_ERR_IDENTITY_REFUSED', reason, { detail: err.message, cause: err, presented: err.presented });
    if (err instanceof SessionError) return sessionRefused(reason, headers, request, true);
    if (err instanceof IdentityUnavailableError) return new GatewayError(err.code === 'ERR_STATE_LOST' ? 'ZTG_ERR_STATE_LOST' : 'ZTG_ERR_IDP_UNAVAILABLE', reason, { cause: err.cause ?? err });
    return new GatewayError('ZTG_ERR_INTERNAL', 'gateway-error', { cause: err });
  }

  async function verifyAccessToken(token: string): Promise<Principal> {
    try {
      return await bearer.verify(token);
    } catch (err) {
      throw refusal(err, {}, undefined);
    }
  }

  return {
    verifyAccessToken,
    isBrowserNavigation,
    async authenticate(headers, request) {
      const authorization = headers.authorization;
      if (authorization !== undefined && authorization !== '') {
        const match = BEARER.exec(authorization);
        if (!match) throw unauthenticated('token-malformed', 'expected a Bearer token');
        return verifyAccessToken(match[1]!);
      }
      const cookieHeader = Array.isArray(headers.cookie) ? headers.cookie.join('; ') : headers.cookie;
      const id = browser ? cookieValue(cookieHeader, browser.cookieName) : null;
      if (id) {
        try {
          return await browser!.sessions.authenticate(id, { onRefreshed: () => request?.note?.('session-refreshed') });
        } catch (err) {
          throw refusal(err, headers, request);
        }
      }
      if (isBrowserNavigation(headers, request)) throw sessionRefused('session-missing', headers, request, false);
      throw unauthenticated('token-missing', null);
    },
  };
}
