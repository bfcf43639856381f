import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { benchFile, processStats, startChild, type ChildHandle, type ProcessStats } from './child.js';
import type { GatewayWorkerArg } from './gateway-worker.js';
import { createAgent, LoadAccumulator, runLoad, type LoadResult } from './loadgen.js';
import { foreignLoad, markCpu, type ForeignLoad } from './machine-load.js';

/**
 * Gateway overhead end to end. Three processes: this one (load generator + the issuer's JWKS
 * endpoint, idle after the gateway's first fetch), the upstream, the gateway.
 */

export interface GatewayBenchOptions {
  readonly dir: string;
  readonly model: string;
  /** Measured seconds per scenario, split over `rounds` interleaved rounds. */
  readonly seconds: number;
  readonly rounds: number;
  readonly warmupSeconds: number;
  /** Once, before any scenario: allowed and denied requests together, so no scenario runs on a cold JIT. */
  readonly initialWarmupSeconds: number;
  readonly concurrency: readonly number[];
  /** Which scenarios to run (all by default). */
  readonly scenarios?: readonly ScenarioName[];
  /** When set, the gateway child writes a V8 CPU profile (.cpuprofile) into this folder on exit. */
  readonly cpuProfileDir?: string | null;
  readonly log: (line: string) => void;
}

export const SCENARIOS = ['direct', 'gateway-allowed', 'gateway-denied'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface ScenarioResult extends LoadResult {
  readonly scenario: ScenarioName;
  readonly expectStatus: number;
  /** CPU time (user + system) per measured request, by process, microseconds. */
  readonly cpuMicrosPerRequest: { readonly loadgen: number; readonly upstream: number; readonly gateway: number };
  /** Cores busy with other work (other processes, hypervisor steal) during the measured window. */
  readonly machine: ForeignLoad;
  /** TCP connections accepted during the measured window (keep-alive working: 0 after warm-up). */
  readonly connectionsOpened: { readonly gateway: number; readonly upstream: number };
}

export interface GatewayBenchResult {
  readonly scenarios: readonly ScenarioResult[];
  readonly added: readonly { readonly concurrency: number; readonly p50Ms: number; readonly p99Ms: number; readonly rpsRatio: number }[];
  /** before: started, idle, after a forced GC; after: as the load left it; afterGc: then after a forced GC. */
  readonly gatewayProcess: { readonly before: ProcessStats; readonly after: ProcessStats; readonly afterGc: ProcessStats };
  readonly upstreamProcess: { readonly after: ProcessStats };
  readonly decisionEvents: { readonly expected: number; readonly written: number; readonly bytesPerEvent: number };
  readonly jwksFetches: number;
}

const AUDIENCE = 'urn:ztgate:data';
const ROLE = 'bench-reader';

const num = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(2));

type ChildStats = ProcessStats & { decisionEvents?: number; decisionBytes?: number; connections?: number };

async function startReady(file: string, arg: unknown, extraExecArgv: string[] = []): Promise<{ handle: ChildHandle; url: string }> {
  const handle = startChild(file, arg, { extraExecArgv });
  const ready = await handle.next<{ url: string }>('ready');
  return { handle, url: ready.url };
}

async function startJwksServer(jwk: object): Promise<{ server: Server; url: string; fetches: () => number }> {
  let fetches = 0;
  const body = JSON.stringify({ keys: [jwk] });
  const server = createServer((req, res) => {
    if (req.url === '/jwks') {
      fetches++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, fetches: () => fetches };
}

export async function runGatewayBench(opts: GatewayBenchOptions): Promise<GatewayBenchResult> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = 'bench-key-1';
  const jwks = await startJwksServer({ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' });
  const issuer = jwks.url;
  const policyFile = join(opts.dir, 'gateway-policy.csv');
  writeFileSync(policyFile, `# bench: one role, one service\np, ${ROLE}, *, bench, /records/:id, GET|HEAD, allow\n`);

  let upstream: { handle: ChildHandle; url: string } | null = null;
  let gateway: { handle: ChildHandle; url: string } | null = null;
  try {
    upstream = await startReady(benchFile('./upstream-worker.ts'), null);
    const gatewayArg: GatewayWorkerArg = { upstreamUrl: upstream.url, issuer, jwksUri: `${issuer}/jwks`, audience: AUDIENCE, model: opts.model, policyFile };
    gateway = await startReady(benchFile('./gateway-worker.ts'), gatewayArg, ['--expose-gc', ...(opts.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfileDir}`] : [])]);
    const before = await gateway.handle.call<ChildStats>('stats', { gc: true });

    const token = await new SignJWT({ national_id: '001090000001', agency: 'so-bench', roles: [ROLE] }).setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' }).setIssuer(issuer).setAudience(AUDIENCE).setSubject('001090000001').setIssuedAt().setExpirationTime('2h').sign(privateKey);

    const targets: Record<ScenarioName, { url: string; headers: Record<string, string>; expectStatus: number }> = {
      direct: { url: `${upstream.url}/records/12345`, headers: { accept: 'application/json' }, expectStatus: 200 },
      'gateway-allowed': { url: `${gateway.url}/bench/records/12345`, headers: { accept: 'application/json', authorization: `Bearer ${token}` }, expectStatus: 200 },
      'gateway-denied': { url: `${gateway.url}/bench/records/12345`, headers: { accept: 'application/json' }, expectStatus: 401 },
    };

    // Sanity: each scenario answers as expected before anything is measured.
    let gatewayResponses = 0;
    for (const [name, t] of Object.entries(targets)) {
      const res = await fetch(t.url, { headers: t.headers });
      const text = await res.text();
      if (name !== 'direct') gatewayResponses++;
      if (res.status !== t.expectStatus) throw new Error(`${name}: expected ${t.expectStatus}, got ${res.status}: ${text.slice(0, 300)}`);
      if (t.expectStatus === 200 && !text.includes('bench-upstream')) throw new Error(`${name}: answer did not come from the upstream: ${text.slice(0, 300)}`);
    }

    const up = upstream.handle;
    const gw = gateway.handle;
    const snapshot = async () => ({ mark: markCpu(), main: processStats().cpuMicros, up: await up.call<ChildStats>('stats'), gw: await gw.call<ChildStats>('stats') });
    if (opts.initialWarmupSeconds > 0) {
      opts.log(`  gateway warm-up: ${opts.initialWarmupSeconds}s of allowed and denied requests, 4 concurrent each`);
      const warm = await Promise.all((['gateway-allowed', 'gateway-denied'] as const).map((name) => runLoad({ ...targets[name], concurrency: 4, seconds: opts.initialWarmupSeconds })));
      for (const w of warm) gatewayResponses += w.responses;
    }

    // Interleaved rounds: each scenario runs `seconds / rounds` per round, in a rotating order, so
    // load from outside the bench falls on all three alike rather than on whichever ran then.
    const scenarios: ScenarioResult[] = [];
    const names = opts.scenarios ?? SCENARIOS;
    for (const concurrency of opts.concurrency) {
      const per = new Map(names.map((name) => [name, { agent: createAgent(concurrency), acc: new LoadAccumulator(), cpu: { main: 0, up: 0, gw: 0 }, conns: { gw: 0, up: 0 }, otherMicros: 0, stealMicros: 0, wallMicros: 0, hasMachine: true }]));
      opts.log(`  ${concurrency} concurrent: ${names.join(', ')} — ${opts.warmupSeconds}s warm-up each, then ${opts.rounds} interleaved rounds of ${num(opts.seconds / opts.rounds)}s each`);
      for (const name of names) {
        const warm = await runLoad({ ...targets[name], concurrency, seconds: opts.warmupSeconds, agent: per.get(name)!.agent });
        if (name !== 'direct') gatewayResponses += warm.responses;
      }
      for (let round = 0; round < opts.rounds; round++) {
        const order = names.map((_, i) => names[(i + round) % names.length]!);
        for (const name of order) {
          const x = per.get(name)!;
          const s0 = await snapshot();
          const before = x.acc.responses;
          await runLoad({ ...targets[name], concurrency, seconds: opts.seconds / opts.rounds, agent: x.agent, into: x.acc });
          const s1 = await snapshot();
          if (name !== 'direct') gatewayResponses += x.acc.responses - before;
          const own = s1.main - s0.main + s1.up.cpuMicros - s0.up.cpuMicros + s1.gw.cpuMicros - s0.gw.cpuMicros;
          x.cpu.main += s1.main - s0.main;
          x.cpu.up += s1.up.cpuMicros - s0.up.cpuMicros;
          x.cpu.gw += s1.gw.cpuMicros - s0.gw.cpuMicros;
          x.conns.gw += (s1.gw.connections ?? 0) - (s0.gw.connections ?? 0);
          x.conns.up += (s1.up.connections ?? 0) - (s0.up.connections ?? 0);
          const load = foreignLoad(s0.mark, s1.mark, own);
          const wall = Number(s1.mark.at - s0.mark.at) / 1000;
          x.wallMicros += wall;
          if (load.otherCores === null) x.hasMachine = false;
          else {
            x.otherMicros += load.otherCores * wall;
            x.stealMicros += (load.stealCores ?? 0) * wall;
          }
        }
      }
      for (const name of names) {
        const x = per.get(name)!;
        x.agent.destroy();
        const result = x.acc.result(concurrency);
        const n = Math.max(1, result.responses);
        scenarios.push({
          scenario: name,
          expectStatus: targets[name].expectStatus,
          ...result,
          cpuMicrosPerRequest: { loadgen: x.cpu.main / n, upstream: x.cpu.up / n, gateway: x.cpu.gw / n },
          machine: x.hasMachine ? { otherCores: x.otherMicros / x.wallMicros, stealCores: x.stealMicros / x.wallMicros } : { otherCores: null, stealCores: null },
          connectionsOpened: { gateway: x.conns.gw, upstream: x.conns.up },
        });
      }
    }

    const after = await gateway.handle.call<ChildStats>('stats');
    const afterGc = await gateway.handle.call<ChildStats>('stats', { gc: true });
    const upstreamAfter = await upstream.handle.call<ChildStats>('stats');
    const added = opts.concurrency.flatMap((concurrency) => {
      const direct = scenarios.find((s) => s.scenario === 'direct' && s.concurrency === concurrency);
      const allowed = scenarios.find((s) => s.scenario === 'gateway-allowed' && s.concurrency === concurrency);
      if (!direct || !allowed) return [];
      return {
        concurrency,
        p50Ms: allowed.latencyMs.p50 - direct.latencyMs.p50,
        p99Ms: allowed.latencyMs.p99 - direct.latencyMs.p99,
        rpsRatio: allowed.requestsPerSecond / direct.requestsPerSecond,
      };
    });
    const strip = ({ rss, heapUsed, maxRss, cpuMicros }: ChildStats): ProcessStats => ({ rss, heapUsed, maxRss, cpuMicros });
    return {
      scenarios,
      added,
      gatewayProcess: { before: strip(before), after: strip(after), afterGc: strip(afterGc) },
      upstreamProcess: { after: strip(upstreamAfter) },
      decisionEvents: {
        expected: gatewayResponses,
        written: after.decisionEvents ?? 0,
        bytesPerEvent: (after.decisionBytes ?? 0) / Math.max(1, after.decisionEvents ?? 0),
      },
      jwksFetches: jwks.fetches(),
    };
  } finally {
    await Promise.all([gateway?.handle.stop(), upstream?.handle.stop()]);
    jwks.server.closeAllConnections();
    await new Promise((resolve) => jwks.server.close(resolve));
  }
}
