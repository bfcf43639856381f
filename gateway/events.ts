import { pino, type DestinationStream, type Logger } from 'pino';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RouteConfig } from './config.js';
import type { Principal } from '../identity/principal.js';
import type { Decision } from '../policies/engine.js';
import type { Reason } from './reasons.js';

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
  strippedHeaders: string[];
  emitted: boolean;
}

export function newDecisionContext(): DecisionContext {
  return { startedAt: process.hrtime.bigint(), route: null, principal: null, decision: null, policyVersion: null, allowedWithoutPolicy: false, admin: null, reasons: [], errorCode: null, strippedHeaders: [], emitted: false };
}

export function createDecisionLog(destination: DestinationStream): Logger {
  return pino(
    {
      base: null,
      messageKey: 'message',
      timestamp: () => `,"@timestamp":"${new Date().toISOString()}"`,
      formatters: { level: (label) => ({ log: { level: label } }) },
    },
    destination,
  );
}

/** Data-plane requests are access decisions; management requests are audited admin actions. */
export type EventAction = 'access-decision' | 'admin-request';

export function emitDecision(log: Logger, action: EventAction, ctx: DecisionContext, request: FastifyRequest, reply: FastifyReply): void {
  if (ctx.emitted) return;
  ctx.emitted = true;
  const status = reply.raw.headersSent || reply.sent ? reply.statusCode : 0;
  const allowed = ctx.decision ? ctx.decision.effect === 'allow' : ctx.allowedWithoutPolicy && ctx.errorCode === null;
  const effect = allowed ? 'allow' : 'deny';
  const reasons = [...new Set([...(ctx.decision?.reasons ?? []), ...ctx.reasons])];
  const pathEnd = request.url.indexOf('?');
  log.info(
    {
      event: {
        kind: 'event',
        category: ['network', 'iam'],
        type: [allowed ? 'allowed' : 'denied', 'access'],
        action,
        outcome: allowed && status > 0 && status < 500 ? 'success' : 'failure',
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
      },
      user: ctx.principal ? { id: ctx.principal.nationalId, roles: ctx.principal.roles } : undefined,
      organization: ctx.principal?.agency ? { id: ctx.principal.agency } : undefined,
      source: { ip: request.socket.remoteAddress ?? null, port: request.socket.remotePort ?? null },
      http: { request: { id: request.id, method: request.method }, response: { status_code: status } },
      url: { path: (pathEnd === -1 ? request.url : request.url.slice(0, pathEnd)).slice(0, 2048) },
    },
    allowed ? 'allow' : 'deny',
  );
}
