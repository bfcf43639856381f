import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { findRedis, redisUrl } from './helpers/redis.js';

/**
 * What `npm test` needs on a fresh machine, and what it says when a service is missing: the
 * service, the address it tried, and how to start it — not a container library's internals.
 */
describe('test services', () => {
  it('regression: no Redis at the address and no container engine — the error names Redis, the address and how to start it', async () => {
    // A port that was free a moment ago and is closed now: nothing answers there.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise((resolve) => server.close(resolve));
    const url = `redis://127.0.0.1:${port}`;
    const err = await findRedis(url, { containers: false }).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(new RegExp(`^Redis is not reachable at ${url.replaceAll('.', '\\.')} \\(ECONNREFUSED\\)`));
    expect(err?.message).toContain('redis-server --daemonize yes');
    expect(err?.message).toContain('REDIS_URL');
    expect(err?.message).not.toMatch(/container runtime strategy/);
  });

  it('the Redis the suite uses answers', async () => {
    await expect(findRedis(await redisUrl(), { containers: false })).resolves.toBe(await redisUrl());
  });
});
