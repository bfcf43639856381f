/**
 * The database plane against direct PostgreSQL, side by side in one run: pgbench select-only
 * (-S) with the simple and the extended protocol, first at full speed (throughput), then both
 * paths at half the gateway's throughput (-R) for latency percentiles from pgbench's
 * per-transaction log. Needs the machine's PostgreSQL (127.0.0.1:5432, trust, user postgres;
 * PGHOST/PGPORT/PGUSER override) and pgbench.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../gateway/config.js';
import { startGateway } from '../gateway/server.js';
import { startTestIssuer, TEST_AUDIENCE } from '../test/helpers/harness.js';
import { createTestDatabase, makeTlsMaterial, PG } from '../test/helpers/database.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const OFFICIAL = '056085009999'; // synthetic

export interface PgbenchRun {
  readonly path: 'direct' | 'gateway';
  readonly mode: 'simple' | 'extended';
  readonly rate: number | null;
  readonly tps: number;
  readonly transactions: number;
  readonly failed: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly mean: number };
}

export interface DatabaseBenchResult {
  readonly clients: number;
  readonly seconds: number;
  readonly runs: readonly PgbenchRun[];
  readonly events: number;
  /** The machine's 1-minute load average before and after the runs: other work skews every figure. */
  readonly loadAverage: { readonly start: number; readonly end: number };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function pgbench(args: string[], env: Record<string, string>, cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('pgbench', args, { env: { PATH: process.env.PATH!, ...env }, cwd, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`pgbench ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

export async function runDatabaseBench(opts: { seconds: number; clients: number; log: (m: string) => void }): Promise<DatabaseBenchResult> {
  const tls = makeTlsMaterial();
  const work = mkdtempSync(join(tmpdir(), 'ztgate-pgbench-'));
  const db = await createTestDatabase((role) => `SELECT 1; -- ${role}`);
  const issuer = await startTestIssuer();
  let events = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      events += chunk.toString('utf8').split('\n').filter((l) => l.includes('"db":')).length;
      done();
    },
  });
  try {
    execFileSync('pgbench', ['-i', '-s', '1', '-q', '-h', PG.host, '-p', String(PG.port), '-U', PG.user, db.name], { stdio: 'ignore' });
    execFileSync('psql', ['-h', PG.host, '-p', String(PG.port), '-U', PG.user, '-d', db.name, '-qc', `GRANT SELECT ON pgbench_accounts, pgbench_branches TO ${db.role}`], { stdio: 'ignore' });
    writeFileSync(join(work, 'policy.csv'), 'p, bench, *, db:bench-db, /public.pgbench_accounts, SELECT, allow\np, bench, *, db:bench-db, /public.pgbench_branches, SELECT, allow\n');
    const config = parseConfig({
      listen: { host: '127.0.0.1', port: 0 },
      publicUrl: 'http://127.0.0.1:1',
      identity: { clockSkewSeconds: 30, issuers: [{ issuer: issuer.issuer, audience: TEST_AUDIENCE, algorithms: ['ES256'] }] },
      policy: { model: join(ROOT, 'policies/model.conf'), policy: join(work, 'policy.csv') },
      devices: { defaultMinTierBySecurityLevel: { '3': 'unknown' } },
      routes: [],
      databases: {
        listen: { host: '127.0.0.1', port: 0, tls: { certFile: tls.serverCert, keyFile: tls.serverKey } },
        services: [{
          id: 'bench-db', name: 'pgbench (synthetic)', upstream: { host: PG.host, port: PG.port, database: db.name }, credentials: { user: db.role },
          ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'internal', approval: { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-01' },
        }],
      },
    }, 'database-bench', ROOT);
    const gw = await startGateway(config, { decisionLog: sink });
    try {
      const now = Math.floor(Date.now() / 1000);
      const token = await issuer.sign({ iss: issuer.issuer, aud: TEST_AUDIENCE, sub: OFFICIAL, national_id: OFFICIAL, agency: 'so-tu-phap', roles: ['bench'], iat: now, exp: now + 3600 });
      const envOf = (path: 'direct' | 'gateway'): Record<string, string> =>
        path === 'direct'
          ? { PGHOST: PG.host, PGPORT: String(PG.port), PGUSER: PG.user, PGDATABASE: db.name, PGSSLMODE: 'disable' }
          : { PGHOST: '127.0.0.1', PGPORT: String(gw.database!.port), PGUSER: OFFICIAL, PGDATABASE: 'bench-db', PGPASSWORD: token, PGSSLMODE: 'verify-full', PGSSLROOTCERT: tls.serverCa };
      const runs: PgbenchRun[] = [];
      const one = async (path: 'direct' | 'gateway', mode: 'simple' | 'extended', rate: number | null): Promise<PgbenchRun> => {
        const dir = mkdtempSync(join(work, 'run-'));
        const args = ['-n', '-S', '-M', mode, '-c', String(opts.clients), '-j', '2', '-T', String(opts.seconds), '-l', '--log-prefix', join(dir, 'tx')];
        if (rate !== null) args.push('-R', String(Math.max(1, Math.round(rate))));
        const out = await pgbench(args, envOf(path), dir);
        const latencies: number[] = [];
        let failed = 0;
        for (const f of readdirSync(dir).filter((n) => n.startsWith('tx'))) {
          for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
            const fields = line.split(' ');
            if (fields.length < 6) continue;
            if (fields[2] === 'failed' || fields[2] === 'skipped') failed += 1;
            else latencies.push(Number(fields[2]) / 1000);
          }
        }
        latencies.sort((a, b) => a - b);
        const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? NaN);
        const transactions = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? latencies.length);
        const r: PgbenchRun = { path, mode, rate, tps, transactions, failed, latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), mean: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length) } };
        opts.log(`database: ${path} ${mode}${rate ? ` at ${Math.round(rate)} tps` : ''}: ${tps.toFixed(0)} tps, p50 ${r.latencyMs.p50.toFixed(2)} ms, p99 ${r.latencyMs.p99.toFixed(2)} ms`);
        runs.push(r);
        return r;
      };
      const loadAtStart = loadavg()[0]!;
      for (const mode of ['simple', 'extended'] as const) {
        await one('direct', mode, null);
        const g = await one('gateway', mode, null);
        // Half load: half of what the gateway sustains, the same offered rate on both paths.
        await one('direct', mode, g.tps / 2);
        await one('gateway', mode, g.tps / 2);
      }
      return { clients: opts.clients, seconds: opts.seconds, runs, events, loadAverage: { start: loadAtStart, end: loadavg()[0]! } };
    } finally {
      await gw.close();
    }
  } finally {
    await issuer.close();
    await db.drop();
    tls.remove();
    rmSync(work, { recursive: true, force: true });
  }
}

export function renderDatabaseMarkdown(r: DatabaseBenchResult): string {
  const lines = [
    `### Database plane: pgbench -S (select-only), ${r.clients} clients, ${r.seconds} s per run`,
    '',
    `Load average (1 min) ${r.loadAverage.start.toFixed(2)} before the runs, ${r.loadAverage.end.toFixed(2)} after.`,
    '',
    '| protocol | path | offered rate | tps | p50 | p99 | gateway ÷ direct tps | added p99 |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const mode of ['simple', 'extended'] as const) {
    const find = (path: string, rated: boolean) => r.runs.find((x) => x.mode === mode && x.path === path && (x.rate !== null) === rated)!;
    const [d, g, dh, gh] = [find('direct', false), find('gateway', false), find('direct', true), find('gateway', true)];
    const ms = (v: number) => `${v.toFixed(2)} ms`;
    lines.push(`| ${mode} | direct | max | ${d.tps.toFixed(0)} | ${ms(d.latencyMs.p50)} | ${ms(d.latencyMs.p99)} | | |`);
    lines.push(`| ${mode} | gateway | max | ${g.tps.toFixed(0)} | ${ms(g.latencyMs.p50)} | ${ms(g.latencyMs.p99)} | ${(g.tps / d.tps).toFixed(2)}× | |`);
    lines.push(`| ${mode} | direct | ${Math.round(dh.rate!)} tps | ${dh.tps.toFixed(0)} | ${ms(dh.latencyMs.p50)} | ${ms(dh.latencyMs.p99)} | | |`);
    lines.push(`| ${mode} | gateway | ${Math.round(gh.rate!)} tps | ${gh.tps.toFixed(0)} | ${ms(gh.latencyMs.p50)} | ${ms(gh.latencyMs.p99)} | | +${(gh.latencyMs.p99 - dh.latencyMs.p99).toFixed(2)} ms |`);
  }
  lines.push('', `Decision events written for statements: ${r.events.toLocaleString('en-US')}.`, '');
  return lines.join('\n');
}
