import { createHash } from 'node:crypto';
import type { CompactJWSHeaderParameters, JWTVerifyGetKey } from 'jose';
import type { Principal } from '../core/principal.js';

/**
 * Access tokens already verified, so that an application calling with the same token does not pay
 * for the signature check again. Only what the token itself proves is kept (its principal before
 * the roster, the key that verified it): the roster, locks, device and policy are still asked on
 * every request, so a suspended or locked official is refused on the next request whatever is cached.
 *
 * Keyed by a SHA-256 digest of the whole token (never the token), bounded (the oldest entry goes
 * first), and an entry lives until the token's `exp` at the latest. A hit counts only if the
 * issuer's key set still resolves the token's header to the very key that verified it: once the
 * key is rotated out (or the key set refetched) the token is verified again from scratch.
 */
export const TOKEN_CACHE_MAX_ENTRIES = 10_000;

export interface VerifiedToken {
  readonly principal: Principal;
  /** Epoch ms after which the entry is not used. */
  readonly expiresAt: number;
  readonly header: CompactJWSHeaderParameters;
  /** The key object the issuer's key set gave for `header` at verification. */
  readonly key: unknown;
  /** The issuer's key set when the token was verified. */
  readonly keySet: JWTVerifyGetKey;
}

export interface TokenCache {
  digest(token: string): string;
  get(digest: string): Promise<Principal | null>;
  set(digest: string, entry: VerifiedToken): void;
  readonly size: number;
  clear(): void;
}

export function createTokenCache(opts: { maxEntries?: number; now?: () => number } = {}): TokenCache {
  const maxEntries = opts.maxEntries ?? TOKEN_CACHE_MAX_ENTRIES;
  const now = opts.now ?? Date.now;
  const entries = new Map<string, VerifiedToken>();
  return {
    digest: (token) => createHash('sha256').update(token).digest('base64url'),
    async get(digest) {
      const entry = entries.get(digest);
      if (!entry) return null;
      if (now() >= entry.expiresAt) {
        entries.delete(digest);
        return null;
      }
      let key: unknown;
      try {
        key = await entry.keySet(entry.header, undefined as never);
      } catch {
        key = null; // key no longer published, or the key set unreachable: verify from scratch
      }
      if (key !== entry.key) {
        entries.delete(digest);
        return null;
      }
      return entry.principal;
    },
    set(digest, entry) {
      if (entry.expiresAt <= now()) return;
      entries.delete(digest);
      if (entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
      entries.set(digest, entry);
    },
    get size() {
      return entries.size;
    },
    clear: () => entries.clear(),
  };
}
