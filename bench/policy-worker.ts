/**
 * Child process: measures PolicyEngine for one policy size and one engine variant, in a fresh
 * process so its load time is a cold start and its heap figures belong to that engine alone.
 * Run with --expose-gc.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { parsePolicy, PolicyEngine } from '../policies/engine.js';
import { childArg } from './child.js';
import { foreignLoad, markCpu } from './machine-load.js';
import { generatePolicy, generateRequests, writePolicy, type GeneratedPolicy, type SyntheticRequest } from './policy-gen.js';
import type { PolicyWorkerArg, PolicyWorkerResult } from './policy-bench.js';
import { Samples, summarise } from './stats.js';

const arg = childArg<PolicyWorkerArg>();
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

// Warm-up: the first requests of the stream, until warmupMax calls or warmupMs (at least 3).
let warmupCalls = 0;
const warmupDeadline = process.hrtime.bigint() + BigInt(arg.warmupMs) * 1_000_000n;
while (warmupCalls < arg.warmupMax && (warmupCalls < 3 || process.hrtime.bigint() < warmupDeadline)) {
  const r = requests[warmupCalls++]!;
  engine.authorize(r.principal, r.resource, r.method);
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
}

/** One hrtime pair per authorize() call. */
function measure(list: readonly SyntheticRequest[], budgetMs: number): Pass {
  const samples = new Samples();
  const mix = { allow: 0, deny: 0, noMatch: 0 };
  const decisions: string[] = [];
  let subjects = 0;
  let capped = false;
  const mark0 = markCpu();
  const cpu0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  const budgetEnd = budgetMs > 0 ? start + BigInt(budgetMs) * 1_000_000n : null;
  for (let i = 0; i < list.length; i++) {
    const r = list[i]!;
    const t0 = process.hrtime.bigint();
    const d = engine.authorize(r.principal, r.resource, r.method);
    const t1 = process.hrtime.bigint();
    samples.push(Number(t1 - t0) / 1000);
    subjects += 1 + r.principal.roles.length;
    if (d.effect === 'allow') mix.allow++;
    else if (d.reasons[0] === 'policy-denied') mix.deny++;
    else mix.noMatch++;
    decisions.push(`${d.effect} ${d.reasons.join(',')} ${d.rule ?? '-'}`);
    if (budgetEnd !== null && t1 >= budgetEnd && samples.length >= arg.minDecisions && i < list.length - 1) {
      capped = true;
      break;
    }
  }
  const measureMs = Number(process.hrtime.bigint() - start) / 1e6;
  const cpu = process.cpuUsage(cpu0);
  const machine = foreignLoad(mark0, markCpu(), cpu.user + cpu.system);
  return { samples, mix, decisions, subjects, capped, measureMs, otherLoadCores: machine.otherCores, stealCores: machine.stealCores };
}

const measured = requests.slice(arg.warmupMax);
const first = measure(measured, arg.budgetMs);
// The same requests again: with a decision cache these are all hits. Only when the first pass was cheap.
const repeat = arg.variant === 'default' && !first.capped && first.measureMs < 2000 ? measure(measured.slice(0, first.samples.length), 0) : null;

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
  },
  repeated: repeat && {
    measured: repeat.samples.length,
    latencyMicros: summarise(repeat.samples.view()),
    sameDecisions: repeat.decisions.every((d, i) => d === first.decisions[i]),
    otherLoadCores: repeat.otherLoadCores,
  },
  decisionLog: first.decisions,
};
process.send!({ type: 'result', result }, () => process.exit(0));
