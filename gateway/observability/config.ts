import { BlockList, isIP } from 'node:net';

/**
 * The `ops`, `probes` and `tracing` sections of the gateway configuration (README "Observability").
 * gateway/config.ts embeds these schemas in its one strict schema and calls the checks below.
 */

export interface OpsConfig {
  /** The ops listener: /metrics and the probes, for Prometheus and the orchestrator, never on the data port. */
  readonly listen: { readonly host: string; readonly port: number };
  /** Agencies named in the `agency` metric label; any other is counted as "other". Default: the routes' owner agencies. */
  readonly agencyLabels?: readonly string[];
}

export interface ProbesConfig {
  /** How often readiness is checked in the background, so a change is logged even when nobody probes. */
  readonly checkIntervalMs: number;
  /** Bound on each readiness check (Redis, issuer keys). */
  readonly checkTimeoutMs: number;
  /** How long a successful check of an issuer's keys is reused (a failed one is retried at every check): spares the IdP. */
  readonly issuerKeysMaxAgeMs: number;
  /** On SIGTERM/SIGINT, how long /readyz answers 503 while requests are still served, before the listeners close. */
  readonly drainDelayMs: number;
}

export interface TracingConfig {
  /** OTLP/HTTP traces endpoint (e.g. http://otel-collector:4318/v1/traces); absent: no spans are exported. */
  readonly otlpEndpoint?: string;
  readonly serviceName: string;
  /** Share of new traces recorded (0–1); a trusted caller's sampled flag is followed. */
  readonly sampleRatio: number;
  readonly exportTimeoutMs: number;
  /** Addresses (or CIDR ranges) whose `traceparent` is continued; anyone else's is ignored. */
  readonly trustedProxies: readonly string[];
}

export interface LogConfig {
  /** Operator log level; at info (the default) one line per lifecycle change, never one per request. */
  readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export const LOG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: { level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' } },
  default: {},
} as const;

const host = { type: 'string', minLength: 1, maxLength: 2048 } as const;

export const OPS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    listen: {
      type: 'object',
      additionalProperties: false,
      properties: {
        host: { ...host, default: '127.0.0.1' },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 9464 }, // the OpenTelemetry Prometheus exporter's port
      },
      default: {},
    },
    agencyLabels: { type: 'array', maxItems: 500, uniqueItems: true, items: { type: 'string', minLength: 1, maxLength: 128 } },
  },
} as const;

export const PROBES_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    checkIntervalMs: { type: 'integer', minimum: 100, maximum: 300_000, default: 5000 },
    checkTimeoutMs: { type: 'integer', minimum: 50, maximum: 60_000, default: 2000 },
    issuerKeysMaxAgeMs: { type: 'integer', minimum: 0, maximum: 3_600_000, default: 60_000 },
    drainDelayMs: { type: 'integer', minimum: 0, maximum: 300_000, default: 5000 }, // longer than the load balancer's probe interval × failures
  },
  default: {},
} as const;

export const TRACING_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    otlpEndpoint: host,
    serviceName: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$', default: 'ztgate' },
    sampleRatio: { type: 'number', minimum: 0, maximum: 1, default: 1 },
    exportTimeoutMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 5000 },
    trustedProxies: { type: 'array', maxItems: 256, uniqueItems: true, items: { type: 'string', minLength: 1, maxLength: 64 }, default: [] },
  },
  default: {},
} as const;

/** An address list for `BlockList`: "10.0.0.0/8", "192.0.2.7", "2001:db8::/32"; null when malformed. */
function parseAddressOrRange(value: string): { address: string; prefix: number | null; family: 'ipv4' | 'ipv6' } | null {
  const [address = '', prefixText, extra] = value.split('/');
  const version = isIP(address);
  if (version === 0 || extra !== undefined) return null;
  const max = version === 4 ? 32 : 128;
  if (prefixText === undefined) return { address, prefix: null, family: version === 4 ? 'ipv4' : 'ipv6' };
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) return null;
  return { address, prefix: Number(prefixText), family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** The trusted proxies as a matcher; the configuration check has already refused malformed entries. */
export function trustedProxyList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const parsed = parseAddressOrRange(entry);
    if (!parsed) continue;
    if (parsed.prefix === null) list.addAddress(parsed.address, parsed.family);
    else list.addSubnet(parsed.address, parsed.prefix, parsed.family);
  }
  return list;
}

export function checkObservabilitySemantics(raw: Record<string, any>): string[] {
  const problems: string[] = [];
  const ops = raw.ops;
  if (ops && ops.listen.port !== 0) {
    for (const [name, listen] of [['gateway', raw.listen], ['management', raw.admin?.listen]] as const) {
      if (listen && listen.port === ops.listen.port && listen.host === ops.listen.host) {
        problems.push(`ops.listen: the ops listener must not share the ${name} address ${listen.host}:${listen.port}`);
      }
    }
  }
  const tracing = raw.tracing;
  if (tracing.otlpEndpoint !== undefined) {
    let url: URL | null = null;
    try {
      url = new URL(tracing.otlpEndpoint);
    } catch {
      problems.push(`tracing.otlpEndpoint: "${tracing.otlpEndpoint}" is not an absolute URL`);
    }
    if (url && url.protocol !== 'http:' && url.protocol !== 'https:') problems.push(`tracing.otlpEndpoint: "${tracing.otlpEndpoint}" must be an http(s) URL (OTLP/HTTP)`);
    if (url && (url.username || url.password)) problems.push('tracing.otlpEndpoint: must not embed credentials');
  }
  tracing.trustedProxies.forEach((entry: string, i: number) => {
    if (!parseAddressOrRange(entry)) problems.push(`tracing.trustedProxies[${i}]: "${entry}" is not an IP address or CIDR range (e.g. 10.0.0.5, 10.0.0.0/8, 2001:db8::/32)`);
  });
  return problems;
}
