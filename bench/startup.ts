import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { generatePolicy } from './policy-gen.js';
import { createAgent } from './loadgen.js';
import { freePort } from '../test/helpers/harness.js';

/**
 * Start-up and memory of one gateway process as it runs in production: `node dist/gateway/cli.js
 * start` (compiled, no tsx), with N generated rules and a synthetic roster of M officials
 * (`identity.roster.source: file`). Cold start is the time from spawning the process to the first
 * 200 from `/readyz`; memory is the process's RSS (VmRSS) after a stretch of traffic from distinct
 * officials of the roster, and its peak (VmHWM).
 */

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const AUDIENCE = 'urn:ztgate:data';
const ROLE = 'bench-reader';

export interface StartupOptions {
  readonly dir: string;
  readonly rules: number;
  readonly roster: number;
  /** Cold starts measured; the median is reported. */
  readonly starts: number;
  /** Seconds of closed-loop traffic before memory is read. */
  readonly loadSeconds: number;
  readonly connections: number;
  /** Distinct officials (tokens) in rotation during that traffic. */
  readonly tokens: number;
  /** Extra node options for the measured gateway (e.g. `--cpu-prof`, `--heapsnapshot-signal=SIGUSR2`). */
  readonly nodeOptions?: readonly string[];
  /** Write a heap snapshot (after the traffic) into this folder. */
  readonly heapSnapshotDir?: string;
  readonly log: (line: string) => void;
}

export interface StartupResult {
  readonly command: string;
  readonly rules: number;
  readonly roster: number;
  readonly coldStartMs: { readonly median: number; readonly runs: readonly number[] };
  /** CPU time (user + system) the process had used when /readyz first answered 200: what start-up costs whatever else runs on the machine. */
  readonly coldStartCpuMs: { readonly median: number; readonly runs: readonly number[] };
  readonly memoryMiB: { readonly readyRss: number; readonly afterLoadRss: number; readonly peakRss: number };
  readonly requests: number;
  readonly errors: number;
  /** Gateway CPU time during that traffic per request (user + system, all threads). */
  readonly cpuPerRequestUs: number;
  readonly loadavgStart: readonly number[];
  readonly loadavgEnd: readonly number[];
}

/** The synthetic roster (marked as such in its first line): officials 0010<8 digits>, all active readers. */
export function syntheticRosterCsv(count: number): string {
  const lines = ['# synthetic roster for the benchmark, not real people / danh sách giả lập để đo, không phải người thật', 'nationalId,name,agency,unit,position,roles,clearance,status'];
  for (let i = 0; i < count; i++) lines.push(`${nationalIdOf(i)},Cán bộ giả lập ${i},so-bench,Phòng đo ${i % 100},Chuyên viên,${ROLE},none,active`);
  return `${lines.join('\n')}\n`;
}

/** The node options the container image starts the gateway with (Dockerfile ENTRYPOINT). */
export const IMAGE_NODE_OPTIONS = ['--max-semi-space-size=8'] as const;

export const nationalIdOf = (i: number): string => `0010${String(90000000 + i).slice(-8)}`;

/** Compiles dist/ when a source file is newer than its last build. */
export function ensureDist(log: (line: string) => void): void {
  const info = join(ROOT, 'dist/.tsbuildinfo');
  const built = existsSync(info) ? statSync(info).mtimeMs : 0;
  const newest = (dir: string): number => {
    let t = 0;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name === 'node_modules') continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) t = Math.max(t, newest(p));
      else if (e.name.endsWith('.ts')) t = Math.max(t, statSync(p).mtimeMs);
    }
    return t;
  };
  if (Math.max(...['gateway', 'policies', 'identity', 'demo'].map((d) => newest(join(ROOT, d)))) <= built) return;
  log('  building dist/ (tsc -p tsconfig.build.json)');
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tsc failed: ${r.stdout}${r.stderr}`);
}

function get(url: string, headers: Record<string, string> = {}, agent?: ReturnType<typeof createAgent>): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

const mib = (kib: number) => Math.round(kib / 1024);

function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10; // USER_HZ = 100
  } catch {
    return 0;
  }
}

const median = (v: readonly number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', () => (clearTimeout(t), resolve()));
    child.kill('SIGTERM');
  });
}

export async function runStartup(o: StartupOptions): Promise<StartupResult> {
  mkdirSync(o.dir, { recursive: true });
  ensureDist(o.log);
  const loadavgStart = loadavg();
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwksBody = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'ES256', use: 'sig' }] });
  const jwks: Server = createServer((req, res) => (req.url === '/jwks' ? res.writeHead(200, { 'content-type': 'application/json' }).end(jwksBody) : res.writeHead(404).end()));
  await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}`;
  const upstream = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true,"synthetic":true}'));
  });
  upstream.keepAliveTimeout = 120_000;
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

  const policy = generatePolicy({ rules: o.rules });
  const policyFile = join(o.dir, `startup-policy-${o.rules}.csv`);
  writeFileSync(policyFile, `${policy.csv}\np, ${ROLE}, *, bench, /records/:id, GET|HEAD, allow\n`);
  const rosterFile = join(o.dir, `startup-roster-${o.roster}.csv`);
  if (o.roster > 0) writeFileSync(rosterFile, syntheticRosterCsv(o.roster));
  const approval = { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-01' };
  const port = await freePort();
  const configFile = join(o.dir, 'startup.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      listen: { host: '127.0.0.1', port },
      publicUrl: `http://127.0.0.1:${port}`,
      workers: 1,
      log: { level: 'warn' },
      identity: { issuers: [{ issuer, audience: AUDIENCE, algorithms: ['ES256'], jwksUri: `${issuer}/jwks` }], ...(o.roster > 0 ? { roster: { source: 'file', file: rosterFile } } : {}) },
      policy: { model: join(ROOT, 'policies/model.conf'), policy: policyFile },
      routes: [
        { id: 'bench', name: 'Dịch vụ đo (bench)', pathPrefix: '/bench', upstream: upstreamUrl, ownerAgency: 'so-bench', securityLevel: 2, classification: 'internal', approval },
        ...policy.routes.map((id) => ({ id, name: `Dịch vụ ${id} (bench)`, pathPrefix: `/${id}`, upstream: upstreamUrl, ownerAgency: 'so-bench', securityLevel: 2, classification: 'internal', approval })),
      ],
    }),
  );
  const base = `http://127.0.0.1:${port}`;
  const nodeOptions = [...(o.nodeOptions ?? []), ...(o.heapSnapshotDir ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${o.heapSnapshotDir}`] : [])];
  const args = [...nodeOptions, join(ROOT, 'dist/gateway/cli.js'), 'start', '--config', configFile];
  const spawnGateway = () => spawn(process.execPath, args, { cwd: o.dir, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, NODE_ENV: 'production' } });

  const runs: number[] = [];
  const cpuRuns: number[] = [];
  let child: ChildProcess | null = null;
  let readyRss = 0;
  let requests = 0;
  let errors = 0;
  try {
    for (let i = 0; i < Math.max(1, o.starts); i++) {
      const t0 = performance.now();
      child = spawnGateway();
      const c = child;
      let exited = false;
      c.once('exit', () => (exited = true));
      for (;;) {
        if (exited) throw new Error(`the gateway exited (${c.exitCode}) before /readyz answered 200`);
        if ((await get(`${base}/readyz`)) === 200) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      runs.push(Math.round(performance.now() - t0));
      cpuRuns.push(cpuMs(c.pid!));
      o.log(`  cold start ${i + 1}: ${runs.at(-1)} ms to /readyz 200, ${cpuRuns.at(-1)} ms of CPU`);
      readyRss = statusKiB(c.pid!, 'VmRSS');
      if (i < o.starts - 1) {
        await stop(c);
        child = null;
      }
    }
    // Traffic from distinct officials of the roster: fills the token cache as production would.
    const tokens: string[] = [];
    const n = Math.max(1, Math.min(o.tokens, o.roster || o.tokens));
    for (let i = 0; i < n; i++) {
      const id = nationalIdOf(i);
      tokens.push(await new SignJWT({ national_id: id, agency: 'so-bench', roles: [ROLE] }).setProtectedHeader({ alg: 'ES256', kid: 'bench-1', typ: 'at+jwt' }).setIssuer(issuer).setAudience(AUDIENCE).setSubject(id).setIssuedAt().setExpirationTime('2h').sign(privateKey));
    }
    const agent = createAgent(o.connections);
    const cpuBefore = cpuMs(child!.pid!);
    const end = Date.now() + o.loadSeconds * 1000;
    let next = 0;
    await Promise.all(
      Array.from({ length: o.connections }, async () => {
        while (Date.now() < end) {
          const status = await get(`${base}/bench/records/12345`, { authorization: `Bearer ${tokens[next++ % tokens.length]}` }, agent);
          if (status === 200) requests++;
          else errors++;
        }
      }),
    );
    agent.destroy();
    const pid = child!.pid!;
    const cpuPerRequestUs = requests > 0 ? Math.round(((cpuMs(pid) - cpuBefore) * 1000) / requests) : 0;
    const afterLoadRss = statusKiB(pid, 'VmRSS');
    const peakRss = statusKiB(pid, 'VmHWM');
    if (o.heapSnapshotDir) {
      mkdirSync(o.heapSnapshotDir, { recursive: true });
      const before = new Set(readdirSync(o.heapSnapshotDir));
      child!.kill('SIGUSR2');
      for (let i = 0; i < 600 && readdirSync(o.heapSnapshotDir).filter((f) => !before.has(f) && f.endsWith('.heapsnapshot')).length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      // Written in one go once the file is there and its size no longer changes.
      let size = -1;
      for (let i = 0; i < 600; i++) {
        const f = readdirSync(o.heapSnapshotDir).find((x) => !before.has(x) && x.endsWith('.heapsnapshot'));
        const s = f ? statSync(join(o.heapSnapshotDir, f)).size : -1;
        if (s > 0 && s === size) break;
        size = s;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    o.log(`  RSS: ${mib(readyRss)} MiB ready, ${mib(afterLoadRss)} MiB after ${requests} requests from ${n} officials, peak ${mib(peakRss)} MiB`);
    return {
      command: `node ${nodeOptions.join(' ')}${nodeOptions.length ? ' ' : ''}dist/gateway/cli.js start --config <${o.rules} rules, ${o.roster} officials>`,
      rules: o.rules,
      roster: o.roster,
      coldStartMs: { median: median(runs), runs },
      coldStartCpuMs: { median: median(cpuRuns), runs: cpuRuns },
      memoryMiB: { readyRss: mib(readyRss), afterLoadRss: mib(afterLoadRss), peakRss: mib(peakRss) },
      requests,
      errors,
      cpuPerRequestUs,
      loadavgStart,
      loadavgEnd: loadavg(),
    };
  } finally {
    if (child) await stop(child);
    jwks.close();
    upstream.closeAllConnections();
    upstream.close();
  }
}

export function formatStartup(runs: readonly StartupResult[]): string {
  const r0 = runs[0]!;
  return [
    `Load average ${r0.loadavgStart.map((v) => v.toFixed(2)).join(' ')} at the start, ${runs
      .at(-1)!
      .loadavgEnd.map((v) => v.toFixed(2))
      .join(' ')} at the end.`,
    '',
    '| command | rules | roster (synthetic) | cold start to /readyz 200, median (runs) | CPU used by then, median (runs) | RSS ready | RSS after traffic | peak RSS | requests | CPU µs per request | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...runs.map(
      (r) =>
        `| \`${r.command}\` | ${r.rules.toLocaleString('en')} | ${r.roster.toLocaleString('en')} | ${r.coldStartMs.median} ms (${r.coldStartMs.runs.join(', ')}) | ${r.coldStartCpuMs.median} ms (${r.coldStartCpuMs.runs.join(', ')}) | ${r.memoryMiB.readyRss} MiB | ${r.memoryMiB.afterLoadRss} MiB | ${r.memoryMiB.peakRss} MiB | ${r.requests.toLocaleString('en')} | ${r.cpuPerRequestUs} | ${r.errors} |`,
    ),
  ].join('\n');
}
