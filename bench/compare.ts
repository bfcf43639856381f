import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { IMAGE_NODE_OPTIONS } from './startup.js';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdirSync, readFileSync, writeFileSync, openSync, closeSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { Redis } from 'ioredis';
import { generatePolicy } from './policy-gen.js';
import { createAgent, LoadAccumulator } from './loadgen.js';
import { deleteKeysByPrefix } from '../test/helpers/redis.js';
import { freePort } from '../test/helpers/harness.js';
import { FALLBACK_FRACTIONS, fixedRateRun, type FixedRateRun } from './fixed-rate.js';

/**
 * The whole request path side by side, in one run, on loopback, against one upstream (≈1 KB JSON,
 * keep-alive): (a) direct, (b) bare @fastify/http-proxy, (c) nginx with one worker when installed,
 * and the gateway (d) warm: one token, 10k rules; (e) cold: 5,000 distinct valid tokens in rotation;
 * (f) Redis state, hash chain and a file of events; (g) a fresh DPoP device proof on every request,
 * on a route that asks for a registered device; (h) multi-core mode. The load generator is wrk
 * when installed (with a Lua script for the rotating tokens and p99.9), otherwise a closed loop in
 * this process. Per set-up: req/s, p50/p99/p99.9, latency added over (b), cores used by the server
 * processes, their peak RSS, and the ratios to (b) and (c).
 */

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const AUDIENCE = 'urn:ztgate:data';
const ROLE = 'bench-reader';

export const COMPARE_SETUPS = ['direct', 'bare-proxy', 'nginx', 'gateway-warm', 'gateway-cold', 'gateway-device-proof', 'gateway-redis-chain', 'gateway-multi-core'] as const;
export type CompareSetup = (typeof COMPARE_SETUPS)[number];

export interface CompareOptions {
  readonly dir: string;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly connections: number;
  readonly threads: number;
  readonly rules: number;
  readonly tokens: number;
  readonly workers: number;
  readonly setups?: readonly CompareSetup[];
  readonly redisUrl?: string;
  /** `node`: the closed loop in this process even where wrk is installed. */
  readonly generator?: 'auto' | 'node';
  /** The open-loop run of (b) and (d) at half of (b)'s closed-loop rate; null: not run. Default: the closed-loop seconds. */
  readonly fixedRate?: { readonly seconds: number; readonly warmupSeconds: number; readonly fractionOfBare?: number } | null;
  readonly log: (line: string) => void;
}

export interface SetupResult {
  readonly setup: CompareSetup;
  readonly requestsPerSecond: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly p999: number; readonly mean: number };
  readonly errors: number;
  readonly requests: number;
  /** CPU seconds of the server processes (all workers) per wall second. */
  readonly serverCores: number;
  /** CPU seconds of the load generator per wall second. */
  readonly loadgenCores: number;
  /** Largest peak RSS among the server processes, and their sum (MiB). */
  readonly peakRssMiB: { readonly max: number; readonly sum: number };
  readonly ratioToBare: number | null;
  readonly ratioToNginx: number | null;
  readonly addedP50Ms: number | null;
  readonly addedP99Ms: number | null;
  readonly skipped?: string;
}

export interface CompareResult {
  readonly machine: { readonly cpu: string; readonly cores: number; readonly node: string; readonly loadavgStart: number[]; readonly loadavgEnd: number[] };
  readonly loadgen: string;
  readonly connections: number;
  readonly threads: number;
  readonly seconds: number;
  readonly rules: number;
  readonly tokens: number;
  readonly workers: number;
  readonly setups: readonly SetupResult[];
  readonly fixedRate: FixedRateResult | null;
}

/** (b) and (d) at a fixed offered rate: a fraction of (b)'s closed-loop req/s; latency from each request's due time. */
export interface FixedRateResult {
  readonly generator: string;
  readonly fractionOfBare: number;
  readonly rate: number;
  readonly connections: number;
  readonly seconds: number;
  readonly bare: FixedRateRun;
  readonly gateway: FixedRateRun;
  /** Gateway minus bare proxy, same rate, same run. */
  readonly addedMs: { readonly p50: number; readonly p99: number; readonly p999: number };
  /** When the gateway did not keep `rate`: the highest rate it kept (fractions of its closed-loop req/s), with the bare proxy at that rate too. */
  readonly highestKept: { readonly rate: number; readonly gateway: FixedRateRun; readonly bare: FixedRateRun; readonly addedMs: { readonly p50: number; readonly p99: number; readonly p999: number } } | null;
}

const addedOf = (gw: FixedRateRun, bare: FixedRateRun) => ({ p50: round2(gw.latencyMs.p50 - bare.latencyMs.p50), p99: round2(gw.latencyMs.p99 - bare.latencyMs.p99), p999: round2(gw.latencyMs.p999 - bare.latencyMs.p999) });

const hasCommand = (name: string): string | null => {
  const r = spawnSync('sh', ['-c', `command -v ${name} || ls /usr/sbin/${name} 2>/dev/null`], { encoding: 'utf8' });
  const path = r.stdout.trim().split('\n')[0];
  return r.status === 0 && path ? path : null;
};

/** utime + stime of a process and its descendants, in seconds. */
function cpuSeconds(pids: readonly number[]): number {
  const tick = 100; // USER_HZ on Linux
  let total = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += (Number(fields[11]) + Number(fields[12])) / tick;
    } catch {
      /* exited */
    }
  }
  return total;
}

function descendants(pid: number): number[] {
  const out = [pid];
  try {
    for (const tid of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) out.push(...descendants(Number(tid)));
  } catch {
    /* exited */
  }
  return out;
}

function peakRssMiB(pids: readonly number[]): { max: number; sum: number } {
  let max = 0;
  let sum = 0;
  for (const pid of pids) {
    try {
      const kb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
      max = Math.max(max, kb / 1024);
      sum += kb / 1024;
    } catch {
      /* exited */
    }
  }
  return { max: Math.round(max), sum: Math.round(sum) };
}

/** Own children that were waited for (wrk), CPU seconds. */
function childrenCpuSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

interface Server_ {
  readonly child: ChildProcess;
  readonly url: string;
  pids(): number[];
  stop(): Promise<void>;
}

function started(child: ChildProcess, url: string): Server_ {
  return {
    child,
    url,
    pids: () => descendants(child.pid!),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.once('exit', () => (clearTimeout(t), resolve()));
        child.kill('SIGTERM');
      }),
  };
}

function startNode(mode: string, arg: unknown): Promise<Server_> {
  return new Promise((resolve, reject) => {
    // BENCH_CPU_PROF=1: the gateway writes a V8 CPU profile to bench/results/profiles/ when it stops.
    const profile = mode === 'gateway' && process.env.BENCH_CPU_PROF === '1' ? ['--cpu-prof', `--cpu-prof-dir=${join(ROOT, 'bench/results/profiles')}`] : [];
    const child = spawn(process.execPath, [...IMAGE_NODE_OPTIONS, ...profile, '--import', 'tsx', join(ROOT, 'bench/compare-servers.ts'), mode, JSON.stringify(arg)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c;
      const m = /READY (\S+)/.exec(out);
      if (m) resolve(started(child, m[1]!));
    });
    child.once('exit', (code) => reject(new Error(`${mode} exited (${code}) before it was ready`)));
  });
}

function startCli(configFile: string, workers: number, eventsFile: string): Promise<Server_> {
  return new Promise((resolve, reject) => {
    const events = openSync(eventsFile, 'a');
    const child = spawn(process.execPath, [...IMAGE_NODE_OPTIONS, '--import', 'tsx', join(ROOT, 'gateway/cli.ts'), 'start', '--config', configFile, '--workers', String(workers)], { cwd: ROOT, stdio: ['ignore', events, 'pipe'], env: { ...process.env, NODE_ENV: 'production' } });
    closeSync(events);
    let err = '';
    child.stderr!.on('data', (c: Buffer) => {
      err += c;
      const m = /listening on (\S+)/.exec(err);
      if (m) resolve(started(child, m[1]!));
    });
    child.once('exit', (code) => reject(new Error(`gateway --workers ${workers} exited (${code}): ${err.slice(-500)}`)));
  });
}

async function startNginx(nginx: string, dir: string, upstream: string): Promise<Server_> {
  const port = await freePort();
  const d = join(dir, 'nginx');
  mkdirSync(join(d, 'tmp'), { recursive: true });
  const up = new URL(upstream);
  writeFileSync(
    join(d, 'nginx.conf'),
    `worker_processes 1;
pid ${d}/nginx.pid;
error_log ${d}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${d}/tmp/body; proxy_temp_path ${d}/tmp/proxy; fastcgi_temp_path ${d}/tmp/fcgi; uwsgi_temp_path ${d}/tmp/uwsgi; scgi_temp_path ${d}/tmp/scgi;
  upstream bench { server ${up.host}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location /bench/ { proxy_pass http://bench/; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`,
  );
  const child = spawn(nginx, ['-p', d, '-c', join(d, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${url}/bench/x`)).ok) return started(child, url);
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error('nginx did not start');
}

interface LoadRun {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly mean: number;
  readonly errors: number;
  readonly requests: number;
}

/** What every wrk script prints at the end, parsed by the bench: requests, duration, p50, p99, p99.9, mean, errors. */
const WRK_REPORT_LUA = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("ZTGATE-BENCH %d %d %.1f %.1f %.1f %.1f %d\\n", summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.mean, e.connect + e.read + e.write + e.status + e.timeout))
end
`;

function luaScript(dir: string, name: string, tokens: readonly string[]): string {
  const file = join(dir, `${name}.lua`);
  const list = tokens.map((t) => `"${t}"`).join(',\n');
  writeFileSync(
    file,
    `local tokens = {${list}}
local n = #tokens
local i = 0
request = function()
  local headers = { ["Accept"] = "application/json" }
  if n > 0 then
    i = i % n + 1
    headers["Authorization"] = "Bearer " .. tokens[i]
  end
  return wrk.format("GET", nil, headers)
end
${WRK_REPORT_LUA}`,
  );
  return file;
}

/**
 * (g): wrk cannot sign, so the proofs are signed beforehand, one per line in a file; each wrk
 * thread takes every n-th line (its own slice), so no proof is ever sent twice. A thread that runs
 * out sends none, which the gateway refuses: it shows as errors, never as a reused proof.
 */
function proofLuaScript(dir: string, name: string, token: string, proofsFile: string, threads: number): string {
  const file = join(dir, `${name}.lua`);
  writeFileSync(
    file,
    `local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end
function init(args)
  proofs = {}
  local k = 0
  for line in io.lines("${proofsFile}") do
    if k % ${threads} == id then proofs[#proofs + 1] = line end
    k = k + 1
  end
  used = 0
end
request = function()
  local headers = { ["Accept"] = "application/json", ["Authorization"] = "Bearer ${token}" }
  used = used + 1
  if used <= #proofs then headers["DPoP"] = proofs[used] end
  return wrk.format("GET", nil, headers)
end
${WRK_REPORT_LUA}`,
  );
  return file;
}

/**
 * (g)'s device: a P-256 key the gateway has registered, and fresh RFC 9449 proofs by it (htm, htu,
 * iat, a unique jti, ath of the one token), signed with node:crypto, each to be used once.
 */
interface ProofSigner {
  readonly jwk: Record<string, unknown>;
  proof(): string;
}

function proofSigner(token: string, htu: string): ProofSigner {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
  const jwk = { kty, crv, x, y };
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const header = b64({ typ: 'dpop+jwt', alg: 'ES256', jwk });
  const ath = createHash('sha256').update(token).digest('base64url');
  const run = randomBytes(6).toString('hex');
  let n = 0;
  const key: KeyObject = privateKey;
  return {
    jwk,
    proof() {
      const input = `${header}.${b64({ jti: `${run}-${n++}`, iat: Math.floor(Date.now() / 1000), htm: 'GET', htu, ath })}`;
      return `${input}.${sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    },
  };
}

async function wrkRun(wrk: string, url: string, script: string, o: CompareOptions, seconds: number): Promise<LoadRun> {
  const child = spawn(wrk, ['-t', String(o.threads), '-c', String(o.connections), '-d', `${Math.max(1, Math.round(seconds))}s`, '--timeout', '10s', '-s', script, url], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c));
  child.stderr!.on('data', (c: Buffer) => (out += c));
  await new Promise((r) => child.once('close', r));
  const m = /ZTGATE-BENCH (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(out);
  if (!m) throw new Error(`wrk gave no result: ${out.slice(-500)}`);
  const requests = Number(m[1]);
  return { requests, rps: requests / (Number(m[2]) / 1e6), p50: Number(m[3]) / 1000, p99: Number(m[4]) / 1000, p999: Number(m[5]) / 1000, mean: Number(m[6]) / 1000, errors: Number(m[7]) };
}

/** The fallback generator: closed loop over keep-alive connections in this process. */
async function nodeRun(url: string, tokens: readonly string[], o: CompareOptions, seconds: number, extraHeaders?: () => Record<string, string>): Promise<LoadRun> {
  const acc = new LoadAccumulator();
  const agent = createAgent(o.connections);
  const { request } = await import('node:http');
  const target = new URL(url);
  let next = 0;
  const end = Date.now() + seconds * 1000;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: o.connections }, async () => {
      while (Date.now() < end) {
        const headers: Record<string, string> = { accept: 'application/json' };
        if (tokens.length > 0) headers.authorization = `Bearer ${tokens[next++ % tokens.length]}`;
        if (extraHeaders) Object.assign(headers, extraHeaders());
        const s = process.hrtime.bigint();
        const status = await new Promise<number>((resolve) => {
          const req = request({ agent, hostname: target.hostname, port: target.port, path: target.pathname, headers }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          });
          req.on('error', () => resolve(0));
          req.end();
        });
        if (status === 200) acc.samples.push(Number(process.hrtime.bigint() - s) / 1e6);
        else acc.errors++;
      }
    }),
  );
  acc.elapsedSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  agent.destroy();
  const r = acc.result(o.connections);
  return { requests: r.requests, rps: r.requestsPerSecond, p50: r.latencyMs.p50, p99: r.latencyMs.p99, p999: r.latencyMs.max, mean: r.latencyMs.mean, errors: acc.errors };
}

async function startJwks(jwk: object): Promise<{ server: Server; url: string }> {
  const body = JSON.stringify({ keys: [jwk] });
  const server = createServer((req, res) => (req.url === '/jwks' ? res.writeHead(200, { 'content-type': 'application/json' }).end(body) : res.writeHead(404).end()));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

export async function runCompare(o: CompareOptions): Promise<CompareResult> {
  const setups = new Set(o.setups ?? COMPARE_SETUPS);
  const wrk = o.generator === 'node' ? null : hasCommand('wrk');
  const nginx = hasCommand('nginx');
  const loadavgStart = loadavg();
  mkdirSync(o.dir, { recursive: true });

  // The issuer: one ES256 key; tokens for distinct officials.
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwks = await startJwks({ ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'ES256', use: 'sig' });
  const mint = (i: number) => {
    const id = nationalIdOf(i);
    return new SignJWT({ national_id: id, agency: 'so-bench', roles: [ROLE] }).setProtectedHeader({ alg: 'ES256', kid: 'bench-1', typ: 'at+jwt' }).setIssuer(jwks.url).setAudience(AUDIENCE).setSubject(id).setIssuedAt().setExpirationTime('2h').sign(privateKey);
  };
  const tokens: string[] = [];
  for (let i = 0; i < o.tokens; i++) tokens.push(await mint(i));

  const policy = generatePolicy({ rules: o.rules });
  const policyFile = join(o.dir, `compare-policy-${o.rules}.csv`);
  writeFileSync(policyFile, `${policy.csv}\np, ${ROLE}, *, bench, /records/:id, GET|HEAD, allow\n`);
  const approval = { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-01' };
  const prefix = `ztgate-bench-${randomBytes(4).toString('hex')}:`;

  const servers: Server_[] = [];
  const results: SetupResult[] = [];
  let fixedRate: FixedRateResult | null = null;
  let redis: Redis | null = null;
  try {
    const upstream = await startNode('upstream', {});
    servers.push(upstream);
    const routes = [
      { id: 'bench', name: 'Dịch vụ đo (bench)', pathPrefix: '/bench', upstream: upstream.url, ownerAgency: 'so-bench', securityLevel: 2, classification: 'internal', approval },
      ...policy.routes.map((id) => ({ id, name: `Dịch vụ ${id} (bench)`, pathPrefix: `/${id}`, upstream: upstream.url, ownerAgency: 'so-bench', securityLevel: 2, classification: 'internal', approval })),
    ];
    const gatewayDoc = (extra: Record<string, unknown> = {}) => ({
      listen: { host: '127.0.0.1', port: 0 },
      publicUrl: 'http://127.0.0.1:0',
      workers: 1,
      identity: { issuers: [{ issuer: jwks.url, audience: AUDIENCE, algorithms: ['ES256'], jwksUri: `${jwks.url}/jwks` }] },
      policy: { model: join(ROOT, 'policies/model.conf'), policy: policyFile },
      routes,
      ...extra,
    });
    const redisUrl = o.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    let redisOk = false;
    if (setups.has('gateway-redis-chain') || setups.has('gateway-multi-core')) {
      redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 1000 });
      redis.on('error', () => undefined);
      redisOk = await redis.connect().then(
        () => true,
        () => false,
      );
    }
    const redisState = { state: { backend: 'redis', redisUrl, keyPrefix: prefix } };

    const measure = async (setup: CompareSetup, server: Server_ | null, url: string, toks: readonly string[], proofs?: ProofSigner) => {
      const script = wrk && !proofs ? luaScript(o.dir, setup, toks) : '';
      const run = async (s: number) => {
        if (!proofs) return wrk ? wrkRun(wrk, url, script, o, s) : nodeRun(url, toks, o, s);
        // Signed beforehand, twice what the rate of (d) would use (a proof per request costs more).
        const warm = results.find((r) => r.setup === 'gateway-warm');
        const count = Math.ceil((warm ? warm.requestsPerSecond * 2 : 8000) * Math.max(1, s)) + 500;
        const pool: string[] = [];
        for (let i = 0; i < count; i++) pool.push(proofs.proof());
        if (wrk) {
          const file = join(o.dir, `${setup}-proofs.txt`);
          writeFileSync(file, `${pool.join('\n')}\n`);
          return wrkRun(wrk, url, proofLuaScript(o.dir, setup, toks[0]!, file, o.threads), o, s);
        }
        let i = 0;
        // Past the pool, the loop signs a fresh one (on the load generator's CPU).
        return nodeRun(url, toks, o, s, () => ({ dpop: i < pool.length ? pool[i++]! : proofs.proof() }));
      };
      if (o.warmupSeconds > 0) await run(o.warmupSeconds);
      const pids = server ? server.pids() : [];
      const cpu0 = cpuSeconds(pids);
      const gen0 = childrenCpuSeconds();
      const own0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      const r = await run(o.seconds);
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      const own = process.cpuUsage(own0);
      const loadgenCpu = wrk ? childrenCpuSeconds() - gen0 : (own.user + own.system) / 1e6;
      const serverCores = (cpuSeconds(server ? server.pids() : []) - cpu0) / wall;
      results.push({
        setup,
        requestsPerSecond: Math.round(r.rps),
        latencyMs: { p50: r.p50, p99: r.p99, p999: r.p999, mean: r.mean },
        errors: r.errors,
        requests: r.requests,
        serverCores: round2(serverCores),
        loadgenCores: round2(loadgenCpu / wall),
        peakRssMiB: peakRssMiB(server ? server.pids() : []),
        ratioToBare: null,
        ratioToNginx: null,
        addedP50Ms: null,
        addedP99Ms: null,
      });
      o.log(`  ${setup}: ${Math.round(r.rps)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, errors ${r.errors}`);
    };
    const skip = (setup: CompareSetup, why: string) => {
      results.push({ setup, requestsPerSecond: 0, latencyMs: { p50: 0, p99: 0, p999: 0, mean: 0 }, errors: 0, requests: 0, serverCores: 0, loadgenCores: 0, peakRssMiB: { max: 0, sum: 0 }, ratioToBare: null, ratioToNginx: null, addedP50Ms: null, addedP99Ms: null, skipped: why });
      o.log(`  ${setup}: skipped (${why})`);
    };
    const one = async (setup: CompareSetup, start: () => Promise<Server_>, path: string, toks: readonly string[], proofs?: ProofSigner) => {
      if (!setups.has(setup)) return;
      const server = await start();
      servers.push(server);
      try {
        await measure(setup, server, `${server.url}${path}`, toks, proofs);
      } finally {
        await server.stop();
      }
    };

    if (setups.has('direct')) await measure('direct', upstream, `${upstream.url}/records/12345`, []);
    await one('bare-proxy', () => startNode('bare', { upstream: upstream.url }), '/bench/records/12345', []);
    if (setups.has('nginx')) {
      if (nginx) await one('nginx', () => startNginx(nginx, o.dir, upstream.url), '/bench/records/12345', []);
      else skip('nginx', 'nginx is not installed');
    }
    if (setups.has('gateway-warm') || setups.has('gateway-cold')) {
      const gw = await startNode('gateway', { config: gatewayDoc() });
      servers.push(gw);
      try {
        if (setups.has('gateway-warm')) await measure('gateway-warm', gw, `${gw.url}/bench/records/12345`, tokens.slice(0, 1));
        if (setups.has('gateway-cold')) await measure('gateway-cold', gw, `${gw.url}/bench/records/12345`, tokens);
      } finally {
        await gw.stop();
      }
    }
    if (setups.has('gateway-device-proof')) {
      // The route asks for a registered device; the official's device is enrolled and approved at start.
      const publicUrl = 'http://127.0.0.1:0';
      const signer = proofSigner(tokens[0]!, `${publicUrl}/bench/records/12345`);
      const deviceRoutes = routes.map((r) => (r.id === 'bench' ? { ...r, minDeviceTier: 'registered' } : r));
      // Proofs are signed before each run: the window covers signing, warm-up and the run.
      const config = gatewayDoc({ routes: deviceRoutes, devices: { proofMaxAgeSeconds: 600 } });
      await one('gateway-device-proof', () => startNode('gateway', { config, devices: [{ jwk: signer.jwk, owner: nationalIdOf(0) }] }), '/bench/records/12345', tokens.slice(0, 1), signer);
    }
    if (setups.has('gateway-redis-chain')) {
      if (!redisOk) skip('gateway-redis-chain', `Redis at ${redisUrl} does not answer`);
      else await one('gateway-redis-chain', () => startNode('gateway', { config: gatewayDoc({ ...redisState, audit: { chain: { file: join(o.dir, 'chain', 'redis-chain.log') } } }), eventsFile: join(o.dir, 'events-redis-chain.jsonl') }), '/bench/records/12345', tokens.slice(0, 1));
    }
    if (setups.has('gateway-multi-core')) {
      if (!redisOk) skip('gateway-multi-core', `Redis at ${redisUrl} does not answer`);
      else {
        const configFile = join(o.dir, 'multi-core.json');
        writeFileSync(configFile, JSON.stringify(gatewayDoc({ ...redisState, listen: { host: '127.0.0.1', port: await freePort() }, audit: { chain: { file: join(o.dir, 'chain', 'multi-core.log') } } })));
        await one('gateway-multi-core', () => startCli(configFile, o.workers, join(o.dir, 'events-multi-core.jsonl')), '/bench/records/12345', tokens.slice(0, 1));
      }
    }
    const bareClosed = results.find((r) => r.setup === 'bare-proxy' && !r.skipped);
    const warmClosed = results.find((r) => r.setup === 'gateway-warm' && !r.skipped);
    const fr = o.fixedRate === undefined ? { seconds: o.seconds, warmupSeconds: Math.min(o.warmupSeconds, 2) } : o.fixedRate;
    if (fr && bareClosed && warmClosed) {
      const fraction = fr.fractionOfBare ?? 0.5;
      const rate = Math.max(1, Math.round(bareClosed.requestsPerSecond * fraction));
      const bare = await startNode('bare', { upstream: upstream.url });
      servers.push(bare);
      const gw = await startNode('gateway', { config: gatewayDoc() });
      servers.push(gw);
      try {
        const at = (url: string, r: number, toks: readonly string[]) => fixedRateRun({ url, rate: r, connections: o.connections, seconds: fr.seconds, warmupSeconds: fr.warmupSeconds, drainSeconds: 2, tokens: toks });
        const show = (name: string, run: FixedRateRun) => o.log(`  fixed rate ${run.rate}/s, ${name}: ${run.kept ? 'kept' : 'NOT kept'}, ${run.answeredPerSecond} answered/s, p50 ${run.latencyMs.p50.toFixed(2)} ms, p99 ${run.latencyMs.p99.toFixed(2)} ms, p99.9 ${run.latencyMs.p999.toFixed(2)} ms`);
        const bareRun = await at(`${bare.url}/bench/records/12345`, rate, []);
        show('bare proxy', bareRun);
        const gwRun = await at(`${gw.url}/bench/records/12345`, rate, tokens.slice(0, 1));
        show('gateway (warm)', gwRun);
        let highestKept: FixedRateResult['highestKept'] = null;
        if (!gwRun.kept) {
          for (const f of FALLBACK_FRACTIONS) {
            const r = Math.max(1, Math.round(warmClosed.requestsPerSecond * f));
            if (r >= rate) continue;
            const run = await at(`${gw.url}/bench/records/12345`, r, tokens.slice(0, 1));
            show('gateway (warm)', run);
            if (!run.kept) continue;
            const b = await at(`${bare.url}/bench/records/12345`, r, []);
            show('bare proxy', b);
            highestKept = { rate: r, gateway: run, bare: b, addedMs: addedOf(run, b) };
            break;
          }
        }
        fixedRate = { generator: 'node open loop (bench/fixed-rate-worker.ts, own process, node:http keep-alive)', fractionOfBare: fraction, rate, connections: o.connections, seconds: fr.seconds, bare: bareRun, gateway: gwRun, addedMs: addedOf(gwRun, bareRun), highestKept };
      } finally {
        await gw.stop();
        await bare.stop();
      }
    }
  } finally {
    for (const s of servers) await s.stop();
    jwks.server.close();
    if (redis) {
      if (redis.status === 'ready') await deleteKeysByPrefix(redis, prefix);
      redis.disconnect();
    }
  }

  const bare = results.find((r) => r.setup === 'bare-proxy' && !r.skipped);
  const ngx = results.find((r) => r.setup === 'nginx' && !r.skipped);
  const withRatios = results.map((r) => ({
    ...r,
    ratioToBare: bare && !r.skipped ? round2(r.requestsPerSecond / bare.requestsPerSecond) : null,
    ratioToNginx: ngx && !r.skipped ? round2(r.requestsPerSecond / ngx.requestsPerSecond) : null,
    addedP50Ms: bare && !r.skipped ? round2(r.latencyMs.p50 - bare.latencyMs.p50) : null,
    addedP99Ms: bare && !r.skipped ? round2(r.latencyMs.p99 - bare.latencyMs.p99) : null,
  }));
  return {
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, loadavgStart, loadavgEnd: loadavg() },
    loadgen: wrk ? `wrk -t${o.threads} -c${o.connections} (Lua: rotating tokens, p99.9)` : `node closed loop, ${o.connections} connections (wrk not installed)`,
    connections: o.connections,
    threads: o.threads,
    seconds: o.seconds,
    rules: o.rules,
    tokens: o.tokens,
    workers: o.workers,
    setups: withRatios,
    fixedRate,
  };
}

const nationalIdOf = (i: number) => `0010${String(90000000 + i).slice(-8)}`;
const round2 = (v: number) => Math.round(v * 100) / 100;

const LABELS: Record<CompareSetup, string> = {
  direct: '(a) direct to the upstream',
  'bare-proxy': '(b) bare @fastify/http-proxy',
  nginx: '(c) nginx, 1 worker',
  'gateway-warm': '(d) gateway, warm: one token',
  'gateway-cold': '(e) gateway, cold: distinct tokens in rotation',
  'gateway-device-proof': '(g) gateway, a fresh device proof (DPoP) per request',
  'gateway-redis-chain': '(f) gateway, Redis state + hash chain + events file',
  'gateway-multi-core': '(h) gateway, multi-core (Redis + chains)',
};

export function formatCompare(r: CompareResult): string {
  const f = (v: number | null, d = 2) => (v === null ? '—' : v.toFixed(d));
  const lines = [
    `Side by side, one run: ${r.loadgen}, ${r.seconds} s per set-up, ${r.rules.toLocaleString('en')} rules, ${r.tokens.toLocaleString('en')} tokens for (e), ${r.workers} workers for (h). Machine: ${r.machine.cpu}, ${r.machine.cores} cores, Node ${r.machine.node}; load average ${r.machine.loadavgStart.map((v) => v.toFixed(2)).join(' ')} at the start, ${r.machine.loadavgEnd.map((v) => v.toFixed(2)).join(' ')} at the end.`,
    '',
    '| set-up | req/s | ×bare | ×nginx | p50 ms | p99 ms | p99.9 ms | added p50 / p99 ms | server cores | loadgen cores | peak RSS MiB (max / sum) | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const s of r.setups) {
    if (s.skipped) {
      lines.push(`| ${LABELS[s.setup]} | skipped: ${s.skipped} | | | | | | | | | | |`);
      continue;
    }
    lines.push(
      `| ${LABELS[s.setup]} | ${s.requestsPerSecond.toLocaleString('en')} | ${f(s.ratioToBare)} | ${f(s.ratioToNginx)} | ${f(s.latencyMs.p50)} | ${f(s.latencyMs.p99)} | ${f(s.latencyMs.p999)} | ${f(s.addedP50Ms)} / ${f(s.addedP99Ms)} | ${f(s.serverCores)} | ${f(s.loadgenCores)} | ${s.peakRssMiB.max} / ${s.peakRssMiB.sum} | ${s.errors} |`,
    );
  }
  const fr = r.fixedRate;
  if (fr) {
    const row = (rate: number, name: string, run: FixedRateRun, added: FixedRateResult['addedMs'] | null) =>
      `| ${rate.toLocaleString('en')} | ${name} | ${run.kept ? 'yes' : `**no** (${run.answeredPerSecond.toLocaleString('en')}/s answered)`} | ${f(run.latencyMs.p50)} | ${f(run.latencyMs.p99)} | ${f(run.latencyMs.p999)} | ${added ? `${f(added.p50)} / ${f(added.p99)} / ${f(added.p999)}` : '—'} | ${f(run.loadgenCores)} |`;
    lines.push(
      '',
      `Fixed rate (open loop, latency from each request's due time): ${fr.generator}, ${fr.connections} connections, ${fr.seconds} s, at ${Math.round(fr.fractionOfBare * 100)} % of (b)'s closed-loop rate.`,
      '',
      '| offered req/s | set-up | kept the rate | p50 ms | p99 ms | p99.9 ms | added p50 / p99 / p99.9 ms | generator cores |',
      '|---:|---|---|---:|---:|---:|---:|---:|',
      row(fr.rate, LABELS['bare-proxy'], fr.bare, null),
      row(fr.rate, LABELS['gateway-warm'], fr.gateway, fr.addedMs),
    );
    if (fr.highestKept) lines.push(row(fr.highestKept.rate, LABELS['bare-proxy'], fr.highestKept.bare, null), row(fr.highestKept.rate, `${LABELS['gateway-warm']} (highest rate kept)`, fr.highestKept.gateway, fr.highestKept.addedMs));
    else if (!fr.gateway.kept) lines.push(`| — | ${LABELS['gateway-warm']} | kept none of the rates tried | | | | | |`);
  }
  return lines.join('\n');
}

export function writeCompare(r: CompareResult, file: string): void {
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, `${JSON.stringify(r, null, 2)}\n`);
}

export const compareAvailable = { wrk: () => hasCommand('wrk') !== null, nginx: () => hasCommand('nginx') !== null, cores: () => cpus().length, exists: existsSync };
