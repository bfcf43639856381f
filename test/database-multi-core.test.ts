import { spawn, type ChildProcess } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { assertEventMatchesSchema, freePort, ROOT, startTestIssuer, TEST_AUDIENCE, type TestIssuer } from './helpers/harness.js';
import { deleteKeysWithPrefix, redisUrl } from './helpers/redis.js';
import { createTestDatabase, makeTlsMaterial, psql, type TestDatabase, type TlsMaterial } from './helpers/database.js';
import { createRedisStore } from '../gateway/store-backends.js';
import type { Store } from '../core/store.js';
import { createLocks } from '../gateway/lock-registry.js';

/**
 * The database plane in multi-core mode (`--workers 2`): the PostgreSQL listener runs in every
 * worker on one port, each statement is one event in the chain of the worker that served it,
 * a cancel request reaches its statement whichever worker takes it, and a lock set in Redis closes
 * the connections of every worker. Real psql and node-postgres against the real PostgreSQL.
 */

const READER = '056085000201';
const LOCKED = '056085000202';
const prefix = `ztgate-dbmc-${randomBytes(4).toString('hex')}:`;
const dir = mkdtempSync(join(tmpdir(), 'ztgate-dbmc-'));
const configFile = join(dir, 'ztgate.yaml');
const chainFile = join(dir, 'audit', 'chain.log');
const WORKERS = [1, 2];

let issuer: TestIssuer;
let db: TestDatabase;
let tls: TlsMaterial;
let child: ChildProcess;
let stderr = '';
let store: Store;
let dbPort = 0;

beforeAll(async () => {
  tls = makeTlsMaterial();
  db = await createTestDatabase(
    (role) => `
    CREATE TABLE citizens (id int PRIMARY KEY, ho_ten text, so_dinh_danh text, noi_dang_ky text NOT NULL);
    INSERT INTO citizens SELECT g, 'Công dân giả lập ' || g, '0560850' || lpad(g::text, 5, '0'), 'phuong-nha-trang' FROM generate_series(1, 20) g;
    GRANT SELECT ON citizens TO ${role};
  `,
  );
  issuer = await startTestIssuer();
  const port = await freePort();
  dbPort = await freePort();
  const url = await redisUrl();
  const approval = { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-01' };
  writeFileSync(
    configFile,
    JSON.stringify({
      listen: { host: '127.0.0.1', port },
      publicUrl: `http://127.0.0.1:${port}`,
      identity: { issuers: [{ issuer: issuer.issuer, audience: TEST_AUDIENCE, algorithms: ['ES256'] }] },
      policy: { model: join(ROOT, 'policies/model.conf'), policy: join(ROOT, 'test/fixtures/database-policy.csv'), conditions: join(ROOT, 'test/fixtures/database-conditions.yaml') },
      state: { backend: 'redis', redisUrl: url, keyPrefix: prefix },
      audit: { chain: { file: chainFile, checkpointEvery: 1000 } },
      devices: { defaultMinTierBySecurityLevel: { '3': 'unknown' } },
      routes: [],
      databases: {
        listen: { host: '127.0.0.1', port: dbPort, tls: { certFile: tls.serverCert, keyFile: tls.serverKey } },
        revocationCheckIntervalMs: 200,
        services: ['ho-tich-db', 'ho-tich-device'].map((id) => ({ id, name: `Hộ tịch (SQL) ${id}`, upstream: { host: '127.0.0.1', port: 5432, database: db.name }, credentials: { user: db.role }, ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'personal-data', approval })),
      },
    }),
  );
  store = await createRedisStore({ url, keyPrefix: prefix, commandTimeoutMs: 2000 });
  child = spawn(process.execPath, ['--import', 'tsx', 'gateway/cli.ts', 'start', '--config', configFile, '--workers', '2'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (c: Buffer) => (stderr += c));
  await waitFor(
    () => stderr.includes('listening on') || child.exitCode !== null,
    40_000,
    () => `gateway did not start: ${stderr}`,
  );
  if (child.exitCode !== null) throw new Error(`gateway exited: ${stderr}`);
}, 60_000);

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  await store?.close();
  await issuer?.close();
  await deleteKeysWithPrefix(prefix);
  await db?.drop();
  tls?.remove();
  rmSync(dir, { recursive: true, force: true });
}, 40_000);

async function waitFor(condition: () => boolean, timeoutMs: number, message: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(message());
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function tokenFor(nationalId: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return issuer.sign({ iss: issuer.issuer, aud: TEST_AUDIENCE, sub: nationalId, national_id: nationalId, agency: 'phuong-nha-trang', roles: ['ho-tich-reader'], iat: now, exp: now + 600 });
}

async function connect(user: string): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: dbPort, database: 'ho-tich-db', user, password: await tokenFor(user), ssl: { ca: readFileSync(tls.serverCa), servername: 'localhost' } });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** The fields of a database-plane event these tests read. */
interface StatementEvent {
  readonly user?: { readonly id: string };
  readonly ztgate: { readonly decision: string; readonly reasons: readonly string[]; readonly error_code: string | null };
  readonly db: { readonly statement: string | null; readonly operation: string | null; readonly tables: readonly string[]; readonly rows: number };
}

/** Database-plane events of each worker's own chain, checked against the published schema. */
function eventsByWorker(): Map<number, StatementEvent[]> {
  const out = new Map<number, StatementEvent[]>();
  for (const slot of WORKERS) {
    const file = join(dir, 'audit', `chain.worker-${slot}.log`);
    const lines = existsSync(file)
      ? readFileSync(file, 'utf8')
          .split('\n')
          .filter((l) => l.includes('"type":"event"'))
      : [];
    const all = lines.map((l) => (JSON.parse(l) as { event: Record<string, unknown> }).event).filter((e) => e.db);
    all.forEach(assertEventMatchesSchema);
    const events = all as unknown as StatementEvent[];
    out.set(slot, events);
  }
  return out;
}

/** Which worker's chain holds the events whose normalised statement contains `marker`, and how many. */
function servedBy(marker: string): { slot: number; count: number }[] {
  return [...eventsByWorker()].flatMap(([slot, events]) => {
    const count = events.filter((e) => String(e.db.statement).includes(marker)).length;
    return count > 0 ? [{ slot, count }] : [];
  });
}

describe('the database plane on every core (--workers 2)', () => {
  it('both workers serve the one PostgreSQL port; each statement is one event, in the chain of the worker that served it', async () => {
    const clients = await Promise.all(Array.from({ length: 6 }, () => connect(READER)));
    try {
      // A column alias per connection: literals are removed from the logged statement, names are not.
      await Promise.all(clients.map((c, i) => c.query(`SELECT id AS mc_conn_${i}, ho_ten FROM citizens WHERE id = 3`)));
      const byPsql = await psql(`host=127.0.0.1 port=${dbPort} dbname=ho-tich-db user=${READER} sslmode=verify-full sslrootcert=${tls.serverCa}`, ['-c', 'SELECT id AS mc_psql FROM citizens WHERE id = 4'], await tokenFor(READER));
      expect(byPsql.stderr).toBe('');
      expect(byPsql.stdout.trim()).toBe('4');
      await waitFor(
        () => clients.every((_, i) => servedBy(`mc_conn_${i}`).length > 0) && servedBy('mc_psql').length > 0,
        5000,
        () => 'every statement should have its event',
      );
      const slots = clients.map((_, i) => {
        const served = servedBy(`mc_conn_${i}`);
        expect(served).toHaveLength(1);
        expect(served[0]!.count).toBe(1);
        return served[0]!.slot;
      });
      expect(new Set(slots)).toEqual(new Set(WORKERS));
      expect(servedBy('mc_psql')).toEqual([{ slot: expect.any(Number), count: 1 }]);
      const e = [...eventsByWorker().values()].flat().find((x) => String(x.db.statement).includes('mc_conn_0'))!;
      expect(e).toMatchObject({ ztgate: { decision: 'allow' }, user: { id: READER }, db: { operation: 'SELECT', tables: ['public.citizens'], rows: 1 } });
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  }, 30_000);

  it('a cancel request stops its statement whichever worker takes the cancel connection', async () => {
    const clients = await Promise.all(Array.from({ length: 6 }, () => connect(READER)));
    try {
      const running = clients.map((c) =>
        c.query('SELECT pg_sleep(20)').then(
          () => 'finished',
          (err: Error) => err.message,
        ),
      );
      await new Promise((r) => setTimeout(r, 300));
      // Cancels in the reverse order of the connections, each on a plaintext connection of its own (libpq before 17):
      // node:cluster hands them out without regard to which worker serves the statement.
      for (const c of [...clients].reverse()) {
        const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
        await new Promise<void>((resolve) => {
          const s = netConnect({ host: '127.0.0.1', port: dbPort }, () => s.end(serialize.cancel(processID, secretKey)));
          s.on('close', () => resolve());
          s.on('error', () => resolve());
        });
      }
      const outcomes = await Promise.all(running);
      expect(outcomes.filter((o) => !/cancel/.test(o))).toEqual([]);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  }, 40_000);

  it('attack: a lock set while connected closes the connections of every worker, one revocation event each', async () => {
    const clients = await Promise.all(Array.from({ length: 6 }, () => connect(LOCKED)));
    await Promise.all(clients.map((c, i) => c.query(`SELECT id AS mc_lock_${i} FROM citizens WHERE id = 5`)));
    await waitFor(
      () => clients.every((_, i) => servedBy(`mc_lock_${i}`).length > 0),
      5000,
      () => 'every statement should have its event',
    );
    expect(new Set(clients.map((_, i) => servedBy(`mc_lock_${i}`)[0]!.slot))).toEqual(new Set(WORKERS));
    const closed = clients.map((c) => new Promise<void>((resolve) => c.on('end', () => resolve())));
    const revocations = () => [...eventsByWorker()].map(([slot, events]) => ({ slot, n: events.filter((e) => e.user?.id === LOCKED && e.ztgate.reasons.includes('connection-revoked')).length }));
    await createLocks(store).set({ kind: 'user', value: LOCKED, reason: 'kiểm thử đa tiến trình / multi-core test', lockedBy: '056179000006', seconds: 60 });
    await Promise.all(closed);
    for (const c of clients) await expect(c.query('SELECT 1')).rejects.toThrow();
    await waitFor(
      () => revocations().reduce((a, r) => a + r.n, 0) >= clients.length,
      5000,
      () => `one revocation event per connection: ${JSON.stringify(revocations())}`,
    );
    expect(revocations().reduce((a, r) => a + r.n, 0)).toBe(clients.length);
    for (const r of revocations()) expect(r.n).toBeGreaterThan(0);
    const e = [...eventsByWorker().values()].flat().find((x) => x.user?.id === LOCKED && x.ztgate.reasons.includes('connection-revoked'))!;
    expect(e.ztgate).toMatchObject({ decision: 'deny', error_code: 'ZTG_ERR_LOCKED' });
    expect(e.ztgate.reasons).toContain('locked-user');
  }, 30_000);
});
