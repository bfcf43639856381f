import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { GatewayConfig } from './config.js';
import { readRosterFile, RosterError } from '../identity/roster.js';

/**
 * What `ztgate check` and `ztgate start` verify beyond the schema, before anything is written:
 * every file the configuration names is there and readable (the roster also parses), every folder
 * the gateway writes to is writable; `check` also asks each IdP for its discovery document and
 * keys, unless told it is offline.
 */

interface Named {
  readonly key: string;
  readonly path: string;
}

function filesOf(config: GatewayConfig): Named[] {
  const files: Named[] = [
    { key: 'policy.model', path: config.policy.model },
    { key: 'policy.policy', path: config.policy.policy },
  ];
  const add = (key: string, path: string | undefined) => path && files.push({ key, path });
  add('policy.conditions', config.policy.conditions);
  add('assertion.keyFile', config.assertion.keyFile);
  add('assertion.mlDsaKeyFile', config.assertion.mlDsaKeyFile);
  add('identity.roster.file', config.identity.roster.file);
  add('identity.session.encryptionKeyFile', config.identity.session.encryptionKeyFile);
  for (const [at, tls] of [
    ['listen.tls', config.listen.tls],
    ['admin.listen.tls', config.admin?.listen.tls],
  ] as const) {
    add(`${at}.certFile`, tls?.certFile);
    add(`${at}.keyFile`, tls?.keyFile);
    add(`${at}.clientCaFile`, tls?.clientCaFile);
  }
  add('audit.chain.signingKeyFile', config.audit.chain?.signingKeyFile);
  config.audit.sinks.forEach((sink, i) => {
    if (sink.type !== 'syslog') return;
    add(`audit.sinks[${i}].caFile`, sink.caFile);
    add(`audit.sinks[${i}].certFile`, sink.certFile);
    add(`audit.sinks[${i}].keyFile`, sink.keyFile);
  });
  return files;
}

function foldersOf(config: GatewayConfig): Named[] {
  const folders: Named[] = [];
  if (config.audit.chain) folders.push({ key: 'audit.chain.file', path: dirname(config.audit.chain.file) });
  if (config.audit.spoolDir) folders.push({ key: 'audit.spoolDir', path: config.audit.spoolDir });
  if (config.policy.versionsDir) folders.push({ key: 'policy.versionsDir', path: config.policy.versionsDir });
  return folders;
}

/** A folder the gateway will create or write in: it, or the nearest folder above that exists, must be writable. */
function folderProblem(path: string): string | null {
  let dir = path;
  while (!existsSync(dir)) {
    const up = dirname(dir);
    if (up === dir) return `${path}: no existing folder above it`;
    dir = up;
  }
  if (!statSync(dir).isDirectory()) return `${dir} is not a folder`;
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    return `${dir} is not writable by this user`;
  }
  return null;
}

/** Problems with the files and folders the configuration names; empty when all is well. */
export async function configuredFileProblems(config: GatewayConfig): Promise<string[]> {
  const problems: string[] = [];
  for (const { key, path } of filesOf(config)) {
    try {
      if (!statSync(path).isFile()) {
        problems.push(`${key}: ${path} is not a file`);
        continue;
      }
      accessSync(path, constants.R_OK);
    } catch (err) {
      problems.push(`${key}: ${path}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  }
  for (const { key, path } of foldersOf(config)) {
    const problem = folderProblem(path);
    if (problem) problems.push(`${key}: ${problem}`);
  }
  const roster = config.identity.roster.file;
  if (roster && !problems.some((p) => p.startsWith('identity.roster.file'))) {
    try {
      await readRosterFile(roster);
    } catch (err) {
      if (!(err instanceof RosterError)) throw err;
      problems.push(...err.problems.map((p) => `identity.roster.file: ${roster}: ${p}`));
    }
  }
  return problems;
}

/**
 * Each trusted issuer answers: its OpenID Connect discovery document names it (Discovery 1.0 §4)
 * and its JWKS holds at least one key. Returns one line per issuer that does not.
 */
export async function identityProviderProblems(config: GatewayConfig, fetchImpl: typeof fetch = fetch): Promise<string[]> {
  const timeout = config.identity.jwksTimeoutMs;
  // Only the few fields read below; anything else about the documents is the IdP's business.
  const get = async (url: string): Promise<{ issuer?: unknown; jwks_uri?: unknown; keys?: unknown } | null> => {
    const res = await fetchImpl(url, { signal: AbortSignal.timeout(timeout), redirect: 'error', headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(`${url} answered ${res.status}`);
    // Fields of a JSON value that is not an object read as undefined, and are refused below.
    return (await res.json()) as { issuer?: unknown; jwks_uri?: unknown; keys?: unknown } | null;
  };
  const results = await Promise.all(
    config.identity.issuers.map(async (issuer, i) => {
      const at = `identity.issuers[${i}] (${issuer.issuer})`;
      try {
        let jwksUri = issuer.jwksUri;
        if (!jwksUri) {
          const doc = await get(`${issuer.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
          if (doc?.issuer !== issuer.issuer) return `${at}: the discovery document names issuer ${JSON.stringify(doc?.issuer)}`;
          if (typeof doc.jwks_uri !== 'string') return `${at}: the discovery document has no jwks_uri`;
          jwksUri = doc.jwks_uri;
        }
        const jwks = await get(jwksUri);
        if (!Array.isArray(jwks?.keys) || jwks.keys.length === 0) return `${at}: ${jwksUri} holds no keys`;
        return null;
      } catch (err) {
        const e = err as Error & { cause?: { code?: string } };
        return `${at}: not reachable (${e.cause?.code ?? (e.name === 'TimeoutError' ? `no answer within ${timeout} ms` : e.message)})`;
      }
    }),
  );
  return results.filter((r): r is string => r !== null);
}
