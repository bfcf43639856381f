import { benchFile, startChild } from './child.js';
import type { MixOptions } from './policy-gen.js';
import type { Summary } from './stats.js';

/**
 * Engine variants:
 *   default  PolicyEngine.load() as the gateway calls it (in this tree: rule index + decision cache);
 *   casbin   plain Casbin enforceEx rule by rule, no cache (`{ plainCasbin: true, cacheEntries: 0 }`):
 *            the reference the index must agree with, and the pre-optimisation baseline.
 */
export type EngineVariant = 'default' | 'casbin';

export interface PolicyWorkerArg {
  readonly variant: EngineVariant;
  readonly rules: number;
  readonly seed: number;
  readonly dir: string;
  readonly model: string;
  /** Target number of measured decisions. */
  readonly decisions: number;
  /** Measured decisions even when the budget has run out; the decision digest covers these. */
  readonly minDecisions: number;
  /** Wall-clock cap on the measured phase; 0 = none (always `decisions`). */
  readonly budgetMs: number;
  readonly warmupMax: number;
  readonly warmupMs: number;
  /** The gateway-like stream (bench/policy-gen.ts mixRequests). */
  readonly mix: MixOptions;
}

/** Collector pauses whose start fell inside a pass (PerformanceObserver 'gc' entries). */
export interface GcPauses {
  readonly count: number;
  readonly totalMs: number;
  readonly maxMs: number;
}

export interface PolicyWorkerResult {
  readonly variant: EngineVariant;
  readonly engine: {
    /** PolicyEngine.indexed: true = rule index, false = plain Casbin, null = the engine does not say. */
    readonly indexed: boolean | null;
    readonly loadOptions: Readonly<Record<string, unknown>> | null;
  };
  readonly policy: {
    readonly rules: number;
    readonly denyRules: number;
    readonly groupings: number;
    readonly roles: number;
    readonly agencies: number;
    readonly routes: number;
    readonly bytes: number;
    readonly generateMs: number;
  };
  readonly load: {
    /** PolicyEngine.load(), cold (first call in a fresh process). */
    readonly ms: number;
    readonly parseMsWarm: number;
    readonly heapUsedBefore: number;
    readonly heapUsedAfter: number;
    readonly heapDelta: number;
    readonly rssAfter: number;
  };
  readonly timer: string;
  /** The first calls after load (JIT compilation, first use), timed and reported apart. */
  readonly warmup: { readonly calls: number; readonly latencyMicros: Summary; readonly measureMs: number; readonly gc: GcPauses };
  /** Every request new: each one misses the decision cache. */
  readonly decisions: {
    readonly warmupCalls: number;
    readonly measured: number;
    readonly target: number;
    readonly cappedByBudget: boolean;
    readonly measureMs: number;
    readonly latencyMicros: Summary;
    /** enforce calls per authorize(): the national ID plus each role. */
    readonly meanSubjectsPerRequest: number;
    readonly mix: { readonly allow: number; readonly deny: number; readonly noMatch: number };
    /** SHA-256 (16 hex) of the first `digestOver` decisions (effect, reason, rule), the same on every run. */
    readonly digestOver: number;
    readonly digest: string;
    /** Cores busy with other work (other processes, hypervisor steal) while measuring; null off Linux. */
    readonly otherLoadCores: number | null;
    readonly stealCores: number | null;
    readonly gc: GcPauses;
  };
  /** Gateway-like: recent requests recur (cache hits), new ones arrive (misses). Default engine only. */
  readonly mixed: {
    readonly measured: number;
    readonly repeatRatio: number;
    readonly window: number;
    readonly cappedByBudget: boolean;
    readonly latencyMicros: Summary;
    readonly mix: { readonly allow: number; readonly deny: number; readonly noMatch: number };
    readonly otherLoadCores: number | null;
    readonly stealCores: number | null;
    readonly gc: GcPauses;
  } | null;
  /** The measured requests a second time (decision-cache hits, if the engine caches). */
  readonly repeated: {
    readonly measured: number;
    readonly latencyMicros: Summary;
    readonly sameDecisions: boolean;
    readonly otherLoadCores: number | null;
    readonly gc: GcPauses;
  } | null;
  /** Every measured decision, in order (compared across variants; not written to the results file). */
  readonly decisionLog?: readonly string[];
}

export async function runPolicyVariant(arg: PolicyWorkerArg): Promise<PolicyWorkerResult> {
  const handle = startChild(benchFile('./policy-worker.ts'), arg, { extraExecArgv: ['--expose-gc'] });
  try {
    const msg = await handle.next<{ result: PolicyWorkerResult }>('result');
    return msg.result;
  } finally {
    await handle.stop();
  }
}

export interface Agreement {
  readonly rules: number;
  /** Decisions compared: the common prefix of both variants' measured streams. */
  readonly compared: number;
  readonly identical: number;
  readonly firstDifference: { readonly index: number; readonly default: string; readonly casbin: string } | null;
}

/** Whether the default engine decided exactly as plain Casbin (effect, reason and explaining rule). */
export function compareDecisions(rules: number, a: PolicyWorkerResult, b: PolicyWorkerResult): Agreement {
  const x = a.decisionLog ?? [];
  const y = b.decisionLog ?? [];
  const n = Math.min(x.length, y.length);
  let identical = 0;
  let firstDifference: Agreement['firstDifference'] = null;
  for (let i = 0; i < n; i++) {
    if (x[i] === y[i]) identical++;
    else firstDifference ??= { index: i, default: x[i]!, casbin: y[i]! };
  }
  return { rules, compared: n, identical, firstDifference };
}
