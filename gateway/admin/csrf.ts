import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import type { Store } from '../../core/store.js';
import { ADMIN_API_PREFIX } from './api-prefix.js';
import Type from 'typebox';
import { NullableString, Reply } from './schemas.js';

/**
 * CSRF protection of the management plane (OWASP CSRF Prevention Cheat Sheet): a browser
 * holding an admin session cookie would send it with a forged cross-site request too, so
 * every state-changing request made with a session must also carry
 *  - a synchronizer token bound to that session, in the X-CSRF-Token header (a cross-site page
 *    can neither read it nor set a custom header without a CORS preflight we never grant), and
 *  - a same-origin Origin, or without one a same-origin Referer (and Sec-Fetch-Site, when the
 *    browser sends it).
 * The token is HMAC(key, session id); the key lives in the shared Store, so every instance
 * accepts the token any instance handed out, and it dies with the session.
 * Scripted calls with a bearer token carry no ambient credential and need no token.
 */

export const CSRF_HEADER = 'x-csrf-token';
const KEY = 'admin:csrf-key';
const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export interface CsrfGuard {
  tokenFor(sessionId: string): Promise<string>;
  /** Throws 403 csrf-token-invalid when a session request that changes state is not proven same-origin. */
  check(request: FastifyRequest): Promise<void>;
}

export function createCsrfGuard(store: Store): CsrfGuard {
  let key: Promise<Buffer> | null = null;
  const loadKey = () => {
    key ??= (async () => {
      await store.set(KEY, randomBytes(32).toString('base64url'), { ifAbsent: true });
      const value = await store.get(KEY);
      if (!value) throw new Error('CSRF key missing from the store');
      return Buffer.from(value, 'base64url');
    })().catch((err) => {
      key = null;
      throw err;
    });
    return key;
  };
  const tokenFor = async (sessionId: string) =>
    createHmac('sha256', await loadKey())
      .update(`csrf:${sessionId}`)
      .digest('base64url');
  const refuse = (detail: string) => new GatewayError('ZTG_ERR_FORBIDDEN', 'csrf-token-invalid', { detail: `Yêu cầu thay đổi thiếu mã chống giả mạo hợp lệ / ${detail}` });

  return {
    tokenFor,
    async check(request) {
      const sessionId = request.zt.principal?.sessionId;
      if (!sessionId || !UNSAFE.has(request.method)) return;
      // The Origin names the page that made the request (RFC 6454 §7); where a client leaves it
      // out, the Referer stands in for it (OWASP: verifying origin with standard headers). One of
      // the two must be there and name this listener: a request that proves no origin is refused.
      const origin = request.headers.origin;
      if (origin !== undefined) {
        if (hostOf(origin) !== request.headers.host) throw refuse(`Origin ${origin} is not this listener`);
      } else {
        const referer = request.headers.referer;
        if (referer === undefined) throw refuse('no Origin and no Referer');
        if (hostOf(referer) !== request.headers.host) throw refuse(`no Origin, and the Referer is another site (${hostOf(referer) ?? 'unreadable'})`);
      }
      const site = request.headers['sec-fetch-site'];
      if (site !== undefined && site !== 'same-origin') throw refuse(`Sec-Fetch-Site is ${String(site)}`);
      const sent = request.headers[CSRF_HEADER];
      if (typeof sent !== 'string' || sent === '') throw refuse('missing X-CSRF-Token');
      let expected: string;
      try {
        expected = await tokenFor(sessionId);
      } catch (err) {
        // Cannot verify: refuse, never let the change through.
        throw new GatewayError('ZTG_ERR_FORBIDDEN', 'csrf-token-invalid', { cause: err });
      }
      const a = Buffer.from(sent);
      const b = Buffer.from(expected);
      if (a.length !== b.length || !timingSafeEqual(a, b)) throw refuse('wrong X-CSRF-Token');
    },
  };
}

function hostOf(url: string): string | null {
  try {
    return new URL(url).host || null;
  } catch {
    return null;
  }
}

export function registerCsrfRoute(app: FastifyInstance, guard: CsrfGuard): void {
  app.get(
    `${ADMIN_API_PREFIX}/csrf`,
    {
      schema: {
        summary: 'Mã chống giả mạo yêu cầu / CSRF token for this session',
        description: 'The token to send as X-CSRF-Token with every change made with the session cookie; null for bearer-token callers, who need none.',
        tags: ['session'],
        response: { 200: Reply({ token: NullableString(), header: Type.String() }) },
      },
    },
    async (request, reply) => {
      const sessionId = request.zt.principal?.sessionId;
      reply.header('cache-control', 'no-store');
      return { token: sessionId ? await guard.tokenFor(sessionId) : null, header: 'X-CSRF-Token' };
    },
  );
}
