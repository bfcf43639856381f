import { describe, expect, it } from 'vitest';
import { createLocks } from '../../gateway/lock-registry.js';
import { checkLocks, requireStateIntact } from '../../gateway/steps/locks.js';
import { STATE_EPOCH_KEY, StoreError, type Store } from '../../core/store.js';
import { createMemoryStore } from '../../gateway/store-backends.js';
import { refusalOf } from '../helpers/in-process.js';

/** Step 5 alone (gateway/steps/locks.ts) on the memory store: a lock on any subject refuses, a store that cannot answer refuses too. */

// An RFC 7638 thumbprint, as device ids are.
const DEVICE = 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs';
const subject = { nationalId: '056080000001', deviceId: DEVICE, sessionId: null, address: '::ffff:10.0.0.7' };

/** The memory store with the shared state's marker (gateway/state-keeper.ts) in place. */
async function intactStore(): Promise<Store> {
  const store = createMemoryStore();
  await store.set(STATE_EPOCH_KEY, 'test');
  return store;
}

/** A store whose reads fail the way a Redis outage does. */
function unreachableStore(): Store {
  const err = new StoreError('connection refused');
  return { ...createMemoryStore(), get: () => Promise.reject(err), mget: () => Promise.reject(err) };
}

describe('locks', () => {
  it('allows when nothing is locked', async () => {
    await expect(checkLocks(createLocks(await intactStore()), subject)).resolves.toBeUndefined();
  });

  it('refuses a locked official, device or address (403, the kind in the reason); an IPv4-mapped address is the same address', async () => {
    for (const [kind, value, reason] of [
      ['user', subject.nationalId, 'locked-user'],
      ['device', DEVICE, 'locked-device'],
      ['address', '10.0.0.7', 'locked-address'],
    ] as const) {
      const locks = createLocks(await intactStore());
      await locks.set({ kind, value, reason: 'SOC yêu cầu', lockedBy: 'soc', seconds: 60 });
      const err = await refusalOf(() => checkLocks(locks, subject));
      expect([kind, err.statusCode, err.code, err.reason]).toEqual([kind, 403, 'ZTG_ERR_LOCKED', reason]);
    }
  });

  it('never reads an unanswerable store as "not locked": 503 lock-state-unavailable, or state-lost after a data loss', async () => {
    const down = await refusalOf(() => checkLocks(createLocks(unreachableStore()), subject));
    expect([down.statusCode, down.reason]).toEqual([503, 'lock-state-unavailable']);
    // A store without the state marker is one that lost its data.
    const lost = await refusalOf(() => checkLocks(createLocks(createMemoryStore()), subject));
    expect([lost.statusCode, lost.reason]).toEqual([503, 'state-lost']);
  });

  it('refuses everything at once while the shared state is known to be lost', async () => {
    expect(() => requireStateIntact({ healthy: () => true })).not.toThrow();
    expect((await refusalOf(() => requireStateIntact({ healthy: () => false }))).reason).toBe('state-lost');
  });
});
