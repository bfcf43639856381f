import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { DestinationStream, Logger } from 'pino';
import type { GatewayConfig } from './config.js';
import { createAssertionSigner, type AssertionSigner } from './assertion.js';
import { ERROR_CODES, GatewayError, type ErrorCode } from './errors.js';
import { createDecisionLog, emitDecision, newDecisionContext } from './events.js';
import { createPipeline, type PipelineState } from './pipeline.js';
import { createAuthenticator } from './steps/authenticate.js';
import { registerForwarders } from './steps/forward.js';
import { createRouteTable } from './steps/route.js';
import { PolicyEngine } from '../policies/engine.js';

declare module 'fastify' {
  interface FastifyRequest extends PipelineState {}
}

export interface AppOptions {
  readonly config: GatewayConfig;
  /** Where decision events go; stdout by default. */
  readonly decisionLog?: DestinationStream;
  /** Operational log (errors, start-up); stderr by default so stdout carries decisions only. */
  readonly logger?: Logger;
  readonly fetch?: typeof fetch;
}

export interface GatewayApp {
  readonly app: FastifyInstance;
  readonly signer: AssertionSigner;
  readonly policy: () => PolicyEngine;
}

/** Translates anything thrown into the one error shape the gateway answers with. */
function toGatewayError(err: unknown, log: FastifyRequest['log']): GatewayError {
  if (err instanceof GatewayError) return err;
  const code = (err as FastifyError | undefined)?.code ?? '';
  if (code === 'FST_REPLY_FROM_GATEWAY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code.startsWith('FST_REPLY_FROM_') && code.includes('TIMEOUT')) {
    return new GatewayError('ZTG_ERR_UPSTREAM_TIMEOUT', 'upstream-timeout', { cause: err });
  }
  if (code.startsWith('FST_REPLY_FROM_') || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') {
    return new GatewayError('ZTG_ERR_UPSTREAM_UNAVAILABLE', 'upstream-unavailable', { cause: err });
  }
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new GatewayError('ZTG_ERR_BODY_TOO_LARGE', 'body-too-large', { cause: err });
  const status = (err as FastifyError | undefined)?.statusCode;
  if (status !== undefined && status >= 400 && status < 500) return new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { cause: err });
  log.error({ err }, 'unexpected gateway error');
  return new GatewayError('ZTG_ERR_INTERNAL', 'gateway-error', { cause: err });
}

function sendError(request: FastifyRequest, reply: FastifyReply, err: GatewayError): FastifyReply {
  request.zt ??= newDecisionContext();
  request.zt.reasons.push(err.reason);
  request.zt.errorCode = err.code;
  if (err.statusCode >= 500 && err.cause) request.log.warn({ err: err.cause, reason: err.reason }, 'request refused');
  // 5xx details stay in the log; 4xx say what was wrong with the request.
  const message = err.statusCode >= 500 ? ERROR_CODES[err.code as ErrorCode].message : err.message;
  return reply
    .code(err.statusCode)
    .headers({ ...err.headers, 'x-ztgate-error': err.code, 'cache-control': 'no-store', 'x-request-id': request.id })
    .send({ error: { code: err.code, reason: err.reason, message }, requestId: request.id });
}

export async function buildApp(opts: AppOptions): Promise<GatewayApp> {
  const { config } = opts;
  const decisionLog = createDecisionLog(opts.decisionLog ?? process.stdout);
  const signer = await createAssertionSigner({ issuer: config.publicUrl, ttlSeconds: config.assertion.ttlSeconds, keyFile: config.assertion.keyFile });
  const engine = await PolicyEngine.load(config.policy.model, config.policy.policy, new Set(config.routes.map((r) => r.id)));
  const policy = () => engine;

  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger } : { logger: { level: 'warn', stream: process.stderr } }),
    // Decision events replace per-request access logs.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    trustProxy: false,
    bodyLimit: config.limits.bodyLimitBytes,
    requestTimeout: config.limits.requestTimeoutMs,
    return503OnClosing: true,
    // Errors raised by the router before any hook runs, e.g. undecodable paths.
    frameworkErrors: (err, request, reply) => {
      const gatewayError =
        err.code === 'FST_ERR_BAD_URL'
          ? new GatewayError('ZTG_ERR_PATH_AMBIGUOUS', 'path-ambiguous', { detail: 'Đường dẫn không rõ ràng / ambiguous path: invalid percent-encoding', cause: err })
          : new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { cause: err });
      sendError(request, reply, gatewayError);
      // These requests bypass the hooks, onResponse included: the event is written here.
      reply.raw.once('close', () => emitDecision(decisionLog, request.zt, request, reply));
    },
  }) as unknown as FastifyInstance;

  app.decorateRequest('zt', null as never);
  app.decorateRequest('assertion', null);
  app.addHook('onRequest', async (request, reply) => {
    request.zt = newDecisionContext();
    request.zt.policyVersion = engine.version;
    reply.header('x-request-id', request.id);
  });
  app.addHook('onRequest', createPipeline({ config, routes: createRouteTable(config.routes), authenticator: createAuthenticator(config.identity, opts.fetch), policy, signer }));
  app.addHook('onResponse', async (request, reply) => {
    emitDecision(decisionLog, request.zt ?? newDecisionContext(), request, reply);
  });
  app.setErrorHandler((err, request, reply) => sendError(request, reply, toGatewayError(err, request.log)));
  app.setNotFoundHandler((request, reply) => sendError(request, reply, new GatewayError('ZTG_ERR_ROUTE_NOT_FOUND', 'route-not-found')));

  app.get('/.well-known/jwks.json', async (_request, reply) => reply.header('cache-control', 'public, max-age=300').send(signer.jwks));
  app.get('/healthz', async () => ({ status: 'ok', policyVersion: engine.version }));

  await registerForwarders(app, config.routes, (request) => {
    // Unreachable unless the pipeline allowed: the proxy handler only runs after it.
    if (!request.assertion) throw new GatewayError('ZTG_ERR_INTERNAL', 'gateway-error');
    return request.assertion;
  });
  return { app, signer, policy };
}
