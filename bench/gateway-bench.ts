import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { benchFile, processStats, startChild, type ChildHandle, type ProcessStats } from './child.js';
import type { GatewayWorkerArg } from './gateway-worker.js';
import { runLoad, type LoadResult } from './loadgen.js';

/**
 * Gateway overhead end to end. Three processes: this one (load generator + the issuer's JWKS
 * endpoint, idle after the gateway's first fetch), the upstream, the gateway.
 */

export interface GatewayBenchOptions {
  readonly dir: string;
  readonly model: string;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly concurrency: readonly number[];
  readonly log: (line: string) => void;
}

export type ScenarioName = 'direct' | 'gateway-allowed' | 'gateway-denied';

export interface ScenarioResult extends LoadResult {
  readonly scenario: ScenarioName;
  readonly expectStatus: number;
  /** CPU time (user + system) per measured request, by process, microseconds. */
  readonly cpuMicrosPerRequest: { readonly loadgen: number; readonly upstream: number; readonly gateway: number };
}

export interface GatewayBenchResult {
  readonly scenarios: readonly ScenarioResult[];
  readonly added: readonly { readonly concurrency: number; readonly p50Ms: number; readonly p99Ms: number; readonly rpsRatio: number }[];
  readonly gatewayProcess: { readonly before: ProcessStats; readonly after: ProcessStats };
  readonly upstreamProcess: { readonly after: ProcessStats };
  readonly decisionEvents: { readonly expected: number; readonly written: number; readonly bytesPerEvent: number };
  readonly jwksFetches: number;
}

const AUDIENCE = 'urn:ztgate:data';
const ROLE = 'bench-reader';

type ChildStats = ProcessStats & { decisionEvents?: number; decisionBytes?: number };

async function startReady(file: string, arg: unknown): Promise<{ handle: ChildHandle; url: string }> {
  const handle = startChild(file, arg);
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
    gateway = await startReady(benchFile('./gateway-worker.ts'), gatewayArg);
    const before = await gateway.handle.call<ChildStats>('stats');

    const token = await new SignJWT({ national_id: '001090000001', agency: 'so-bench', roles: [ROLE] })
      .setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' })
      .setIssuer(issuer)
      .setAudience(AUDIENCE)
      .setSubject('001090000001')
      .setIssuedAt()
      .setExpirationTime('2h')
      .sign(privateKey);

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

    const scenarios: ScenarioResult[] = [];
    for (const concurrency of opts.concurrency) {
      for (const name of ['direct', 'gateway-allowed', 'gateway-denied'] as const) {
        const t = targets[name];
        opts.log(`  ${name}, ${concurrency} concurrent: ${opts.warmupSeconds}s warm-up + ${opts.seconds}s`);
        const warm = await runLoad({ ...t, concurrency, seconds: opts.warmupSeconds });
        const cpu0 = { main: processStats().cpuMicros, up: (await upstream.handle.call<ChildStats>('stats')).cpuMicros, gw: (await gateway.handle.call<ChildStats>('stats')).cpuMicros };
        const result = await runLoad({ ...t, concurrency, seconds: opts.seconds });
        const cpu1 = { main: processStats().cpuMicros, up: (await upstream.handle.call<ChildStats>('stats')).cpuMicros, gw: (await gateway.handle.call<ChildStats>('stats')).cpuMicros };
        if (name !== 'direct') gatewayResponses += warm.responses + result.responses;
        const n = Math.max(1, result.responses);
        scenarios.push({
          scenario: name,
          expectStatus: t.expectStatus,
          ...result,
          cpuMicrosPerRequest: { loadgen: (cpu1.main - cpu0.main) / n, upstream: (cpu1.up - cpu0.up) / n, gateway: (cpu1.gw - cpu0.gw) / n },
        });
      }
    }

    const after = await gateway.handle.call<ChildStats>('stats');
    const upstreamAfter = await upstream.handle.call<ChildStats>('stats');
    const added = opts.concurrency.map((concurrency) => {
      const direct = scenarios.find((s) => s.scenario === 'direct' && s.concurrency === concurrency)!;
      const allowed = scenarios.find((s) => s.scenario === 'gateway-allowed' && s.concurrency === concurrency)!;
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
      gatewayProcess: { before: strip(before), after: strip(after) },
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
