import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import httpProxy from '@fastify/http-proxy';
import type { RouteConfig } from '../config.js';
import type { AssertionHeaders } from '../assertion.js';
import { GatewayError } from '../errors.js';
import { HTTP_METHODS } from '../../policies/access.js';

/**
 * Step 8, forward: only the headers an upstream needs, plus the gateway's signed assertion
 * and the request id. Credentials (Authorization, cookies) stay at the gateway: the upstream
 * learns who the official is from the assertion alone.
 */
const FORWARDED_BY_DEFAULT = ['accept', 'accept-encoding', 'accept-language', 'cache-control', 'content-encoding', 'content-length', 'content-type', 'if-match', 'if-modified-since', 'if-none-match', 'if-unmodified-since', 'pragma', 'range', 'user-agent'];

/** The path an upstream URL puts before the service's inner path (the proxy's rewritePrefix). */
const basePaths = new Map<string, string>();
export function upstreamBasePath(route: Pick<RouteConfig, 'upstream'>): string {
  let base = basePaths.get(route.upstream);
  if (base === undefined) basePaths.set(route.upstream, (base = new URL(route.upstream).pathname.replace(/\/$/, '')));
  return base;
}

const forwardedNames = new WeakMap<RouteConfig, readonly string[]>();

export function upstreamHeaders(request: FastifyRequest, route: RouteConfig, assertion: AssertionHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  let names = forwardedNames.get(route);
  if (!names) forwardedNames.set(route, (names = [...FORWARDED_BY_DEFAULT, ...route.forwardRequestHeaders]));
  for (const name of names) {
    const value = request.headers[name];
    if (value !== undefined) out[name] = value;
  }
  Object.assign(out, assertion);
  out['x-request-id'] = request.id;
  return out;
}

/**
 * What of the upstream's response headers reaches the client. The gateway owns its cookies
 * (an upstream setting ztgate-session would fix a session), CORS (whether another origin may
 * read is the gateway's decision), its X-Ztgate-* headers and the request id (an upstream must
 * not forge a gateway error or decision); server details stay inside; hop-by-hop headers
 * (RFC 9110 §7.6.1, and those the upstream's Connection names) end at the hop.
 */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
const UPSTREAM_DETAILS = new Set(['server', 'x-powered-by', 'x-aspnet-version', 'x-aspnetmvc-version', 'x-request-id']);
/** The gateway's own cookies (identity/sessions.ts, gateway/auth-routes.ts, admin CSRF), with or without __Host-/__Secure-. */
const GATEWAY_COOKIE = /^(?:__host-|__secure-)?ztgate-/i;

function gatewayCookie(setCookie: string): boolean {
  const name = setCookie.slice(0, setCookie.indexOf('=') >>> 0).trim();
  return GATEWAY_COOKIE.test(name);
}

export function filterResponseHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const named = String(headers.connection ?? '')
    .toLowerCase()
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (value === undefined || HOP_BY_HOP.has(lower) || named.includes(lower) || UPSTREAM_DETAILS.has(lower)) continue;
    if (lower.startsWith('access-control-') || lower.startsWith('x-ztgate-')) continue;
    if (lower === 'set-cookie') {
      const kept = (Array.isArray(value) ? value : [value]).filter((c) => !gatewayCookie(c));
      if (kept.length > 0) out[name] = kept;
      continue;
    }
    out[name] = value;
  }
  return out;
}

export interface ResponseObligations {
  requestHeaders(request: FastifyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders;
  onResponse(request: FastifyRequest, reply: FastifyReply, res: { statusCode: number; headers: IncomingHttpHeaders; stream: import('node:stream').Readable }): void;
}

/**
 * The whole upstream exchange — connection, headers and every byte of the body — ends within the
 * route's upstreamTimeoutMs. undici's own timeouts are per phase and per chunk: a body trickled one
 * byte at a time would never trip them. When the bound passes before the response started: 504;
 * after: the response is cut off (the client sees it incomplete) and the event says upstream-timeout.
 */
interface BoundedExchange {
  timedOut: boolean;
  upstream: import('node:stream').Readable | null;
}
const exchanges = new WeakMap<FastifyRequest, BoundedExchange>();

function boundExchange(request: FastifyRequest, reply: FastifyReply, timeoutMs: number): void {
  const exchange: BoundedExchange = { timedOut: false, upstream: null };
  exchanges.set(request, exchange);
  const timer = setTimeout(() => {
    if (reply.raw.writableFinished || reply.raw.destroyed) return;
    exchange.timedOut = true;
    const err = new GatewayError('ZTG_ERR_UPSTREAM_TIMEOUT', 'upstream-timeout', { detail: `no complete upstream response within ${timeoutMs} ms` });
    exchange.upstream?.destroy();
    if (!reply.raw.headersSent && !reply.sent) {
      reply.send(err);
      return;
    }
    request.zt.reasons.push(err.reason);
    request.zt.errorCode = err.code;
    reply.raw.destroy();
  }, timeoutMs);
  reply.raw.once('close', () => clearTimeout(timer));
}

export async function registerForwarders(
  app: FastifyInstance,
  routes: readonly RouteConfig[],
  assertionOf: (request: FastifyRequest) => AssertionHeaders,
  /** Step 9, response obligations (gateway/steps/obligations.ts); without it responses stream through. */
  obligations?: ResponseObligations,
): Promise<void> {
  for (const route of routes) {
    await app.register(httpProxy, {
      upstream: new URL(route.upstream).origin,
      prefix: route.pathPrefix,
      rewritePrefix: upstreamBasePath(route),
      // The pipeline has already decided; bodies pass through unparsed.
      httpMethods: [...HTTP_METHODS],
      undici: { headersTimeout: route.upstreamTimeoutMs, bodyTimeout: route.upstreamTimeoutMs },
      retryMethods: [],
      // The proxy logs each exchange at info; the decision event is the per-request record, faults still log at warn.
      logLevel: 'warn',
      // The router and the pipeline each matched a route; forward only when they agree (e.g. a Host
      // header in another case can make them differ: the policy must decide for the route served).
      preHandler: (request, reply, done) => {
        if (request.zt?.route?.id !== route.id) return done(new GatewayError('ZTG_ERR_MISDIRECTED', 'route-mismatch'));
        boundExchange(request, reply, route.upstreamTimeoutMs);
        done();
      },
      replyOptions: {
        rewriteRequestHeaders: (request) => {
          const headers = upstreamHeaders(request as FastifyRequest, route, assertionOf(request as FastifyRequest));
          return obligations ? obligations.requestHeaders(request as FastifyRequest, headers) : headers;
        },
        rewriteHeaders: (headers) => filterResponseHeaders(headers),
        onResponse: (request, reply, res) => {
          const exchange = exchanges.get(request as FastifyRequest);
          const stream = (res as unknown as { stream: import('node:stream').Readable }).stream;
          if (exchange?.timedOut) return void stream.destroy();
          if (exchange) exchange.upstream = stream;
          if (obligations) obligations.onResponse(request as FastifyRequest, reply as FastifyReply, res as never);
          else void reply.send(stream);
        },
      },
      ...(route.host ? { constraints: { host: route.host } } : {}),
    });
  }
}
