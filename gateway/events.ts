import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RouteConfig } from './config.js';
import type { Principal, Decision } from '../core/principal.js';
import type { Purpose } from '../policies/access.js';
import type { Reason } from '../core/reasons.js';
import type { PresentedIdentity } from '../identity/authentication-errors.js';
import type { DeviceTrust } from './steps/device.js';
import type { AuditEvent, DecisionLog } from './audit/log.js';
import { sessionDigest } from '../identity/digest.js';
import type { RequestTrace } from './observability/tracing.js';
import type { StepTimes } from './observability/steps.js';

export { createDecisionLog, type DecisionLog } from './audit/log.js';

/**
 * The decision event: exactly one per request, allow or deny, whichever step ended it.
 * Field names follow the Elastic Common Schema where one exists (event.*, user.*, source.*,
 * http.*, url.*); the gateway's own fields live under ztgate.*. Never a token, cookie,
 * header value or query string: those may carry credentials or citizens' personal data.
 */

export interface DecisionContext {
  readonly startedAt: bigint;
  route: RouteConfig | null;
  principal: Principal | null;
  decision: Decision | null;
  /** The policy version active when the request arrived, recorded even when no rule was evaluated. */
  policyVersion: string | null;
  /** Allowed without a policy decision: public endpoints, authorised admin requests. */
  allowedWithoutPolicy: boolean;
  /** What an admin request changed, for the audit trail (management plane only). */
  admin: { operation: string; target?: string; detail?: Record<string, unknown> } | null;
  /** Reason of the step that ended the request, when it was not the policy. */
  reasons: Reason[];
  errorCode: string | null;
  /** Who a refused token named when no principal was built (e.g. not on the roster); logged as unverified. */
  presented: PresentedIdentity | null;
  strippedHeaders: string[];
  /** The device and its trust tier (step 4), once assessed; what policies can require. */
  device: DeviceTrust | null;
  /** Purpose of access the official declared (X-Purpose, X-Case-Ref), when the policy reads it. */
  purpose: Purpose | null;
  /** The grant (approved access request or break-glass) the request was decided with. */
  grant: { id: string; kind: string; role: string; expiresAt: string; confirmed: boolean } | null;
  /** The access-request step this request made (gateway/access/routes.ts). */
  access: { operation: string; id?: string; state?: string } | null;
  /** Records the upstream returned, when the response was counted. */
  records: number | null;
  /** Client address and source port, taken on arrival: a streamed or aborted request may have lost its socket by the end. */
  readonly source: { readonly ip: string | null; readonly port: number | null };
  emitted: boolean;
  /** W3C trace of the request (gateway/observability/tracing.ts). */
  trace: RequestTrace | null;
  /** Step timings, once a service is matched (gateway/observability/steps.ts). */
  steps: StepTimes | null;
  /** Status the upstream answered with; 0 when nothing was forwarded or it did not answer. */
  upstreamStatus: number;
}

export function newDecisionContext(socket?: { remoteAddress?: string | undefined; remotePort?: number | undefined } | null): DecisionContext {
  return {
    source: { ip: socket?.remoteAddress ?? null, port: socket?.remotePort ?? null }, startedAt: process.hrtime.bigint(), route: null, principal: null, decision: null, policyVersion: null, allowedWithoutPolicy: false, admin: null, reasons: [], errorCode: null, presented: null, strippedHeaders: [], device: null, purpose: null, records: null, grant: null, access: null, emitted: false, trace: null, steps: null, upstreamStatus: 0 };
}

/** Data-plane requests are access decisions; management requests are audited admin actions. */
export type EventAction = 'access-decision' | 'admin-request';

const REFUSED_AFTER_POLICY = new Set(['ZTG_ERR_MISDIRECTED', 'ZTG_ERR_AUDIT_UNAVAILABLE', 'ZTG_ERR_QUOTA_EXCEEDED', 'ZTG_ERR_QUOTA_UNAVAILABLE', 'ZTG_ERR_OBLIGATION_FAILED']);

/**
 * The request path as the event records it: never the query, fragment or ";params" (they may carry
 * tokens, session ids or citizens' data), and for an absolute-form target not its scheme or userinfo.
 */
export function loggablePath(target: string): string {
  let path = target;
  if (!path.startsWith('/')) {
    try {
      path = new URL(path).pathname;
    } catch {
      return '(not a path)';
    }
  }
  const end = path.search(/[?#;]/);
  return (end === -1 ? path : path.slice(0, end)).slice(0, 2048);
}

/**
 * The event of a request the HTTP parser refused before the gateway saw it (malformed request line,
 * oversized headers, smuggling attempts, timeouts): no path, no identity, only where it came from.
 */
export function emitUnparsedRequest(log: DecisionLog, action: EventAction, input: { requestId: string; source: DecisionContext['source']; statusCode: number; reason: Reason; errorCode: string }): AuditEvent {
  const event = {
    '@timestamp': new Date().toISOString(),
    log: { level: 'info' },
    event: { kind: 'event', category: ['network', 'iam'], type: ['denied', 'access'], action, outcome: 'failure', id: input.requestId, duration: 0 },
    ztgate: { decision: 'deny', reasons: [input.reason], rule: null, policy_version: null, error_code: input.errorCode, route: null },
    source: input.source,
    http: { request: { id: input.requestId, method: '' }, response: { status_code: input.statusCode } },
    url: { path: '' },
    message: 'deny',
  } as AuditEvent;
  log.write(event);
  return event;
}

/** Writes the request's one event; returns it, or null when it was already written. */
export function emitDecision(log: DecisionLog, action: EventAction, ctx: DecisionContext, request: FastifyRequest, reply: FastifyReply): AuditEvent | null {
  if (ctx.emitted) return null;
  ctx.emitted = true;
  let event: AuditEvent;
  try {
    event = buildEvent(action, ctx, request, reply);
  } catch (err) {
    // An event that cannot be built in full is still written, reduced to what is certain.
    request.log.error({ err }, 'decision event could not be built in full');
    event = {
      '@timestamp': new Date().toISOString(),
      log: { level: 'error' },
      event: { kind: 'event', category: ['network', 'iam'], type: ['denied', 'access'], action, outcome: 'failure', id: request.id, duration: Number(process.hrtime.bigint() - ctx.startedAt) },
      ztgate: { decision: 'deny', reasons: ['gateway-error'], rule: null, policy_version: ctx.policyVersion, error_code: ctx.errorCode, route: null },
      source: ctx.source,
      http: { request: { id: request.id, method: request.method }, response: { status_code: reply.raw.headersSent ? reply.statusCode : 0 } },
      url: { path: '' },
      trace: ctx.trace ? { id: ctx.trace.traceId } : undefined,
      message: 'deny',
    } as AuditEvent;
  }
  log.write(event);
  return event;
}

/** ECS user.* for an identity that was presented but not accepted: the SOC sees who tried, marked unverified. */
function presentedUser(presented: PresentedIdentity | null): AuditEvent['user'] {
  if (!presented) return undefined;
  const id = presented.nationalId ?? presented.sub;
  if (!id) return undefined;
  return { id, verified: false, id_type: presented.nationalId ? 'national-id' : 'sub', issuer: presented.issuer };
}

function buildEvent(action: EventAction, ctx: DecisionContext, request: FastifyRequest, reply: FastifyReply): AuditEvent {
  const status = reply.raw.headersSent || reply.sent ? reply.statusCode : 0;
  // Refusals after the policy allowed (nothing forwarded) are denials; upstream faults stay allows that failed.
  const refusedAfterPolicy = ctx.errorCode !== null && REFUSED_AFTER_POLICY.has(ctx.errorCode);
  const allowed = ctx.decision ? ctx.decision.effect === 'allow' && !refusedAfterPolicy : ctx.allowedWithoutPolicy && ctx.errorCode === null;
  const effect = allowed ? 'allow' : 'deny';
  const reasons = [...new Set([...(ctx.decision?.reasons ?? []), ...ctx.reasons])];
  const principal = ctx.principal;
  const event: AuditEvent = {
    '@timestamp': new Date().toISOString(),
    log: { level: 'info' },
    event: {
      kind: 'event',
      category: ['network', 'iam'],
      type: [allowed ? 'allowed' : 'denied', 'access'],
      action,
      outcome: allowed && status > 0 && status < 500 && ctx.errorCode === null ? 'success' : 'failure',
      id: request.id,
      duration: Number(process.hrtime.bigint() - ctx.startedAt), // nanoseconds (ECS)
    },
    ztgate: {
      decision: effect,
      reasons,
      rule: ctx.decision?.rule ?? null,
      policy_version: ctx.decision?.policyVersion ?? ctx.policyVersion,
      error_code: ctx.errorCode,
      route: ctx.route ? { id: ctx.route.id, security_level: ctx.route.securityLevel, classification: ctx.route.classification, owner_agency: ctx.route.ownerAgency } : null,
      stripped_headers: ctx.strippedHeaders.length > 0 ? ctx.strippedHeaders : undefined,
      admin: ctx.admin ?? undefined,
      assurance: principal ? { level: principal.assuranceLevel, acr: principal.acr } : undefined,
      session: principal?.sessionId ? { id_digest: sessionDigest(principal.sessionId) } : undefined,
      purpose: ctx.purpose ? { code: ctx.purpose.code, case_ref: ctx.purpose.caseRef } : undefined,
      records: ctx.records ?? undefined,
      grant: ctx.grant ? { id: ctx.grant.id, kind: ctx.grant.kind, role: ctx.grant.role, expires_at: ctx.grant.expiresAt, confirmed: ctx.grant.confirmed, break_glass: ctx.grant.kind === 'break-glass' } : undefined,
      access: ctx.access ?? undefined,
      device: ctx.device ? { id: ctx.device.id, tier: ctx.device.tier, status: ctx.device.status, via: ctx.device.via ?? undefined, posture_failures: ctx.device.postureFailures ?? undefined } : undefined,
    },
    user: ctx.principal ? { id: ctx.principal.nationalId, roles: ctx.principal.roles } : presentedUser(ctx.presented),
    organization: ctx.principal?.agency ? { id: ctx.principal.agency } : undefined,
    host: ctx.device?.id ? { id: ctx.device.id } : undefined, // the official's device (ECS host.id)
    source: ctx.source,
    http: { request: { id: request.id, method: request.method }, response: { status_code: status } },
    url: { path: loggablePath(request.url) },
    rule: ctx.decision?.rule ? { name: ctx.decision.rule, ruleset: 'policy', version: ctx.decision.policyVersion } : undefined,
    trace: ctx.trace ? { id: ctx.trace.traceId } : undefined, // ECS trace.id: the OpenTelemetry trace of this request
    message: effect,
  };
  return event;
}
