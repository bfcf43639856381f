import type { GatewayConfig } from '../gateway/config.js';
import type { Store } from '../core/store.js';
import { createAuthenticator, type Authenticator } from '../gateway/steps/authenticate.js';
import { createRelyingParty, type RelyingParty } from './oidc-rp.js';
import { openRoster, type Roster } from './roster.js';
import { sessionTokenKey } from './session-crypto.js';
import { createSessionManager, type SessionManager } from './sessions.js';

/** The identity parts both planes share: token and session authentication, the roster, browser sign-in. */
export interface IdentityServices {
  readonly authenticator: Authenticator;
  /** Null when no roster is configured (identity.roster.source: none). */
  readonly roster: Roster | null;
  /** Null when browser sign-in is not configured (no identity.browser). */
  readonly sessions: SessionManager | null;
  readonly rp: RelyingParty | null;
}

export async function createIdentityServices(config: GatewayConfig, store: Store, fetchImpl?: typeof fetch): Promise<IdentityServices> {
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
  const authenticator = createAuthenticator(identity, { fetch: fetchImpl, store, roster, sessions, rp });
  return { authenticator, roster, sessions, rp };
}
