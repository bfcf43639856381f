import { Redis } from 'ioredis';
import type { RedisStreamSinkConfig } from './config.js';
import type { Transport } from './sinks.js';

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
