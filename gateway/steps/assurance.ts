import type { GatewayConfig, RouteConfig } from '../config.js';
import { GatewayError } from '../errors.js';
import type { Reason } from '../../core/reasons.js';
import type { Principal } from '../../core/principal.js';
import { acrValuesFor } from '../../identity/assurance.js';
import { LOGIN_PATH, safeReturnPath } from '../auth-paths.js';

/**
 * After authenticate: the service's own demands on how the official authenticated — a minimum
 * identity assurance level and a maximum time since authentication (routes[].minAssuranceLevel,
 * routes[].maxAuthAgeSeconds). An API client is told what to come back with (RFC 9470
 * insufficient_user_authentication, with acr_values / max_age); a browser with a session is sent
 * to sign in again with them (step-up).
 */
export function requireRouteAssurance(
  principal: Principal,
  /** A route's demands, or the management plane's (admin.minAssuranceLevel, admin.maxAuthAgeSeconds). */
  route: Pick<RouteConfig, 'minAssuranceLevel' | 'maxAuthAgeSeconds'>,
  opts: { identity: GatewayConfig['identity']; browser: boolean; returnTo: string; nowMs?: number },
): void {
  const minLevel = route.minAssuranceLevel ?? 0;
  const maxAge = route.maxAuthAgeSeconds ?? null;
  let reason: Reason | null = null;
  if (principal.assuranceLevel < minLevel) reason = 'assurance-insufficient';
  else if (maxAge !== null) {
    const now = (opts.nowMs ?? Date.now()) / 1000;
    // Unknown auth_time cannot prove it is recent enough.
    if (principal.authTime === null || now - principal.authTime > maxAge + opts.identity.clockSkewSeconds) reason = 'authentication-too-old';
  }
  if (!reason) return;

  if (opts.browser) {
    const params = new URLSearchParams({ return: safeReturnPath(opts.returnTo) ?? '/' });
    if (minLevel > 0) params.set('level', String(minLevel));
    if (maxAge !== null) params.set('max_age', String(maxAge));
    throw new GatewayError('ZTG_ERR_SIGN_IN_REQUIRED', reason, { headers: { location: `${LOGIN_PATH}?${params}` } });
  }
  const issuer = opts.identity.issuers.find((i) => i.issuer === principal.issuer);
  const acrValues = minLevel > 0 ? (issuer?.stepUpAcrValues?.[String(minLevel) as '1' | '2'] ?? acrValuesFor(minLevel as 1 | 2, issuer?.assurance ?? {})) : [];
  // RFC 9470 §3: the challenge says which acr values and which max_age would do.
  const challenge = [
    'Bearer realm="ztgate"',
    'error="insufficient_user_authentication"',
    `error_description="${reason === 'assurance-insufficient' ? 'a higher assurance level is required' : 'a more recent authentication is required'}"`,
    ...(acrValues.length > 0 ? [`acr_values="${acrValues.join(' ')}"`] : []),
    ...(maxAge !== null ? [`max_age=${maxAge}`] : []),
  ].join(', ');
  throw new GatewayError('ZTG_ERR_STEP_UP_REQUIRED', reason, { headers: { 'www-authenticate': challenge } });
}
