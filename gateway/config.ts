import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { ConfigError } from './errors.js';

/**
 * The gateway configuration: one YAML or JSON file, validated by one strict schema
 * (unknown keys refused), then by the cross-field checks a schema cannot express,
 * then frozen. Nothing is served until all of it holds.
 */

export const CLASSIFICATIONS = [
  'public', // công khai
  'internal', // nội bộ
  'personal-data', // dữ liệu cá nhân
  'sensitive-personal-data', // dữ liệu cá nhân nhạy cảm
  'mat', // Mật
  'toi-mat', // Tối mật
  'tuyet-mat', // Tuyệt mật
] as const;
export type Classification = (typeof CLASSIFICATIONS)[number];

export const APPROVAL_STATUSES = ['approved', 'pending', 'rejected', 'suspended'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];

/** Only asymmetric algorithms: a JWKS is public, so HS* would let anyone with the key sign. */
export const ALLOWED_TOKEN_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512', 'EdDSA'] as const;

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
}

export interface IssuerConfig {
  readonly issuer: string;
  readonly audience: readonly string[];
  readonly algorithms: readonly string[];
  readonly jwksUri?: string;
  readonly tokenTypes: readonly string[];
  readonly claims: { readonly nationalId: string; readonly agency: string; readonly roles: string; readonly acr: string };
}

export interface GatewayConfig {
  readonly listen: { readonly host: string; readonly port: number };
  readonly publicUrl: string;
  readonly limits: { readonly bodyLimitBytes: number; readonly requestTimeoutMs: number };
  readonly identity: {
    readonly clockSkewSeconds: number;
    readonly jwksCacheMaxAgeMs: number;
    readonly jwksCooldownMs: number;
    readonly jwksTimeoutMs: number;
    readonly issuers: readonly IssuerConfig[];
  };
  readonly assertion: { readonly ttlSeconds: number; readonly keyFile?: string };
  readonly admin?: { readonly listen: { readonly host: string; readonly port: number }; readonly roles: readonly string[]; readonly bodyLimitBytes: number };
  readonly state: { readonly backend: 'memory' | 'redis'; readonly redisUrl?: string; readonly keyPrefix: string; readonly commandTimeoutMs: number };
  readonly policy: { readonly model: string; readonly policy: string };
  readonly routes: readonly RouteConfig[];
}

const id = { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' };
const nonEmpty = { type: 'string', minLength: 1, maxLength: 2048 };

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['publicUrl', 'identity', 'policy', 'routes'],
  properties: {
    listen: {
      type: 'object',
      additionalProperties: false,
      properties: {
        host: { ...nonEmpty, default: '127.0.0.1' },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
      },
      default: {},
    },
    publicUrl: nonEmpty,
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        bodyLimitBytes: { type: 'integer', minimum: 0, maximum: 1024 * 1024 * 1024, default: 1024 * 1024 }, // 1 MiB
        requestTimeoutMs: { type: 'integer', minimum: 1000, maximum: 600_000, default: 30_000 },
      },
      default: {},
    },
    identity: {
      type: 'object',
      additionalProperties: false,
      required: ['issuers'],
      properties: {
        clockSkewSeconds: { type: 'integer', minimum: 0, maximum: 300, default: 30 },
        jwksCacheMaxAgeMs: { type: 'integer', minimum: 1000, default: 10 * 60_000 },
        jwksCooldownMs: { type: 'integer', minimum: 1000, default: 30_000 },
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
              claims: {
                type: 'object',
                additionalProperties: false,
                properties: {
                  nationalId: { ...nonEmpty, default: 'national_id' },
                  agency: { ...nonEmpty, default: 'agency' },
                  roles: { ...nonEmpty, default: 'roles' },
                  acr: { ...nonEmpty, default: 'acr' },
                },
                default: {},
              },
            },
          },
        },
      },
    },
    assertion: {
      type: 'object',
      additionalProperties: false,
      properties: {
        ttlSeconds: { type: 'integer', minimum: 5, maximum: 300, default: 60 },
        keyFile: nonEmpty,
      },
      default: {},
    },
    admin: {
      type: 'object',
      additionalProperties: false,
      properties: {
        listen: {
          type: 'object',
          additionalProperties: false,
          properties: {
            host: { ...nonEmpty, default: '127.0.0.1' },
            port: { type: 'integer', minimum: 0, maximum: 65535, default: 8081 },
          },
          default: {},
        },
        roles: { type: 'array', minItems: 1, uniqueItems: true, items: id, default: ['security-admin'] },
        bodyLimitBytes: { type: 'integer', minimum: 1024, maximum: 64 * 1024 * 1024, default: 5 * 1024 * 1024 }, // 5 MiB: roster imports
      },
    },
    state: {
      type: 'object',
      additionalProperties: false,
      properties: {
        backend: { enum: ['memory', 'redis'], default: 'memory' },
        redisUrl: nonEmpty,
        keyPrefix: { type: 'string', pattern: '^[a-z0-9:_-]{1,64}$', default: 'ztgate:' },
        commandTimeoutMs: { type: 'integer', minimum: 50, maximum: 10_000, default: 1000 },
      },
      default: {},
    },
    policy: {
      type: 'object',
      additionalProperties: false,
      required: ['model', 'policy'],
      properties: { model: nonEmpty, policy: nonEmpty },
    },
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
              approvedAt: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}' },
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
        },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
const validate = ajv.compile(schema);
const isValid = (doc: unknown): boolean => validate(doc);

/** Headers that carry identity or credentials: never forwarded, whatever a route says. */
export const PROTECTED_HEADERS = ['authorization', 'cookie', 'proxy-authorization', 'x-ztgate-assertion', 'x-request-id', 'forwarded', 'x-forwarded-for', 'x-forwarded-user', 'x-forwarded-email', 'x-remote-user', 'remote-user', 'x-national-id'];

function keyPath(instancePath: string): string {
  const parts = instancePath.split('/').slice(1);
  return parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '') || '(root)';
}

function describeSchemaError(e: ErrorObject): string {
  const at = keyPath(e.instancePath);
  switch (e.keyword) {
    case 'additionalProperties':
      return `${at}: unknown key "${(e.params as { additionalProperty: string }).additionalProperty}" / khóa không được hỗ trợ`;
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

function isLoopback(hostname: string): boolean {
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

/** Cross-field rules: what the schema cannot say. */
function checkSemantics(raw: Record<string, any>): string[] {
  const problems: string[] = [];
  checkUrl(problems, 'publicUrl', raw.publicUrl, { requireHttpsUnlessLoopback: false });

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
  if (raw.state.backend === 'redis') {
    if (!raw.state.redisUrl) problems.push('state.redisUrl: required when state.backend is "redis"');
    else if (!/^rediss?:\/\//.test(raw.state.redisUrl)) problems.push(`state.redisUrl: "${raw.state.redisUrl.replace(/:[^:@/]*@/, ':***@')}" must be a redis:// or rediss:// URL`);
  } else if (raw.state.redisUrl) {
    problems.push('state.redisUrl: set, but state.backend is "memory"; set backend: redis to use it');
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
    if (route.pathPrefix.split('/').some((s: string) => s === '.' || s === '..')) {
      problems.push(`${at}.pathPrefix: must not contain dot segments`);
    }
    const upstream = checkUrl(problems, `${at}.upstream`, route.upstream, { requireHttpsUnlessLoopback: false });
    const listen = raw.listen;
    // URL.port is '' for the scheme's default port; a wildcard listener also answers on loopback.
    const upstreamPort = upstream && (upstream.port || (upstream.protocol === 'https:' ? '443' : '80'));
    const listensOnLoopback = isLoopback(listen.host) || ['0.0.0.0', '::', '[::]'].includes(listen.host);
    if (upstream && upstreamPort === String(listen.port) && (upstream.hostname === listen.host || isLoopback(upstream.hostname) && listensOnLoopback)) {
      problems.push(`${at}.upstream: points back at the gateway's own listener (${listen.host}:${listen.port})`);
    }
    if (route.approval.status === 'approved' && (!route.approval.approvedBy || !route.approval.approvedAt)) {
      problems.push(`${at}.approval: an approved service must record approvedBy and approvedAt (who approved it, and when)`);
    }
    route.forwardRequestHeaders.forEach((h: string, j: number) => {
      if (PROTECTED_HEADERS.includes(h) || h.startsWith('x-ztgate-')) {
        problems.push(`${at}.forwardRequestHeaders[${j}]: "${h}" carries identity or credentials and is never forwarded`);
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
  const problems = checkSemantics(raw);
  if (problems.length > 0) throw new ConfigError(source, problems);

  for (const iss of raw.identity.issuers) {
    if (typeof iss.audience === 'string') iss.audience = [iss.audience];
  }
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  raw.policy.model = abs(raw.policy.model);
  raw.policy.policy = abs(raw.policy.policy);
  if (raw.assertion.keyFile) raw.assertion.keyFile = abs(raw.assertion.keyFile);
  raw.publicUrl = raw.publicUrl.replace(/\/+$/, '');
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
  return parseConfig(doc, path, dirname(resolve(path)));
}
