import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import Type from 'typebox';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { ConfigError } from '../core/errors.js';
import { withLines } from './config-lines.js';
import { didYouMean } from '../core/suggest.js';
import { checkUrl, isLoopback } from '../core/config-checks.js';
import { APPROVAL_STATUSES, CLASSIFICATIONS, DEVICE_TIERS } from '../core/levels.js';
import { ASSURANCE_LEVELS, Id, NonEmpty, Section, SecurityLevel, type DeepReadonly, type Static } from '../core/schema.js';
import { checkBrowserClientFiles, checkDevices, checkIdentity, checkSessionKeyFile, checkIssuers, DEVICES_SCHEMA, IDENTITY_SCHEMA, normalizeIdentity, type DevicesConfig, type IdentityConfig } from '../identity/config.js';
import { checkPolicy, POLICY_SCHEMA, resolvePolicyPaths, type PolicyConfig } from '../policies/config.js';
import { ACCESS_SCHEMA, checkAccessSemantics, resolveAccessPaths } from './access/config.js';
import { AUDIT_SCHEMA, DETECTION_SCHEMA, checkAuditSemantics, resolveAuditPaths } from './audit/config.js';
import { LOG_SCHEMA, OPS_SCHEMA, PROBES_SCHEMA, TRACING_SCHEMA, checkObservabilitySemantics } from './observability/config.js';
import { checkListenerTls, TLS_SCHEMA } from './tls.js';
import { ASSERTION_SCHEMA, checkAssertionConfig, resolveAssertionPaths } from './assertion.js';
import { checkStateSemantics, STATE_SCHEMA, toStateConfig, type StateConfig } from './state-config.js';
import { checkLimits, LIMITS_SCHEMA } from './limits.js';
import { checkDatabases, DATABASES_SCHEMA } from './database/config.js';
import { checkWorkers, WORKERS_SCHEMA } from './workers.js';

/**
 * The gateway configuration: one YAML or JSON file, validated by one strict schema
 * (unknown keys refused), then by the cross-field checks a schema cannot express,
 * then frozen. Nothing is served until all of it holds. Each part owns its section and its
 * checks (identity/config.ts, policies/config.ts, gateway/audit/config.ts, …); this file
 * composes them and owns the listeners, the management plane and the routes.
 */

export { isLoopback };
export { ALLOWED_DEVICE_PROOF_ALGORITHMS, ALLOWED_TOKEN_ALGORITHMS } from '../identity/config.js';
export type { BrowserSignInConfig, DevicesConfig, IssuerConfig, PostureSignerConfig, RosterConfig, SessionConfig } from '../identity/config.js';

/** A listener: address, port and optional TLS with client certificates as a device credential (gateway/tls.ts). */
function listenSchema(defaultPort: number) {
  return Section(
    {
      host: Type.String({ minLength: 1, maxLength: 2048, default: '127.0.0.1' }),
      port: Type.Integer({ minimum: 0, maximum: 65535, default: defaultPort }),
      tls: Type.Optional(TLS_SCHEMA),
    },
    { default: {} },
  );
}

const ADMIN_SCHEMA = Section({
  listen: listenSchema(8081),
  // The device every management request must come from (DPoP proof or mTLS client certificate).
  minDeviceTier: Type.Enum(DEVICE_TIERS, { default: 'registered' }),
  roles: Type.Array(Id(), { minItems: 1, uniqueItems: true, default: ['security-admin'] }),
  // Roles allowed on the lock endpoints only (the SOC orders locks; README "For the SOC").
  socRoles: Type.Array(Id(), { uniqueItems: true, default: ['soc-analyst'] }),
  bodyLimitBytes: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024, default: 5 * 1024 * 1024 }), // 5 MiB: roster imports
  // Identity assurance of every management request (CONTEXT.md: MFA for admin access from security level 3).
  minAssuranceLevel: Type.Enum(ASSURANCE_LEVELS, { default: 2 }),
  maxAuthAgeSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 30 * 86_400 })),
  // How browsers reach the admin UI; with identity.browser, admins sign in at <publicUrl>/.ztgate/auth/callback.
  publicUrl: Type.Optional(NonEmpty()),
});

/** Who approved a service, and when; shared with the database services (gateway/database/config.ts). */
export const APPROVAL_STATUS_SCHEMA = Type.Enum(APPROVAL_STATUSES);

const ROUTE_SCHEMA = Section({
  id: Id(),
  name: Type.String({ minLength: 1, maxLength: 200 }),
  pathPrefix: Type.String({ pattern: '^(/[a-z0-9][a-z0-9._-]*)+$', maxLength: 200 }),
  host: Type.Optional(Type.String({ pattern: '^[a-z0-9.-]+(:[0-9]{1,5})?$' })),
  upstream: NonEmpty(),
  ownerAgency: Id(),
  securityLevel: SecurityLevel(),
  classification: Type.Enum(CLASSIFICATIONS),
  approval: Section({
    status: APPROVAL_STATUS_SCHEMA,
    approvedBy: Type.Optional(NonEmpty()),
    approvedAt: Type.Optional(Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}(T\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}:\\d{2}))?$' })),
    reason: Type.Optional(Type.String({ maxLength: 1000 })),
  }),
  forwardRequestHeaders: Type.Array(Type.String({ pattern: '^[a-z0-9-]+$' }), { uniqueItems: true, default: [] }),
  upstreamTimeoutMs: Type.Integer({ minimum: 100, maximum: 600_000, default: 15_000 }),
  /** Least device trust tier; when absent, devices.defaultMinTierBySecurityLevel of its level. */
  minDeviceTier: Type.Optional(Type.Enum(DEVICE_TIERS)),
  /** Refused (503 audit-unavailable) when its events cannot be written locally; default: securityLevel >= 4 when audit.chain is set. */
  auditRequired: Type.Optional(Type.Boolean()),
  /** Least identity assurance level (0 = any); below it: 401 insufficient_user_authentication (RFC 9470), or step-up sign-in for a browser. */
  minAssuranceLevel: Type.Enum(ASSURANCE_LEVELS, { default: 0 }),
  /** Longest time since the official last authenticated (auth_time); absent: no limit. */
  maxAuthAgeSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 30 * 86_400 })),
});

export const CONFIG_SCHEMA = Section({
  listen: listenSchema(8080),
  /** Processes serving the listening port (gateway/workers.ts). */
  workers: WORKERS_SCHEMA,
  publicUrl: NonEmpty(),
  limits: LIMITS_SCHEMA,
  identity: IDENTITY_SCHEMA,
  assertion: ASSERTION_SCHEMA,
  admin: Type.Optional(ADMIN_SCHEMA),
  state: STATE_SCHEMA,
  policy: POLICY_SCHEMA,
  devices: DEVICES_SCHEMA,
  audit: AUDIT_SCHEMA,
  access: ACCESS_SCHEMA,
  detection: DETECTION_SCHEMA,
  /** The ops listener (metrics, probes); absent: none. */
  ops: Type.Optional(OPS_SCHEMA),
  probes: PROBES_SCHEMA,
  tracing: TRACING_SCHEMA,
  log: LOG_SCHEMA,
  /** The PostgreSQL wire-protocol listener and its database services (gateway/database/config.ts). */
  databases: Type.Optional(DATABASES_SCHEMA),
  routes: Type.Array(ROUTE_SCHEMA),
});

/** The document as ajv leaves it: valid, defaults filled in, not yet normalized. */
type ConfigDocument = Static<typeof CONFIG_SCHEMA>;

export type RouteConfig = DeepReadonly<Static<typeof ROUTE_SCHEMA>>;

/** The configuration as the program reads it: every section parsed by its owner, then frozen. */
export type GatewayConfig = DeepReadonly<Omit<ConfigDocument, 'identity' | 'policy' | 'devices' | 'state'>> & {
  readonly identity: IdentityConfig;
  readonly policy: PolicyConfig;
  readonly devices: DevicesConfig;
  readonly state: StateConfig;
};

// verbose: errors carry their schema, so an unknown key can be matched against the known ones.
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, verbose: true });
const validate = ajv.compile(CONFIG_SCHEMA);
const isValid = (doc: unknown): doc is ConfigDocument => validate(doc);

/** Headers that carry identity or credentials: never forwarded, whatever a route says. */
export const PROTECTED_HEADERS = ['authorization', 'cookie', 'proxy-authorization', 'x-ztgate-assertion', 'x-ztgate-assertion-pq', 'x-request-id', 'forwarded', 'x-forwarded-for', 'x-forwarded-user', 'x-forwarded-email', 'x-remote-user', 'remote-user', 'x-national-id'];

/** Connection-specific or framing headers: the proxy owns them (RFC 9110 §7.6.1, RFC 9112 §6). */
const HOP_BY_HOP_HEADERS = ['host', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

/** Headers that make an upstream act on another method, path, host or client than the one decided. */
const DECISION_OVERRIDING_HEADERS = ['x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-method', 'x-original-url', 'x-rewrite-url', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-prefix', 'x-forwarded-port', 'x-real-ip', 'true-client-ip', 'x-client-ip'];

function keyPath(instancePath: string): string {
  const parts = instancePath.split('/').slice(1);
  return parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '') || '(root)';
}

function describeSchemaError(e: ErrorObject): string {
  const at = keyPath(e.instancePath);
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = (e.params as { additionalProperty: string }).additionalProperty;
      const known = Object.keys((e.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties ?? {});
      return `${at}: unknown key "${key}" / khóa không được hỗ trợ${didYouMean(key, known)}`;
    }
    case 'required':
      return `${at}: missing required key "${(e.params as { missingProperty: string }).missingProperty}" / thiếu khóa bắt buộc`;
    case 'enum':
      return `${at}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'pattern':
      return `${at}: must match ${(e.params as { pattern: string }).pattern}`;
    default:
      return `${at}: ${e.message ?? 'is invalid'}`;
  }
}

/** Cross-field rules: what the schema cannot say. */
function checkSemantics(raw: ConfigDocument): string[] {
  const problems: string[] = [];
  checkUrl(problems, 'publicUrl', raw.publicUrl, { requireHttpsUnlessLoopback: false });
  if (raw.admin?.publicUrl) checkUrl(problems, 'admin.publicUrl', raw.admin.publicUrl, { requireHttpsUnlessLoopback: true });

  checkIssuers(problems, raw.identity);

  if (raw.admin && raw.admin.listen.port !== 0 && raw.admin.listen.port === raw.listen.port && raw.admin.listen.host === raw.listen.host) {
    problems.push(`admin.listen: the management listener must not share the data-plane address ${raw.listen.host}:${raw.listen.port}`);
  }
  checkDevices(problems, raw.devices);
  checkIdentity(problems, raw.identity, raw.publicUrl);
  problems.push(...checkAssertionConfig(raw.assertion));
  problems.push(...checkPolicy(raw.policy, raw.state.backend));

  const ids = new Set<string>();
  const prefixes = new Map<string, string>();
  raw.routes.forEach((route, i) => {
    const at = `routes[${i}]`;
    if (ids.has(route.id)) problems.push(`${at}.id: "${route.id}" is used by another route`);
    ids.add(route.id);
    const key = `${route.host ?? '*'} ${route.pathPrefix}`;
    const other = prefixes.get(key);
    if (other) problems.push(`${at}.pathPrefix: "${route.pathPrefix}" is already served by route "${other}"`);
    prefixes.set(key, route.id);
    const upstream = checkUrl(problems, `${at}.upstream`, route.upstream, { requireHttpsUnlessLoopback: false });
    // URL.port is '' for the scheme's default port; a wildcard listener also answers on loopback.
    const upstreamPort = upstream && (upstream.port || (upstream.protocol === 'https:' ? '443' : '80'));
    for (const [name, listen] of [
      ['gateway', raw.listen],
      ['management', raw.admin?.listen],
    ] as const) {
      if (!upstream || !listen) continue;
      const listensOnLoopback = isLoopback(listen.host) || ['0.0.0.0', '::', '[::]'].includes(listen.host);
      if (upstreamPort === String(listen.port) && (upstream.hostname === listen.host || (isLoopback(upstream.hostname) && listensOnLoopback))) {
        problems.push(`${at}.upstream: points back at the ${name} listener (${listen.host}:${listen.port})`);
      }
    }
    if (route.approval.status === 'approved' && (!route.approval.approvedBy || !route.approval.approvedAt)) {
      problems.push(`${at}.approval: an approved service must record approvedBy and approvedAt (who approved it, and when)`);
    }
    if (route.approval.approvedAt && Number.isNaN(Date.parse(route.approval.approvedAt))) {
      problems.push(`${at}.approval.approvedAt: "${route.approval.approvedAt}" is not a real date (YYYY-MM-DD or an ISO 8601 time)`);
    }
    route.forwardRequestHeaders.forEach((h, j) => {
      if (PROTECTED_HEADERS.includes(h) || h.startsWith('x-ztgate-')) {
        problems.push(`${at}.forwardRequestHeaders[${j}]: "${h}" carries identity or credentials and is never forwarded`);
      } else if (DECISION_OVERRIDING_HEADERS.includes(h)) {
        problems.push(`${at}.forwardRequestHeaders[${j}]: "${h}" would let the client change the method, path, host or address the upstream acts on after the decision`);
      } else if (HOP_BY_HOP_HEADERS.includes(h)) {
        problems.push(`${at}.forwardRequestHeaders[${j}]: "${h}" is a hop-by-hop or framing header (RFC 9110 §7.6.1); the proxy sets it itself`);
      }
    });
  });
  return problems;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Validates an already-parsed document; `baseDir` resolves relative file paths in it. */
export function parseConfig(doc: unknown, source: string, baseDir: string): GatewayConfig {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError(source, ['(root): must be a mapping of keys to values']);
  }
  const raw = structuredClone(doc);
  if (!isValid(raw)) {
    throw new ConfigError(source, (validate.errors ?? []).map(describeSchemaError));
  }
  const problems = [
    ...checkSemantics(raw),
    ...checkStateSemantics(raw),
    ...checkLimits(raw),
    ...checkWorkers(raw),
    ...checkAuditSemantics(raw),
    ...checkAccessSemantics(raw),
    ...checkObservabilitySemantics(raw),
    ...checkListenerTls(raw, baseDir),
    ...checkSessionKeyFile(raw.identity, baseDir),
    ...checkDatabases(raw, baseDir),
    ...checkBrowserClientFiles(raw.identity, baseDir),
  ];
  if (problems.length > 0) throw new ConfigError(source, problems);

  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  resolveAuditPaths(raw, abs);
  const config: GatewayConfig = {
    ...raw,
    publicUrl: raw.publicUrl.replace(/\/+$/, ''),
    identity: normalizeIdentity(raw.identity, abs),
    assertion: resolveAssertionPaths(raw.assertion, abs),
    ...(raw.admin ? { admin: raw.admin.publicUrl ? { ...raw.admin, publicUrl: raw.admin.publicUrl.replace(/\/+$/, '') } : raw.admin } : {}),
    state: toStateConfig(raw.state),
    policy: resolvePolicyPaths(raw.policy, abs),
    access: resolveAccessPaths(raw.access, abs),
  };
  return deepFreeze(config);
}

export function loadConfigFile(path: string): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read the file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`]);
  }
  let doc: unknown;
  try {
    doc = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text, { strict: true, uniqueKeys: true });
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? `line ${err.linePos[0].line}` : 'syntax';
    throw new ConfigError(path, [`${where}: ${(err as Error).message.split('\n')[0]}`]);
  }
  try {
    return parseConfig(doc, path, dirname(resolve(path)));
  } catch (err) {
    if (err instanceof ConfigError && !path.endsWith('.json')) throw new ConfigError(path, withLines(text, err.problems));
    throw err;
  }
}
