import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_CODES, GatewayError, type ErrorCode } from './errors.js';
import { newDecisionContext } from './events.js';
import type { Reason } from '../core/reasons.js';
import { StateLostError } from '../core/store.js';
import './request-state.js';

/**
 * The one place where a refusal becomes a response. Steps and modules throw (a GatewayError, or
 * their own typed error translated at their boundary); each listener's error handler
 * (gateway/http.ts) passes whatever was thrown through toGatewayError and answers with sendError,
 * which also records the reason and error code on the request's decision context for the one
 * decision event. Code that answers after the handler has returned (the response obligations)
 * hands its error to `reply.send(err)`, which reaches the same error handler.
 */

/** Translates anything thrown into the one error shape the gateway answers with. */
export function toGatewayError(err: unknown, log: FastifyRequest['log'], trace?: { traceId: string } | null): GatewayError {
  if (err instanceof GatewayError) return err;
  // A governance change refused because the shared state is being rebuilt (gateway/state-keeper.ts).
  if (err instanceof StateLostError) return new GatewayError('ZTG_ERR_STATE_LOST', 'state-lost', { cause: err });
  const code = (err as FastifyError | undefined)?.code ?? '';
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || (code.startsWith('FST_REPLY_FROM_') && code.includes('TIMEOUT'))) {
    return new GatewayError('ZTG_ERR_UPSTREAM_TIMEOUT', 'upstream-timeout', { cause: err });
  }
  if (code.startsWith('FST_REPLY_FROM_') || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') {
    return new GatewayError('ZTG_ERR_UPSTREAM_UNAVAILABLE', 'upstream-unavailable', { cause: err });
  }
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new GatewayError('ZTG_ERR_BODY_TOO_LARGE', 'body-too-large', { cause: err });
  const status = (err as FastifyError | undefined)?.statusCode;
  if (status !== undefined && status >= 400 && status < 500) return new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: (err as Error).message, cause: err });
  log.error({ err, trace_id: trace?.traceId }, 'unexpected gateway error');
  return new GatewayError('ZTG_ERR_INTERNAL', 'gateway-error', { cause: err });
}

/** Refusals that are attack signals the operator must see in the log, beside the decision event. */
const LOGGED_REFUSALS: ReadonlySet<Reason> = new Set<Reason>(['cookie-duplicate']);

export function sendError(request: FastifyRequest, reply: FastifyReply, err: GatewayError, page?: string): FastifyReply {
  request.zt ??= newDecisionContext(request.raw.socket);
  request.zt.reasons.push(err.reason);
  request.zt.errorCode = err.code;
  if (err.presented && !request.zt.principal) request.zt.presented = err.presented;
  if (err.statusCode >= 500 && err.cause) request.log.warn({ err: err.cause, reason: err.reason, trace_id: request.zt.trace?.traceId }, 'request refused');
  else if (LOGGED_REFUSALS.has(err.reason)) request.log.warn({ reason: err.reason, requestId: request.id, source: request.socket.remoteAddress, detail: err.message, trace_id: request.zt.trace?.traceId }, 'request refused: attack signal');
  // 5xx details stay in the log; 4xx say what was wrong with the request.
  const message = err.statusCode >= 500 ? ERROR_CODES[err.code as ErrorCode].message : err.message;
  reply.code(err.statusCode).headers({ ...err.headers, 'x-ztgate-error': err.code, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'x-request-id': request.id });
  if (page !== undefined) {
    return reply.headers({ 'content-type': 'text/html; charset=utf-8', 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'" }).send(page);
  }
  return reply.send({ error: { code: err.code, reason: err.reason, message }, requestId: request.id });
}
