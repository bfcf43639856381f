import { execFile, execFileSync } from 'node:child_process';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, type JWK } from 'jose';
import pg from 'pg';

/**
 * The real PostgreSQL of the machine (127.0.0.1:5432, trust auth, user postgres; PGHOST etc.
 * override), a database and a non-superuser role of the test's own (row-level security does not
 * apply to superusers), dropped afterwards; and synthetic TLS material made with the openssl CLI.
 */

export const PG = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  user: process.env.PGUSER ?? 'postgres',
};

export async function admin<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ ...PG, database });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export interface TestDatabase {
  readonly name: string;
  /** The role the gateway connects as (no superuser, no BYPASSRLS). */
  readonly role: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(setupSql: (role: string) => string): Promise<TestDatabase> {
  const suffix = randomBytes(4).toString('hex');
  const name = `ztgate_test_${suffix}`;
  const role = `ztgate_gw_${suffix}`;
  await admin('postgres', async (c) => {
    await c.query(`CREATE DATABASE ${name}`);
    await c.query(`CREATE ROLE ${role} LOGIN NOSUPERUSER NOBYPASSRLS`);
  });
  await admin(name, (c) => c.query(setupSql(role)));
  return {
    name,
    role,
    async drop() {
      await admin('postgres', async (c) => {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await c.query(`DROP ROLE IF EXISTS ${role}`);
      });
    },
  };
}

export interface TlsMaterial {
  readonly dir: string;
  readonly serverCa: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly deviceCa: string;
  /** A device certificate (client auth) from deviceCa, its key and the device id (RFC 7638 thumbprint). */
  device(name: string, ca?: 'device-ca' | 'rogue-ca'): Promise<{ cert: string; key: string; id: string; jwk: JWK }>;
  remove(): void;
}

export function makeTlsMaterial(): TlsMaterial {
  const dir = mkdtempSync(join(tmpdir(), 'ztgate-db-tls-'));
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const ca = (name: string) => {
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
    openssl('req', '-x509', '-new', '-key', `${name}.key`, '-subj', `/CN=${name} (synthetic test CA)`, '-days', '2', '-out', `${name}.crt`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  };
  let serial = 0;
  const leaf = (caName: string, name: string, ext: string) => {
    serial += 1;
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
    openssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name} (synthetic)`, '-out', `${name}.csr`);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.crt`, '-CAkey', `${caName}.key`, '-set_serial', String(serial), '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`);
    // libpq refuses a client key others can read.
    chmodSync(join(dir, `${name}.key`), 0o600);
    return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  };
  ca('server-ca');
  ca('device-ca');
  ca('rogue-ca');
  const server = leaf('server-ca', 'gateway', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  return {
    dir,
    serverCa: join(dir, 'server-ca.crt'),
    serverCert: server.cert,
    serverKey: server.key,
    deviceCa: join(dir, 'device-ca.crt'),
    async device(name, caName = 'device-ca') {
      const { cert, key } = leaf(caName, name, 'extendedKeyUsage=clientAuth\n');
      const jwk = createPrivateKey(readFileSync(key, 'utf8')).export({ format: 'jwk' }) as JWK;
      const { d: _d, ...publicJwk } = jwk;
      return { cert, key, id: await calculateJwkThumbprint(publicJwk as JWK, 'sha256'), jwk: publicJwk as JWK };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface PsqlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real psql; the access token goes in PGPASSWORD, as a reporting tool would pass it. */
export function psql(conninfo: string, args: string[], password: string | null, input?: string): Promise<PsqlResult> {
  return new Promise((resolve) => {
    const child = execFile(
      'psql',
      [conninfo, '-X', '-v', 'ON_ERROR_STOP=1', '-A', '-t', ...args],
      {
        env: { PATH: process.env.PATH, ...(password !== null ? { PGPASSWORD: password } : {}), PGCONNECT_TIMEOUT: '10' },
        timeout: 20_000,
      },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    if (input !== undefined) child.stdin!.end(input);
  });
}
