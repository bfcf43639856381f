import { createRemoteJWKSet, customFetch, errors, type JWTVerifyGetKey } from 'jose';

/**
 * An issuer's JWKS, fetched and cached, where a token signed with a `kid` not in the cache makes
 * the keys be fetched again — once per `cooldownDuration` at most, shared by every request that
 * asks meanwhile, so a flood of forged kids costs the IdP one fetch per interval. A request that
 * arrives inside the interval waits for its end and the one refetch, instead of being refused:
 * a key the IdP has just rotated in is accepted on the first try, within the interval. The wait is
 * never longer than MAX_WAIT_MS: with a longer interval, an unknown kid is refused rather than held.
 */
const MAX_WAIT_MS = 1000;

export function remoteKeySet(url: URL, opts: { cacheMaxAge: number; cooldownDuration: number; timeoutDuration: number; fetch?: typeof fetch }): JWTVerifyGetKey {
  const { fetch: fetchImpl, ...timing } = opts;
  // An injected fetch (tests, an egress proxy) fetches the keys too, not only discovery and introspection.
  const keys = createRemoteJWKSet(url, fetchImpl ? { ...timing, [customFetch]: fetchImpl } : timing);
  // One wait shared by all requests with unknown kids inside the same interval.
  let waiting: Promise<void> | null = null;
  return async (header, token) => {
    try {
      return await keys(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) || !keys.coolingDown) throw err;
      waiting ??= new Promise<void>((resolve) => {
        const deadline = Date.now() + MAX_WAIT_MS;
        const poll = () => {
          if (keys.coolingDown && Date.now() < deadline) return void setTimeout(poll, 50).unref();
          waiting = null;
          resolve();
        };
        setTimeout(poll, 50).unref();
      });
      await waiting;
      return keys(header, token);
    }
  };
}
