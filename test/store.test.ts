import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryStore, createRedisStore } from '../gateway/store-backends.js';
import { StoreError, type Store } from '../core/store.js';
import { redisUrl } from './helpers/redis.js';

const stores: [string, () => Promise<Store>][] = [
  ['memory', async () => createMemoryStore()],
  ['redis', async () => createRedisStore({ url: await redisUrl(), keyPrefix: `ztgate-test:${randomUUID()}:` })],
];

describe.each(stores)('%s store', (_kind, make) => {
  let store: Store;
  beforeAll(async () => {
    store = await make();
  });
  afterAll(async () => {
    await store.del('k', 'nx', 'ttl', 'count', 'set', 'count-ttl');
    await store.close();
  });

  it('sets, gets and deletes', async () => {
    expect(await store.get('k')).toBeNull();
    expect(await store.set('k', 'v')).toBe(true);
    expect(await store.get('k')).toBe('v');
    expect(await store.del('k')).toBe(1);
    expect(await store.get('k')).toBeNull();
  });

  it('set ifAbsent succeeds once', async () => {
    expect(await store.set('nx', 'a', { ifAbsent: true, ttlMs: 5000 })).toBe(true);
    expect(await store.set('nx', 'b', { ifAbsent: true, ttlMs: 5000 })).toBe(false);
    expect(await store.get('nx')).toBe('a');
  });

  it('expires keys after their ttl', async () => {
    await store.set('ttl', 'x', { ttlMs: 50 });
    expect(await store.get('ttl')).toBe('x');
    await new Promise((r) => setTimeout(r, 120));
    expect(await store.get('ttl')).toBeNull();
  });

  it('increments, and the ttl applies from the first increment only', async () => {
    expect(await store.incr('count')).toBe(1);
    expect(await store.incr('count', 5)).toBe(6);
    expect(await store.incr('count-ttl', 1, 80)).toBe(1);
    await new Promise((r) => setTimeout(r, 40));
    expect(await store.incr('count-ttl', 1, 80)).toBe(2);
    await new Promise((r) => setTimeout(r, 80));
    expect(await store.incr('count-ttl', 1, 80)).toBe(1);
  });

  it('keeps sets', async () => {
    await store.sadd('set', 'a', 'b', 'c');
    await store.srem('set', 'b');
    expect((await store.smembers('set')).sort()).toEqual(['a', 'c']);
  });

  it('delivers published messages to subscribers, and not after unsubscribing', async () => {
    const got: string[] = [];
    const unsubscribe = await store.subscribe('chan', (m) => got.push(m));
    await store.publish('chan', 'one');
    await new Promise((r) => setTimeout(r, 50));
    await unsubscribe();
    await store.publish('chan', 'two');
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toEqual(['one']);
  });
});

describe('redis store', () => {
  it('is namespaced: two prefixes do not see each other', async () => {
    const url = await redisUrl();
    const a = await createRedisStore({ url, keyPrefix: `ztgate-test:${randomUUID()}:` });
    const b = await createRedisStore({ url, keyPrefix: `ztgate-test:${randomUUID()}:` });
    try {
      await a.set('shared-name', 'a', { ttlMs: 5000 });
      expect(await b.get('shared-name')).toBeNull();
    } finally {
      await a.del('shared-name');
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('refuses to start when Redis is unreachable, naming the address without its password', async () => {
    const err = await createRedisStore({ url: 'redis://:s3cret@127.0.0.1:1', keyPrefix: 'x:' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as Error).message).toContain('127.0.0.1:1');
    expect((err as Error).message).not.toContain('s3cret');
  });
});
