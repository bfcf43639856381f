import type { AuditEvent } from './log.js';
import type { Reason } from '../../core/reasons.js';
import type { DeviceTrust } from '../steps/device.js';
import type { Decision, Principal } from '../../core/principal.js';
import type { Purpose } from '../../policies/access.js';

/**
 * The decision event (decision-event.schema.json), built in one place for both planes: one per
 * HTTP request (gateway/events.ts) and one per SQL statement (gateway/database/decision.ts).
 * Field names follow the Elastic Common Schema where one exists (event.*, user.*, source.*,
 * host.*, rule.*); the gateway's own fields live under ztgate.*. What only one plane knows
 * (http.* and url.*, db.*, the HTTP side's sessions and grants) the caller adds as `extra`.
 * Never a token, cookie, header value, query string or SQL literal: those may carry credentials
 * or citizens' personal data.
 */

/** Data-plane requests and statements are access decisions; management requests are audited admin actions. */
export type EventAction = 'access-decision' | 'admin-request';

/**
 * Refusals after the policy allowed, with nothing forwarded (or the statement cut off): denials.
 * Other errors after an allow (an upstream fault) stay allows that failed.
 */
export const REFUSED_AFTER_POLICY: ReadonlySet<string> = new Set(['ZTG_ERR_MISDIRECTED', 'ZTG_ERR_AUDIT_UNAVAILABLE', 'ZTG_ERR_QUOTA_EXCEEDED', 'ZTG_ERR_QUOTA_UNAVAILABLE', 'ZTG_ERR_OBLIGATION_FAILED', 'ZTG_ERR_STATEMENT_REFUSED']);

/** Allowed by a policy decision that nothing after it overturned, or allowed without one and without an error. */
export function isAllowed(input: { readonly decision: Decision | null; readonly allowedWithoutPolicy: boolean; readonly errorCode: string | null }): boolean {
  if (input.decision) return input.decision.effect === 'allow' && !(input.errorCode !== null && REFUSED_AFTER_POLICY.has(input.errorCode));
  return input.allowedWithoutPolicy && input.errorCode === null;
}

export interface DecisionEventInput {
  readonly id: string;
  /** process.hrtime.bigint() on arrival; event.duration is in nanoseconds (ECS). Null: 0. */
  readonly startedAt: bigint | null;
  readonly action: EventAction;
  /** ECS event.category besides `iam`: the plane. */
  readonly category: 'network' | 'database';
  readonly allowed: boolean;
  /** The access happened and succeeded (event.outcome). */
  readonly succeeded: boolean;
  readonly decision: Decision | null;
  /** Reasons of the steps that ended the request, besides the decision's own. */
  readonly reasons: readonly Reason[];
  /** The policy version active on arrival, recorded even when no rule was evaluated. */
  readonly policyVersion: string | null;
  readonly errorCode: string | null;
  readonly route: { readonly id: string; readonly securityLevel: number; readonly classification: string; readonly ownerAgency: string } | null;
  readonly principal: Principal | null;
  readonly device: DeviceTrust | null;
  readonly purpose: Purpose | null;
  /** Records returned, when counted. */
  readonly records: number | null;
  readonly source: { readonly ip: string | null; readonly port: number | null };
  /** ECS user.* when no principal was built (an identity presented but refused). */
  readonly unverifiedUser?: Record<string, unknown>;
  readonly level?: 'info' | 'error';
}

export interface DecisionEventExtra {
  /** ztgate.* fields of one plane only. */
  readonly ztgate?: Record<string, unknown>;
  /** Top-level ECS fields of one plane only (http, url, db, trace). */
  readonly fields?: Record<string, unknown>;
}

export function buildDecisionEvent(input: DecisionEventInput, extra: DecisionEventExtra = {}): AuditEvent {
  const { principal: p, device, decision } = input;
  const effect = input.allowed ? 'allow' : 'deny';
  const reasons = [...new Set([...(decision?.reasons ?? []), ...input.reasons])];
  const route = input.route;
  return {
    '@timestamp': new Date().toISOString(),
    log: { level: input.level ?? 'info' },
    event: {
      kind: 'event',
      category: [input.category, 'iam'],
      type: [input.allowed ? 'allowed' : 'denied', 'access'],
      action: input.action,
      outcome: input.allowed && input.succeeded ? 'success' : 'failure',
      id: input.id,
      duration: input.startedAt === null ? 0 : Number(process.hrtime.bigint() - input.startedAt),
    },
    ztgate: {
      decision: effect,
      reasons,
      rule: decision?.rule ?? null,
      policy_version: decision?.policyVersion ?? input.policyVersion,
      error_code: input.errorCode,
      route: route ? { id: route.id, security_level: route.securityLevel, classification: route.classification, owner_agency: route.ownerAgency } : null,
      assurance: p ? { level: p.assuranceLevel, acr: p.acr } : undefined,
      purpose: input.purpose ? { code: input.purpose.code, case_ref: input.purpose.caseRef } : undefined,
      records: input.records ?? undefined,
      device: device ? { id: device.id, tier: device.tier, status: device.status, via: device.via ?? undefined, posture_failures: device.postureFailures ?? undefined } : undefined,
      ...extra.ztgate,
    },
    user: p ? { id: p.nationalId, roles: p.roles } : input.unverifiedUser,
    organization: p?.agency ? { id: p.agency } : undefined,
    host: device?.id ? { id: device.id } : undefined, // the official's device (ECS host.id)
    source: input.source,
    ...extra.fields,
    rule: decision?.rule ? { name: decision.rule, ruleset: 'policy', version: decision.policyVersion } : undefined,
    message: effect,
  } as AuditEvent;
}
