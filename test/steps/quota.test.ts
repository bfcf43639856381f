import { describe, expect, it } from 'vitest';
import { checkDailyQuota, dailyQuotaKey } from '../../gateway/steps/obligations.js';
import { StoreError, type Store } from '../../core/store.js';
import type { Decision } from '../../core/principal.js';
import { createMemoryStore } from '../../gateway/store-backends.js';
import { refusalOf } from '../helpers/in-process.js';

/** Step 7 alone (checkDailyQuota in gateway/steps/obligations.ts) on the memory store: records already received today against the decision's quota. */

const OFFICIAL = '056080000001';
const allow = (obligations: Decision['obligations']): Decision => ({ effect: 'allow', reasons: ['policy-allowed'], rule: 'p, …', policyVersion: 'v1', obligations });
const quotaOf = (max: number) => allow([{ type: 'max-records-per-day', max }]);

describe('daily record quota', () => {
  it('does nothing for a decision without a quota, even without a store', async () => {
    await expect(checkDailyQuota(undefined, allow([]), OFFICIAL)).resolves.toBeUndefined();
  });

  it("allows below the quota and refuses once today's records reach it (429 quota-exceeded)", async () => {
    const store = createMemoryStore();
    await store.incr(dailyQuotaKey(OFFICIAL, Date.now()), 2);
    await expect(checkDailyQuota(store, quotaOf(3), OFFICIAL)).resolves.toBeUndefined();
    await store.incr(dailyQuotaKey(OFFICIAL, Date.now()), 1);
    const err = await refusalOf(() => checkDailyQuota(store, quotaOf(3), OFFICIAL));
    expect([err.statusCode, err.code, err.reason]).toEqual([429, 'ZTG_ERR_QUOTA_EXCEEDED', 'quota-exceeded']);
  });

  it('refuses when the count cannot be read, or there is no store to count in (503 quota-unavailable): never unlimited', async () => {
    const failing: Store = { ...createMemoryStore(), get: () => Promise.reject(new StoreError('connection refused')) };
    for (const store of [failing, undefined]) {
      const err = await refusalOf(() => checkDailyQuota(store, quotaOf(3), OFFICIAL));
      expect([err.statusCode, err.reason]).toEqual([503, 'quota-unavailable']);
    }
  });
});
