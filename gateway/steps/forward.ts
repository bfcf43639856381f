import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import httpProxy from '@fastify/http-proxy';
import type { RouteConfig } from '../config.js';
import { ASSERTION_HEADER } from '../assertion.js';

/**
 * Step 8, forward: only the headers an upstream needs, plus the gateway's signed assertion
 * and the request id. Credentials (Authorization, cookies) stay at the gateway: the upstream
 * learns who the official is from the assertion alone.
 */
const FORWARDED_BY_DEFAULT = [
  'accept', 'accept-encoding', 'accept-language', 'cache-control', 'content-encoding', 'content-length', 'content-type',
  'if-match', 'if-modified-since', 'if-none-match', 'if-unmodified-since', 'pragma', 'range', 'user-agent',
];

export function upstreamHeaders(request: FastifyRequest, route: RouteConfig, assertion: string): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const name of [...FORWARDED_BY_DEFAULT, ...route.forwardRequestHeaders]) {
    const value = request.headers[name];
    if (value !== undefined) out[name] = value;
  }
  out[ASSERTION_HEADER] = assertion;
  out['x-request-id'] = request.id;
  return out;
}

export interface ResponseObligations {
  requestHeaders(request: FastifyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders;
  onResponse(request: FastifyRequest, reply: FastifyReply, res: { statusCode: number; headers: IncomingHttpHeaders; stream: import('node:stream').Readable }): void;
}

export async function registerForwarders(
  app: FastifyInstance,
  routes: readonly RouteConfig[],
  assertionOf: (request: FastifyRequest) => string,
  /** Step 9, response obligations (gateway/steps/obligations.ts); without it responses stream through. */
  obligations?: ResponseObligations,
): Promise<void> {
  for (const route of routes) {
    const upstream = new URL(route.upstream);
    await app.register(httpProxy, {
      upstream: upstream.origin,
      prefix: route.pathPrefix,
      rewritePrefix: upstream.pathname.replace(/\/$/, ''),
      // The pipeline has already decided; bodies pass through unparsed.
      httpMethods: ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS'],
      undici: { headersTimeout: route.upstreamTimeoutMs, bodyTimeout: route.upstreamTimeoutMs },
      retryMethods: [],
      replyOptions: {
        rewriteRequestHeaders: (request) => {
          const headers = upstreamHeaders(request as FastifyRequest, route, assertionOf(request as FastifyRequest));
          return obligations ? obligations.requestHeaders(request as FastifyRequest, headers) : headers;
        },
        ...(obligations ? { onResponse: (request, reply, res) => obligations.onResponse(request as FastifyRequest, reply as FastifyReply, res as never) } : {}),
      },
      ...(route.host ? { constraints: { host: route.host } } : {}),
    });
  }
}
