import type { JWTPayload } from 'jose';
import type { IssuerConfig } from './config.js';
import type { Store } from '../core/store.js';
import { IdentityUnavailableError, TokenError } from './authentication-errors.js';
import { sha256hex } from './digest.js';

/**
 * RFC 7662 token introspection, for an issuer whose access tokens are opaque: the issuer is asked
 * whether the token is active, and the answer is cached (in the shared store) no longer than the
 * token lives. Returns the answer's claims once they show an active access token for this gateway.
 */
export async function introspectToken(token: string, config: IssuerConfig, opts: { fetch: typeof fetch; store: Store | undefined; timeoutMs: number; clockSkewSeconds: number }): Promise<JWTPayload> {
  const { endpoint, clientId, clientSecret, cacheMaxAgeSeconds } = config.introspection!;
  const { store } = opts;
  const cacheKey = `introspection:${sha256hex(token)}`;
  let result: Record<string, unknown> | null = null;
  try {
    const cached = store ? await store.get(cacheKey) : null;
    if (cached) result = JSON.parse(cached) as Record<string, unknown>;
  } catch (err) {
    throw new IdentityUnavailableError('ERR_IDP_UNAVAILABLE', err);
  }
  if (!result) {
    try {
      const res = await opts.fetch(endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
          // RFC 6749 §2.3.1: form-encode the credentials before Basic.
          authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`,
        },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
        signal: AbortSignal.timeout(opts.timeoutMs),
        redirect: 'error',
      });
      if (!res.ok) throw new Error(`introspection answered ${res.status}`);
      result = (await res.json()) as Record<string, unknown>;
      if (!result || typeof result !== 'object' || typeof result.active !== 'boolean') throw new Error('introspection response has no boolean "active"');
    } catch (err) {
      throw new IdentityUnavailableError('ERR_IDP_UNAVAILABLE', err);
    }
    const exp = typeof result.exp === 'number' ? result.exp * 1000 : Infinity;
    const ttlMs = Math.min(cacheMaxAgeSeconds * 1000, exp - Date.now());
    if (store && ttlMs >= 1000) await store.set(cacheKey, JSON.stringify(result), { ttlMs }).catch(() => undefined);
  }
  if (result.active !== true) throw new TokenError('ERR_TOKEN_INACTIVE', 'token is not active');
  const now = Date.now() / 1000;
  if (typeof result.exp === 'number' && result.exp + opts.clockSkewSeconds < now) throw new TokenError('ERR_TOKEN_EXPIRED', 'token expired');
  // A refresh token is "active" too; only an access token may be presented as one.
  const type = String(result.token_type ?? result.typ ?? '').toLowerCase();
  if (type !== 'bearer' && type !== 'dpop') throw new TokenError('ERR_TOKEN_TYPE_INVALID', 'not an access token');
  if (result.iss !== undefined && result.iss !== config.issuer) throw new TokenError('ERR_TOKEN_ISSUER_UNTRUSTED', 'untrusted issuer');
  // RFC 7662 makes aud optional, but a token whose audience is unknown may be meant for another service.
  const aud = result.aud === undefined ? [] : Array.isArray(result.aud) ? result.aud : [result.aud];
  if (!aud.some((a) => config.audience.includes(String(a)))) throw new TokenError('ERR_TOKEN_AUDIENCE_INVALID', 'claim aud is missing or invalid');
  if (typeof result.sub !== 'string') throw new TokenError('ERR_TOKEN_CLAIM_INVALID', 'claim sub is missing');
  return result as JWTPayload;
}
