/**
 * The database plane against direct PostgreSQL, side by side in one run: pgbench select-only
 * (-S) with the simple and the extended protocol, first at full speed (throughput), then both
 * paths at half the gateway's throughput (-R) for latency percentiles from pgbench's
 * per-transaction log. Needs the machine's PostgreSQL (127.0.0.1:5432, trust, user postgres;
 * PGHOST/PGPORT/PGUSER override) and pgbench.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../gateway/config.js';
import { startGateway } from '../gateway/server.js';
import { freePort, startTestIssuer, TEST_AUDIENCE } from '../test/helpers/harness.js';
import { deleteKeysWithPrefix, redisUrl } from '../test/helpers/redis.js';
import { createTestDatabase, makeTlsMaterial, PG } from '../test/helpers/database.js';
import { IMAGE_NODE_OPTIONS } from './startup.js';

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
  /** CPU time of the gateway process (user + system) per transaction; null when it runs in other processes (workers). */
  readonly gatewayCpuUsPerTx: number | null;
}

export interface DatabaseBenchResult {
  readonly clients: number;
  readonly seconds: number;
  /** Gateway processes: 1, or the workers of multi-core mode. */
  readonly workers: number;
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

/** The gateway and the database the bench runs against, and the environment pgbench needs for each path. */
export interface BenchSetup {
  readonly envOf: (path: 'direct' | 'gateway') => Record<string, string>;
  readonly work: string;
  /** Decision events of the database plane written so far. */
  events(): number;
}

/**
 * A pgbench database (scale 1) of its own, a policy that allows pgbench's SELECTs, and the gateway:
 * in this process, or with `workers` > 1 in multi-core mode (a child process, Redis state).
 */
export async function withBenchGateway<T>(opts: { workers?: number }, fn: (setup: BenchSetup) => Promise<T>): Promise<T> {
  const tls = makeTlsMaterial();
  const work = mkdtempSync(join(tmpdir(), 'ztgate-pgbench-'));
  const db = await createTestDatabase((role) => `SELECT 1; -- ${role}`);
  const issuer = await startTestIssuer();
  let events = 0;
  let partial = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop()!;
      events += lines.filter((l) => l.includes('"db":')).length;
      done();
    },
  });
  try {
    execFileSync('pgbench', ['-i', '-s', '1', '-q', '-h', PG.host, '-p', String(PG.port), '-U', PG.user, db.name], { stdio: 'ignore' });
    execFileSync('psql', ['-h', PG.host, '-p', String(PG.port), '-U', PG.user, '-d', db.name, '-qc', `GRANT SELECT ON pgbench_accounts, pgbench_branches TO ${db.role}`], { stdio: 'ignore' });
    writeFileSync(join(work, 'policy.csv'), 'p, bench, *, db:bench-db, /public.pgbench_accounts, SELECT, allow\np, bench, *, db:bench-db, /public.pgbench_branches, SELECT, allow\n');
    const workers = opts.workers ?? 1;
    const dbPort = workers > 1 ? await freePort() : 0;
    const doc: Record<string, unknown> = {
      listen: { host: '127.0.0.1', port: workers > 1 ? await freePort() : 0 },
      publicUrl: 'http://127.0.0.1:1',
      identity: { clockSkewSeconds: 30, issuers: [{ issuer: issuer.issuer, audience: TEST_AUDIENCE, algorithms: ['ES256'] }] },
      policy: { model: join(ROOT, 'policies/model.conf'), policy: join(work, 'policy.csv') },
      devices: { defaultMinTierBySecurityLevel: { '3': 'unknown' } },
      routes: [],
      databases: {
        listen: { host: '127.0.0.1', port: dbPort, tls: { certFile: tls.serverCert, keyFile: tls.serverKey } },
        services: [
          {
            id: 'bench-db',
            name: 'pgbench (synthetic)',
            upstream: { host: PG.host, port: PG.port, database: db.name },
            credentials: { user: db.role },
            ownerAgency: 'so-tu-phap',
            securityLevel: 3,
            classification: 'internal',
            approval: { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-01' },
          },
        ],
      },
    };
    const now = Math.floor(Date.now() / 1000);
    const token = await issuer.sign({ iss: issuer.issuer, aud: TEST_AUDIENCE, sub: OFFICIAL, national_id: OFFICIAL, agency: 'so-tu-phap', roles: ['bench'], iat: now, exp: now + 3600 });
    let port = 0;
    let stop: () => Promise<void>;
    if (workers > 1) {
      const prefix = `ztgate-bench-db-${process.pid}:`;
      writeFileSync(join(work, 'ztgate.json'), JSON.stringify({ ...doc, state: { backend: 'redis', redisUrl: await redisUrl(), keyPrefix: prefix } }));
      const child = spawn(process.execPath, [...IMAGE_NODE_OPTIONS, '--import', 'tsx', 'gateway/cli.ts', 'start', '--config', join(work, 'ztgate.json'), '--workers', String(workers)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      // The workers write their events to the stdout they share with the primary (the default sink).
      child.stdout!.pipe(sink);
      let stderr = '';
      child.stderr!.on('data', (c: Buffer) => (stderr += c));
      const deadline = Date.now() + 60_000;
      while (!stderr.includes('listening on') && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      if (!stderr.includes('listening on')) {
        child.kill('SIGKILL');
        throw new Error(`multi-core gateway did not start: ${stderr.slice(-2000)}`);
      }
      port = dbPort;
      stop = async () => {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
        await deleteKeysWithPrefix(prefix).catch(() => undefined);
      };
    } else {
      const gw = await startGateway(parseConfig(doc, 'database-bench', ROOT), { decisionLog: sink });
      port = gw.database!.port;
      stop = () => gw.close();
    }
    const envOf = (path: 'direct' | 'gateway'): Record<string, string> =>
      path === 'direct' ? { PGHOST: PG.host, PGPORT: String(PG.port), PGUSER: PG.user, PGDATABASE: db.name, PGSSLMODE: 'disable' } : { PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: OFFICIAL, PGDATABASE: 'bench-db', PGPASSWORD: token, PGSSLMODE: 'verify-full', PGSSLROOTCERT: tls.serverCa };
    let stopped = false;
    try {
      const result = await fn({ envOf, work, events: () => events });
      await stop();
      stopped = true;
      return result;
    } finally {
      if (!stopped) await stop();
    }
  } finally {
    await issuer.close();
    await db.drop();
    tls.remove();
    rmSync(work, { recursive: true, force: true });
  }
}

export async function runDatabaseBench(opts: { seconds: number; clients: number; workers?: number; log: (m: string) => void }): Promise<DatabaseBenchResult> {
  let events = 0;
  const result = await withBenchGateway({ workers: opts.workers }, async ({ envOf, work, events: count }) => {
    const runs: PgbenchRun[] = [];
    const one = async (path: 'direct' | 'gateway', mode: 'simple' | 'extended', rate: number | null): Promise<PgbenchRun> => {
      const dir = mkdtempSync(join(work, 'run-'));
      const args = ['-n', '-S', '-M', mode, '-c', String(opts.clients), '-j', '2', '-T', String(opts.seconds), '-l', '--log-prefix', join(dir, 'tx')];
      if (rate !== null) args.push('-R', String(Math.max(1, Math.round(rate))));
      const cpu = process.cpuUsage();
      const out = await pgbench(args, envOf(path), dir);
      const used = process.cpuUsage(cpu);
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
      const inProcess = path === 'gateway' && (opts.workers ?? 1) === 1;
      const gatewayCpuUsPerTx = inProcess && transactions > 0 ? (used.user + used.system) / transactions : null;
      const r: PgbenchRun = { path, mode, rate, tps, transactions, failed, latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), mean: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length) }, gatewayCpuUsPerTx };
      opts.log(
        `database${(opts.workers ?? 1) > 1 ? ` (${opts.workers} workers)` : ''}: ${path} ${mode}${rate ? ` at ${Math.round(rate)} tps` : ''}: ${tps.toFixed(0)} tps, p50 ${r.latencyMs.p50.toFixed(2)} ms, p99 ${r.latencyMs.p99.toFixed(2)} ms${gatewayCpuUsPerTx !== null ? `, gateway CPU ${gatewayCpuUsPerTx.toFixed(0)} µs per transaction` : ''}`,
      );
      runs.push(r);
      return r;
    };
    // Warm-up, not measured: the JIT, the parser's WebAssembly and the caches, so the first measured run is not charged for them.
    for (const mode of ['simple', 'extended'] as const) await pgbench(['-n', '-S', '-M', mode, '-c', String(opts.clients), '-j', '2', '-t', '500'], envOf('gateway'), work);
    const loadAtStart = loadavg()[0]!;
    for (const mode of ['simple', 'extended'] as const) {
      await one('direct', mode, null);
      const g = await one('gateway', mode, null);
      // Half load: half of what the gateway sustains, the same offered rate on both paths.
      await one('direct', mode, g.tps / 2);
      await one('gateway', mode, g.tps / 2);
    }
    return { runs, loadAverage: { start: loadAtStart, end: loadavg()[0]! }, count };
  });
  events = result.count();
  return { clients: opts.clients, seconds: opts.seconds, workers: opts.workers ?? 1, runs: result.runs, events, loadAverage: result.loadAverage };
}

export function renderDatabaseMarkdown(r: DatabaseBenchResult, multi?: DatabaseBenchResult): string {
  const lines = [
    `### Database plane: pgbench -S (select-only), ${r.clients} clients, ${r.seconds} s per run`,
    '',
    `Load average (1 min) ${r.loadAverage.start.toFixed(2)} before the runs, ${r.loadAverage.end.toFixed(2)} after${multi ? `; ${multi.loadAverage.start.toFixed(2)} and ${multi.loadAverage.end.toFixed(2)} around the ${multi.workers}-worker runs` : ''}.`,
    '',
    '| protocol | path | offered rate | tps | p50 | p99 | gateway ÷ direct tps | added p99 | gateway CPU per statement |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const ms = (v: number) => `${v.toFixed(2)} ms`;
  const cpu = (x: PgbenchRun) => (x.gatewayCpuUsPerTx === null ? '' : `${x.gatewayCpuUsPerTx.toFixed(0)} µs`);
  for (const mode of ['simple', 'extended'] as const) {
    for (const res of multi ? [r, multi] : [r]) {
      const find = (path: string, rated: boolean) => res.runs.find((x) => x.mode === mode && x.path === path && (x.rate !== null) === rated)!;
      const [d, g, dh, gh] = [find('direct', false), find('gateway', false), find('direct', true), find('gateway', true)];
      const gw = res.workers > 1 ? `gateway, ${res.workers} workers` : 'gateway';
      lines.push(`| ${mode} | direct | max | ${d.tps.toFixed(0)} | ${ms(d.latencyMs.p50)} | ${ms(d.latencyMs.p99)} | | | |`);
      lines.push(`| ${mode} | ${gw} | max | ${g.tps.toFixed(0)} | ${ms(g.latencyMs.p50)} | ${ms(g.latencyMs.p99)} | ${(g.tps / d.tps).toFixed(2)}× | | ${cpu(g)} |`);
      lines.push(`| ${mode} | direct | ${Math.round(dh.rate!)} tps | ${dh.tps.toFixed(0)} | ${ms(dh.latencyMs.p50)} | ${ms(dh.latencyMs.p99)} | | | |`);
      lines.push(`| ${mode} | ${gw} | ${Math.round(gh.rate!)} tps | ${gh.tps.toFixed(0)} | ${ms(gh.latencyMs.p50)} | ${ms(gh.latencyMs.p99)} | | +${(gh.latencyMs.p99 - dh.latencyMs.p99).toFixed(2)} ms | ${cpu(gh)} |`);
    }
  }
  lines.push('', `Decision events written for statements: ${r.events.toLocaleString('en-US')}${multi ? ` (one process), ${multi.events.toLocaleString('en-US')} (${multi.workers} workers)` : ''}.`, '');
  return lines.join('\n');
}
