import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { ConfigError } from '../core/errors.js';
import { withLines } from './config-lines.js';
import { didYouMean } from '../core/suggest.js';
import { APPROVAL_STATUSES, CLASSIFICATIONS, DEVICE_TIERS, type ApprovalStatus, type Classification, type DeviceTier } from '../core/levels.js';
import { CLAIMS_PRESETS, CLAIMS_PRESET_NAMES, type ClaimsPresetName } from '../identity/claim-presets.js';
import { ACCESS_SCHEMA, checkAccessSemantics, resolveAccessPaths, type AccessConfig } from './access/config.js';
import { AUDIT_SCHEMA, DETECTION_SCHEMA, checkAuditSemantics, resolveAuditPaths, type AuditConfig, type DetectionConfig } from './audit/config.js';
import { LOG_SCHEMA, OPS_SCHEMA, PROBES_SCHEMA, TRACING_SCHEMA, checkObservabilitySemantics, type LogConfig, type OpsConfig, type ProbesConfig, type TracingConfig } from './observability/config.js';

/**
 * The gateway configuration: one YAML or JSON file, validated by one strict schema
 * (unknown keys refused), then by the cross-field checks a schema cannot express,
 * then frozen. Nothing is served until all of it holds.
 */

/** Only asymmetric algorithms: a JWKS is public, so HS* would let anyone with the key sign. */
export const ALLOWED_TOKEN_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512', 'EdDSA'] as const;

import { checkListenerTls, TLS_SCHEMA, type ListenerTlsConfig } from './tls.js';
import { ASSERTION_SCHEMA, checkAssertionConfig, type AssertionConfig } from './assertion.js';
import { sessionKeyFileProblem } from '../identity/session-crypto.js';
import { checkStateSemantics, STATE_SCHEMA, toStateConfig, type StateConfig } from './state-config.js';
import { checkLimits, LIMITS_SCHEMA, type LimitsConfig } from './limits.js';
import { checkDatabases, DATABASES_SCHEMA, type DatabasesConfig } from './database/config.js';
import { BROWSER_CLIENT_AUTH_PROPERTIES, checkBrowserClientAuth, ISSUER_ASSURANCE_PROPERTIES, type BrowserClientAuthConfig, type IssuerAssuranceConfig } from './identity-config.js';
import { checkWorkers, WORKERS_SCHEMA, type WorkersSetting } from './workers.js';

/** Algorithms a device key may sign DPoP proofs with: no RSA keys on devices, no symmetric keys. */
export const ALLOWED_DEVICE_PROOF_ALGORITHMS = ['ES256', 'EdDSA'] as const;

export interface PostureSignerConfig {
  /** Exact `iss` of the posture reports this endpoint-management / EDR signer issues. */
  readonly issuer: string;
  readonly jwks?: { readonly keys: readonly Record<string, unknown>[] };
  readonly jwksUri?: string;
  readonly algorithms: readonly string[];
}

export interface DevicesConfig {
  readonly proofAlgorithms: readonly string[];
  readonly proofMaxAgeSeconds: number;
  readonly clockSkewSeconds: number;
  readonly postureMaxAgeSeconds: number;
  readonly postureSigners: readonly PostureSignerConfig[];
  readonly compliance: {
    readonly maxPatchAgeDays: number;
    readonly maxScanAgeDays: number;
    readonly maxRiskScore: number;
    readonly requireDiskEncryption: boolean;
    readonly requireScreenLock: boolean;
    readonly requireEdrRunning: boolean;
  };
  readonly defaultMinTierBySecurityLevel: Readonly<Record<'1' | '2' | '3' | '4' | '5', DeviceTier>>;
}

export interface RouteConfig {
  readonly id: string;
  readonly name: string;
  readonly pathPrefix: string;
  readonly host?: string;
  readonly upstream: string;
  readonly ownerAgency: string;
  readonly securityLevel: 1 | 2 | 3 | 4 | 5;
  readonly classification: Classification;
  readonly approval: {
    readonly status: ApprovalStatus;
    readonly approvedBy?: string;
    readonly approvedAt?: string;
    readonly reason?: string;
  };
  readonly forwardRequestHeaders: readonly string[];
  readonly upstreamTimeoutMs: number;
  /** Least device trust tier; when absent, devices.defaultMinTierBySecurityLevel of its level. */
  readonly minDeviceTier?: DeviceTier;
  /** Refused (503 audit-unavailable) when its events cannot be written locally; default: securityLevel >= 4 when audit.chain is set. */
  readonly auditRequired?: boolean;
  /** Least identity assurance level (0 = any); below it: 401 insufficient_user_authentication (RFC 9470), or step-up sign-in for a browser. */
  readonly minAssuranceLevel: 0 | 1 | 2;
  /** Longest time since the official last authenticated (auth_time); absent: no limit. */
  readonly maxAuthAgeSeconds?: number;
}

export interface IssuerConfig extends Partial<IssuerAssuranceConfig> {
  readonly issuer: string;
  readonly audience: readonly string[];
  readonly algorithms: readonly string[];
  readonly jwksUri?: string;
  readonly tokenTypes: readonly string[];
  readonly claims: { readonly nationalId: string; readonly agency: string; readonly roles: string; readonly acr: string; readonly assuranceLevel?: string };
  /** Claim-name preset (identity/claim-presets.ts); `claims` keys override it. Always set by parseConfig. */
  readonly claimsPreset?: ClaimsPresetName;
  /** acr / amr / level-claim values → assurance level 0–2; unknown values are 0. Always set by parseConfig. */
  readonly assurance?: Readonly<Record<string, 0 | 1 | 2>>;
  /** RFC 7662 introspection for opaque (non-JWT) access tokens. */
  readonly introspection?: { readonly endpoint: string; readonly clientId: string; readonly clientSecret: string; readonly cacheMaxAgeSeconds: number };
}

/** Browser sign-in (OIDC authorization code flow with PKCE); the redirect URI is `<publicUrl>/.ztgate/auth/callback`. */
export interface BrowserSignInConfig extends BrowserClientAuthConfig {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly scopes: readonly string[];
  readonly resource?: string;
  readonly loginTimeoutSeconds: number;
  /** The one algorithm accepted on ID tokens and logout tokens. */
  readonly idTokenSigningAlgorithm: string;
}

export interface SessionConfig {
  readonly absoluteLifetimeSeconds: number;
  readonly idleTimeoutSeconds: number;
  readonly refreshLockTtlMs: number;
  /** 32 random bytes (hex or base64) that encrypt the tokens in session records; absent: derived from identity.browser.clientSecret. */
  readonly encryptionKeyFile?: string;
}

export interface RosterConfig {
  readonly source: 'none' | 'file' | 'store';
  readonly file?: string;
}

export interface GatewayConfig {
  readonly listen: { readonly host: string; readonly port: number; readonly tls?: ListenerTlsConfig };
  /** Processes serving the listening port (gateway/workers.ts). */
  readonly workers: WorkersSetting;
  readonly publicUrl: string;
  readonly limits: LimitsConfig;
  readonly identity: {
    readonly clockSkewSeconds: number;
    readonly jwksCacheMaxAgeMs: number;
    readonly jwksCooldownMs: number;
    readonly jwksTimeoutMs: number;
    readonly issuers: readonly IssuerConfig[];
    readonly browser?: BrowserSignInConfig;
    readonly session: SessionConfig;
    readonly roster: RosterConfig;
  };
  readonly assertion: AssertionConfig;
  readonly admin?: { readonly listen: { readonly host: string; readonly port: number; readonly tls?: ListenerTlsConfig }; readonly minDeviceTier: DeviceTier; readonly roles: readonly string[]; readonly bodyLimitBytes: number; readonly socRoles: readonly string[]; readonly publicUrl?: string; readonly minAssuranceLevel: 0 | 1 | 2; readonly maxAuthAgeSeconds?: number };
  readonly state: StateConfig;
  readonly policy: {
    readonly model: string;
    readonly policy: string;
    /** Attribute conditions and obligations (policies/conditions.ts), versioned with the policy. */
    readonly conditions?: string;
    /** Folder for policy versions when state is in memory (the demo); with Redis they live there. */
    readonly versionsDir?: string;
    readonly syncIntervalMs: number;
    readonly whatIfRecentDecisions: number;
    readonly decisionCacheEntries: number;
    readonly responseBufferLimitBytes: number;
  };
  readonly routes: readonly RouteConfig[];
  /** The PostgreSQL wire-protocol listener and its database services (gateway/database/config.ts). */
  readonly databases?: DatabasesConfig;
  readonly devices: DevicesConfig;
  readonly audit: AuditConfig;
  readonly detection: DetectionConfig;
  /** The ops listener (metrics, probes); absent: none. */
  readonly ops?: OpsConfig;
  readonly probes: ProbesConfig;
  readonly tracing: TracingConfig;
  readonly log: LogConfig;
  readonly access: AccessConfig;
}

const id = { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' };
const nonEmpty = { type: 'string', minLength: 1, maxLength: 2048 };

/** A listener: address, port and optional TLS with client certificates as a device credential (gateway/tls.ts). */
function listenSchema(defaultPort: number) {
  return {
    type: 'object',
    additionalProperties: false,
    properties: {
      host: { ...nonEmpty, default: '127.0.0.1' },
      port: { type: 'integer', minimum: 0, maximum: 65535, default: defaultPort },
      tls: TLS_SCHEMA,
    },
    default: {},
  } as const;
}

export const CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['publicUrl', 'identity', 'policy', 'routes'],
  properties: {
    listen: listenSchema(8080),
    workers: WORKERS_SCHEMA,
    publicUrl: nonEmpty,
    limits: LIMITS_SCHEMA,
    identity: {
      type: 'object',
      additionalProperties: false,
      required: ['issuers'],
      properties: {
        clockSkewSeconds: { type: 'integer', minimum: 0, maximum: 300, default: 30 },
        jwksCacheMaxAgeMs: { type: 'integer', minimum: 1000, default: 10 * 60_000 },
        jwksCooldownMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 1000 },
        jwksTimeoutMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 5_000 },
        issuers: {
          type: 'array',
          minItems: 1,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['issuer', 'audience'],
            properties: {
              issuer: nonEmpty,
              audience: { anyOf: [nonEmpty, { type: 'array', minItems: 1, items: nonEmpty }] },
              algorithms: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string' }, default: ['ES256', 'RS256'] },
              jwksUri: nonEmpty,
              tokenTypes: { type: 'array', minItems: 1, uniqueItems: true, items: nonEmpty, default: ['at+jwt'] },
              claimsPreset: { enum: CLAIMS_PRESET_NAMES, default: 'ztgate-demo' },
              // No defaults here: what is not set comes from the preset (parseConfig).
              claims: {
                type: 'object',
                additionalProperties: false,
                properties: {
                  nationalId: nonEmpty,
                  agency: nonEmpty,
                  roles: nonEmpty,
                  acr: nonEmpty,
                  assuranceLevel: { type: 'string', maxLength: 256 }, // '' = the issuer has no level claim
                },
                default: {},
              },
              assurance: {
                type: 'object',
                propertyNames: { minLength: 1, maxLength: 256 },
                additionalProperties: { enum: [0, 1, 2] },
              },
              ...ISSUER_ASSURANCE_PROPERTIES,
              introspection: {
                type: 'object',
                additionalProperties: false,
                required: ['endpoint', 'clientId', 'clientSecret'],
                properties: {
                  endpoint: nonEmpty,
                  clientId: nonEmpty,
                  clientSecret: nonEmpty,
                  cacheMaxAgeSeconds: { type: 'integer', minimum: 0, maximum: 3600, default: 60 },
                },
              },
            },
          },
        },
        browser: {
          type: 'object',
          additionalProperties: false,
          required: ['issuer', 'clientId', 'clientSecret'],
          properties: {
            issuer: nonEmpty,
            clientId: nonEmpty,
            clientSecret: nonEmpty,
            scopes: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', pattern: '^[A-Za-z0-9_.:/-]{1,128}$' }, default: ['openid', 'profile'] },
            resource: nonEmpty,
            loginTimeoutSeconds: { type: 'integer', minimum: 60, maximum: 3600, default: 600 }, // 10 min to complete sign-in
            idTokenSigningAlgorithm: { enum: ALLOWED_TOKEN_ALGORITHMS, default: 'RS256' }, // the OIDC default
            ...BROWSER_CLIENT_AUTH_PROPERTIES,
          },
        },
        session: {
          type: 'object',
          additionalProperties: false,
          properties: {
            absoluteLifetimeSeconds: { type: 'integer', minimum: 300, maximum: 7 * 86_400, default: 8 * 3600 }, // one working day
            idleTimeoutSeconds: { type: 'integer', minimum: 60, maximum: 86_400, default: 30 * 60 },
            refreshLockTtlMs: { type: 'integer', minimum: 1000, maximum: 60_000, default: 10_000 },
            encryptionKeyFile: nonEmpty,
          },
          default: {},
        },
        roster: {
          type: 'object',
          additionalProperties: false,
          properties: {
            source: { enum: ['none', 'file', 'store'], default: 'none' },
            file: nonEmpty,
          },
          default: {},
        },
      },
    },
    assertion: ASSERTION_SCHEMA,
    admin: {
      type: 'object',
      additionalProperties: false,
      properties: {
        listen: listenSchema(8081),
        // The device every management request must come from (DPoP proof or mTLS client certificate).
        minDeviceTier: { enum: DEVICE_TIERS, default: 'registered' },
        roles: { type: 'array', minItems: 1, uniqueItems: true, items: id, default: ['security-admin'] },
        // Roles allowed on the lock endpoints only (the SOC orders locks; README "For the SOC").
        socRoles: { type: 'array', uniqueItems: true, items: id, default: ['soc-analyst'] },
        bodyLimitBytes: { type: 'integer', minimum: 1024, maximum: 64 * 1024 * 1024, default: 5 * 1024 * 1024 }, // 5 MiB: roster imports
        // Identity assurance of every management request (CONTEXT.md: MFA for admin access from security level 3).
        minAssuranceLevel: { enum: [0, 1, 2], default: 2 },
        maxAuthAgeSeconds: { type: 'integer', minimum: 60, maximum: 30 * 86_400 },
        // How browsers reach the admin UI; with identity.browser, admins sign in at <publicUrl>/.ztgate/auth/callback.
        publicUrl: nonEmpty,
      },
    },
    state: STATE_SCHEMA,
    policy: {
      type: 'object',
      additionalProperties: false,
      required: ['model', 'policy'],
      properties: {
        model: nonEmpty,
        policy: nonEmpty,
        conditions: nonEmpty,
        versionsDir: nonEmpty,
        syncIntervalMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 1000 },
        whatIfRecentDecisions: { type: 'integer', minimum: 1, maximum: 10_000, default: 1000 },
        decisionCacheEntries: { type: 'integer', minimum: 0, maximum: 10_000_000, default: 10_000 },
        responseBufferLimitBytes: { type: 'integer', minimum: 1024, maximum: 256 * 1024 * 1024, default: 8 * 1024 * 1024 }, // 8 MiB
      },
    },
    devices: {
      type: 'object',
      additionalProperties: false,
      properties: {
        proofAlgorithms: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ALLOWED_DEVICE_PROOF_ALGORITHMS }, default: [...ALLOWED_DEVICE_PROOF_ALGORITHMS] },
        proofMaxAgeSeconds: { type: 'integer', minimum: 5, maximum: 600, default: 60 },
        clockSkewSeconds: { type: 'integer', minimum: 0, maximum: 300, default: 10 },
        postureMaxAgeSeconds: { type: 'integer', minimum: 60, maximum: 7 * 86_400, default: 4 * 3600 },
        postureSigners: {
          type: 'array',
          default: [],
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['issuer'],
            properties: {
              issuer: nonEmpty,
              jwks: {
                type: 'object',
                additionalProperties: false,
                required: ['keys'],
                properties: { keys: { type: 'array', minItems: 1, items: { type: 'object', required: ['kty'], properties: { kty: { type: 'string' } } } } },
              },
              jwksUri: nonEmpty,
              algorithms: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string' }, default: ['ES256'] },
            },
          },
        },
        compliance: {
          type: 'object',
          additionalProperties: false,
          properties: {
            maxPatchAgeDays: { type: 'integer', minimum: 0, maximum: 365, default: 30 },
            maxScanAgeDays: { type: 'integer', minimum: 0, maximum: 365, default: 7 },
            maxRiskScore: { type: 'integer', minimum: 0, maximum: 100, default: 40 },
            requireDiskEncryption: { type: 'boolean', default: true },
            requireScreenLock: { type: 'boolean', default: true },
            requireEdrRunning: { type: 'boolean', default: true },
          },
          default: {},
        },
        defaultMinTierBySecurityLevel: {
          type: 'object',
          additionalProperties: false,
          properties: {
            '1': { enum: DEVICE_TIERS, default: 'unknown' },
            '2': { enum: DEVICE_TIERS, default: 'unknown' },
            '3': { enum: DEVICE_TIERS, default: 'registered' },
            '4': { enum: DEVICE_TIERS, default: 'compliant' },
            '5': { enum: DEVICE_TIERS, default: 'compliant' },
          },
          default: {},
        },
      },
      default: {},
    },
    audit: AUDIT_SCHEMA,
    access: ACCESS_SCHEMA,
    detection: DETECTION_SCHEMA,
    ops: OPS_SCHEMA,
    probes: PROBES_SCHEMA,
    tracing: TRACING_SCHEMA,
    log: LOG_SCHEMA,
    databases: DATABASES_SCHEMA,
    routes: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'name', 'pathPrefix', 'upstream', 'ownerAgency', 'securityLevel', 'classification', 'approval'],
        properties: {
          id,
          name: { type: 'string', minLength: 1, maxLength: 200 },
          pathPrefix: { type: 'string', pattern: '^(/[a-z0-9][a-z0-9._-]*)+$', maxLength: 200 },
          host: { type: 'string', pattern: '^[a-z0-9.-]+(:[0-9]{1,5})?$' },
          upstream: nonEmpty,
          ownerAgency: id,
          securityLevel: { type: 'integer', minimum: 1, maximum: 5 },
          classification: { enum: CLASSIFICATIONS },
          approval: {
            type: 'object',
            additionalProperties: false,
            required: ['status'],
            properties: {
              status: { enum: APPROVAL_STATUSES },
              approvedBy: nonEmpty,
              approvedAt: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}(T\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}:\\d{2}))?$' },
              reason: { type: 'string', maxLength: 1000 },
            },
          },
          forwardRequestHeaders: {
            type: 'array',
            uniqueItems: true,
            items: { type: 'string', pattern: '^[a-z0-9-]+$' },
            default: [],
          },
          upstreamTimeoutMs: { type: 'integer', minimum: 100, maximum: 600_000, default: 15_000 },
          minDeviceTier: { enum: DEVICE_TIERS },
          auditRequired: { type: 'boolean' },
          minAssuranceLevel: { enum: [0, 1, 2], default: 0 },
          maxAuthAgeSeconds: { type: 'integer', minimum: 60, maximum: 30 * 86_400 },
        },
      },
    },
  },
} as const;

// verbose: errors carry their schema, so an unknown key can be matched against the known ones.
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, verbose: true });
const validate = ajv.compile(CONFIG_SCHEMA);
const isValid = (doc: unknown): boolean => validate(doc);

/** Headers that carry identity or credentials: never forwarded, whatever a route says. */
export const PROTECTED_HEADERS = ['authorization', 'cookie', 'proxy-authorization', 'x-ztgate-assertion', 'x-ztgate-assertion-pq', 'x-request-id', 'forwarded', 'x-forwarded-for', 'x-forwarded-user', 'x-forwarded-email', 'x-remote-user', 'remote-user', 'x-national-id'];

/** Connection-specific or framing headers: the proxy owns them (RFC 9110 §7.6.1, RFC 9112 §6). */
const HOP_BY_HOP_HEADERS = ['host', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

/** Headers that make an upstream act on another method, path, host or client than the one decided. */
const DECISION_OVERRIDING_HEADERS = [
  'x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-method', 'x-original-url', 'x-rewrite-url',
  'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-prefix', 'x-forwarded-port', 'x-real-ip', 'true-client-ip', 'x-client-ip',
];

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

export function isLoopback(hostname: string): boolean {
  return hostname === '127.0.0.1' || hostname === 'localhost' || hostname === '[::1]' || hostname === '::1';
}

function checkUrl(problems: string[], at: string, value: string, opts: { requireHttpsUnlessLoopback: boolean }): URL | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    problems.push(`${at}: "${value}" is not an absolute URL`);
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    problems.push(`${at}: "${value}" must be an http(s) URL`);
    return undefined;
  }
  if (url.username || url.password) problems.push(`${at}: must not embed credentials`);
  if (url.search || url.hash) problems.push(`${at}: must not carry a query or fragment`);
  if (opts.requireHttpsUnlessLoopback && url.protocol === 'http:' && !isLoopback(url.hostname)) {
    problems.push(`${at}: "${value}" must use https (plain http is accepted only on a loopback address)`);
  }
  return url;
}

function checkDevices(problems: string[], devices: Record<string, any>): void {
  const signers = new Set<string>();
  devices.postureSigners.forEach((signer: any, i: number) => {
    const at = `devices.postureSigners[${i}]`;
    if (signers.has(signer.issuer)) problems.push(`${at}.issuer: "${signer.issuer}" is configured twice`);
    signers.add(signer.issuer);
    if (!signer.jwks === !signer.jwksUri) problems.push(`${at}: set exactly one of jwks (the keys) or jwksUri (where to fetch them)`);
    if (signer.jwksUri) checkUrl(problems, `${at}.jwksUri`, signer.jwksUri, { requireHttpsUnlessLoopback: true });
    signer.jwks?.keys.forEach((key: any, j: number) => {
      if (key.d !== undefined || key.k !== undefined) problems.push(`${at}.jwks.keys[${j}]: is a private or symmetric key; configure the signer's public keys only`);
    });
    signer.algorithms.forEach((alg: string, j: number) => {
      if (!(ALLOWED_TOKEN_ALGORITHMS as readonly string[]).includes(alg)) {
        problems.push(`${at}.algorithms[${j}]: "${alg}" is not allowed; use asymmetric algorithms only (${ALLOWED_TOKEN_ALGORITHMS.join(', ')})`);
      }
    });
  });
}

function checkIdentity(problems: string[], raw: Record<string, any>): void {
  const identity = raw.identity;
  const introspecting = identity.issuers.filter((iss: any) => iss.introspection);
  // An opaque token names no issuer: with two introspecting issuers it would be sent to both.
  if (introspecting.length > 1) problems.push('identity.issuers: at most one issuer may have introspection (an opaque token cannot say which issuer it is from)');
  identity.issuers.forEach((iss: any, i: number) => {
    if (iss.introspection) checkUrl(problems, `identity.issuers[${i}].introspection.endpoint`, iss.introspection.endpoint, { requireHttpsUnlessLoopback: true });
  });
  const browser = identity.browser;
  if (browser) {
    if (!identity.issuers.some((iss: any) => iss.issuer === browser.issuer)) {
      problems.push(`identity.browser.issuer: "${browser.issuer}" must also be listed in identity.issuers (its access tokens are verified like any other)`);
    }
    if (!browser.scopes.includes('openid')) problems.push('identity.browser.scopes: must include "openid"');
    let publicUrl: URL | undefined;
    try {
      publicUrl = new URL(raw.publicUrl);
    } catch {}
    if (publicUrl && publicUrl.protocol === 'http:' && !isLoopback(publicUrl.hostname)) {
      problems.push('identity.browser: needs an https publicUrl (session cookies are Secure); plain http is accepted only on a loopback address');
    }
  }
  const session = identity.session;
  if (session.idleTimeoutSeconds > session.absoluteLifetimeSeconds) {
    problems.push('identity.session.idleTimeoutSeconds: must not exceed absoluteLifetimeSeconds');
  }
  const roster = identity.roster;
  if (roster.source === 'file' && !roster.file) problems.push('identity.roster.file: required when identity.roster.source is "file"');
  if (roster.source !== 'file' && roster.file) problems.push(`identity.roster.file: set, but identity.roster.source is "${roster.source}"; set source: file to use it`);
  if (roster.file && !/\.(csv|json)$/i.test(roster.file)) problems.push('identity.roster.file: must be a .csv or .json file');
  problems.push(...checkAssertionConfig(raw.assertion));
}

/** The session key is read now, so a wrong file stops the start rather than the first sign-in. */
function checkSessionKeyFile(raw: Record<string, any>, baseDir: string): string[] {
  const file = raw.identity.session.encryptionKeyFile;
  if (!file) return [];
  const problem = sessionKeyFileProblem(isAbsolute(file) ? file : resolve(baseDir, file));
  return problem ? [`identity.session.encryptionKeyFile: ${problem}`] : [];
}

function checkBrowserClient(raw: Record<string, any>, baseDir: string): string[] {
  const browser = raw.identity.browser;
  if (!browser) return [];
  const problems: string[] = [];
  checkBrowserClientAuth(problems, 'identity.browser', { ...browser, clientAssertionKeyFile: browser.clientAssertionKeyFile && resolve(baseDir, browser.clientAssertionKeyFile) });
  return problems;
}

/** Cross-field rules: what the schema cannot say. */
function checkSemantics(raw: Record<string, any>): string[] {
  const problems: string[] = [];
  checkUrl(problems, 'publicUrl', raw.publicUrl, { requireHttpsUnlessLoopback: false });
  if (raw.admin?.publicUrl) checkUrl(problems, 'admin.publicUrl', raw.admin.publicUrl, { requireHttpsUnlessLoopback: true });

  const issuers = new Set<string>();
  raw.identity.issuers.forEach((iss: any, i: number) => {
    const at = `identity.issuers[${i}]`;
    checkUrl(problems, `${at}.issuer`, iss.issuer, { requireHttpsUnlessLoopback: true });
    if (iss.jwksUri) checkUrl(problems, `${at}.jwksUri`, iss.jwksUri, { requireHttpsUnlessLoopback: true });
    if (issuers.has(iss.issuer)) problems.push(`${at}.issuer: "${iss.issuer}" is configured twice`);
    issuers.add(iss.issuer);
    iss.algorithms.forEach((alg: string, j: number) => {
      if (!(ALLOWED_TOKEN_ALGORITHMS as readonly string[]).includes(alg)) {
        problems.push(`${at}.algorithms[${j}]: "${alg}" is not allowed; use asymmetric algorithms only (${ALLOWED_TOKEN_ALGORITHMS.join(', ')})`);
      }
    });
  });

  if (raw.admin && raw.admin.listen.port !== 0 && raw.admin.listen.port === raw.listen.port && raw.admin.listen.host === raw.listen.host) {
    problems.push(`admin.listen: the management listener must not share the data-plane address ${raw.listen.host}:${raw.listen.port}`);
  }
  checkDevices(problems, raw.devices);
  checkIdentity(problems, raw);
  if (raw.state.backend === 'redis' && raw.policy.versionsDir) {
    problems.push('policy.versionsDir: with state.backend "redis" policy versions live in Redis, shared by every instance; remove versionsDir');
  }

  const ids = new Set<string>();
  const prefixes = new Map<string, string>();
  raw.routes.forEach((route: any, i: number) => {
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
    for (const [name, listen] of [['gateway', raw.listen], ['management', raw.admin?.listen]] as const) {
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
    route.forwardRequestHeaders.forEach((h: string, j: number) => {
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
  const raw = structuredClone(doc) as Record<string, any>;
  if (!isValid(raw)) {
    throw new ConfigError(source, (validate.errors ?? []).map(describeSchemaError));
  }
  const problems = [...checkSemantics(raw), ...checkStateSemantics(raw), ...checkLimits(raw), ...checkWorkers(raw), ...checkAuditSemantics(raw), ...checkAccessSemantics(raw), ...checkObservabilitySemantics(raw), ...checkListenerTls(raw, baseDir), ...checkSessionKeyFile(raw, baseDir), ...checkDatabases(raw, baseDir), ...checkBrowserClient(raw, baseDir)];
  if (problems.length > 0) throw new ConfigError(source, problems);

  for (const iss of raw.identity.issuers) {
    if (typeof iss.audience === 'string') iss.audience = [iss.audience];
    const preset = CLAIMS_PRESETS[iss.claimsPreset as ClaimsPresetName];
    iss.claims = { ...preset.claims, ...iss.claims };
    iss.assurance ??= { ...preset.assurance };
  }
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  raw.policy.model = abs(raw.policy.model);
  raw.policy.policy = abs(raw.policy.policy);
  if (raw.policy.conditions) raw.policy.conditions = abs(raw.policy.conditions);
  if (raw.policy.versionsDir) raw.policy.versionsDir = abs(raw.policy.versionsDir);
  if (raw.assertion.keyFile) raw.assertion.keyFile = abs(raw.assertion.keyFile);
  if (raw.assertion.mlDsaKeyFile) raw.assertion.mlDsaKeyFile = abs(raw.assertion.mlDsaKeyFile);
  if (raw.identity.roster.file) raw.identity.roster.file = abs(raw.identity.roster.file);
  if (raw.identity.session.encryptionKeyFile) raw.identity.session.encryptionKeyFile = abs(raw.identity.session.encryptionKeyFile);
  if (raw.identity.browser?.clientAssertionKeyFile) raw.identity.browser.clientAssertionKeyFile = abs(raw.identity.browser.clientAssertionKeyFile);
  resolveAuditPaths(raw, abs);
  raw.state = toStateConfig(raw.state);
  resolveAccessPaths(raw, abs);
  raw.publicUrl = raw.publicUrl.replace(/\/+$/, '');
  if (raw.admin?.publicUrl) raw.admin.publicUrl = raw.admin.publicUrl.replace(/\/+$/, '');
  return deepFreeze(raw as GatewayConfig);
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
