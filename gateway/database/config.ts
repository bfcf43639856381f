import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import Type from 'typebox';
import { checkTlsFiles, TLS_SCHEMA } from '../tls.js';
import { APPROVAL_STATUSES, CLASSIFICATIONS, DEVICE_TIERS } from '../../core/levels.js';
import { ASSURANCE_LEVELS, Id, NonEmpty, Section, SecurityLevel, StringMap, type DeepReadonly, type Static } from '../../core/schema.js';

/**
 * The `databases:` section: the PostgreSQL wire-protocol listener (gateway/database/listener.ts)
 * and the shared database services it fronts. Officials never see the upstream credentials: the
 * gateway reads them from a file or its environment when it connects upstream.
 */

const Text = () => NonEmpty();
const Classification = () => Type.Enum(CLASSIFICATIONS);

/**
 * TLS from the gateway to the database (the protocol's SSLRequest). `verify-full` checks the
 * certificate against `caFile` (or the system's CAs) and the name `servername` (default: the
 * upstream host); `require` encrypts without checking who answers. Absent: plain TCP.
 */
const UPSTREAM_TLS_SCHEMA = Section({
  mode: Type.Enum(['require', 'verify-full'], { default: 'verify-full' }),
  caFile: Type.Optional(Text()),
  servername: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
});

const SERVICE_SCHEMA = Section({
  /** What clients name as their database (the startup `database` parameter); policies name it `db:<id>`. */
  id: Id(),
  name: Text(),
  upstream: Section({ host: Text(), port: Type.Integer({ minimum: 1, maximum: 65535, default: 5432 }), database: Type.String({ minLength: 1, maxLength: 63 }) }),
  /** The role the gateway connects as; the password from `passwordFile` or `passwordEnv` (absent: none, trust). */
  credentials: Section({
    user: Type.String({ minLength: 1, maxLength: 63 }),
    passwordFile: Type.Optional(Text()),
    passwordEnv: Type.Optional(Type.String({ pattern: '^[A-Z_][A-Z0-9_]{0,127}$' })),
  }),
  ownerAgency: Id(),
  securityLevel: SecurityLevel(),
  /** Classification of every table unless `tables` says otherwise. */
  classification: Classification(),
  /** Per-table classification, keyed `schema.table` (lower case). */
  tables: StringMap(Type.String({ pattern: '^[a-z_][a-z0-9_]{0,62}\\.[a-z_][a-z0-9_]{0,62}$' }), Section({ classification: Classification() }), { default: {} }),
  approval: Section({
    status: Type.Enum(APPROVAL_STATUSES),
    approvedBy: Type.Optional(Type.String({ pattern: '^[0-9]{12}$' })),
    approvedAt: Type.Optional(Text()),
    reason: Type.Optional(Text()),
  }),
  minDeviceTier: Type.Optional(Type.Enum(DEVICE_TIERS)),
  minAssuranceLevel: Type.Enum(ASSURANCE_LEVELS, { default: 0 }),
  tls: Type.Optional(UPSTREAM_TLS_SCHEMA),
});

export const DATABASES_SCHEMA = Section({
  listen: Section({
    host: Type.String({ minLength: 1, maxLength: 2048, default: '127.0.0.1' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 5433 }),
    // The protocol's SSLRequest is required of every client: no listener without TLS.
    tls: TLS_SCHEMA,
  }),
  /** Largest frontend message accepted (a Query or Parse carries the statement text). */
  maxMessageBytes: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024, default: 1024 * 1024 }), // 1 MiB
  /** Distinct statement texts whose classification is kept (parsing is the costly part). */
  statementCacheEntries: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 10_000 }),
  /** How often an open connection re-checks locks, token expiry and the policy version. */
  revocationCheckIntervalMs: Type.Integer({ minimum: 50, maximum: 1000, default: 500 }),
  /** Startup, TLS handshake and authentication must finish within this. */
  startupTimeoutMs: Type.Integer({ minimum: 100, maximum: 60_000, default: 10_000 }),
  upstreamConnectTimeoutMs: Type.Integer({ minimum: 100, maximum: 60_000, default: 5_000 }),
  services: Type.Array(SERVICE_SCHEMA, { minItems: 1 }),
});

export type UpstreamTlsConfig = DeepReadonly<Static<typeof UPSTREAM_TLS_SCHEMA>>;
export type DatabaseServiceConfig = DeepReadonly<Static<typeof SERVICE_SCHEMA>>;
export type DatabasesConfig = DeepReadonly<Static<typeof DATABASES_SCHEMA>>;

/** Cross-field checks of `databases` (TLS files, ids, credentials); resolves file paths against `baseDir` in place. */
export function checkDatabases(raw: { readonly databases?: Static<typeof DATABASES_SCHEMA>; readonly routes?: readonly { readonly id: string }[] }, baseDir: string): string[] {
  const db = raw.databases;
  if (!db) return [];
  const problems: string[] = [];
  checkTlsFiles(problems, 'databases.listen.tls', db.listen.tls, baseDir);
  const routeIds = new Set((raw.routes ?? []).map((r) => r.id));
  const seen = new Set<string>();
  db.services.forEach((s, i) => {
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
