import type { FastifyInstance } from 'fastify';
import { registerAuthRoutes } from '../auth-routes.js';
import type { Runtime } from '../runtime.js';
import { createRelyingParty } from '../../identity/oidc-rp.js';

/**
 * Browser sign-in for the admin UI, on the management listener itself: the same OIDC code flow,
 * session store and cookie rules as the data plane (gateway/auth-routes.ts), with the admin
 * listener's own redirect URI `<admin.publicUrl>/.ztgate/auth/callback` registered at the IdP.
 * Without `identity.browser` and `admin.publicUrl`, the admin plane takes bearer tokens only.
 */
export async function registerAdminSignIn(app: FastifyInstance, runtime: Runtime): Promise<boolean> {
  const { config } = runtime;
  const browser = config.identity.browser;
  const adminUrl = config.admin?.publicUrl;
  if (!browser || !adminUrl || !runtime.identity.sessions || !runtime.identity.rp) return false;
  const rp = createRelyingParty({
    browser,
    publicUrl: adminUrl,
    clockSkewSeconds: config.identity.clockSkewSeconds,
    timeoutMs: config.identity.jwksTimeoutMs,
    jwksCacheMaxAgeMs: config.identity.jwksCacheMaxAgeMs,
    jwksCooldownMs: config.identity.jwksCooldownMs,
  });
  // The auth routes read the listener's public URL and relying party from the runtime.
  const adminView: Runtime = { ...runtime, config: { ...config, publicUrl: adminUrl }, identity: { ...runtime.identity, rp } };
  await registerAuthRoutes(app, adminView);
  return true;
}
