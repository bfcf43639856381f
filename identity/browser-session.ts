import type { IdentityConfig } from './config.js';
import { StoreError } from '../core/store.js';
import { AuthenticationError, IdentityUnavailableError, SessionError, type SessionErrorCode } from './authentication-errors.js';
import { assuranceLevelOf } from './assurance.js';
import type { BearerTokenVerifier } from './bearer-token.js';
import { RpError, type RelyingParty } from './oidc-rp.js';
import type { AssuranceLevel, Principal } from '../core/principal.js';
import type { SessionManager, SessionProblem, SessionRecord } from './sessions.js';

/**
 * Browser-session authentication: the principal a session (identity/sessions.ts) stands for. The
 * session holds the tokens server-side; its access token is checked like any bearer token
 * (identity/bearer-token.ts) and refreshed shortly before it expires, once, under a lock shared by
 * every instance. A session that stands for nobody any more is a SessionError: the browser signs
 * in again.
 */
export interface BrowserSessionAuthenticator {
  /** `sessionId` is the value of the session cookie. */
  authenticate(sessionId: string, opts?: { onRefreshed?: () => void }): Promise<Principal>;
}

/** Refresh this long before the access token expires, so a request never carries one that dies in flight. */
export const REFRESH_MARGIN_MS = 30_000;

const PROBLEMS: Record<SessionProblem, SessionErrorCode> = {
  'session-unknown': 'ERR_SESSION_UNKNOWN',
  'session-expired': 'ERR_SESSION_EXPIRED',
  'session-idle-timeout': 'ERR_SESSION_IDLE_TIMEOUT',
  'session-revoked': 'ERR_SESSION_REVOKED',
};

export function createBrowserSessionAuthenticator(deps: {
  readonly identity: IdentityConfig;
  readonly sessions: SessionManager;
  /** Null when the IdP cannot be asked for fresh tokens: a session past its access token then signs in again. */
  readonly rp: RelyingParty | null;
  readonly bearer: BearerTokenVerifier;
}): BrowserSessionAuthenticator {
  const { identity, sessions, rp, bearer } = deps;
  const fresh = (r: SessionRecord) => r.accessTokenExpiresAt - Date.now() > REFRESH_MARGIN_MS;

  async function refreshed(handle: string, record: SessionRecord, onRefreshed: (() => void) | undefined): Promise<SessionRecord> {
    if (!record.refreshToken || !rp) {
      await sessions.end(handle);
      throw new SessionError('ERR_SESSION_REFRESH_FAILED', 'Phiên đăng nhập cần đăng nhập lại / The session must sign in again');
    }
    if (await sessions.lockRefresh(handle)) {
      try {
        const current = await sessions.read(handle);
        if (!current) throw new SessionError('ERR_SESSION_REVOKED');
        if (fresh(current)) return current; // refreshed by another request just before the lock
        let grant;
        try {
          grant = await rp.refresh(current.refreshToken!);
        } catch (err) {
          if (err instanceof RpError && err.code === 'ERR_IDP_UNREACHABLE') throw new IdentityUnavailableError('ERR_IDP_UNAVAILABLE', err);
          // The IdP refused: the official was suspended there, or the IdP session ended.
          await sessions.end(handle);
          throw new SessionError('ERR_SESSION_REFRESH_FAILED', 'session refresh refused', { cause: err });
        }
        const next: SessionRecord = {
          ...current,
          accessToken: grant.accessToken,
          accessTokenExpiresAt: grant.accessTokenExpiresAt,
          refreshToken: grant.refreshToken ?? current.refreshToken,
          idToken: grant.idToken ?? current.idToken,
        };
        if (!(await sessions.replace(handle, next))) throw new SessionError('ERR_SESSION_REVOKED');
        onRefreshed?.();
        return next;
      } finally {
        await sessions.unlockRefresh(handle).catch(() => undefined);
      }
    }
    // Another request, maybe on another instance, holds the lock: use what it gets.
    const deadline = Date.now() + identity.session.refreshLockTtlMs;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
      const current = await sessions.read(handle);
      if (!current) throw new SessionError('ERR_SESSION_REVOKED');
      if (fresh(current)) return current;
    }
    throw new IdentityUnavailableError('ERR_IDP_UNAVAILABLE', new Error('token refresh by another request did not finish in time'));
  }

  return {
    async authenticate(sessionId, opts = {}) {
      try {
        const resolved = await sessions.resolve(sessionId);
        if ('problem' in resolved) throw new SessionError(PROBLEMS[resolved.problem]);
        let { record } = resolved;
        if (!fresh(record)) record = await refreshed(resolved.handle, record, opts.onRefreshed);
        const principal = await bearer.verify(record.accessToken);
        if (principal.nationalId !== record.nationalId) throw new SessionError('ERR_SESSION_UNKNOWN');
        const issuer = identity.issuers.find((i) => i.issuer === record.issuer);
        const sessionLevel: AssuranceLevel = assuranceLevelOf({ acr: record.acr, amr: record.amr }, issuer?.assurance ?? {});
        // What the ID token said at sign-in outranks an issuer default that only stands in for silence.
        const sessionSaid = record.acr !== null || record.amr.length > 0;
        const tokenLevel = sessionSaid && principal.assuranceFrom === 'issuer-default' ? 0 : principal.assuranceLevel;
        return Object.freeze({
          ...principal,
          sessionId: resolved.handle,
          acr: record.acr ?? principal.acr,
          authTime: record.authTime ?? principal.authTime,
          assuranceLevel: Math.max(sessionLevel, tokenLevel) as AssuranceLevel,
          assuranceFrom: sessionSaid && sessionLevel >= tokenLevel ? 'session' : principal.assuranceFrom,
        });
      } catch (err) {
        if (err instanceof AuthenticationError) throw err;
        if (err instanceof StoreError) throw new IdentityUnavailableError('ERR_SESSION_STORE_UNAVAILABLE', err);
        throw err;
      }
    },
  };
}
