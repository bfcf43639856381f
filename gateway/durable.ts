import pg from 'pg';
import { redactUrl } from './store-backends.js';
import { StoreError } from '../core/store.js';

/**
 * The durable copy of the governance records (policy versions and their approvals, locks, the
 * device registry, an imported roster) in PostgreSQL. Redis stays what every request reads; every
 * change to a governance record is written here first, so when Redis loses its data the shared
 * state is rebuilt from here (gateway/state-keeper.ts) instead of starting empty.
 *
 * Rows mirror the Store's two shapes: a string with an optional expiry, and a set. They are kept
 * per key prefix, so several deployments (or tests) can share one database.
 */
export interface DurableRecords {
  /** Upsert; with `ifAbsent`, false (and nothing written) when a live record already has the key. */
  set(key: string, value: string, opts?: { ttlMs?: number; ifAbsent?: boolean }): Promise<boolean>;
  /** Adds `by` to the larger of the stored value and `floor` (a counter Redis already had before this copy existed). */
  incr(key: string, by: number, ttlMs?: number, floor?: number): Promise<number>;
  del(keys: readonly string[]): Promise<void>;
  sadd(key: string, members: readonly string[]): Promise<void>;
  srem(key: string, members: readonly string[]): Promise<void>;
  /** Every live record, with the time each has left. */
  snapshot(): Promise<{ strings: { key: string; value: string; ttlMs: number | null }[]; sets: { key: string; members: string[] }[] }>;
  close(): Promise<void>;
}

export interface DurableOptions {
  /** postgres:// URL (node-postgres connection string). */
  readonly url: string;
  readonly keyPrefix: string;
  /** Bounds each statement and each wait for a connection. */
  readonly timeoutMs: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS ztgate_record (
  prefix text NOT NULL,
  key text NOT NULL,
  value text NOT NULL,
  expires_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (prefix, key)
);
CREATE TABLE IF NOT EXISTS ztgate_record_member (
  prefix text NOT NULL,
  key text NOT NULL,
  member text NOT NULL,
  PRIMARY KEY (prefix, key, member)
);`;

/** Any number: one advisory lock id so that two instances starting together create the tables once. */
const SCHEMA_LOCK = 5_700_057;

export async function openDurableRecords(opts: DurableOptions): Promise<DurableRecords> {
  const pool = new pg.Pool({ connectionString: opts.url, max: 4, connectionTimeoutMillis: opts.timeoutMs, query_timeout: opts.timeoutMs, statement_timeout: opts.timeoutMs });
  // An idle connection that breaks (PostgreSQL restarted) must not take the process with it.
  pool.on('error', () => undefined);
  const fail = (err: unknown): never => {
    throw new StoreError(`durable store (PostgreSQL at ${redactUrl(opts.url)}) failed: ${(err as Error).message}`, { cause: err });
  };
  const q = async (text: string, values: unknown[] = []) => {
    try {
      return await pool.query(text, values);
    } catch (err) {
      return fail(err);
    }
  };
  try {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      await c.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
      await c.query(SCHEMA);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  } catch (err) {
    await pool.end().catch(() => undefined);
    fail(err);
  }
  const p = opts.keyPrefix;
  const expiry = (ttlMs?: number) => (ttlMs ? new Date(Date.now() + ttlMs) : null);

  return {
    async set(key, value, o = {}) {
      if (o.ifAbsent) {
        // Taken only when absent or expired: the same rule as Redis SET NX on a key with a TTL.
        const r = await q(
          `INSERT INTO ztgate_record (prefix, key, value, expires_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (prefix, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at, updated_at = now()
           WHERE ztgate_record.expires_at IS NOT NULL AND ztgate_record.expires_at <= now()
           RETURNING key`,
          [p, key, value, expiry(o.ttlMs)],
        );
        return (r.rowCount ?? 0) > 0;
      }
      await q(
        `INSERT INTO ztgate_record (prefix, key, value, expires_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (prefix, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at, updated_at = now()`,
        [p, key, value, expiry(o.ttlMs)],
      );
      return true;
    },
    async incr(key, by, ttlMs, floor = 0) {
      const r = await q(
        `INSERT INTO ztgate_record (prefix, key, value, expires_at) VALUES ($1, $2, ($5::bigint + $3::bigint)::text, $4)
         ON CONFLICT (prefix, key) DO UPDATE SET value = (GREATEST(ztgate_record.value::bigint, $5::bigint) + $3::bigint)::text, updated_at = now()
         RETURNING value`,
        [p, key, by, expiry(ttlMs), floor],
      );
      return Number(r.rows[0].value);
    },
    async del(keys) {
      if (keys.length === 0) return;
      await q('DELETE FROM ztgate_record WHERE prefix = $1 AND key = ANY($2)', [p, keys]);
      await q('DELETE FROM ztgate_record_member WHERE prefix = $1 AND key = ANY($2)', [p, keys]);
    },
    async sadd(key, members) {
      if (members.length === 0) return;
      await q('INSERT INTO ztgate_record_member (prefix, key, member) SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING', [p, key, members]);
    },
    async srem(key, members) {
      if (members.length === 0) return;
      await q('DELETE FROM ztgate_record_member WHERE prefix = $1 AND key = $2 AND member = ANY($3)', [p, key, members]);
    },
    async snapshot() {
      await q('DELETE FROM ztgate_record WHERE prefix = $1 AND expires_at <= now()', [p]);
      const strings = await q(`SELECT key, value, CEIL(EXTRACT(EPOCH FROM (expires_at - now())) * 1000)::bigint AS ttl_ms FROM ztgate_record WHERE prefix = $1`, [p]);
      const sets = await q('SELECT key, array_agg(member) AS members FROM ztgate_record_member WHERE prefix = $1 GROUP BY key', [p]);
      return {
        strings: strings.rows.map((r) => ({ key: r.key as string, value: r.value as string, ttlMs: r.ttl_ms === null ? null : Math.max(1, Number(r.ttl_ms)) })),
        sets: sets.rows.map((r) => ({ key: r.key as string, members: r.members as string[] })),
      };
    },
    async close() {
      await pool.end().catch(() => undefined);
    },
  };
}
