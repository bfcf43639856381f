import type { Store } from '../core/store.js';
import { createBearerTokenVerifier, type BearerTokenVerifier } from './bearer-token.js';
import { createBrowserSessionAuthenticator, type BrowserSessionAuthenticator } from './browser-session.js';
import type { IdentityConfig } from './config.js';
import { createRelyingParty, type RelyingParty } from './oidc-rp.js';
import { openRoster, type Roster } from './roster.js';
import { sessionTokenKey } from './session-crypto.js';
import { createSessionManager, type SessionManager } from './sessions.js';

/** The identity parts both planes share: token and session authentication, the roster, browser sign-in. */
export interface IdentityServices {
  readonly bearer: BearerTokenVerifier;
  /** Null when browser sign-in is not configured (no identity.browser), like `sessions` and `rp`. */
  readonly browserSessions: BrowserSessionAuthenticator | null;
  /** Null when no roster is configured (identity.roster.source: none). */
  readonly roster: Roster | null;
  readonly sessions: SessionManager | null;
  readonly rp: RelyingParty | null;
}

export async function createIdentityServices(config: { readonly identity: IdentityConfig; readonly publicUrl: string }, store: Store, fetchImpl?: typeof fetch): Promise<IdentityServices> {
  const { identity } = config;
  const roster = await openRoster(identity.roster, store);
  const browser = identity.browser;
  const rp = browser
    ? createRelyingParty({
        browser,
        publicUrl: config.publicUrl,
        clockSkewSeconds: identity.clockSkewSeconds,
        timeoutMs: identity.jwksTimeoutMs,
        jwksCacheMaxAgeMs: identity.jwksCacheMaxAgeMs,
        jwksCooldownMs: identity.jwksCooldownMs,
      })
    : null;
  const sessions = browser
    ? createSessionManager(store, {
        absoluteLifetimeSeconds: identity.session.absoluteLifetimeSeconds,
        idleTimeoutSeconds: identity.session.idleTimeoutSeconds,
        refreshLockTtlMs: identity.session.refreshLockTtlMs,
        secure: new URL(config.publicUrl).protocol === 'https:',
        tokenKey: sessionTokenKey({ encryptionKeyFile: identity.session.encryptionKeyFile, clientSecret: browser.clientSecret }),
      })
    : null;
  const bearer = createBearerTokenVerifier(identity, { fetch: fetchImpl, store, roster });
  const browserSessions = sessions ? createBrowserSessionAuthenticator({ identity, sessions, rp, bearer }) : null;
  return { bearer, browserSessions, roster, sessions, rp };
}
