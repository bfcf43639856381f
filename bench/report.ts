import type { GatewayBenchResult } from './gateway-bench.js';
import type { PolicyWorkerResult } from './policy-bench.js';

/** The Markdown report printed by `npm run bench`. */

export interface Machine {
  readonly cpuModel: string;
  readonly cpuCount: number;
  readonly availableParallelism: number;
  readonly node: string;
  readonly v8: string;
  readonly platform: string;
  readonly totalMemoryBytes: number;
  readonly loadAverageAtStart: readonly number[];
  readonly commit: string | null;
  readonly dirty: boolean | null;
}

export interface Settings {
  readonly full: boolean;
  readonly seed: number;
  readonly policySizes: readonly number[];
  readonly decisions: number;
  readonly minDecisions: number;
  readonly decisionBudgetSeconds: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly concurrency: readonly number[];
  readonly only: 'policy' | 'gateway' | null;
}

export interface BenchReport {
  readonly startedAt: string;
  readonly durationSeconds: number;
  readonly machine: Machine;
  readonly settings: Settings;
  readonly policy: readonly PolicyWorkerResult[];
  readonly gateway: GatewayBenchResult | null;
}

function num(v: number, digits?: number): string {
  if (!Number.isFinite(v)) return '–';
  const d = digits ?? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2);
  return v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

const mib = (bytes: number): string => num(bytes / 1024 / 1024, 1);
const pct = (part: number, whole: number): string => `${num((100 * part) / Math.max(1, whole), 0)}%`;
const signed = (v: number, digits = 3): string => (v >= 0 ? '+' : '−') + num(Math.abs(v), digits);

function table(head: readonly string[], rows: readonly (readonly string[])[], align: readonly ('l' | 'r')[]): string {
  const sep = align.map((a) => (a === 'r' ? '---:' : ':---'));
  return [head, sep, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

export function renderMarkdown(r: BenchReport): string {
  const m = r.machine;
  const s = r.settings;
  const out: string[] = [];
  out.push(`# ztgate bench — ${r.startedAt}`);
  out.push('');
  out.push(`- Machine: ${m.cpuModel} × ${m.cpuCount} (available parallelism ${m.availableParallelism}), ${mib(m.totalMemoryBytes)} MiB RAM, load average at start ${m.loadAverageAtStart.map((l) => num(l, 2)).join(' / ')}`);
  out.push(`- Node ${m.node} (V8 ${m.v8}), ${m.platform}; commit ${m.commit ?? 'unknown'}${m.dirty ? ' + uncommitted changes' : ''}`);
  out.push(
    `- Settings: seed ${s.seed}; policy sizes ${s.policySizes.join(', ')}${s.full ? ' (BENCH_FULL)' : ''}; ` +
      `${s.decisions} decisions per size, capped at ${s.decisionBudgetSeconds > 0 ? `${s.decisionBudgetSeconds} s` : 'no time limit'} (min ${s.minDecisions}); ` +
      `HTTP ${s.seconds} s per scenario after ${s.warmupSeconds} s warm-up, concurrency ${s.concurrency.join(', ')}`,
  );
  out.push(`- Total run time ${num(r.durationSeconds, 1)} s`);

  if (r.policy.length > 0) {
    out.push('');
    out.push('## Policy decisions — `PolicyEngine.load` and `authorize` (Casbin)');
    out.push('');
    out.push('Each size runs in a fresh process: load time is a cold start; heap is `heapUsed` after a forced GC, and Δ is what the loaded engine added.');
    out.push('');
    out.push(
      table(
        ['`p` rules', '`g` lines', 'CSV KiB', 'load ms', 'of which strict parse ms¹', 'heap after load MiB (Δ)', 'decisions measured', 'allow / deny / no match', 'p50 µs', 'p99 µs', 'max µs', 'mean µs', 'enforce calls / decision'],
        r.policy.map((p) => [
          num(p.policy.rules, 0),
          num(p.policy.groupings, 0),
          num(p.policy.bytes / 1024, 0),
          num(p.load.ms, 1),
          num(p.load.parseMsWarm, 1),
          `${mib(p.load.heapUsedAfter)} (+${mib(p.load.heapDelta)})`,
          `${num(p.decisions.measured, 0)}${p.decisions.cappedByBudget ? ` of ${num(p.decisions.target, 0)} ⏱²` : ''}`,
          `${pct(p.decisions.mix.allow, p.decisions.measured)} / ${pct(p.decisions.mix.deny, p.decisions.measured)} / ${pct(p.decisions.mix.noMatch, p.decisions.measured)}`,
          num(p.decisions.latencyMicros.p50),
          num(p.decisions.latencyMicros.p99),
          num(p.decisions.latencyMicros.max),
          num(p.decisions.latencyMicros.mean),
          num(p.decisions.meanSubjectsPerRequest, 2),
        ]),
        ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'l', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
    out.push('');
    out.push('¹ `parsePolicy()` alone, timed separately after the load (JIT-warm), so it is not an exact share of the cold load.');
    if (r.policy.some((p) => p.decisions.cappedByBudget)) {
      out.push(`² ⏱ stopped at the ${s.decisionBudgetSeconds} s budget before the target count; set \`BENCH_DECISION_BUDGET_S=0\` to always measure ${s.decisions}. With fewer than 100 samples p99 is close to the maximum.`);
    }
    out.push('');
    const perRule = r.policy.map((p) => `${num(p.policy.rules, 0)}: ${num((p.decisions.latencyMicros.mean * 1000) / (p.decisions.meanSubjectsPerRequest * p.policy.rules), 0)} ns`);
    out.push(`Mean cost per (rule × enforce call): ${perRule.join('; ')}. Decision digests (first decisions, for checking that an optimised engine decides the same): ${r.policy.map((p) => `${num(p.policy.rules, 0)} → effects \`${p.decisions.digestEffects}\`, effects+rules \`${p.decisions.digestEffectsAndRules}\` (n=${p.decisions.digestOver})`).join('; ')}.`);
  }

  const g = r.gateway;
  if (g) {
    out.push('');
    out.push('## Gateway end to end — closed loop, keep-alive, `GET` of a small JSON');
    out.push('');
    out.push('Processes: load generator (this one), upstream (node:http), gateway (Fastify + ES256 JWT verify + Casbin + ES256 assertion + proxy); decision events go to a null stream.');
    out.push('');
    out.push(
      table(
        ['scenario', 'concurrency', 'status', 'requests', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'gateway CPU µs/req', 'upstream CPU µs/req', 'load-gen CPU µs/req'],
        g.scenarios.map((x) => [
          x.scenario === 'direct' ? '(a) direct to upstream' : x.scenario === 'gateway-allowed' ? '(b) gateway, allowed' : '(c) gateway, denied (no token)',
          String(x.concurrency),
          String(x.expectStatus),
          num(x.requests, 0),
          num(x.requestsPerSecond, 0),
          num(x.latencyMs.p50, 3),
          num(x.latencyMs.p99, 3),
          num(x.latencyMs.max, 2),
          String(x.errors + Object.values(x.unexpectedStatus).reduce((a, b) => a + b, 0)),
          num(x.cpuMicrosPerRequest.gateway, 0),
          num(x.cpuMicrosPerRequest.upstream, 0),
          num(x.cpuMicrosPerRequest.loadgen, 0),
        ]),
        ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
    out.push('');
    out.push(
      table(
        ['added by the gateway (b − a)', 'p50 ms', 'p99 ms', 'throughput vs direct'],
        g.added.map((a) => [`concurrency ${a.concurrency}`, signed(a.p50Ms), signed(a.p99Ms), `${num(100 * a.rpsRatio, 0)}%`]),
        ['l', 'r', 'r', 'r'],
      ),
    );
    out.push('');
    out.push('Differences of percentiles, not percentiles of differences.');
    out.push('');
    out.push(
      table(
        ['gateway process', 'RSS MiB', 'heap used MiB', 'peak RSS MiB'],
        [
          ['before load (started, idle)', mib(g.gatewayProcess.before.rss), mib(g.gatewayProcess.before.heapUsed), mib(g.gatewayProcess.before.maxRss)],
          ['after all scenarios', mib(g.gatewayProcess.after.rss), mib(g.gatewayProcess.after.heapUsed), mib(g.gatewayProcess.after.maxRss)],
        ],
        ['l', 'r', 'r', 'r'],
      ),
    );
    out.push('');
    const ev = g.decisionEvents;
    out.push(`Decision events: ${num(ev.written, 0)} written for ${num(ev.expected, 0)} gateway responses${ev.written === ev.expected ? ' (one each)' : ' — MISMATCH'}, ${num(ev.bytesPerEvent, 0)} bytes each. JWKS fetched ${g.jwksFetches} time(s).`);
  }
  out.push('');
  return out.join('\n');
}
