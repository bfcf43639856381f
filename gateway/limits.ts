import type { ServerOptions } from 'node:http';
import Type from 'typebox';
import { Section, type DeepReadonly, type Static } from '../core/schema.js';

/**
 * The `limits` section: what one client may hold of a listener. Every timeout bounds a whole
 * phase: the request (`requestTimeoutMs`: headers and body), its headers alone (`headersTimeoutMs`,
 * which also ends a connection that never sends a request), an idle keep-alive connection
 * between requests (`idleTimeoutMs`); `maxConnections` caps open connections per listener, so
 * idle or slow clients cannot take all the process's sockets and memory.
 */
export const LIMITS_SCHEMA = Section(
  {
    bodyLimitBytes: Type.Integer({ minimum: 0, maximum: 1024 * 1024 * 1024, default: 1024 * 1024 }), // 1 MiB
    requestTimeoutMs: Type.Integer({ minimum: 1000, maximum: 600_000, default: 30_000 }),
    headersTimeoutMs: Type.Integer({ minimum: 1000, maximum: 120_000, default: 10_000 }),
    idleTimeoutMs: Type.Integer({ minimum: 1000, maximum: 600_000, default: 5_000 }),
    maxConnections: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 4096 }),
  },
  { default: {} },
);

export type LimitsConfig = DeepReadonly<Static<typeof LIMITS_SCHEMA>>;

export function checkLimits(raw: { readonly limits: LimitsConfig }): string[] {
  const limits = raw.limits;
  return limits.headersTimeoutMs > limits.requestTimeoutMs ? ['limits.headersTimeoutMs: must not exceed limits.requestTimeoutMs (the headers are part of the request)'] : [];
}

/**
 * Node checks header and request timeouts on a timer (30 s by default), so a slow client could
 * hold its connection up to that much longer than configured: check often enough that the
 * configured bound is the bound.
 */
export function listenerTimeouts(limits: LimitsConfig): Pick<ServerOptions, 'headersTimeout' | 'requestTimeout' | 'connectionsCheckingInterval' | 'keepAliveTimeout'> {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.idleTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, Math.floor(limits.headersTimeoutMs / 4)),
  };
}
