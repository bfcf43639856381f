import { Redis } from 'ioredis';

let resolved: Promise<string> | null = null;

/**
 * The Redis the tests use: REDIS_URL, else a local one on the default port, else a throwaway
 * container where a Docker engine answers. Tests namespace their keys and delete only those.
 */
export function redisUrl(): Promise<string> {
  resolved ??= (async () => {
    const candidate = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const probe = new Redis(candidate, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 1000, enableOfflineQueue: false });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.ping();
      return candidate;
    } catch {
      const { GenericContainer } = await import('testcontainers');
      const container = await new GenericContainer('redis:7.2-alpine').withExposedPorts(6379).start();
      process.once('exit', () => void container.stop());
      return `redis://${container.getHost()}:${container.getMappedPort(6379)}`;
    } finally {
      probe.disconnect();
    }
  })();
  return resolved;
}

/** Deletes the keys under one test's random prefix, and nothing else (SCAN, never FLUSHDB). */
export async function deleteKeysWithPrefix(prefix: string): Promise<void> {
  if (!prefix) throw new Error('refusing to delete keys without a prefix');
  const redis = new Redis(await redisUrl());
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
