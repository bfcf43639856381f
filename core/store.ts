import { CodedError } from './errors.js';

/**
 * Shared state (sessions, locks, quotas, replay caches, registries) behind one small port.
 * In memory for the single-process demo; Redis when several gateway instances must agree.
 * Every operation can fail (Redis down): callers treat a failure as "cannot verify" and deny.
 */
export interface Store {
  readonly kind: 'memory' | 'redis';
  get(key: string): Promise<string | null>;
  /** Several keys in one atomic read (MGET): with the state epoch among them, a read that straddles a loss cannot look complete. */
  mget(keys: readonly string[]): Promise<(string | null)[]>;
  /** Returns false when `ifAbsent` is set and the key exists (SET NX). */
  set(key: string, value: string, opts?: { ttlMs?: number; ifAbsent?: boolean }): Promise<boolean>;
  del(...keys: string[]): Promise<number>;
  /** Adds `by` and returns the new value; `ttlMs` applies when the increment created the key. */
  incr(key: string, by?: number, ttlMs?: number): Promise<number>;
  sadd(key: string, ...members: string[]): Promise<void>;
  srem(key: string, ...members: string[]): Promise<void>;
  smembers(key: string): Promise<string[]>;
  publish(channel: string, message: string): Promise<void>;
  /** Resolves once the subscription is active; the returned function unsubscribes. */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export class StoreError extends CodedError {
  readonly code: 'ERR_STORE_UNAVAILABLE' | 'ERR_STATE_LOST' = 'ERR_STORE_UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}

/**
 * The marker of the shared state in force: written once the state is complete (at first start,
 * or after a rebuild from the durable records), never expiring. Redis that lost its data has no
 * marker, so an absent lock or policy pointer is never read as "nothing locked" or "use the file".
 */
export const STATE_EPOCH_KEY = 'state:epoch';

/** The shared state was lost (Redis flushed, restarted empty, failed over to an empty replica) and is not rebuilt yet. */
export class StateLostError extends StoreError {
  override readonly code = 'ERR_STATE_LOST' as const;
  constructor(message = 'the shared state was lost and is not rebuilt yet') {
    super(message);
    this.name = 'StateLostError';
  }
}
