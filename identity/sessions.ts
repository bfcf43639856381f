import { randomBytes } from 'node:crypto';
import { sessionDigest, sha256hex } from './digest.js';
import type { Store } from '../core/store.js';
import { openTokens, sealTokens } from './session-crypto.js';

/**
 * Browser sessions, held server-side in the shared store (Redis in production) so that every
 * gateway instance sees a session the moment it is created, and its end the moment it is ended.
 *
 * The browser holds only an opaque 256-bit random id. The store never sees that id: records are
 * keyed by its SHA-256 (the session "handle"), so a read of the store does not yield usable
 * cookies. Tokens stay here, never in the cookie, and are stored encrypted (identity/session-crypto.ts)
 * with the handle as additional data: a record that does not decrypt is a session that does not exist.
 *
 * Idle time is tracked in a key of its own whose TTL is the idle timeout: touching a session never
 * rewrites the record, so it cannot race a token refresh and put back a consumed refresh token.
 */

export interface SessionRecord {
  readonly v: 1;
  readonly nationalId: string;
  readonly issuer: string;
  /** OIDC `sub` and `sid` of the IdP session, for back-channel logout. */
  readonly sub: string;
  readonly sid: string | null;
  readonly acr: string | null;
  readonly amr: readonly string[];
  /** Seconds since the epoch (OIDC auth_time). */
  readonly authTime: number | null;
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly accessToken: string;
  readonly accessTokenExpiresAt: number;
  readonly refreshToken: string | null;
  /** Sent back as id_token_hint at sign-out (RP-Initiated Logout 1.0 §2). */
  readonly idToken: string;
  /** What the sign-in that created this session asked for (step-up), so it is not asked again in a loop. */
  readonly requested: { readonly minAssuranceLevel: number; readonly maxAgeSeconds: number | null } | null;
  /** Where the sign-in came from, for the admins' list of sessions (absent in records made before it was kept). */
  readonly client?: SessionClient;
}

export interface SessionClient {
  readonly address: string | null;
  readonly userAgent: string | null;
}

/** One live session as the admins' list shows it: no token, no cookie. */
export interface SessionSummary {
  /** The session handle (SHA-256 of the cookie): what locks and decision events name. */
  readonly handle: string;
  readonly nationalId: string;
  readonly acr: string | null;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly lastSeenAt: number | null;
  readonly client: SessionClient | null;
}

export type NewSession = Omit<SessionRecord, 'v' | 'createdAt' | 'expiresAt'>;

export type SessionProblem = 'session-unknown' | 'session-expired' | 'session-idle-timeout' | 'session-revoked';

export type ResolvedSession = { readonly handle: string; readonly record: SessionRecord } | { readonly problem: SessionProblem; readonly handle: string | null };

export interface SessionManager {
  /** `__Host-ztgate-session` over https; `ztgate-session` over plain http, where browsers refuse `__Host-` cookies. */
  readonly cookieName: string;
  readonly secure: boolean;
  create(input: NewSession): Promise<{ id: string; handle: string; record: SessionRecord }>;
  /** Checks absolute lifetime and idle timeout, and marks the session as used. */
  resolve(id: string): Promise<ResolvedSession>;
  /** Writes a record back after a token refresh; false when the session was ended meanwhile. */
  replace(handle: string, record: SessionRecord): Promise<boolean>;
  end(handle: string): Promise<void>;
  /** Every live session on every instance, newest first. */
  list(): Promise<SessionSummary[]>;
  endAllOf(nationalId: string): Promise<number>;
  endByIdpSession(issuer: string, sid: string): Promise<number>;
  endByIdpSubject(issuer: string, sub: string): Promise<number>;
  /** The refresh lock (SET NX with a TTL): true for the one caller that should refresh. */
  lockRefresh(handle: string): Promise<boolean>;
  unlockRefresh(handle: string): Promise<void>;
  /** Re-reads a record (e.g. while another request refreshes it). */
  read(handle: string): Promise<SessionRecord | null>;
}

export interface SessionOptions {
  readonly absoluteLifetimeSeconds: number;
  readonly idleTimeoutSeconds: number;
  readonly refreshLockTtlMs: number;
  readonly secure: boolean;
  /** AES-256-GCM key for the tokens in each record (identity/session-crypto.ts). */
  readonly tokenKey: Buffer;
  readonly now?: () => number;
}

const ID_BYTES = 32; // 256 bits
const ID_FORMAT = /^[A-Za-z0-9_-]{43}$/;

export function sessionHandle(id: string): string {
  return sha256hex(id);
}

export const sessionKeys = {
  record: (handle: string) => `session:${handle}`,
  seen: (handle: string) => `session-seen:${handle}`,
  ended: (handle: string) => `session-ended:${handle}`,
  lock: (handle: string) => `session-refresh-lock:${handle}`,
  byOfficial: (nationalId: string) => `session-index:official:${nationalId}`,
  bySid: (issuer: string, sid: string) => `session-index:sid:${sessionDigest(`${issuer}\n${sid}`)}`,
  bySub: (issuer: string, sub: string) => `session-index:sub:${sessionDigest(`${issuer}\n${sub}`)}`,
  all: 'session-index:all',
};

export function createSessionManager(store: Store, opts: SessionOptions): SessionManager {
  const now = opts.now ?? Date.now;
  const idleMs = opts.idleTimeoutSeconds * 1000;
  const absoluteMs = opts.absoluteLifetimeSeconds * 1000;
  // Touch at most this often: bounds writes per session, and the idle timeout's precision.
  const touchEveryMs = Math.min(60_000, idleMs / 10);

  // What the store holds: the record, its tokens sealed in place of the token fields.
  const encode = (handle: string, record: SessionRecord): string => {
    const { accessToken, refreshToken, idToken, ...rest } = record;
    return JSON.stringify({ ...rest, tokens: sealTokens(opts.tokenKey, handle, { accessToken, refreshToken, idToken }) });
  };
  /** Null when the record is unreadable: altered, sealed under another key, or moved from another session. */
  const decode = (handle: string, json: string): SessionRecord | null => {
    let stored: Record<string, unknown>;
    try {
      stored = JSON.parse(json) as Record<string, unknown>;
    } catch {
      return null;
    }
    if (!stored || typeof stored !== 'object' || stored.v !== 1) return null;
    const tokens = openTokens(opts.tokenKey, handle, stored.tokens);
    if (!tokens) return null;
    const { tokens: _sealed, ...rest } = stored;
    return { ...(rest as unknown as Omit<SessionRecord, keyof typeof tokens>), ...tokens };
  };

  const endHandles = async (handles: readonly string[]): Promise<number> => {
    let ended = 0;
    for (const handle of handles) {
      // The tombstone lets a later request say "revoked" rather than "unknown"; it holds no token.
      await store.set(sessionKeys.ended(handle), '1', { ttlMs: absoluteMs });
      ended += await store.del(sessionKeys.record(handle));
      await store.del(sessionKeys.seen(handle));
      await store.srem(sessionKeys.all, handle);
    }
    return ended;
  };
  const endIndex = async (indexKey: string): Promise<number> => {
    const handles = await store.smembers(indexKey);
    const ended = await endHandles(handles);
    await store.del(indexKey);
    return ended;
  };

  return {
    cookieName: opts.secure ? '__Host-ztgate-session' : 'ztgate-session',
    secure: opts.secure,

    async create(input) {
      const id = randomBytes(ID_BYTES).toString('base64url');
      const handle = sessionHandle(id);
      const createdAt = now();
      const record: SessionRecord = { ...input, v: 1, createdAt, expiresAt: createdAt + absoluteMs };
      await store.set(sessionKeys.record(handle), encode(handle, record), { ttlMs: absoluteMs });
      await store.set(sessionKeys.seen(handle), String(createdAt), { ttlMs: idleMs });
      // Forget index entries of sessions that have since expired, so the sets stay small.
      const officialIndex = sessionKeys.byOfficial(input.nationalId);
      const stale: string[] = [];
      for (const other of await store.smembers(officialIndex)) if ((await store.get(sessionKeys.record(other))) === null) stale.push(other);
      if (stale.length > 0) await store.srem(officialIndex, ...stale);
      await store.sadd(officialIndex, handle);
      await store.sadd(sessionKeys.all, handle);
      if (input.sid) await store.sadd(sessionKeys.bySid(input.issuer, input.sid), handle);
      await store.sadd(sessionKeys.bySub(input.issuer, input.sub), handle);
      return { id, handle, record };
    },

    async resolve(id) {
      if (!ID_FORMAT.test(id)) return { problem: 'session-unknown', handle: null };
      const handle = sessionHandle(id);
      // Independent keys, read together: this runs on every request a browser makes.
      const [json, seenText] = await Promise.all([store.get(sessionKeys.record(handle)), store.get(sessionKeys.seen(handle))]);
      if (json === null) {
        const ended = await store.get(sessionKeys.ended(handle));
        return { problem: ended ? 'session-revoked' : 'session-unknown', handle };
      }
      const record = decode(handle, json);
      // Like an unknown session: nothing in it can be trusted, so nothing is shown either.
      if (!record) return { problem: 'session-unknown', handle };
      const t = now();
      if (t >= record.expiresAt) {
        await endHandles([handle]);
        return { problem: 'session-expired', handle };
      }
      const seen = Number(seenText);
      if (!seen || t - seen >= idleMs) {
        await endHandles([handle]);
        return { problem: 'session-idle-timeout', handle };
      }
      if (t - seen >= touchEveryMs) await store.set(sessionKeys.seen(handle), String(t), { ttlMs: Math.min(idleMs, record.expiresAt - t) });
      return { handle, record };
    },

    async replace(handle, record) {
      if ((await store.get(sessionKeys.ended(handle))) !== null) return false;
      const ttlMs = record.expiresAt - now();
      if (ttlMs <= 0) return false;
      await store.set(sessionKeys.record(handle), encode(handle, record), { ttlMs });
      // Ended while we wrote: undo, so a refresh never brings a revoked session back.
      if ((await store.get(sessionKeys.ended(handle))) !== null) {
        await store.del(sessionKeys.record(handle));
        return false;
      }
      return true;
    },

    end: async (handle) => void (await endHandles([handle])),
    async list() {
      const summaries: SessionSummary[] = [];
      const gone: string[] = [];
      const t = now();
      for (const handle of await store.smembers(sessionKeys.all)) {
        const [json, seenText] = await Promise.all([store.get(sessionKeys.record(handle)), store.get(sessionKeys.seen(handle))]);
        const record = json === null ? null : decode(handle, json);
        // Expired (the store's TTL) or idle past the timeout: not a session anyone can use.
        if (!record || record.expiresAt <= t || seenText === null) {
          if (json === null) gone.push(handle);
          continue;
        }
        summaries.push({ handle, nationalId: record.nationalId, acr: record.acr, createdAt: record.createdAt, expiresAt: record.expiresAt, lastSeenAt: Number(seenText) || null, client: record.client ?? null });
      }
      if (gone.length > 0) await store.srem(sessionKeys.all, ...gone);
      return summaries.sort((a, b) => b.createdAt - a.createdAt);
    },
    endAllOf: (nationalId) => endIndex(sessionKeys.byOfficial(nationalId)),
    endByIdpSession: (issuer, sid) => endIndex(sessionKeys.bySid(issuer, sid)),
    endByIdpSubject: (issuer, sub) => endIndex(sessionKeys.bySub(issuer, sub)),
    lockRefresh: (handle) => store.set(sessionKeys.lock(handle), String(now()), { ifAbsent: true, ttlMs: opts.refreshLockTtlMs }),
    unlockRefresh: async (handle) => void (await store.del(sessionKeys.lock(handle))),
    async read(handle) {
      const json = await store.get(sessionKeys.record(handle));
      return json === null ? null : decode(handle, json);
    },
  };
}
