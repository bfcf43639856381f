import { describe, expect, it } from 'vitest';
import { requireAuditRecord } from '../../gateway/steps/audit-check.js';
import type { DecisionLog, ForwardEntry } from '../../gateway/audit/log.js';
import { inProcessConfig, inProcessIssuer, refusalOf } from '../helpers/in-process.js';

/** Step 8 alone (gateway/steps/audit-check.ts): an audit-required route is forwarded only once the local log holds its record. */

const config = inProcessConfig(await inProcessIssuer());
const route = config.routes.find((r) => r.id === 'echo')!;
const withChain = { ...config.audit, chain: { file: '/unused/chain.jsonl' } } as unknown as typeof config.audit;
const entry = { requestId: 'req-1', userId: '056080000001', method: 'GET', path: '/echo/records', rule: 'p, …', policyVersion: 'v1' };

/** The part of the decision log the check uses, answering as told and keeping what it was given. */
function logThat(opts: { healthy: boolean; durable: boolean }) {
  const written: ForwardEntry[] = [];
  const log = { healthy: () => opts.healthy, recordForward: async (e: ForwardEntry) => (written.push(e), opts.durable) } as unknown as DecisionLog;
  return { log, written };
}

describe('audit check', () => {
  it('forwards an audit-required route once its record is durably written', async () => {
    const { log, written } = logThat({ healthy: true, durable: true });
    await requireAuditRecord({ ...route, auditRequired: true }, withChain, log, entry);
    expect(written).toEqual([{ ...entry, routeId: 'echo' }]);
  });

  it('refuses an audit-required route when the record cannot be written, or the log is already failing (503 audit-unavailable)', async () => {
    for (const state of [
      { healthy: true, durable: false },
      { healthy: false, durable: true },
    ]) {
      const err = await refusalOf(() => requireAuditRecord({ ...route, auditRequired: true }, withChain, logThat(state).log, entry));
      expect([err.statusCode, err.code, err.reason]).toEqual([503, 'ZTG_ERR_AUDIT_UNAVAILABLE', 'audit-unavailable']);
    }
  });

  it('does not ask the log for a route that is not audit-required', async () => {
    const { log, written } = logThat({ healthy: false, durable: false });
    await requireAuditRecord({ ...route, auditRequired: false }, withChain, log, entry);
    expect(written).toEqual([]);
  });
});
