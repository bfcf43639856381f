import type { FastifyRequest } from 'fastify';
import { describe, expect, it } from 'vitest';
import { filterResponseHeaders, upstreamBasePath, upstreamHeaders } from '../../gateway/steps/forward.js';
import { inProcessConfig, inProcessIssuer } from '../helpers/in-process.js';

/** Step 9's headers alone (gateway/steps/forward.ts): what the upstream is told, and what of its answer reaches the client. */

const config = inProcessConfig(await inProcessIssuer());
const route = config.routes.find((r) => r.id === 'echo')!;

describe('forward', () => {
  it('tells the upstream only the allow-listed headers, the assertion and the request id: never the credentials', () => {
    const request = { id: 'req-1', headers: { accept: 'application/json', authorization: 'Bearer secret', cookie: 'ztgate-session=abc', 'x-purpose': 'p', 'x-custom': 'v' } } as unknown as FastifyRequest;
    const headers = upstreamHeaders(request, route, { 'x-ztgate-assertion': 'signed.jwt.here' });
    expect(headers).toEqual({ accept: 'application/json', 'x-ztgate-assertion': 'signed.jwt.here', 'x-request-id': 'req-1' });
  });

  it("puts the upstream URL's own path before the inner path", () => {
    expect(upstreamBasePath({ upstream: 'http://127.0.0.1:9/api/' })).toBe('/api');
    expect(upstreamBasePath({ upstream: 'http://127.0.0.1:9' })).toBe('');
  });

  it("keeps the gateway's cookies, CORS, decision headers and request id out of the upstream's answer", () => {
    const out = filterResponseHeaders({
      'content-type': 'application/json',
      'set-cookie': ['ztgate-session=forged; Path=/', '__Host-ztgate-csrf=x', 'app=1'],
      'access-control-allow-origin': '*',
      'x-ztgate-error': 'ZTG_ERR_NONE',
      'x-request-id': 'forged',
      server: 'upstream/1.0',
      connection: 'keep-alive, x-hop',
      'x-hop': '1',
    });
    expect(out).toEqual({ 'content-type': 'application/json', 'set-cookie': ['app=1'] });
  });
});
