import { isIP } from 'node:net';
import { STATE_EPOCH_KEY, StateLostError, StoreError, type Store } from '../core/store.js';
import { isNationalId } from '../core/national-id.js';
import { CodedError } from '../core/errors.js';

/**
 * Locks (khóa) ordered by the SOC, an admin or a detection rule: an official, a device, a
 * browser session or a source address refused on every instance until the lock expires or is
 * lifted. Each lock is one key in the shared Store (`lock:<kind>:<value>`, with the lock's TTL),
 * read on every request — a lock set on one instance holds on the next request anywhere, with no
 * cache to go stale. An index set lists them for the admin screens.
 */

export const LOCK_KINDS = ['user', 'device', 'session', 'address'] as const;
export type LockKind = (typeof LOCK_KINDS)[number];

export interface Lock {
  readonly kind: LockKind;
  readonly value: string;
  readonly reason: string;
  /** National ID of the admin or analyst, or `rule:<id>` for a detection rule. */
  readonly lockedBy: string;
  readonly lockedAt: string;
  readonly expiresAt: string;
}

/** A lock request the registry refuses; `field` names what is wrong (the admin API answers 400 with it). */
export class LockInputError extends CodedError {
  readonly code = 'ERR_LOCK_INPUT_INVALID';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'LockInputError';
  }
}

const INDEX = 'locks:index';
const key = (kind: LockKind, value: string) => `lock:${kind}:${value}`;
/** Locks are governance records: kept durably (gateway/state-keeper.ts). */
export const isLockKey = (k: string): boolean => k.startsWith('lock:') || k === INDEX;
export const MAX_LOCK_SECONDS = 365 * 86_400;

/** What each kind of lock holds: a national ID, a JWK thumbprint, a session digest, an IP address. */
export function checkLockValue(kind: string, value: unknown): asserts kind is LockKind {
  if (!(LOCK_KINDS as readonly string[]).includes(kind)) throw new LockInputError('kind', `kind phải là một trong / must be one of ${LOCK_KINDS.join(', ')}`);
  if (typeof value !== 'string') throw new LockInputError('value', 'value phải là chuỗi / must be a string');
  const ok = kind === 'user' ? isNationalId(value) : kind === 'device' ? /^[A-Za-z0-9_-]{16,128}$/.test(value) : kind === 'session' ? /^[0-9a-f]{32}$/.test(value) : isIP(value) !== 0;
  if (!ok) {
    const what = { user: 'a 12-digit national ID', device: 'a device id (JWK thumbprint)', session: 'a session digest (32 hex, ztgate.session.id_digest)', address: 'an IPv4 or IPv6 address' }[kind as LockKind];
    throw new LockInputError('value', `value không hợp lệ / value must be ${what}`);
  }
}

export interface Locks {
  set(input: { kind: LockKind; value: string; reason: string; lockedBy: string; seconds: number }): Promise<Lock>;
  lift(kind: LockKind, value: string): Promise<Lock | null>;
  get(kind: LockKind, value: string): Promise<Lock | null>;
  list(): Promise<Lock[]>;
  /** The first lock among these subjects, or null. Throws StoreError when the Store cannot answer. */
  firstActive(subjects: readonly { kind: LockKind; value: string | null | undefined }[]): Promise<Lock | null>;
}

export function createLocks(store: Store, now: () => number = Date.now): Locks {
  const parse = (raw: string | null): Lock | null => {
    if (!raw) return null;
    try {
      return JSON.parse(raw) as Lock;
    } catch {
      return null;
    }
  };
  const locks: Locks = {
    async set({ kind, value, reason, lockedBy, seconds }) {
      checkLockValue(kind, value);
      if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_LOCK_SECONDS) throw new LockInputError('expiresInSeconds', `expiresInSeconds phải từ 1 đến ${MAX_LOCK_SECONDS} / must be 1–${MAX_LOCK_SECONDS}`);
      if (typeof reason !== 'string' || reason.trim().length < 3 || reason.length > 500) throw new LockInputError('reason', 'reason: cần nêu lý do (3–500 ký tự) / a reason of 3–500 characters is required');
      const t = now();
      const lock: Lock = { kind, value, reason: reason.trim(), lockedBy, lockedAt: new Date(t).toISOString(), expiresAt: new Date(t + seconds * 1000).toISOString() };
      // The lock key first: a lock that is not in the index yet still holds.
      await store.set(key(kind, value), JSON.stringify(lock), { ttlMs: seconds * 1000 });
      await store.sadd(INDEX, `${kind}:${value}`);
      return lock;
    },
    async lift(kind, value) {
      const existing = parse(await store.get(key(kind, value)));
      await store.del(key(kind, value));
      await store.srem(INDEX, `${kind}:${value}`);
      return existing;
    },
    get: async (kind, value) => parse(await store.get(key(kind, value))),
    async list() {
      const members = await store.smembers(INDEX);
      const found: Lock[] = [];
      for (const m of members) {
        const i = m.indexOf(':');
        const kind = m.slice(0, i) as LockKind;
        const lock = parse(await store.get(key(kind, m.slice(i + 1))));
        if (lock) found.push(lock);
        else await store.srem(INDEX, m); // expired: tidy the index
      }
      return found.sort((a, b) => (a.lockedAt < b.lockedAt ? 1 : -1));
    },
    async firstActive(subjects) {
      const present = subjects.filter((s): s is { kind: LockKind; value: string } => typeof s.value === 'string' && s.value.length > 0);
      // One atomic read with the state marker: a Redis that lost its data reads as "state lost", never as "not locked".
      const [epoch, ...found] = await store.mget([STATE_EPOCH_KEY, ...present.map((s) => key(s.kind, s.value))]);
      if (epoch === null) throw new StateLostError();
      for (const raw of found) {
        const lock = parse(raw);
        if (lock) return lock;
        // A lock record that exists but cannot be read is a lock in an unknown state: refuse, don't ignore it.
        if (raw !== null) throw new StoreError('a lock record in the store is unreadable');
      }
      return null;
    },
  };
  return locks;
}
