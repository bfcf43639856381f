import { Redis } from 'ioredis';
import { Type as T, type Static } from 'typebox';
import type { Transport } from '../sinks.js';
import { defineSinkKind, sinkName } from './kind.js';

export const RedisStreamSinkSchema = T.Object(
  {
    type: T.Literal('redis-stream'),
    name: sinkName,
    /** Defaults to state.redisUrl. */
    redisUrl: T.Optional(T.String({ minLength: 1, maxLength: 2048 })),
    stream: T.String({ pattern: '^[A-Za-z0-9:_.-]{1,200}$', default: 'ztgate:events' }),
    group: T.String({ pattern: '^[A-Za-z0-9:_.-]{1,100}$', default: 'soc' }),
    maxLen: T.Integer({ minimum: 1000, maximum: 1_000_000_000, default: 1_000_000 }),
    commandTimeoutMs: T.Integer({ minimum: 50, maximum: 60_000, default: 2_000 }),
    reconnectMaxMs: T.Integer({ minimum: 100, maximum: 300_000, default: 30_000 }),
  },
  { additionalProperties: false },
);
export type RedisStreamSinkConfig = Static<typeof RedisStreamSinkSchema>;

/** Redis Streams (XADD, consumer group) for SOC tools; the shared store's Redis unless redisUrl says otherwise. */
export const redisStreamSink = defineSinkKind({
  type: 'redis-stream',
  schema: RedisStreamSinkSchema,
  delivery: 'spooled',
  filePaths: [],
  check(sink, at, env) {
    const url = sink.redisUrl ?? env.stateRedisUrl;
    if (!url) return [`${at}.redisUrl: required unless state.redisUrl is set`];
    if (!/^rediss?:\/\//.test(url)) return [`${at}.redisUrl: must be a redis:// or rediss:// URL`];
    return [];
  },
  // check() made sure one of the two is there.
  create: (sink, ctx) => ({ name: sink.name, reconnectMaxMs: sink.reconnectMaxMs, transport: redisStreamTransport(sink, (sink.redisUrl ?? ctx.stateRedisUrl)!) }),
});

/**
 * Redis Streams for SOC tools: XADD to one stream, trimmed with MAXLEN ~ (approximate, O(1)),
 * each entry `{id: <event.id>, event: <JSON>}`. The gateway creates the consumer group when it
 * is absent; SOC tools read with XREADGROUP and XACK (README "For the SOC"). XADD answers only
 * once Redis has the entry: that answer moves the spool cursor.
 */
export function redisStreamTransport(cfg: RedisStreamSinkConfig, url: string): Transport {
  let client: Redis | null = null;
  let broken = false;
  return {
    deliveryIsAck: true,
    async connect() {
      broken = false;
      const c = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: cfg.commandTimeoutMs, connectTimeout: 5000, retryStrategy: () => null });
      c.on('error', () => undefined);
      // Only the client in use can break the transport: a replaced client's late close event
      // (it arrives after the next connect) once marked the new connection broken, for ever.
      c.on('close', () => {
        if (client === c) broken = true;
      });
      try {
        await c.connect();
        await c.xgroup('CREATE', cfg.stream, cfg.group, '0', 'MKSTREAM').catch((err: Error) => {
          if (!String(err.message).includes('BUSYGROUP')) throw err;
        });
      } catch (err) {
        c.disconnect();
        throw err;
      }
      client = c;
    },
    alive: () => client !== null && !broken,
    broken: () => broken || client === null,
    async send(lines) {
      const c = client;
      if (!c || broken) throw new Error('not connected');
      const pipeline = c.pipeline();
      for (const line of lines) {
        const id = String((JSON.parse(line) as { event?: { id?: string } }).event?.id ?? '');
        pipeline.xadd(cfg.stream, 'MAXLEN', '~', cfg.maxLen, '*', 'id', id, 'event', line);
      }
      const results = (await pipeline.exec()) ?? [];
      const failed = results.find(([err]) => err);
      if (failed || results.length !== lines.length) throw failed?.[0] ?? new Error('XADD did not answer');
    },
    async close() {
      const c = client;
      client = null;
      if (c) await c.quit().catch(() => c.disconnect());
      return true;
    },
  };
}
