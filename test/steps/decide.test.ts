import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { decide, readPurpose, type DecideInput } from '../../gateway/steps/decide.js';
import type { Decision, Principal } from '../../core/principal.js';
import { PolicyEngine } from '../../policies/engine.js';
import { ROOT } from '../helpers/harness.js';
import { refusalOf } from '../helpers/in-process.js';

/** Step 6 alone (gateway/steps/decide.ts) with the end-to-end tests' policy: deny by default, deny overrides allow. */

let engine: PolicyEngine;
beforeAll(async () => {
  engine = await PolicyEngine.load(join(ROOT, 'policies/model.conf'), join(ROOT, 'test/fixtures/gateway-policy.csv'), new Set(['ho-tich', 'echo']));
});

const reader: Principal = { nationalId: '056080000001', agency: 'so-tu-phap', roles: ['ho-tich-reader'], clearance: 'none', assuranceLevel: 0, sessionId: null, acr: null, issuer: 'https://idp.test.invalid', authTime: null };
const input = (method: string, path: string, principal: Principal = reader): DecideInput => ({
  route: { id: 'echo', securityLevel: 3, classification: 'internal' },
  path,
  method,
  principal,
  deviceTier: null,
  purpose: null,
  sourceIp: '127.0.0.1',
});

describe('decide', () => {
  it('allows what a rule allows, naming the rule and the policy version, and shows the decision before returning it', () => {
    const seen: Decision[] = [];
    const decision = decide(engine, input('GET', '/records'), (d) => seen.push(d));
    expect(decision).toMatchObject({ effect: 'allow', reasons: ['policy-allowed'], rule: 'p, ho-tich-reader, *, echo, /*, GET|POST, allow', policyVersion: engine.version });
    expect(seen).toEqual([decision]);
  });

  it('refuses with 403 policy-denied when a deny rule matches, even where an allow does too (deny overrides allow)', async () => {
    const seen: Decision[] = [];
    const err = await refusalOf(() => decide(engine, input('DELETE', '/records/1'), (d) => seen.push(d)));
    expect([err.statusCode, err.code, err.reason]).toEqual([403, 'ZTG_ERR_FORBIDDEN', 'policy-denied']);
    // The denial is recorded before it is thrown: the event names the rule that denied.
    expect(seen[0]).toMatchObject({ effect: 'deny', rule: 'p, *, *, *, /*, DELETE, deny' });
  });

  it('refuses by default what no rule allows: 403 policy-no-match', async () => {
    const stranger = { ...reader, roles: ['some-other-role'] };
    const err = await refusalOf(() => decide(engine, input('GET', '/records', stranger), () => undefined));
    expect([err.statusCode, err.reason]).toEqual([403, 'policy-no-match']);
  });

  it('reads a purpose of access only whole: both headers, or refused with purpose-invalid', async () => {
    expect(readPurpose({})).toBeNull();
    expect(readPurpose({ 'x-purpose': 'giai-quyet-ho-so', 'x-case-ref': 'HS-2026-001' })).toEqual({ code: 'giai-quyet-ho-so', caseRef: 'HS-2026-001' });
    const half = await refusalOf(() => readPurpose({ 'x-purpose': 'giai-quyet-ho-so' }));
    expect([half.statusCode, half.reason]).toEqual([400, 'purpose-invalid']);
  });
});
