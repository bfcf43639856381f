import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';

let resolved: Promise<string> | null = null;

/** What a developer reads when the tests find no Redis: the service, where, and how to start one. */
export function redisMissingMessage(url: string, cause: string): string {
  return [
    `Redis is not reachable at ${url} (${cause}), and the tests need it.`,
    'Start it with one of:',
    '  sudo apt-get install -y redis-server && redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ""',
    '  docker compose up -d redis',
    'or point REDIS_URL at one (redis://host:port). `bash .ci/run` installs and starts it when missing.',
  ].join('\n');
}

/** A container engine answers here: a Docker socket, or DOCKER_HOST. Only then is a container tried. */
function containerEngine(): boolean {
  return Boolean(process.env.DOCKER_HOST) || existsSync('/var/run/docker.sock') || existsSync(`${process.env.XDG_RUNTIME_DIR ?? '/nonexistent'}/docker.sock`);
}

/** Resolves to a Redis URL that answers PING, or rejects saying which service is missing and how to start it. */
export async function findRedis(candidate: string, opts: { containers: boolean } = { containers: containerEngine() }): Promise<string> {
  const probe = new Redis(candidate, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 1000, enableOfflineQueue: false, retryStrategy: () => null });
  let lastError: NodeJS.ErrnoException | null = null;
  probe.on('error', (e: NodeJS.ErrnoException) => (lastError = e));
  try {
    await probe.connect();
    await probe.ping();
    return candidate;
  } catch (err) {
    const failure = (lastError ?? err) as NodeJS.ErrnoException;
    const cause = failure.code ?? failure.message;
    if (!opts.containers) throw new Error(redisMissingMessage(candidate, cause), { cause: err });
    try {
      const { GenericContainer } = await import('testcontainers');
      const container = await new GenericContainer('redis:7.2-alpine').withExposedPorts(6379).start();
      process.once('exit', () => void container.stop());
      return `redis://${container.getHost()}:${container.getMappedPort(6379)}`;
    } catch (containerErr) {
      throw new Error(`${redisMissingMessage(candidate, cause)}\n(a Redis container could not be started either: ${(containerErr as Error).message})`, { cause: containerErr });
    }
  } finally {
    probe.disconnect();
  }
}

/**
 * The Redis the tests use: REDIS_URL, else a local one on the default port, else a throwaway
 * container where a container engine answers. Tests namespace their keys and delete only those.
 */
export function redisUrl(): Promise<string> {
  resolved ??= findRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  return resolved;
}

/** Deletes the keys under one test's random prefix, and nothing else (SCAN, never FLUSHDB). */
export async function deleteKeysWithPrefix(prefix: string): Promise<void> {
  const redis = new Redis(await redisUrl());
  try {
    await deleteKeysByPrefix(redis, prefix);
  } finally {
    redis.disconnect();
  }
}

/** The same, on a connection the caller already holds. */
export async function deleteKeysByPrefix(redis: Redis, prefix: string): Promise<void> {
  if (!prefix) throw new Error('refusing to delete keys without a prefix');
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}
