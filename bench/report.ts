import type { GatewayBenchResult, ScenarioName } from './gateway-bench.js';
import type { Agreement, PolicyWorkerResult } from './policy-bench.js';

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
  readonly rounds: number;
  readonly warmupSeconds: number;
  readonly initialWarmupSeconds: number;
  readonly concurrency: readonly number[];
  readonly scenarios: readonly ScenarioName[];
  readonly only: 'policy' | 'gateway' | 'compare' | 'startup' | null;
}

export interface BenchReport {
  readonly startedAt: string;
  readonly durationSeconds: number;
  readonly machine: Machine;
  readonly settings: Settings;
  readonly policy: readonly PolicyWorkerResult[];
  readonly agreement: readonly Agreement[];
  readonly gateway: GatewayBenchResult | null;
  readonly gatewayError: string | null;
  readonly policyError: string | null;
  readonly loadAverageAtEnd: readonly number[];
}

function num(v: number, digits?: number): string {
  if (!Number.isFinite(v)) return '–';
  const d = digits ?? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2);
  return v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

const mib = (bytes: number): string => num(bytes / 1024 / 1024, 1);
const pct = (part: number, whole: number): string => `${num((100 * part) / Math.max(1, whole), 0)}%`;
const signed = (v: number, digits = 3): string => (v >= 0 ? '+' : '−') + num(Math.abs(v), digits);

function otherLoad(cores: number | null, steal: number | null): string {
  if (cores === null) return 'n/a';
  return `${num(cores, 2)}${cores >= 0.25 ? ' ⚠' : ''}${steal !== null && steal >= 0.05 ? ` (steal ${num(steal, 2)})` : ''}`;
}

const OTHER_LOAD_NOTE = (mark: string): string => `${mark}${mark ? ' ' : ''}Other load: average cores busy with anything but the bench (other processes, hypervisor steal) while measuring, from /proc/stat; ⚠ from 0.25 — figures measured beside other work are slower and noisier.`;

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
      `HTTP ${s.seconds} s per scenario in ${s.rounds} interleaved rounds, after ${s.warmupSeconds} s warm-up each (and ${s.initialWarmupSeconds} s of gateway traffic first), concurrency ${s.concurrency.join(', ')}`,
  );
  out.push(`- Total run time ${num(r.durationSeconds, 1)} s; load average at end ${r.loadAverageAtEnd.map((l) => num(l, 2)).join(' / ')} (the bench itself keeps about 2 cores busy)`);

  if (r.policy.length > 0) {
    out.push('');
    out.push('## Policy decisions — `PolicyEngine.load` and `authorize`');
    out.push('');
    out.push(
      'Each size and engine runs in a fresh process: load time is a cold start; heap is `heapUsed` after a forced GC, Δ is what the loaded engine added. ' +
        'Latency: one timer pair around each `authorize()` over the measured requests (distinct, seeded; about half built from a rule so they can match it), after a warm-up on others.',
    );
    out.push('');
    const engineName = (p: PolicyWorkerResult): string => (p.variant === 'casbin' ? 'plain Casbin, no cache' : p.engine.indexed === true ? 'default: index + cache' : p.engine.indexed === false ? 'default: Casbin' : 'default');
    const rows: string[][] = [];
    for (const p of r.policy) {
      const d = p.decisions;
      rows.push([
        num(p.policy.rules, 0),
        engineName(p),
        num(p.load.ms, 1),
        `${mib(p.load.heapUsedAfter)} (+${mib(p.load.heapDelta)})`,
        `${num(d.measured, 0)}${d.cappedByBudget ? ` of ${num(d.target, 0)} ⏱²` : ''}`,
        `${pct(d.mix.allow, d.measured)} / ${pct(d.mix.deny, d.measured)} / ${pct(d.mix.noMatch, d.measured)}`,
        num(d.latencyMicros.p50),
        num(d.latencyMicros.p99),
        num(d.latencyMicros.max),
        num(d.latencyMicros.mean),
        otherLoad(d.otherLoadCores, d.stealCores),
      ]);
      if (p.mixed) {
        const x = p.mixed;
        rows.push([
          num(p.policy.rules, 0),
          `″ gateway mix⁴: ${pct(x.repeatRatio, 1)} repeats`,
          '″',
          '″',
          `${num(x.measured, 0)}${x.cappedByBudget ? ' ⏱²' : ''}`,
          `${pct(x.mix.allow, x.measured)} / ${pct(x.mix.deny, x.measured)} / ${pct(x.mix.noMatch, x.measured)}`,
          num(x.latencyMicros.p50),
          num(x.latencyMicros.p99),
          num(x.latencyMicros.max),
          num(x.latencyMicros.mean),
          otherLoad(x.otherLoadCores, x.stealCores),
        ]);
      }
      if (p.repeated) {
        const x = p.repeated;
        rows.push([num(p.policy.rules, 0), `″ last ${num(x.measured, 0)} again (cache hits)${x.sameDecisions ? '' : ' (DIFFERENT decisions)'}`, '″', '″', num(x.measured, 0), '″', num(x.latencyMicros.p50), num(x.latencyMicros.p99), num(x.latencyMicros.max), num(x.latencyMicros.mean), otherLoad(x.otherLoadCores, null)]);
      }
    }
    out.push(table(['`p` rules', 'engine', 'load ms', 'heap after load MiB (Δ)', 'decisions measured', 'allow / deny / no match', 'p50 µs', 'p99 µs', 'max µs', 'mean µs', 'other load (cores)³'], rows, ['r', 'l', 'r', 'r', 'r', 'l', 'r', 'r', 'r', 'r', 'r']));
    out.push('');
    const first = r.policy.filter((p, i, all) => all.findIndex((q) => q.policy.rules === p.policy.rules) === i);
    out.push(
      `¹ Policies: ${first.map((p) => `${num(p.policy.rules, 0)} rules (${num(p.policy.denyRules, 0)} deny) + ${num(p.policy.groupings, 0)} \`g\` lines, ${num(p.policy.roles, 0)} roles, ${num(p.policy.agencies, 0)} agencies, ${num(p.policy.routes, 0)} routes, ${num(p.policy.bytes / 1024, 0)} KiB; strict CSV parse alone ${num(p.load.parseMsWarm, 1)} ms (warm)`).join('; ')}. ` +
        `Requests carry on average ${num(first[0]?.decisions.meanSubjectsPerRequest ?? NaN, 2)} subjects (national ID + roles): one enforce per subject.`,
    );
    if (r.policy.some((p) => p.decisions.cappedByBudget)) {
      out.push(`² ⏱ stopped at the ${s.decisionBudgetSeconds} s budget before the target count; \`BENCH_DECISION_BUDGET_S=0\` always measures ${s.decisions}. Below 100 samples p99 is close to the maximum.`);
    }
    out.push(OTHER_LOAD_NOTE('³'));
    const mixed = r.policy.find((p) => p.mixed)?.mixed;
    if (mixed) {
      out.push(
        `⁴ Gateway mix: each request repeats, with probability ${pct(mixed.repeatRatio, 1)}, one drawn uniformly from the last ${num(mixed.window, 0)} of the stream (a cache can answer it), else it is new; the first row of each size is every request new (no cache hits), the last repeats the end of the first (cache hits).`,
      );
    }
    if (r.policy.some((p) => p.warmup)) {
      const gcText = (g: { count: number; totalMs: number; maxMs: number } | undefined): string => (g ? `${g.count} GC, max ${num(g.maxMs, 1)} ms` : '');
      out.push('');
      out.push(
        `Timer: ${r.policy[0]?.timer ?? 'process.hrtime.bigint() pair per call'}. Collector pauses are included in every latency, not excluded; each run did a forced full GC after load (for the heap figure). ` +
          `Warm-up (first calls after load, not in the rows above): ${r.policy
            .filter((p) => p.warmup)
            .map((p) => `${num(p.policy.rules, 0)}/${p.variant} ${num(p.warmup.calls, 0)} calls p50 ${num(p.warmup.latencyMicros.p50)} p99 ${num(p.warmup.latencyMicros.p99)} max ${num(p.warmup.latencyMicros.max)} µs`)
            .join('; ')}. ` +
          `GC pauses inside the measured passes (new / mix / again): ${r.policy
            .filter((p) => p.decisions.gc)
            .map((p) => `${num(p.policy.rules, 0)}/${p.variant} ${[gcText(p.decisions.gc), gcText(p.mixed?.gc), gcText(p.repeated?.gc)].filter(Boolean).join(' / ')}`)
            .join('; ')}.`,
      );
    }
    if (r.agreement.length > 0) {
      out.push('');
      out.push(
        `Default engine vs plain Casbin, same requests in the same order (effect, reason and explaining rule): ${r.agreement
          .map((a) => `${num(a.rules, 0)} rules: ${num(a.identical, 0)} of ${num(a.compared, 0)} identical${a.firstDifference ? ` — first difference at #${a.firstDifference.index}: default \`${a.firstDifference.default}\` vs Casbin \`${a.firstDifference.casbin}\`` : ''}`)
          .join('; ')}.`,
      );
    }
    out.push(`Decision digests (first ${r.policy[0]?.decisions.digestOver ?? 0} decisions; equal across runs and engines when the decisions are): ${r.policy.map((p) => `${num(p.policy.rules, 0)}/${p.variant} \`${p.decisions.digest}\``).join(', ')}.`);
  }

  if (r.policyError) {
    out.push('');
    out.push('## Policy decisions — FAILED (the child process printed the details on stderr)');
    out.push('');
    out.push('```');
    out.push(r.policyError);
    out.push('```');
  }
  const g = r.gateway;
  if (r.gatewayError) {
    out.push('');
    out.push('## Gateway end to end — FAILED (the child process printed the details on stderr)');
    out.push('');
    out.push('```');
    out.push(r.gatewayError);
    out.push('```');
  }
  if (g) {
    out.push('');
    out.push('## Gateway end to end — closed loop, keep-alive, `GET` of a small JSON');
    out.push('');
    out.push('Processes: load generator (this one), upstream (node:http), gateway (Fastify + ES256 JWT verify + Casbin + ES256 assertion + proxy); decision events go to a null stream.');
    out.push('');
    out.push(
      table(
        ['scenario', 'concurrency', 'status', 'requests', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'new conns gw / up', 'gateway CPU µs/req', 'upstream CPU µs/req', 'load-gen CPU µs/req', 'other load (cores)'],
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
          `${x.connectionsOpened.gateway} / ${x.connectionsOpened.upstream}`,
          num(x.cpuMicrosPerRequest.gateway, 0),
          num(x.cpuMicrosPerRequest.upstream, 0),
          num(x.cpuMicrosPerRequest.loadgen, 0),
          otherLoad(x.machine.otherCores, x.machine.stealCores),
        ]),
        ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
    out.push('');
    out.push('CPU µs/req is user + system time of each whole process (all its threads, libuv pool included) over the measured window, divided by responses. ' + OTHER_LOAD_NOTE(''));
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
          ['before load (started, idle, after a forced GC)', mib(g.gatewayProcess.before.rss), mib(g.gatewayProcess.before.heapUsed), mib(g.gatewayProcess.before.maxRss)],
          ['after all scenarios', mib(g.gatewayProcess.after.rss), mib(g.gatewayProcess.after.heapUsed), mib(g.gatewayProcess.after.maxRss)],
          ['″ then after a forced GC', mib(g.gatewayProcess.afterGc.rss), mib(g.gatewayProcess.afterGc.heapUsed), mib(g.gatewayProcess.afterGc.maxRss)],
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
