import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { checkTlsFiles, TLS_SCHEMA, type ListenerTlsConfig } from '../tls.js';
import type { ApprovalStatus, Classification, DeviceTier } from '../../core/levels.js';

/**
 * The `databases:` section: the PostgreSQL wire-protocol listener (gateway/database/listener.ts)
 * and the shared database services it fronts. Officials never see the upstream credentials: the
 * gateway reads them from a file or its environment when it connects upstream.
 */

export interface DatabaseServiceConfig {
  /** What clients name as their database (the startup `database` parameter); policies name it `db:<id>`. */
  readonly id: string;
  readonly name: string;
  readonly upstream: { readonly host: string; readonly port: number; readonly database: string };
  /** The role the gateway connects as; the password from `passwordFile` or `passwordEnv` (absent: none, trust). */
  readonly credentials: { readonly user: string; readonly passwordFile?: string; readonly passwordEnv?: string };
  readonly ownerAgency: string;
  readonly securityLevel: 1 | 2 | 3 | 4 | 5;
  /** Classification of every table unless `tables` says otherwise. */
  readonly classification: Classification;
  /** Per-table classification, keyed `schema.table` (lower case). */
  readonly tables: Readonly<Record<string, { readonly classification: Classification }>>;
  readonly approval: { readonly status: ApprovalStatus; readonly approvedBy?: string; readonly approvedAt?: string; readonly reason?: string };
  readonly minDeviceTier?: DeviceTier;
  readonly minAssuranceLevel: 0 | 1 | 2;
  /**
   * TLS from the gateway to the database (the protocol's SSLRequest). `verify-full` checks the
   * certificate against `caFile` (or the system's CAs) and the name `servername` (default: the
   * upstream host); `require` encrypts without checking who answers. Absent: plain TCP.
   */
  readonly tls?: UpstreamTlsConfig;
}

export interface UpstreamTlsConfig {
  readonly mode: 'require' | 'verify-full';
  readonly caFile?: string;
  readonly servername?: string;
}

export interface DatabasesConfig {
  readonly listen: { readonly host: string; readonly port: number; readonly tls: ListenerTlsConfig };
  readonly services: readonly DatabaseServiceConfig[];
  /** Largest frontend message accepted (a Query or Parse carries the statement text). */
  readonly maxMessageBytes: number;
  /** Distinct statement texts whose classification is kept (parsing is the costly part). */
  readonly statementCacheEntries: number;
  /** How often an open connection re-checks locks, token expiry and the policy version. */
  readonly revocationCheckIntervalMs: number;
  /** Startup, TLS handshake and authentication must finish within this. */
  readonly startupTimeoutMs: number;
  readonly upstreamConnectTimeoutMs: number;
}

const id = { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' };
const text = { type: 'string', minLength: 1, maxLength: 2048 };
const CLASSIFICATION = { enum: ['public', 'internal', 'personal-data', 'sensitive-personal-data', 'mat', 'toi-mat', 'tuyet-mat'] };

export const DATABASES_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['listen', 'services'],
  properties: {
    listen: {
      type: 'object',
      additionalProperties: false,
      // The protocol's SSLRequest is required of every client: no listener without TLS.
      required: ['tls'],
      properties: {
        host: { ...text, default: '127.0.0.1' },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 5433 },
        tls: TLS_SCHEMA,
      },
    },
    maxMessageBytes: { type: 'integer', minimum: 1024, maximum: 64 * 1024 * 1024, default: 1024 * 1024 }, // 1 MiB
    statementCacheEntries: { type: 'integer', minimum: 0, maximum: 1_000_000, default: 10_000 },
    revocationCheckIntervalMs: { type: 'integer', minimum: 50, maximum: 1000, default: 500 },
    startupTimeoutMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 10_000 },
    upstreamConnectTimeoutMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 5_000 },
    services: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'name', 'upstream', 'credentials', 'ownerAgency', 'securityLevel', 'classification', 'approval'],
        properties: {
          id,
          name: text,
          upstream: {
            type: 'object',
            additionalProperties: false,
            required: ['host', 'database'],
            properties: { host: text, port: { type: 'integer', minimum: 1, maximum: 65535, default: 5432 }, database: { type: 'string', minLength: 1, maxLength: 63 } },
          },
          credentials: {
            type: 'object',
            additionalProperties: false,
            required: ['user'],
            properties: { user: { type: 'string', minLength: 1, maxLength: 63 }, passwordFile: text, passwordEnv: { type: 'string', pattern: '^[A-Z_][A-Z0-9_]{0,127}$' } },
          },
          ownerAgency: id,
          securityLevel: { type: 'integer', minimum: 1, maximum: 5 },
          classification: CLASSIFICATION,
          tables: {
            type: 'object',
            default: {},
            propertyNames: { pattern: '^[a-z_][a-z0-9_]{0,62}\\.[a-z_][a-z0-9_]{0,62}$' },
            additionalProperties: { type: 'object', additionalProperties: false, required: ['classification'], properties: { classification: CLASSIFICATION } },
          },
          approval: {
            type: 'object',
            additionalProperties: false,
            required: ['status'],
            properties: { status: { enum: ['approved', 'pending', 'rejected', 'suspended'] }, approvedBy: { type: 'string', pattern: '^[0-9]{12}$' }, approvedAt: text, reason: text },
          },
          minDeviceTier: { enum: ['unknown', 'registered', 'compliant', 'high-assurance'] },
          minAssuranceLevel: { enum: [0, 1, 2], default: 0 },
          tls: {
            type: 'object',
            additionalProperties: false,
            properties: { mode: { enum: ['require', 'verify-full'], default: 'verify-full' }, caFile: text, servername: { type: 'string', minLength: 1, maxLength: 253 } },
          },
        },
      },
    },
  },
} as const;

/** Cross-field checks of `databases` (TLS files, ids, credentials); resolves file paths against `baseDir` in place. */
export function checkDatabases(raw: Record<string, any>, baseDir: string): string[] {
  const db = raw.databases;
  if (!db) return [];
  const problems: string[] = [];
  checkTlsFiles(problems, 'databases.listen.tls', db.listen.tls, baseDir);
  const routeIds = new Set((raw.routes ?? []).map((r: { id: string }) => r.id));
  const seen = new Set<string>();
  db.services.forEach((s: any, i: number) => {
    const at = `databases.services[${i}]`;
    if (seen.has(s.id)) problems.push(`${at}.id: "${s.id}" is used by another database service`);
    if (routeIds.has(s.id)) problems.push(`${at}.id: "${s.id}" is also a route id; give the database service its own name`);
    seen.add(s.id);
    if (s.credentials.passwordFile && s.credentials.passwordEnv) problems.push(`${at}.credentials: passwordFile or passwordEnv, not both`);
    if (s.credentials.passwordFile) {
      if (!isAbsolute(s.credentials.passwordFile)) s.credentials.passwordFile = resolve(baseDir, s.credentials.passwordFile);
      if (!existsSync(s.credentials.passwordFile)) problems.push(`${at}.credentials.passwordFile: ${s.credentials.passwordFile} does not exist`);
    }
    if (s.tls?.caFile) {
      if (s.tls.mode === 'require') problems.push(`${at}.tls.caFile: only verify-full checks the certificate; with mode require the CA would be ignored`);
      if (!isAbsolute(s.tls.caFile)) s.tls.caFile = resolve(baseDir, s.tls.caFile);
      if (!existsSync(s.tls.caFile)) problems.push(`${at}.tls.caFile: ${s.tls.caFile} does not exist`);
    }
    if (s.approval.status === 'approved' && (!s.approval.approvedBy || !s.approval.approvedAt)) {
      problems.push(`${at}.approval: an approved service must record approvedBy and approvedAt (who approved it, and when)`);
    }
    if (s.upstream.host === db.listen.host && s.upstream.port === db.listen.port) problems.push(`${at}.upstream: points back at the database listener`);
  });
  return problems;
}

/** Policy objects of the database services: `db:<id>`, as policy rules and conditions name them. */
export function databasePolicyServices(db: DatabasesConfig | undefined): string[] {
  return (db?.services ?? []).map((s) => `db:${s.id}`);
}
