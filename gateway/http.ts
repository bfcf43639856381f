import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { ERROR_CODES, GatewayError, type ErrorCode } from './errors.js';
import { emitDecision, emitUnparsedRequest, newDecisionContext, type DecisionContext, type EventAction } from './events.js';
import type { Reason } from '../core/reasons.js';
import { sendError, toGatewayError } from './error-response.js';
import './request-state.js';
import type { Runtime } from './runtime.js';
import { listenerTimeouts } from './limits.js';
import { auditAlert } from './audit/log.js';

/**
 * What every listener of the gateway shares: gateway-chosen request ids, one error shape
 * (gateway/error-response.ts, through the error handler below), and exactly one decision event per
 * request, written by `writeDecisionEvent` below when the response ends, the client goes away, or
 * the HTTP parser refuses the bytes.
 */

export interface ListenerOptions {
  readonly runtime: Runtime;
  readonly action: EventAction;
  readonly logger?: Logger;
  readonly bodyLimitBytes: number;
  /** TLS (and client certificates) of the listener, from gateway/tls.ts; plain http without. */
  readonly https?: HttpsServerOptions;
  /**
   * An HTML page for a refusal, for listeners people open in a browser (the admin UI): a page
   * load that fails gets this page; API calls keep the JSON error.
   */
  readonly errorPage?: (err: GatewayError, requestId: string) => string;
}

/** A page load by a browser (Fetch Metadata, else an Accept that prefers HTML), not a script's call. */
function isPageLoad(request: FastifyRequest): boolean {
  const mode = request.headers['sec-fetch-mode'];
  if (mode !== undefined) return mode === 'navigate';
  const accept = String(request.headers.accept ?? '');
  return accept.includes('text/html') && !accept.includes('application/json');
}

export function createListenerApp({ runtime, action, logger, bodyLimitBytes, https, errorPage }: ListenerOptions): FastifyInstance {
  const { limits } = runtime.config;
  const timeouts = listenerTimeouts(limits);
  const plane = action === 'access-decision' ? 'data' : 'admin';
  const observability = runtime.observability;
  /**
   * The one place a listener writes the decision event of a request, then its metrics and spans.
   * Called from every way a request ends (onResponse, a client that goes away, a router error, bytes
   * the HTTP parser refuses); the context's `emitted` flag keeps it to one event per request.
   */
  function writeDecisionEvent(ctx: DecisionContext, ended: { request: FastifyRequest; reply: FastifyReply } | { unparsed: Parameters<typeof emitUnparsedRequest>[2] }): void {
    if ('unparsed' in ended) {
      if (ctx.emitted) return;
      ctx.emitted = true;
      observability.requestEnded(plane, ctx, emitUnparsedRequest(runtime.decisionLog, action, ended.unparsed), '');
      return;
    }
    const event = emitDecision(runtime.decisionLog, action, ctx, ended.request, ended.reply);
    if (event) observability.requestEnded(plane, ctx, event, ended.request.method);
  }
  const finish = (ctx: DecisionContext, request: FastifyRequest, reply: FastifyReply): void => writeDecisionEvent(ctx, { request, reply });
  // Every refusal of this listener is answered here (gateway/error-response.ts).
  const answer = (request: FastifyRequest, reply: FastifyReply, err: GatewayError): FastifyReply => sendError(request, reply, err, errorPage && err.statusCode >= 400 && isPageLoad(request) ? errorPage(err, request.id) : undefined);
  const app = Fastify({
    ...(https ? { https: { ...https, ...timeouts } } : { http: timeouts }),
    keepAliveTimeout: limits.idleTimeoutMs,
    ...(logger ? { loggerInstance: logger } : { logger: { level: 'warn', stream: process.stderr } }),
    // Decision events replace per-request access logs.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    trustProxy: false,
    bodyLimit: bodyLimitBytes,
    requestTimeout: runtime.config.limits.requestTimeoutMs,
    // A closing listener (a worker leaving a rolling restart, a shutdown after its drain delay) still
    // answers the requests of connections it had already taken, through the pipeline and with their
    // decision event: Fastify's 503 would refuse a request that is allowed, and write no event.
    // It stops taking connections right after preClose; Fastify marks these answers Connection: close.
    return503OnClosing: false,
    // Requests the HTTP parser refuses never reach a hook or the error handler: answered here, in the same JSON shape.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return; // nothing was received, nobody to answer
      const [code, reason]: [ErrorCode, Reason] = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? ['ZTG_ERR_REQUEST_TIMEOUT', 'request-timeout'] : err.code === 'HPE_HEADER_OVERFLOW' ? ['ZTG_ERR_HEADERS_TOO_LARGE', 'headers-too-large'] : ['ZTG_ERR_BAD_REQUEST', 'request-malformed'];
      const requestId = randomUUID();
      const { status, message } = ERROR_CODES[code];
      const body = JSON.stringify({ error: { code, reason, message }, requestId });
      if (socket.writable) {
        socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` + `X-Ztgate-Error: ${code}\r\nX-Request-Id: ${requestId}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`);
      }
      writeDecisionEvent(newDecisionContext(socket), { unparsed: { requestId, source: { ip: socket.remoteAddress ?? null, port: socket.remotePort ?? null }, statusCode: status, reason, errorCode: code } });
      socket.destroy(err);
    },
    // Errors raised by the router before any hook runs, e.g. undecodable paths.
    frameworkErrors: (err, request, reply) => {
      const gatewayError = err.code === 'FST_ERR_BAD_URL' ? new GatewayError('ZTG_ERR_PATH_AMBIGUOUS', 'path-ambiguous', { detail: 'Đường dẫn không rõ ràng / ambiguous path: invalid percent-encoding', cause: err }) : new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { cause: err });
      answer(request, reply, gatewayError);
      // These requests bypass the hooks, onResponse included: the event is written here.
      reply.raw.once('close', () => finish(request.zt, request, reply));
    },
  }) as unknown as FastifyInstance;

  app.server.headersTimeout = limits.headersTimeoutMs;
  app.server.maxConnections = limits.maxConnections;
  // Node's header timeout starts with the first byte: a connection that sends nothing at all is closed here.
  app.server.on(https ? 'secureConnection' : 'connection', (socket: Socket) => {
    const timer = setTimeout(() => socket.bytesRead === 0 && socket.destroy(), limits.headersTimeoutMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  });
  let lastDropReport = 0;
  // Connections past the cap are closed at once by Node; the operator and the SOC hear of it once a minute.
  app.server.on('drop', (data?: { remoteAddress?: string }) => {
    const now = Date.now();
    if (now - lastDropReport < 60_000) return;
    lastDropReport = now;
    app.log.warn({ maxConnections: limits.maxConnections, remoteAddress: data?.remoteAddress }, 'connection cap reached: new connections are refused');
    runtime.decisionLog.write(
      auditAlert('connection-limit-reached', `Đạt giới hạn ${limits.maxConnections} kết nối: kết nối mới bị từ chối / connection cap of ${limits.maxConnections} reached: new connections are refused`, { max_connections: limits.maxConnections, action, remote_address: data?.remoteAddress ?? null }),
    );
  });

  app.decorateRequest('zt', null as never);
  app.decorateRequest('assertion', null);
  app.addHook('onRequest', async (request, reply) => {
    const ctx = newDecisionContext(request.raw.socket);
    request.zt = ctx;
    ctx.policyVersion = runtime.policy().version;
    ctx.trace = observability.tracing.begin(request.headers, request.socket.remoteAddress, request.id);
    reply.header('x-request-id', request.id);
    // A client that goes away before the response ends gets no onResponse: its event is written here.
    reply.raw.once('close', () => {
      if (ctx.emitted || reply.raw.writableFinished) return;
      // Cut off by the gateway itself (upstream-timeout): that reason stands.
      if (ctx.errorCode === null) ctx.reasons.push('client-aborted');
      finish(ctx, request, reply);
    });
  });
  app.addHook('onResponse', async (request, reply) => {
    finish(request.zt ?? newDecisionContext(request.raw.socket), request, reply);
  });
  // The operator sees when a listener stops taking connections, and that what it took is still answered.
  app.addHook('preClose', async () => app.log.info({ plane }, 'closing: no new connections are taken; requests on those already taken are answered'));
  app.setErrorHandler((err, request, reply) => answer(request, reply, toGatewayError(err, request.log, request.zt?.trace)));
  app.setNotFoundHandler((request, reply) => answer(request, reply, new GatewayError('ZTG_ERR_ROUTE_NOT_FOUND', 'route-not-found')));
  return app;
}
