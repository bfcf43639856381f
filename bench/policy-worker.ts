/**
 * Child process: measures PolicyEngine for one policy size and one engine variant, in a fresh
 * process so its load time is a cold start and its heap figures belong to that engine alone.
 * Run with --expose-gc.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { PerformanceObserver, performance, type PerformanceEntry } from 'node:perf_hooks';
import { parsePolicy, PolicyEngine } from '../policies/engine.js';
import { childArg } from './child.js';
import { foreignLoad, markCpu } from './machine-load.js';
import { generatePolicy, generateRequests, mixRequests, writePolicy, type GeneratedPolicy, type SyntheticRequest } from './policy-gen.js';
import type { GcPauses, PolicyWorkerArg, PolicyWorkerResult } from './policy-bench.js';
import { Samples, summarise } from './stats.js';

const arg = childArg<PolicyWorkerArg>();
/** Requests repeated in the cache-hit pass: well under the default decision cache size. */
const REPEAT_LAST = 2000;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('policy-worker needs --expose-gc');

function fullGc(): void {
  gc!();
  gc!();
}

const genStart = process.hrtime.bigint();
let generated: GeneratedPolicy | null = generatePolicy({ rules: arg.rules, seed: arg.seed });
const file = writePolicy(generated, arg.dir);
const requests = generateRequests(generated, arg.warmupMax + arg.decisions);
// The gateway-like stream: recent requests recur, new ones keep arriving (bench/policy-gen.ts mixRequests).
const mixed = arg.variant === 'default' ? mixRequests(generateRequests(generated, arg.decisions, { seed: arg.seed ^ 0x6d1c }), arg.decisions, arg.mix, arg.seed ^ 0x6d1d) : [];
const knownRoutes = new Set(generated.routes);
const policyInfo = {
  rules: generated.rules.length,
  denyRules: generated.rules.filter((r) => r[5] === 'deny').length,
  groupings: generated.groupings.length,
  roles: generated.roles.length,
  agencies: generated.agencies.length,
  routes: generated.routes.length,
  bytes: statSync(file).size,
  generateMs: Number(process.hrtime.bigint() - genStart) / 1e6,
};
generated = null;

// The engine's load options are read loosely: the 'casbin' variant asks for plain Casbin with
// no decision cache, which an engine without those options simply is.
type LooseLoad = (model: string, policy: string, routes: ReadonlySet<string>, opts?: Record<string, unknown>) => Promise<PolicyEngine>;
const load = PolicyEngine.load.bind(PolicyEngine) as unknown as LooseLoad;
const loadOptions = arg.variant === 'casbin' ? { plainCasbin: true, cacheEntries: 0 } : undefined;

fullGc();
const heapBefore = process.memoryUsage().heapUsed;
const loadStart = process.hrtime.bigint();
const engine = await load(arg.model, file, knownRoutes, loadOptions);
const loadNs = process.hrtime.bigint() - loadStart;
fullGc();
const memAfter = process.memoryUsage();
const indexed = (engine as unknown as { indexed?: unknown }).indexed;
const engineInfo = { indexed: typeof indexed === 'boolean' ? indexed : null, loadOptions: loadOptions ?? null };
if (arg.variant === 'casbin' && engineInfo.indexed === true) throw new Error('asked for plain Casbin, but the engine still uses its index');

// Every collector pause, so each pass can report those that fell inside it: they are part of
// the latencies (nothing is excluded), and this says how much of the tail they explain.
const gcEntries: { start: number; duration: number }[] = [];
const gcObserver = new PerformanceObserver((list) => {
  for (const e of list.getEntries() as PerformanceEntry[]) gcEntries.push({ start: e.startTime, duration: e.duration });
});
gcObserver.observe({ entryTypes: ['gc'] });
/** GC entries are delivered asynchronously: read them after a turn of the event loop. */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20));
function gcBetween(from: number, to: number): GcPauses {
  let count = 0;
  let totalMs = 0;
  let maxMs = 0;
  for (const e of gcEntries) {
    if (e.start < from || e.start > to) continue;
    count++;
    totalMs += e.duration;
    maxMs = Math.max(maxMs, e.duration);
  }
  return { count, totalMs, maxMs };
}

interface Pass {
  readonly samples: Samples;
  readonly mix: { allow: number; deny: number; noMatch: number };
  readonly decisions: string[];
  readonly subjects: number;
  readonly capped: boolean;
  readonly measureMs: number;
  readonly otherLoadCores: number | null;
  readonly stealCores: number | null;
  readonly from: number;
  readonly to: number;
}

/**
 * One performance.now() pair per authorize() call: a double, where process.hrtime.bigint()
 * would allocate two BigInts per call and add garbage of the bench's own to what is measured.
 */
function measure(list: readonly SyntheticRequest[], budgetMs: number, minCalls: number, keep = true): Pass {
  const samples = new Samples();
  const mix = { allow: 0, deny: 0, noMatch: 0 };
  const decisions: string[] = [];
  let subjects = 0;
  let capped = false;
  const mark0 = markCpu();
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const budgetEnd = budgetMs > 0 ? start + budgetMs : Infinity;
  for (let i = 0; i < list.length; i++) {
    const r = list[i]!;
    const t0 = performance.now();
    const d = engine.authorize(r.principal, r.resource, r.method);
    const t1 = performance.now();
    samples.push((t1 - t0) * 1000);
    subjects += 1 + r.principal.roles.length;
    if (d.effect === 'allow') mix.allow++;
    else if (d.reasons[0] === 'policy-denied') mix.deny++;
    else mix.noMatch++;
    if (keep) decisions.push(`${d.effect} ${d.reasons.join(',')} ${d.rule ?? '-'}`);
    if (t1 >= budgetEnd && samples.length >= minCalls && i < list.length - 1) {
      capped = true;
      break;
    }
  }
  const to = performance.now();
  const cpu = process.cpuUsage(cpu0);
  const machine = foreignLoad(mark0, markCpu(), cpu.user + cpu.system);
  return { samples, mix, decisions, subjects, capped, measureMs: to - start, otherLoadCores: machine.otherCores, stealCores: machine.stealCores, from: start, to };
}

// Warm-up: the first requests of the stream, until warmupMax calls or warmupMs (at least 3).
// Timed like the rest and reported on its own: first calls pay JIT compilation and first use.
const warmupList = requests.slice(0, arg.warmupMax);
const warm = measure(warmupList, arg.warmupMs, Math.min(3, warmupList.length), false);
const warmupCalls = warm.samples.length;

// Always from warmupMax on, so the measured stream (and its digest) does not depend on timing.
const measured = requests.slice(arg.warmupMax);
const first = measure(measured, arg.budgetMs, arg.minDecisions);
// The gateway-like mix (default engine only: plain Casbin has no cache, so its cost does not depend on repeats).
const mixPass = mixed.length > 0 ? measure(mixed, arg.budgetMs, arg.minDecisions, false) : null;
// The last requests of the first pass again, in order: recent enough that the decision cache
// still holds them (cache hits). Only when the first pass was cheap.
const repeatFrom = Math.max(0, first.samples.length - REPEAT_LAST);
const repeat = arg.variant === 'default' && !first.capped && first.measureMs < 2000 ? measure(measured.slice(repeatFrom, first.samples.length), 0, 0) : null;
await settle();
gcObserver.disconnect();

// Strict CSV parse/validate alone, measured separately (JIT-warm: the load above ran it once).
const parseStart = process.hrtime.bigint();
parsePolicy(readFileSync(file, 'utf8'), file, knownRoutes);
const parseMs = Number(process.hrtime.bigint() - parseStart) / 1e6;

const digest = (lines: readonly string[]): string => createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 16);
const digestOver = Math.min(arg.minDecisions, first.decisions.length);

const result: PolicyWorkerResult = {
  variant: arg.variant,
  engine: engineInfo,
  policy: policyInfo,
  load: {
    ms: Number(loadNs) / 1e6,
    parseMsWarm: parseMs,
    heapUsedBefore: heapBefore,
    heapUsedAfter: memAfter.heapUsed,
    heapDelta: memAfter.heapUsed - heapBefore,
    rssAfter: memAfter.rss,
  },
  timer: 'performance.now() pair per authorize() call',
  warmup: { calls: warmupCalls, latencyMicros: summarise(warm.samples.view()), measureMs: warm.measureMs, gc: gcBetween(warm.from, warm.to) },
  decisions: {
    warmupCalls,
    measured: first.samples.length,
    target: arg.decisions,
    cappedByBudget: first.capped,
    measureMs: first.measureMs,
    latencyMicros: summarise(first.samples.view()),
    meanSubjectsPerRequest: first.subjects / first.samples.length,
    mix: first.mix,
    digestOver,
    digest: digest(first.decisions.slice(0, digestOver)),
    otherLoadCores: first.otherLoadCores,
    stealCores: first.stealCores,
    gc: gcBetween(first.from, first.to),
  },
  mixed: mixPass && {
    measured: mixPass.samples.length,
    repeatRatio: arg.mix.repeatRatio,
    window: arg.mix.window,
    cappedByBudget: mixPass.capped,
    latencyMicros: summarise(mixPass.samples.view()),
    mix: mixPass.mix,
    otherLoadCores: mixPass.otherLoadCores,
    stealCores: mixPass.stealCores,
    gc: gcBetween(mixPass.from, mixPass.to),
  },
  repeated: repeat && {
    measured: repeat.samples.length,
    latencyMicros: summarise(repeat.samples.view()),
    sameDecisions: repeat.decisions.every((d, i) => d === first.decisions[repeatFrom + i]),
    otherLoadCores: repeat.otherLoadCores,
    gc: gcBetween(repeat.from, repeat.to),
  },
  decisionLog: first.decisions,
};
process.send!({ type: 'result', result }, () => process.exit(0));
