import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { DurableRecords } from './durable.js';
import { STATE_EPOCH_KEY, StateLostError, type Store } from '../core/store.js';

/**
 * Keeps the shared state honest. The state in Redis carries a marker (STATE_EPOCH_KEY) written
 * only once the state is complete; every instance watches it (a poll, and every lock or roster
 * read fetches it in the same MGET). When it is gone, Redis lost its data — a FLUSHALL, a restart
 * without persistence, a failover to an empty replica — and the instance refuses (503
 * `state-lost`), says so in the operator log and to the SOC, and rebuilds the governance records
 * from their durable copy (gateway/durable.ts): one instance at a time, then a new marker, then
 * every instance serves again. Never "nothing locked", never "use the file policy".
 *
 * Writes to governance keys go to the durable copy first, then to Redis; while the state is lost
 * they are refused, so a rebuild never races an admin's change.
 */
export type StateCondition = 'ok' | 'lost' | 'rebuilding';

export interface StateKeeper {
  /** The Store every component uses: reads from Redis, governance writes through the durable copy. */
  readonly store: Store;
  healthy(): boolean;
  condition(): StateCondition;
  /** At start: adopts the marker in Redis, or rebuilds (or, without a durable copy, initialises) the state. */
  start(): Promise<void>;
  /** Runs after the durable records are copied back, before the new marker (roster reload from its file). */
  onRebuild(hook: () => Promise<void>): void;
  /** Checks the marker now (the poll does this every checkIntervalMs). */
  check(): Promise<StateCondition>;
  close(): Promise<void>;
}

export interface StateKeeperOptions {
  readonly store: Store;
  /** Null: Redis is the only copy (or the state is in this process's memory); a loss cannot be repaired here. */
  readonly durable: DurableRecords | null;
  /** Which keys are governance records, kept durably. */
  readonly governed: (key: string) => boolean;
  readonly checkIntervalMs: number;
  readonly log: Pick<Logger, 'error' | 'warn' | 'info'>;
  /** A SOC event (an audit alert) about the state. */
  readonly alert: (rule: 'state-lost' | 'state-rebuilt', message: string, detail: Record<string, unknown>) => void;
}

const REBUILD_LOCK = 'state:rebuild-lock';
const REBUILD_LOCK_TTL_MS = 60_000;

export function createStateKeeper(opts: StateKeeperOptions): StateKeeper {
  const base = opts.store;
  const durable = opts.durable;
  const hooks: (() => Promise<void>)[] = [];
  let condition: StateCondition = 'ok';
  let epoch: string | null = null;
  let lostSince: number | null = null;
  let timer: NodeJS.Timeout | null = null;
  let checking: Promise<StateCondition> | null = null;
  let lastNoRepairLog = 0;

  const lost = (how: string): void => {
    if (condition !== 'ok') return;
    condition = 'lost';
    lostSince = Date.now();
    const detail = { epoch, how, durable: durable !== null };
    opts.log.error(detail, durable ? 'shared state lost (Redis has no state marker): refusing requests until the governance records are rebuilt from the durable store' : 'shared state lost (Redis has no state marker) and no durable store is configured: refusing requests until Redis is restored');
    opts.alert('state-lost', 'Trạng thái dùng chung bị mất (Redis mất dữ liệu): cổng từ chối yêu cầu cho đến khi khôi phục / shared state lost (Redis lost its data): the gateway refuses requests until it is restored', detail);
  };

  const rebuild = async (): Promise<boolean> => {
    const token = randomBytes(12).toString('hex');
    // One instance rebuilds; the others keep refusing until its marker appears.
    if (!(await base.set(REBUILD_LOCK, token, { ttlMs: REBUILD_LOCK_TTL_MS, ifAbsent: true }))) return false;
    condition = condition === 'ok' ? 'ok' : 'rebuilding';
    try {
      const snap = await durable!.snapshot();
      for (const s of snap.strings) await base.set(s.key, s.value, s.ttlMs ? { ttlMs: s.ttlMs } : {});
      for (const s of snap.sets) {
        await base.del(s.key);
        if (s.members.length > 0) await base.sadd(s.key, ...s.members);
      }
      rebuildingHere = true;
      try {
        for (const hook of hooks) await hook();
      } finally {
        rebuildingHere = false;
      }
      // Lost again while copying (or the lock expired): this copy may be partial; start over.
      if ((await base.get(REBUILD_LOCK)) !== token) return false;
      const next = newEpoch();
      await base.set(STATE_EPOCH_KEY, next);
      const previous = epoch;
      epoch = next;
      if (condition !== 'ok') {
        const detail = { epoch: next, previous, records: snap.strings.length + snap.sets.length, lostForMs: lostSince ? Date.now() - lostSince : 0 };
        opts.log.warn(detail, 'shared state rebuilt from the durable store; serving again');
        opts.alert('state-rebuilt', 'Trạng thái dùng chung đã được khôi phục từ bản lưu bền vững / shared state rebuilt from the durable store', detail);
      }
      condition = 'ok';
      lostSince = null;
      return true;
    } finally {
      if ((await base.get(REBUILD_LOCK).catch(() => null)) === token) await base.del(REBUILD_LOCK).catch(() => undefined);
    }
  };

  const checkOnce = async (): Promise<StateCondition> => {
    let marker: string | null;
    try {
      marker = await base.get(STATE_EPOCH_KEY);
    } catch {
      // Redis not answering is not a loss: every request already fails closed on its own reads.
      return condition;
    }
    if (marker !== null) {
      if (condition !== 'ok') {
        opts.log.warn({ epoch: marker, previous: epoch }, 'shared state marker is back (rebuilt by another instance or restored): serving again');
      } else if (epoch !== null && marker !== epoch) {
        opts.log.warn({ epoch: marker, previous: epoch }, 'shared state was rebuilt by another instance');
      }
      epoch = marker;
      condition = 'ok';
      lostSince = null;
      return condition;
    }
    lost('marker absent');
    if (!durable) {
      if (Date.now() - lastNoRepairLog > 30_000) {
        lastNoRepairLog = Date.now();
        opts.log.error({}, 'shared state lost: restore Redis from its persistence (AOF/RDB); with state.durable configured the gateway rebuilds by itself');
      }
      return condition;
    }
    try {
      await rebuild();
    } catch (err) {
      opts.log.error({ err }, 'shared state rebuild failed; retrying');
      if (condition === 'rebuilding') condition = 'lost';
    }
    return condition;
  };

  const check = (): Promise<StateCondition> => {
    checking ??= checkOnce().finally(() => (checking = null));
    return checking;
  };

  // The rebuild's own hooks (the roster reload) write while the state is not yet ok.
  let rebuildingHere = false;
  const guardWrite = (key: string): boolean => {
    if (!opts.governed(key)) return false;
    if (condition !== 'ok' && !rebuildingHere) throw new StateLostError();
    return durable !== null;
  };
  const store: Store = {
    kind: base.kind,
    get: (key) => base.get(key),
    async mget(keys) {
      const values = await base.mget(keys);
      const i = keys.indexOf(STATE_EPOCH_KEY);
      if (i !== -1 && values[i] === null) {
        lost('marker absent on a read');
        void check();
      }
      return values;
    },
    async set(key, value, o = {}) {
      if (guardWrite(key) && !(await durable!.set(key, value, o))) return false;
      return base.set(key, value, o.ifAbsent && durable && opts.governed(key) ? { ttlMs: o.ttlMs } : o);
    },
    async del(...keys) {
      if (keys.some(guardWrite)) await durable!.del(keys.filter(opts.governed));
      return base.del(...keys);
    },
    async incr(key, by = 1, ttlMs) {
      if (guardWrite(key)) {
        // The durable counter decides (policy version numbers are never reused); Redis follows it.
        // Never behind Redis: a deployment that adds the durable store keeps its version numbers.
        const n = await durable!.incr(key, by, ttlMs, Number(await base.get(key)) || 0);
        await base.set(key, String(n), ttlMs ? { ttlMs } : {});
        return n;
      }
      return base.incr(key, by, ttlMs);
    },
    async sadd(key, ...members) {
      if (guardWrite(key)) await durable!.sadd(key, members);
      return base.sadd(key, ...members);
    },
    async srem(key, ...members) {
      if (guardWrite(key)) await durable!.srem(key, members);
      return base.srem(key, ...members);
    },
    smembers: (key) => base.smembers(key),
    publish: (channel, message) => base.publish(channel, message),
    subscribe: (channel, onMessage) => base.subscribe(channel, onMessage),
    close: () => base.close(),
  };

  return {
    store,
    healthy: () => condition === 'ok',
    condition: () => condition,
    onRebuild(hook) {
      hooks.push(hook);
    },
    async start() {
      const marker = await base.get(STATE_EPOCH_KEY);
      if (marker !== null) {
        epoch = marker;
      } else if (durable) {
        // Empty Redis (first start, or a loss while every instance was down): the durable copy is the truth.
        for (let attempt = 0; !(await rebuild()); attempt++) {
          if ((await base.get(STATE_EPOCH_KEY)) !== null) break;
          if (attempt > 600) throw new StateLostError('the shared state could not be rebuilt: another instance holds the rebuild lock');
          await new Promise((r) => setTimeout(r, 100));
        }
        epoch = await base.get(STATE_EPOCH_KEY);
      } else {
        if (base.kind === 'redis') opts.log.warn({}, 'state.durable is not configured: Redis holds the only copy of locks, policy versions and devices; a Redis restart without persistence loses them');
        epoch = newEpoch();
        await base.set(STATE_EPOCH_KEY, epoch, { ifAbsent: true });
        epoch = await base.get(STATE_EPOCH_KEY);
      }
      if (base.kind === 'redis') {
        timer = setInterval(() => void check(), opts.checkIntervalMs);
        timer.unref();
      }
    },
    check,
    async close() {
      if (timer) clearInterval(timer);
      await checking?.catch(() => undefined);
      await durable?.close();
    },
  };
}

function newEpoch(): string {
  return `${new Date().toISOString()}/${randomBytes(6).toString('hex')}`;
}
