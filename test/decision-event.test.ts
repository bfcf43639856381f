import { describe, expect, it } from 'vitest';
import { buildDecisionEvent, isAllowed, type DecisionEventInput } from '../gateway/audit/decision-event.js';
import { statementEvent, type StatementRecord } from '../gateway/database/decision.js';
import type { Decision, Principal } from '../core/principal.js';
import { assertEventMatchesSchema } from './helpers/harness.js';

/**
 * The one decision-event builder both planes use: the allow/deny and outcome rules, and the
 * fields both planes share, in the published schema. (The planes' own events are checked end to
 * end in gateway.test.ts, database-plane.test.ts and database-multi-core.test.ts.)
 */

const allow: Decision = Object.freeze({ effect: 'allow', reasons: ['policy-allowed'], rule: 'p-1', policyVersion: 'sha256:a7', obligations: [] }) as unknown as Decision;
const principal = { nationalId: '056085000301', agency: 'phuong-nha-trang', roles: ['ho-tich-reader'], assuranceLevel: 2, acr: 'urn:test:acr', issuer: 'http://idp.invalid' } as unknown as Principal;

const base: DecisionEventInput = {
  id: 'e-1',
  startedAt: process.hrtime.bigint(),
  action: 'access-decision',
  category: 'network',
  allowed: true,
  succeeded: true,
  decision: allow,
  reasons: [],
  policyVersion: 'sha256:a7',
  errorCode: null,
  route: { id: 'ho-tich', securityLevel: 3, classification: 'personal-data', ownerAgency: 'so-tu-phap' },
  principal,
  device: null,
  purpose: { code: 'thanh-tra', caseRef: 'HS-1' },
  records: 4,
  source: { ip: '127.0.0.1', port: 40000 },
};

describe('one decision-event builder for HTTP requests and SQL statements', () => {
  it('a policy allow overturned by a refusal after it (quota, obligation, statement refused, audit) is a denial; an upstream fault is an allow that failed', () => {
    for (const code of ['ZTG_ERR_QUOTA_EXCEEDED', 'ZTG_ERR_OBLIGATION_FAILED', 'ZTG_ERR_STATEMENT_REFUSED', 'ZTG_ERR_AUDIT_UNAVAILABLE', 'ZTG_ERR_MISDIRECTED']) {
      expect(isAllowed({ decision: allow, allowedWithoutPolicy: false, errorCode: code })).toBe(false);
    }
    expect(isAllowed({ decision: allow, allowedWithoutPolicy: false, errorCode: 'ZTG_ERR_UPSTREAM_UNAVAILABLE' })).toBe(true);
    expect(isAllowed({ decision: null, allowedWithoutPolicy: true, errorCode: null })).toBe(true);
    expect(isAllowed({ decision: null, allowedWithoutPolicy: true, errorCode: 'ZTG_ERR_INTERNAL' })).toBe(false);
    expect(isAllowed({ decision: null, allowedWithoutPolicy: false, errorCode: null })).toBe(false);
  });

  it('builds the shared fields once, adds what one plane alone knows, and matches the schema', () => {
    const e = buildDecisionEvent({ ...base, reasons: ['policy-allowed'] }, { ztgate: { admin: { operation: 'x' } }, fields: { http: { request: { id: 'e-1', method: 'GET' }, response: { status_code: 200 } }, url: { path: '/ho-tich' } } });
    assertEventMatchesSchema(e);
    expect(e).toMatchObject({
      event: { kind: 'event', category: ['network', 'iam'], type: ['allowed', 'access'], outcome: 'success', id: 'e-1' },
      ztgate: { decision: 'allow', reasons: ['policy-allowed'], rule: 'p-1', policy_version: 'sha256:a7', route: { id: 'ho-tich', owner_agency: 'so-tu-phap' }, purpose: { code: 'thanh-tra', case_ref: 'HS-1' }, records: 4, admin: { operation: 'x' } },
      user: { id: principal.nationalId, roles: ['ho-tich-reader'] },
      organization: { id: 'phuong-nha-trang' },
      rule: { name: 'p-1', ruleset: 'policy', version: 'sha256:a7' },
      message: 'allow',
    });
    const denied = buildDecisionEvent({ ...base, allowed: false, decision: null, principal: null, reasons: ['token-missing'], errorCode: 'ZTG_ERR_UNAUTHENTICATED' });
    expect(denied).toMatchObject({ event: { type: ['denied', 'access'], outcome: 'failure' }, ztgate: { decision: 'deny', reasons: ['token-missing'], rule: null }, message: 'deny' });
    expect(denied.user).toBeUndefined();
  });

  it('a statement the gateway ended with any error of its own is a denial, never an allow that failed', () => {
    const rec: StatementRecord = {
      id: 's-1',
      startedAt: process.hrtime.bigint(),
      service: null,
      classification: null,
      principal,
      device: null,
      purpose: null,
      source: { ip: '127.0.0.1', port: 1 },
      connectionId: 'c-1',
      statement: null,
      decision: allow,
      policyVersion: 'sha256:a7',
      allowedWithoutPolicy: false,
      reasons: [],
      errorCode: 'ZTG_ERR_INTERNAL',
      rows: 0,
      bytes: 0,
      upstreamError: null,
    };
    const e = statementEvent(rec);
    assertEventMatchesSchema(e);
    expect(e).toMatchObject({ event: { category: ['database', 'iam'], outcome: 'failure' }, ztgate: { decision: 'deny' }, db: { system: 'postgresql', connection_id: 'c-1', tables: [] } });
    expect(statementEvent({ ...rec, errorCode: null, upstreamError: '42P01' })).toMatchObject({ ztgate: { decision: 'allow' }, event: { outcome: 'failure' }, db: { error_code: '42P01' } });
  });
});
