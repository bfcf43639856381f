import { EventEmitter } from 'node:events';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { StoreError, type Store } from '../core/store.js';

/**
 * The two implementations of the Store port (core/store.ts): in memory for one process, Redis
 * (single, Sentinel or Cluster) when several gateway instances must agree.
 */

interface Entry {
  value: string | Set<string>;
  expiresAt: number;
}

export function createMemoryStore(now: () => number = Date.now): Store {
  const data = new Map<string, Entry>();
  const bus = new EventEmitter();
  bus.setMaxListeners(0);
  const live = (key: string): Entry | undefined => {
    const e = data.get(key);
    if (e && e.expiresAt <= now()) {
      data.delete(key);
      return undefined;
    }
    return e;
  };
  const sweep = setInterval(() => {
    for (const key of data.keys()) live(key);
  }, 60_000);
  sweep.unref();
  const setOf = (key: string): Set<string> | undefined => {
    const e = live(key);
    if (e && !(e.value instanceof Set)) throw new StoreError(`${key} is not a set`);
    return e?.value as Set<string> | undefined;
  };

  return {
    kind: 'memory',
    async get(key) {
      const e = live(key);
      return e && typeof e.value === 'string' ? e.value : null;
    },
    async mget(keys) {
      return keys.map((key) => {
        const e = live(key);
        return e && typeof e.value === 'string' ? e.value : null;
      });
    },
    async set(key, value, opts = {}) {
      if (opts.ifAbsent && live(key)) return false;
      data.set(key, { value, expiresAt: opts.ttlMs ? now() + opts.ttlMs : Infinity });
      return true;
    },
    async del(...keys) {
      return keys.filter((k) => live(k) && data.delete(k)).length;
    },
    async incr(key, by = 1, ttlMs) {
      const e = live(key);
      const next = (e ? Number(e.value) : 0) + by;
      data.set(key, { value: String(next), expiresAt: e ? e.expiresAt : ttlMs ? now() + ttlMs : Infinity });
      return next;
    },
    async sadd(key, ...members) {
      let s = setOf(key);
      if (!s) data.set(key, { value: (s = new Set()), expiresAt: Infinity });
      for (const m of members) s.add(m);
    },
    async srem(key, ...members) {
      const s = setOf(key);
      if (!s) return;
      for (const m of members) s.delete(m);
      if (s.size === 0) data.delete(key);
    },
    async smembers(key) {
      return [...(setOf(key) ?? [])];
    },
    async publish(channel, message) {
      // Asynchronous like Redis: a publisher never runs subscribers inside its own call.
      setImmediate(() => bus.emit(channel, message));
    },
    async subscribe(channel, onMessage) {
      bus.on(channel, onMessage);
      return async () => {
        bus.off(channel, onMessage);
      };
    },
    async close() {
      clearInterval(sweep);
      bus.removeAllListeners();
      data.clear();
    },
  };
}

export interface RedisStoreOptions {
  /** A single Redis (redis:// or rediss://). */
  readonly url?: string;
  /** Redis Sentinel: the master is whatever the sentinels name, followed across failovers. */
  readonly sentinel?: { readonly masterName: string; readonly sentinels: readonly { host: string; port: number }[]; readonly password?: string };
  /** Redis Cluster: the key prefix carries a hash tag, so every key lives in one slot (multi-key reads and scripts work). */
  readonly cluster?: { readonly nodes: readonly { host: string; port: number }[]; readonly password?: string };
  /** Namespaces every key and channel, so several deployments (or tests) can share one Redis. */
  readonly keyPrefix: string;
  readonly commandTimeoutMs?: number;
}

const INCR_WITH_TTL = `local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v == tonumber(ARGV[1]) and tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v`;

/** Where the Redis is, for messages: never its password. */
export function describeRedis(opts: Pick<RedisStoreOptions, 'url' | 'sentinel' | 'cluster'>): string {
  if (opts.sentinel) return `Redis Sentinel master "${opts.sentinel.masterName}" via ${opts.sentinel.sentinels.map((s) => `${s.host}:${s.port}`).join(', ')}`;
  if (opts.cluster) return `Redis Cluster ${opts.cluster.nodes.map((n) => `${n.host}:${n.port}`).join(', ')}`;
  return `Redis at ${redactUrl(opts.url ?? '')}`;
}

function connectRedis(opts: RedisStoreOptions, role: 'commands' | 'subscriber'): Redis | Cluster {
  const commands = role === 'commands';
  const common: RedisOptions = {
    // Fail fast instead of queueing: a request waiting on a dead Redis is denied, not parked.
    maxRetriesPerRequest: 1,
    commandTimeout: commands ? (opts.commandTimeoutMs ?? 1000) : undefined,
    connectTimeout: 5000,
    lazyConnect: true,
    ...(commands ? { keyPrefix: opts.keyPrefix } : {}),
    // Commands sent in the same turn of the event loop (a request's lock, replay, device and grant
    // reads; concurrent requests) leave in one write: one round trip, fewer syscalls.
    ...(commands ? { enableAutoPipelining: true } : {}),
  };
  // The subscriber queues its SUBSCRIBE until connected and subscribes again after a failover.
  const enableOfflineQueue = !commands;
  if (opts.cluster) {
    return new Cluster(
      opts.cluster.nodes.map((n) => ({ ...n })),
      {
        lazyConnect: true,
        enableOfflineQueue,
        ...(commands ? { keyPrefix: opts.keyPrefix, enableAutoPipelining: true } : {}),
        // Reads from masters only: a replica may lag behind a lock just set.
        scaleReads: 'master',
        retryDelayOnClusterDown: 100,
        retryDelayOnFailover: 100,
        redisOptions: { ...common, keyPrefix: undefined, password: opts.cluster.password },
      },
    );
  }
  if (opts.sentinel) {
    return new Redis({
      ...common,
      enableOfflineQueue,
      sentinels: opts.sentinel.sentinels.map((s) => ({ ...s })),
      name: opts.sentinel.masterName,
      password: opts.sentinel.password,
      role: 'master',
      // Told by the sentinels when the master moves, rather than finding out from a failed command.
      failoverDetector: true,
    });
  }
  return new Redis(opts.url!, { ...common, enableOfflineQueue });
}

export async function createRedisStore(opts: RedisStoreOptions): Promise<Store> {
  if (opts.cluster && !/^\{[^{}]+\}/.test(opts.keyPrefix)) throw new StoreError(`with Redis Cluster the key prefix must start with a hash tag, like "{ztgate}:" (is "${opts.keyPrefix}")`);
  const client = connectRedis(opts, 'commands');
  const subscriber = connectRedis(opts, 'subscriber');
  // Errors surface through the commands that fail; the event only needs a listener.
  client.on('error', () => undefined);
  subscriber.on('error', () => undefined);
  try {
    await Promise.all([client.connect(), subscriber.connect()]);
  } catch (err) {
    client.disconnect();
    subscriber.disconnect();
    throw new StoreError(`${describeRedis(opts)} is not reachable: ${(err as Error).message}`, { cause: err });
  }
  const handlers = new Map<string, Set<(message: string) => void>>();
  subscriber.on('message', (channel: string, message: string) => {
    for (const h of handlers.get(channel) ?? []) h(message);
  });
  const wrap = async <T>(op: Promise<T>): Promise<T> => {
    try {
      return await op;
    } catch (err) {
      throw new StoreError(`Redis command failed: ${(err as Error).message}`, { cause: err });
    }
  };
  const ch = (channel: string) => `${opts.keyPrefix}${channel}`;

  return {
    kind: 'redis',
    get: (key) => wrap(client.get(key)),
    mget: (keys) => (keys.length === 0 ? Promise.resolve([]) : wrap(client.mget(...keys))),
    async set(key, value, o = {}) {
      const op = o.ttlMs && o.ifAbsent ? client.set(key, value, 'PX', o.ttlMs, 'NX') : o.ttlMs ? client.set(key, value, 'PX', o.ttlMs) : o.ifAbsent ? client.set(key, value, 'NX') : client.set(key, value);
      return (await wrap(op)) === 'OK';
    },
    del: (...keys) => wrap(client.del(...keys)),
    incr: async (key, by = 1, ttlMs = 0) => Number(await wrap(client.eval(INCR_WITH_TTL, 1, key, by, ttlMs))),
    sadd: async (key, ...members) => void (await wrap(client.sadd(key, ...members))),
    srem: async (key, ...members) => void (await wrap(client.srem(key, ...members))),
    smembers: (key) => wrap(client.smembers(key)),
    publish: async (channel, message) => void (await wrap(client.publish(ch(channel), message))),
    async subscribe(channel, onMessage) {
      const name = ch(channel);
      let set = handlers.get(name);
      if (!set) {
        handlers.set(name, (set = new Set()));
        await wrap(subscriber.subscribe(name));
      }
      set.add(onMessage);
      return async () => {
        set.delete(onMessage);
        if (set.size === 0) {
          handlers.delete(name);
          await subscriber.unsubscribe(name).catch(() => undefined);
        }
      };
    },
    async close() {
      // QUIT waits for an answer; a node that died (a failover) never gives one.
      const bye = async (c: Redis | Cluster) => {
        await Promise.race([c.quit().catch(() => undefined), new Promise((r) => setTimeout(r, 1000).unref())]);
        c.disconnect();
      };
      await Promise.all([bye(client), bye(subscriber)]);
    },
  };
}

/** A connection URL fit for a log line: the password replaced. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}
