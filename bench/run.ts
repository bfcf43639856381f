/**
 * `npm run bench`: policy decision cost by policy size, and the gateway's end-to-end
 * overhead. Markdown on stdout, progress on stderr, JSON in bench/results/latest.json.
 *
 * Environment:
 *   BENCH_FULL=1                 also 100k rules (and a 60 s decision budget per size)
 *   BENCH_SEED=20260101          seed for policies and request streams
 *   BENCH_DECISIONS=20000        measured authorize() calls per policy size and stream
 *   BENCH_DECISION_BUDGET_S=4    wall-clock cap per size and engine (0 = always BENCH_DECISIONS)
 *   BENCH_SECONDS=5              measured seconds per HTTP scenario
 *   BENCH_ROUNDS=5               ... split into this many rounds, scenarios interleaved
 *   BENCH_WARMUP_SECONDS=0.5     warm-up seconds per HTTP scenario (plus 2 s once, of gateway traffic)
 *   BENCH_CONCURRENCY=1,8        closed-loop workers (comma-separated list)
 *   BENCH_SCENARIOS=direct,gateway-allowed,gateway-denied   which HTTP scenarios
 *   BENCH_ONLY=policy|gateway|database|compare   run one part (database: pgbench through the database plane)
 *   BENCH_DATABASE_WORKERS=2     the database runs again in multi-core mode with this many workers (0: not)
 *   BENCH_COMPARE_SECONDS=10     side-by-side HTTP comparison (bench/compare.ts): measured seconds per set-up
 *   BENCH_COMPARE_WARMUP_SECONDS=2, BENCH_COMPARE_CONNECTIONS=32, BENCH_COMPARE_THREADS=2 (wrk -t)
 *   BENCH_COMPARE_RULES=10000, BENCH_COMPARE_TOKENS=5000, BENCH_COMPARE_WORKERS=<cores>
 *   BENCH_COMPARE_SETUPS=direct,bare-proxy,nginx,gateway-warm,gateway-cold,gateway-device-proof,gateway-redis-chain,gateway-multi-core
 *   BENCH_COMPARE_FIXED_RATE_SECONDS=<BENCH_COMPARE_SECONDS>   (b) and (d) at half of (b)'s rate, open loop (0 = skip)
 *   BENCH_CPU_PROF=1             gateway child writes a .cpuprofile to bench/results/profiles/
 *   BENCH_ONLY=startup           cold start and RSS of `node dist/gateway/cli.js start` (bench/startup.ts; also part of compare)
 *   BENCH_STARTUP_RULES=10000, BENCH_STARTUP_ROSTER=100000, BENCH_STARTUP_STARTS=3, BENCH_STARTUP_LOAD_SECONDS=5
 *   BENCH_HEAP_SNAPSHOT=1        the start-up gateway writes a heap snapshot to bench/results/heap/ after its traffic
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runGatewayBench, SCENARIOS, type GatewayBenchResult, type ScenarioName } from './gateway-bench.js';
import { compareDecisions, runPolicyVariant, type Agreement, type EngineVariant, type PolicyWorkerResult } from './policy-bench.js';
import { DEFAULT_MIX } from './policy-gen.js';
import { COMPARE_SETUPS, formatCompare, runCompare, writeCompare, type CompareResult, type CompareSetup } from './compare.js';
import { renderMarkdown, type BenchReport, type Machine, type Settings } from './report.js';
import { renderDatabaseMarkdown, runDatabaseBench } from './database-bench.js';
import { formatStartup, IMAGE_NODE_OPTIONS, runStartup, type StartupResult } from './startup.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const MODEL = join(ROOT, 'policies/model.conf');
const RESULTS = join(ROOT, 'bench/results');

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got "${raw}"`);
  return n;
}

function git(args: string[]): string | null {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function machine(): Machine {
  const list = cpus();
  const status = git(['status', '--porcelain']);
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cpuCount: list.length,
    availableParallelism: availableParallelism(),
    node: process.version,
    v8: process.versions.v8,
    platform: `${process.platform} ${process.arch}`,
    totalMemoryBytes: totalmem(),
    loadAverageAtStart: loadavg(),
    commit: git(['rev-parse', '--short', 'HEAD']),
    dirty: status === null ? null : status.length > 0,
  };
}

function settings(): Settings {
  const full = process.env.BENCH_FULL === '1';
  const only = process.env.BENCH_ONLY;
  if (only !== undefined && only !== '' && only !== 'policy' && only !== 'gateway' && only !== 'database' && only !== 'compare' && only !== 'startup') throw new Error('BENCH_ONLY must be policy, gateway, database, compare or startup');
  const scenarios = (process.env.BENCH_SCENARIOS || SCENARIOS.join(',')).split(',').map((x) => x.trim());
  if (!scenarios.every((x): x is ScenarioName => (SCENARIOS as readonly string[]).includes(x))) throw new Error(`BENCH_SCENARIOS: choose from ${SCENARIOS.join(', ')}`);
  const concurrency = (process.env.BENCH_CONCURRENCY || '1,8').split(',').map((c) => Number(c.trim()));
  if (concurrency.length === 0 || !concurrency.every((c) => Number.isInteger(c) && c > 0)) throw new Error('BENCH_CONCURRENCY must list positive integers');
  return {
    full,
    seed: envNumber('BENCH_SEED', 20260101),
    policySizes: full ? [1_000, 10_000, 100_000] : [1_000, 10_000],
    decisions: Math.max(1, Math.round(envNumber('BENCH_DECISIONS', 20_000))),
    minDecisions: 50,
    decisionBudgetSeconds: envNumber('BENCH_DECISION_BUDGET_S', full ? 60 : 4),
    seconds: envNumber('BENCH_SECONDS', 5),
    rounds: Math.max(1, Math.round(envNumber('BENCH_ROUNDS', 5))),
    warmupSeconds: envNumber('BENCH_WARMUP_SECONDS', 0.5),
    initialWarmupSeconds: 2,
    concurrency,
    scenarios,
    only: only === 'policy' || only === 'gateway' || only === 'compare' || only === 'startup' ? only : null,
  };
}

const t0 = Date.now();
const log = (line: string): void => void process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${line}\n`);

async function main(): Promise<void> {
  const started = Date.now();
  const m = machine();
  const s = settings();
  log(`${m.cpuModel} × ${m.cpuCount}, Node ${m.node}`);
  const dir = mkdtempSync(join(tmpdir(), 'ztgate-bench-'));
  const policy: PolicyWorkerResult[] = [];
  const agreement: Agreement[] = [];
  let gateway: GatewayBenchResult | null = null;
  let gatewayError: string | null = null;
  let policyError: string | null = null;
  let compare: CompareResult | null = null;
  let compareError: string | null = null;
  let startup: StartupResult[] | null = null;
  let startupError: string | null = null;
  try {
    if (s.only !== 'gateway' && s.only !== 'compare' && s.only !== 'startup') {
      for (const rules of s.policySizes) {
        const run = async (variant: EngineVariant): Promise<PolicyWorkerResult> => {
          log(`policy: ${rules.toLocaleString('en-US')} rules, ${variant} engine (fresh process)`);
          const r = await runPolicyVariant({
            variant,
            rules,
            seed: s.seed,
            dir,
            model: MODEL,
            decisions: s.decisions,
            minDecisions: Math.min(s.minDecisions, s.decisions),
            budgetMs: s.decisionBudgetSeconds * 1000,
            warmupMax: 200,
            warmupMs: 1000,
            mix: DEFAULT_MIX,
          });
          log(`  load ${r.load.ms.toFixed(1)} ms, ${r.decisions.measured} decisions, p50 ${r.decisions.latencyMicros.p50.toFixed(1)} µs`);
          policy.push(r);
          return r;
        };
        try {
          const def = await run('default');
          // When the engine has its own index, also measure plain Casbin: the baseline, and the reference.
          if (def.engine.indexed === true) agreement.push(compareDecisions(rules, def, await run('casbin')));
        } catch (err) {
          policyError = `${rules} rules: ${(err as Error).message}`;
          log(`policy bench failed: ${(err as Error).stack ?? policyError}`);
          break;
        }
      }
    }
    if (!s.only || s.only === 'compare') {
      log('compare: the whole request path side by side');
      try {
        const setups = (process.env.BENCH_COMPARE_SETUPS || COMPARE_SETUPS.join(',')).split(',').map((x) => x.trim());
        if (!setups.every((x): x is CompareSetup => (COMPARE_SETUPS as readonly string[]).includes(x))) throw new Error(`BENCH_COMPARE_SETUPS: choose from ${COMPARE_SETUPS.join(', ')}`);
        compare = await runCompare({
          dir: join(dir, 'compare'),
          seconds: envNumber('BENCH_COMPARE_SECONDS', 10),
          warmupSeconds: envNumber('BENCH_COMPARE_WARMUP_SECONDS', 2),
          connections: envNumber('BENCH_COMPARE_CONNECTIONS', 32),
          threads: envNumber('BENCH_COMPARE_THREADS', 2),
          rules: envNumber('BENCH_COMPARE_RULES', 10_000),
          tokens: envNumber('BENCH_COMPARE_TOKENS', 5000),
          workers: envNumber('BENCH_COMPARE_WORKERS', availableParallelism()),
          setups,
          fixedRate: envNumber('BENCH_COMPARE_FIXED_RATE_SECONDS', envNumber('BENCH_COMPARE_SECONDS', 10)) > 0 ? { seconds: envNumber('BENCH_COMPARE_FIXED_RATE_SECONDS', envNumber('BENCH_COMPARE_SECONDS', 10)), warmupSeconds: Math.min(2, envNumber('BENCH_COMPARE_WARMUP_SECONDS', 2)) } : null,
          log,
        });
        writeCompare(compare, join(RESULTS, 'compare.json'));
      } catch (err) {
        compareError = (err as Error).message;
        log(`compare bench failed: ${(err as Error).stack ?? compareError}`);
      }
    }
    if (!s.only || s.only === 'compare' || s.only === 'startup') {
      log('startup: cold start and memory of node dist/gateway/cli.js start');
      try {
        // As `node dist/gateway/cli.js start` runs by default, and as the container image runs it.
        startup = [];
        for (const nodeOptions of [[], IMAGE_NODE_OPTIONS]) {
          startup.push(
            await runStartup({
              dir: join(dir, 'startup'),
              nodeOptions,
              rules: envNumber('BENCH_STARTUP_RULES', 10_000),
              roster: envNumber('BENCH_STARTUP_ROSTER', 100_000),
              starts: envNumber('BENCH_STARTUP_STARTS', 3),
              loadSeconds: envNumber('BENCH_STARTUP_LOAD_SECONDS', 5),
              connections: 16,
              tokens: 5000,
              heapSnapshotDir: process.env.BENCH_HEAP_SNAPSHOT === '1' ? join(RESULTS, 'heap') : undefined,
              log,
            }),
          );
        }
        mkdirSync(RESULTS, { recursive: true });
        writeFileSync(join(RESULTS, 'startup.json'), `${JSON.stringify(startup, null, 2)}\n`);
      } catch (err) {
        startupError = (err as Error).message;
        log(`startup bench failed: ${(err as Error).stack ?? startupError}`);
      }
    }
    if (s.only !== 'policy' && s.only !== 'compare' && s.only !== 'startup') {
      log('gateway: upstream and gateway in their own processes');
      const cpuProfileDir = process.env.BENCH_CPU_PROF === '1' ? join(RESULTS, 'profiles') : null;
      try {
        gateway = await runGatewayBench({
          dir,
          model: MODEL,
          seconds: s.seconds,
          rounds: s.rounds,
          warmupSeconds: s.warmupSeconds,
          initialWarmupSeconds: s.initialWarmupSeconds,
          concurrency: s.concurrency,
          scenarios: s.scenarios,
          cpuProfileDir,
          log,
        });
        if (cpuProfileDir) log(`gateway CPU profile written to ${cpuProfileDir}`);
      } catch (err) {
        // Keep the policy figures: report the failure, exit non-zero.
        gatewayError = (err as Error).message;
        log(`gateway bench failed: ${(err as Error).stack ?? gatewayError}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const report: BenchReport = {
    startedAt: new Date(started).toISOString(),
    durationSeconds: (Date.now() - started) / 1000,
    machine: m,
    settings: s,
    // Decision logs are for the comparison only.
    policy: policy.map(({ decisionLog: _log, ...rest }) => rest),
    agreement,
    gateway,
    gatewayError,
    policyError,
    loadAverageAtEnd: loadavg(),
  };
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, 'latest.json'), JSON.stringify(report, null, 2) + '\n');
  process.stdout.write(renderMarkdown(report));
  if (compare) process.stdout.write(`\n## The whole request path, side by side\n\n${formatCompare(compare)}\n`);
  if (startup) process.stdout.write(`\n## Cold start and memory\n\n${formatStartup(startup)}\n`);
  if (compareError || startupError || startup?.some((x) => x.errors > 0)) process.exitCode = 1;
  if (compare?.setups.some((x) => x.errors > 0)) {
    log(
      `errors in the comparison: ${compare.setups
        .filter((x) => x.errors > 0)
        .map((x) => x.setup)
        .join(', ')}`,
    );
    process.exitCode = 1;
  }
  log(`results written to bench/results/latest.json (${report.durationSeconds.toFixed(1)} s)`);

  const failed = gateway?.scenarios.filter((x) => x.errors > 0 || Object.keys(x.unexpectedStatus).length > 0) ?? [];
  if (gatewayError || policyError) process.exitCode = 1;
  const disagree = agreement.filter((a) => a.identical !== a.compared);
  if (disagree.length > 0) {
    log(`the default engine and plain Casbin decided differently: ${JSON.stringify(disagree.map((a) => a.firstDifference))}`);
    process.exitCode = 1;
  }
  if (failed.length > 0) {
    log(`errors or unexpected statuses in: ${failed.map((x) => `${x.scenario}@${x.concurrency} (${x.firstError ?? JSON.stringify(x.unexpectedStatus)})`).join(', ')}`);
    process.exitCode = 1;
  }
}

/** The database plane's part: pgbench through the gateway against direct (bench/database-bench.ts). */
async function database(): Promise<void> {
  const only = process.env.BENCH_ONLY;
  if (only === 'policy' || only === 'gateway' || only === 'compare' || only === 'startup') return;
  const seconds = envNumber('BENCH_SECONDS', 5);
  const result = await runDatabaseBench({ seconds, clients: 4, log });
  // The same runs in multi-core mode (Redis state, the listener in every worker); 0 skips them.
  const workers = envNumber('BENCH_DATABASE_WORKERS', 2);
  const multi = workers > 1 ? await runDatabaseBench({ seconds, clients: 4, workers, log }) : undefined;
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, 'database-latest.json'), JSON.stringify({ ...result, multiCore: multi ?? null }, null, 2) + '\n');
  process.stdout.write(renderDatabaseMarkdown(result, multi));
  if ([...result.runs, ...(multi?.runs ?? [])].some((r) => r.failed > 0)) process.exitCode = 1;
}

(process.env.BENCH_ONLY === 'database' ? database() : main().then(database)).then(
  // Nothing is left running by now; exit rather than wait on idle keep-alive sockets.
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    process.stderr.write(`[bench] failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
