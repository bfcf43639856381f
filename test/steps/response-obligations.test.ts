import { describe, expect, it } from 'vitest';
import { applyObligations, dailyQuotaKey } from '../../gateway/steps/obligations.js';
import { STATE_EPOCH_KEY } from '../../core/store.js';
import type { Decision } from '../../core/principal.js';
import { createMemoryStore } from '../../gateway/store-backends.js';
import { refusalOf } from '../helpers/in-process.js';

/** Step 10 alone (applyObligations in gateway/steps/obligations.ts): a response the policy put obligations on, checked and masked, or withheld. */

const OFFICIAL = '056080000001';
const allow = (obligations: Decision['obligations']): Decision => ({ effect: 'allow', reasons: ['policy-allowed'], rule: 'p, …', policyVersion: 'v1', obligations });
const json = (body: unknown, statusCode = 200) => ({ statusCode, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(body)) });

async function run(decision: Decision, res: ReturnType<typeof json>, store = createMemoryStore()) {
  let records: number | null = null;
  const out = await applyObligations(decision, res, { nationalId: OFFICIAL, store, noteRecords: (n) => (records = n) });
  return { body: JSON.parse(out.toString('utf8')) as unknown, records };
}

describe('response obligations', () => {
  it('masks the named fields wherever they are, and counts the records', async () => {
    const { body, records } = await run(allow([{ type: 'mask-fields', fields: ['soDinhDanh', 'dienThoai'] }]), json({ items: [{ hoTen: 'Nguyễn Văn A', soDinhDanh: '056080000001', dienThoai: '0901234567' }] }));
    expect(body).toEqual({ items: [{ hoTen: 'Nguyễn Văn A', soDinhDanh: '056*******01', dienThoai: '090*****67' }] });
    expect(records).toBe(1);
  });

  it('withholds what it cannot check (502 obligation-failed): a body that is not JSON, a record outside the commune, records beside the container', async () => {
    const scope = allow([{ type: 'commune-scope', recordField: 'xa', commune: 'phuong-nha-trang' }]);
    const notJson = { statusCode: 200, headers: { 'content-type': 'text/html' }, body: Buffer.from('<p>hi</p>') };
    for (const [decision, res] of [
      [scope, notJson],
      [scope, json({ items: [{ xa: 'phuong-khac' }] })],
      [scope, json({ items: [], other: [{ xa: 'phuong-khac' }] })],
    ] as const) {
      const err = await refusalOf(() => run(decision, res));
      expect([err.statusCode, err.reason]).toEqual([502, 'obligation-failed']);
    }
  });

  it('refuses a response over the per-response cap (429 records-per-response-exceeded)', async () => {
    const err = await refusalOf(() => run(allow([{ type: 'max-records-per-response', max: 1 }]), json({ items: [{}, {}] })));
    expect([err.statusCode, err.reason]).toEqual([429, 'records-per-response-exceeded']);
  });

  it('counts delivered records against the daily quota, and a response that would pass it is refused and not counted', async () => {
    const store = createMemoryStore();
    await store.set(STATE_EPOCH_KEY, 'test');
    const quota = allow([{ type: 'max-records-per-day', max: 3 }]);
    await run(quota, json({ items: [{}, {}] }), store);
    const key = dailyQuotaKey(OFFICIAL, Date.now());
    expect(await store.get(key)).toBe('2');
    const err = await refusalOf(() => run(quota, json({ items: [{}, {}] }), store));
    expect([err.statusCode, err.reason]).toEqual([429, 'quota-exceeded']);
    expect(await store.get(key)).toBe('2');
  });
});
