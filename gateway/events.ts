import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RouteConfig } from './config.js';
import type { Principal, Decision } from '../core/principal.js';
import type { Purpose } from '../policies/access.js';
import type { Reason } from '../core/reasons.js';
import type { PresentedIdentity } from '../identity/authentication-errors.js';
import type { DeviceTrust } from './steps/device.js';
import type { AuditEvent, DecisionLog } from './audit/log.js';
import { buildDecisionEvent, isAllowed, type EventAction } from './audit/decision-event.js';
import { sessionDigest } from '../identity/digest.js';
import type { RequestTrace } from './observability/tracing.js';
import type { StepTimes } from './observability/steps.js';

export { createDecisionLog, type DecisionLog } from './audit/log.js';

/**
 * The decision event of an HTTP request: exactly one per request, allow or deny, whichever step
 * ended it. Built by the builder both planes share (gateway/audit/decision-event.ts), with the
 * request's http.* and url.* and what only the HTTP side knows (sessions, grants, access requests).
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
    source: { ip: socket?.remoteAddress ?? null, port: socket?.remotePort ?? null },
    startedAt: process.hrtime.bigint(),
    route: null,
    principal: null,
    decision: null,
    policyVersion: null,
    allowedWithoutPolicy: false,
    admin: null,
    reasons: [],
    errorCode: null,
    presented: null,
    strippedHeaders: [],
    device: null,
    purpose: null,
    records: null,
    grant: null,
    access: null,
    emitted: false,
    trace: null,
    steps: null,
    upstreamStatus: 0,
  };
}

export type { EventAction };

/** A denial of which nothing is known but what the caller adds: no identity, route or decision. */
const NOTHING_KNOWN = { startedAt: null, category: 'network', allowed: false, succeeded: false, decision: null, policyVersion: null, route: null, principal: null, device: null, purpose: null, records: null } as const;

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
  const event = buildDecisionEvent({ ...NOTHING_KNOWN, id: input.requestId, action, reasons: [input.reason], errorCode: input.errorCode, source: input.source }, { fields: { http: { request: { id: input.requestId, method: '' }, response: { status_code: input.statusCode } }, url: { path: '' } } });
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
    event = buildDecisionEvent(
      { ...NOTHING_KNOWN, id: request.id, startedAt: ctx.startedAt, action, level: 'error', reasons: ['gateway-error'], policyVersion: ctx.policyVersion, errorCode: ctx.errorCode, source: ctx.source },
      {
        fields: {
          http: { request: { id: request.id, method: request.method }, response: { status_code: reply.raw.headersSent ? reply.statusCode : 0 } },
          url: { path: '' },
          trace: ctx.trace ? { id: ctx.trace.traceId } : undefined,
        },
      },
    );
  }
  log.write(event);
  return event;
}

/** ECS user.* for an identity that was presented but not accepted: the SOC sees who tried, marked unverified. */
function presentedUser(presented: PresentedIdentity | null): Record<string, unknown> | undefined {
  if (!presented) return undefined;
  const id = presented.nationalId ?? presented.sub;
  if (!id) return undefined;
  return { id, verified: false, id_type: presented.nationalId ? 'national-id' : 'sub', issuer: presented.issuer };
}

function buildEvent(action: EventAction, ctx: DecisionContext, request: FastifyRequest, reply: FastifyReply): AuditEvent {
  const status = reply.raw.headersSent || reply.sent ? reply.statusCode : 0;
  const allowed = isAllowed(ctx);
  const principal = ctx.principal;
  return buildDecisionEvent(
    {
      id: request.id,
      startedAt: ctx.startedAt,
      action,
      category: 'network',
      allowed,
      succeeded: status > 0 && status < 500 && ctx.errorCode === null,
      decision: ctx.decision,
      reasons: ctx.reasons,
      policyVersion: ctx.policyVersion,
      errorCode: ctx.errorCode,
      route: ctx.route,
      principal,
      device: ctx.device,
      purpose: ctx.purpose,
      records: ctx.records,
      source: ctx.source,
      unverifiedUser: presentedUser(ctx.presented),
    },
    {
      ztgate: {
        stripped_headers: ctx.strippedHeaders.length > 0 ? ctx.strippedHeaders : undefined,
        admin: ctx.admin ?? undefined,
        session: principal?.sessionId ? { id_digest: sessionDigest(principal.sessionId) } : undefined,
        grant: ctx.grant ? { id: ctx.grant.id, kind: ctx.grant.kind, role: ctx.grant.role, expires_at: ctx.grant.expiresAt, confirmed: ctx.grant.confirmed, break_glass: ctx.grant.kind === 'break-glass' } : undefined,
        access: ctx.access ?? undefined,
      },
      fields: {
        http: { request: { id: request.id, method: request.method }, response: { status_code: status } },
        url: { path: loggablePath(request.url) },
        trace: ctx.trace ? { id: ctx.trace.traceId } : undefined, // ECS trace.id: the OpenTelemetry trace of this request
      },
    },
  );
}
