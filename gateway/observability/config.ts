import { BlockList, isIP } from 'node:net';
import Type from 'typebox';
import { NonEmpty, Section, type DeepReadonly, type Static } from '../../core/schema.js';

/**
 * The `ops`, `probes` and `tracing` sections of the gateway configuration (README "Observability").
 * gateway/config.ts embeds these schemas in its one strict schema and calls the checks below.
 */

export const LOG_SCHEMA = Section(
  {
    /** Operator log level; at info (the default) one line per lifecycle change, never one per request. */
    level: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info' }),
  },
  { default: {} },
);

export const OPS_SCHEMA = Section({
  /** The ops listener: /metrics and the probes, for Prometheus and the orchestrator, never on the data port. */
  listen: Section(
    {
      host: Type.String({ minLength: 1, maxLength: 2048, default: '127.0.0.1' }),
      port: Type.Integer({ minimum: 0, maximum: 65535, default: 9464 }), // the OpenTelemetry Prometheus exporter's port
    },
    { default: {} },
  ),
  /** Agencies named in the `agency` metric label; any other is counted as "other". Default: the routes' owner agencies. */
  agencyLabels: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 500, uniqueItems: true })),
});

export const PROBES_SCHEMA = Section(
  {
    /** How often readiness is checked in the background, so a change is logged even when nobody probes. */
    checkIntervalMs: Type.Integer({ minimum: 100, maximum: 300_000, default: 5000 }),
    /** Bound on each readiness check (Redis, issuer keys). */
    checkTimeoutMs: Type.Integer({ minimum: 50, maximum: 60_000, default: 2000 }),
    /** How long a successful check of an issuer's keys is reused (a failed one is retried at every check): spares the IdP. */
    issuerKeysMaxAgeMs: Type.Integer({ minimum: 0, maximum: 3_600_000, default: 60_000 }),
    /** On SIGTERM/SIGINT, how long /readyz answers 503 while requests are still served, before the listeners close. */
    drainDelayMs: Type.Integer({ minimum: 0, maximum: 300_000, default: 5000 }), // longer than the load balancer's probe interval × failures
  },
  { default: {} },
);

export const TRACING_SCHEMA = Section(
  {
    /** OTLP/HTTP traces endpoint (e.g. http://otel-collector:4318/v1/traces); absent: no spans are exported. */
    otlpEndpoint: Type.Optional(NonEmpty()),
    serviceName: Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$', default: 'ztgate' }),
    /** Share of new traces recorded (0–1); a trusted caller's sampled flag is followed. */
    sampleRatio: Type.Number({ minimum: 0, maximum: 1, default: 1 }),
    exportTimeoutMs: Type.Integer({ minimum: 100, maximum: 60_000, default: 5000 }),
    /** Addresses (or CIDR ranges) whose `traceparent` is continued; anyone else's is ignored. */
    trustedProxies: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 256, uniqueItems: true, default: [] }),
  },
  { default: {} },
);

export type LogConfig = DeepReadonly<Static<typeof LOG_SCHEMA>>;
export type OpsConfig = DeepReadonly<Static<typeof OPS_SCHEMA>>;
export type ProbesConfig = DeepReadonly<Static<typeof PROBES_SCHEMA>>;
export type TracingConfig = DeepReadonly<Static<typeof TRACING_SCHEMA>>;

type Listen = { readonly host: string; readonly port: number };

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

export function checkObservabilitySemantics(raw: { readonly ops?: OpsConfig; readonly tracing: TracingConfig; readonly listen: Listen; readonly admin?: { readonly listen: Listen } }): string[] {
  const problems: string[] = [];
  const ops = raw.ops;
  if (ops && ops.listen.port !== 0) {
    for (const [name, listen] of [
      ['gateway', raw.listen],
      ['management', raw.admin?.listen],
    ] as const) {
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
  tracing.trustedProxies.forEach((entry, i) => {
    if (!parseAddressOrRange(entry)) problems.push(`tracing.trustedProxies[${i}]: "${entry}" is not an IP address or CIDR range (e.g. 10.0.0.5, 10.0.0.0/8, 2001:db8::/32)`);
  });
  return problems;
}
