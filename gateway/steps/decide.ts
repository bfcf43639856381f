import type { IncomingHttpHeaders } from 'node:http';
import type { RouteConfig } from '../config.js';
import { GatewayError } from '../errors.js';
import type { AccessRequest, Grant, Purpose } from '../../policies/access.js';
import type { DeviceTier } from '../../core/levels.js';
import type { Principal, Decision } from '../../core/principal.js';
import type { PolicyEngine } from '../../policies/engine.js';
import type { RecentDecisions } from '../../policies/what-if.js';

/**
 * Step 6, decide: the typed AccessRequest (who, which service and path, device tier, purpose,
 * address, time) through the policy engine — Casbin rules, then attribute conditions — into a
 * Decision with its reasons, rule, version and obligations. Deny by default.
 *
 * The purpose of access comes in X-Purpose and X-Case-Ref: plain request headers, deliberately
 * not under X-Ztgate-* (the edge strips those as forgeable). It is what the official declares,
 * validated against the configured list and logged; it is never trusted as identity.
 */
export const PURPOSE_HEADER = 'x-purpose';
export const CASE_REF_HEADER = 'x-case-ref';

function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  if (Array.isArray(value)) throw purposeInvalid(`${name} gửi nhiều lần / sent more than once`);
  return value?.trim();
}

function purposeInvalid(detail: string): GatewayError {
  return new GatewayError('ZTG_ERR_BAD_REQUEST', 'purpose-invalid', { detail: `Mục đích khai thác không hợp lệ / invalid purpose of access: ${detail}` });
}

/** The declared purpose, or null when none was sent; half a declaration is refused. */
export function readPurpose(headers: IncomingHttpHeaders): Purpose | null {
  const code = single(headers, PURPOSE_HEADER);
  const caseRef = single(headers, CASE_REF_HEADER);
  if (!code && !caseRef) return null;
  if (!code) throw purposeInvalid('có X-Case-Ref nhưng thiếu X-Purpose / X-Case-Ref without X-Purpose');
  if (!caseRef) throw purposeInvalid('có X-Purpose nhưng thiếu X-Case-Ref / X-Purpose without X-Case-Ref');
  if (code.length > 64 || caseRef.length > 128) throw purposeInvalid('quá dài / too long');
  return { code, caseRef };
}

export interface DecideInput {
  /** An HTTP route, or a database service as `db:<id>` with the classification of the table at hand. */
  readonly route: Pick<RouteConfig, 'id' | 'securityLevel' | 'classification'>;
  readonly path: string;
  readonly method: string;
  readonly principal: Principal;
  readonly deviceTier: DeviceTier | null;
  readonly purpose: Purpose | null;
  readonly sourceIp: string | null;
  /** The official's active grant on this service (gateway/access/requests.ts), if any. */
  readonly grant?: Grant | null;
}

/**
 * Decides with the engine the request started with (an activation mid-request does not change
 * its decision). Returns an allow; a denial throws, after `onDecision` has seen it.
 */
export function decide(engine: PolicyEngine, input: DecideInput, onDecision: (decision: Decision, request: AccessRequest) => void, recent?: RecentDecisions): Decision {
  const request: AccessRequest = {
    principal: input.principal,
    route: { id: input.route.id, securityLevel: input.route.securityLevel, classification: input.route.classification },
    path: input.path,
    method: input.method,
    device: input.deviceTier ? { tier: input.deviceTier } : null,
    purpose: input.purpose,
    sourceIp: input.sourceIp,
    timeMs: Date.now(),
    grant: input.grant ?? null,
  };
  const problem = engine.purposeProblem(input.purpose);
  if (problem) throw purposeInvalid(problem);
  let decision: Decision;
  try {
    decision = engine.decide(request);
  } catch (err) {
    throw new GatewayError('ZTG_ERR_INTERNAL', 'policy-error', { cause: err });
  }
  onDecision(decision, request);
  // Kept for what-if evaluation of drafts: the decision input, never a token or header value.
  recent?.record(request, decision);
  if (decision.effect === 'allow') return decision;
  const reason = decision.reasons[0] ?? 'policy-no-match';
  throw new GatewayError(reason === 'purpose-required' ? 'ZTG_ERR_PURPOSE_REQUIRED' : 'ZTG_ERR_FORBIDDEN', reason);
}
