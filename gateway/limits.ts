import type { ServerOptions } from 'node:http';

/**
 * The `limits` section: what one client may hold of a listener. Every timeout bounds a whole
 * phase: the request (`requestTimeoutMs`: headers and body), its headers alone (`headersTimeoutMs`,
 * which also ends a connection that never sends a request), an idle keep-alive connection
 * between requests (`idleTimeoutMs`); `maxConnections` caps open connections per listener, so
 * idle or slow clients cannot take all the process's sockets and memory.
 */
export interface LimitsConfig {
  readonly bodyLimitBytes: number;
  readonly requestTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxConnections: number;
}

export const LIMITS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    bodyLimitBytes: { type: 'integer', minimum: 0, maximum: 1024 * 1024 * 1024, default: 1024 * 1024 }, // 1 MiB
    requestTimeoutMs: { type: 'integer', minimum: 1000, maximum: 600_000, default: 30_000 },
    headersTimeoutMs: { type: 'integer', minimum: 1000, maximum: 120_000, default: 10_000 },
    idleTimeoutMs: { type: 'integer', minimum: 1000, maximum: 600_000, default: 5_000 },
    maxConnections: { type: 'integer', minimum: 1, maximum: 1_000_000, default: 4096 },
  },
  default: {},
} as const;

export function checkLimits(raw: Record<string, any>): string[] {
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
