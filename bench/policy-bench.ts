import { benchFile, startChild } from './child.js';
import type { Summary } from './stats.js';

export interface PolicyWorkerArg {
  readonly rules: number;
  readonly seed: number;
  readonly dir: string;
  readonly model: string;
  /** Target number of measured decisions. */
  readonly decisions: number;
  /** Measured decisions even when the budget has run out. */
  readonly minDecisions: number;
  /** Wall-clock cap on the measured phase; 0 = none (always `decisions`). */
  readonly budgetMs: number;
  readonly warmupMax: number;
  readonly warmupMs: number;
}

export interface PolicyWorkerResult {
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
    /** PolicyEngine.load(), cold (first call in a fresh process): read, strict parse, Casbin model and policy, role links. */
    readonly ms: number;
    readonly parseMsWarm: number;
    readonly heapUsedBefore: number;
    readonly heapUsedAfter: number;
    readonly heapDelta: number;
    readonly rssAfter: number;
  };
  readonly decisions: {
    readonly warmupCalls: number;
    readonly measured: number;
    readonly target: number;
    readonly cappedByBudget: boolean;
    readonly measureMs: number;
    readonly latencyMicros: Summary;
    /** enforce() calls per authorize(): the national ID plus each role. */
    readonly meanSubjectsPerRequest: number;
    readonly mix: { readonly allow: number; readonly deny: number; readonly noMatch: number };
    /** SHA-256 (16 hex) over the first `digestOver` decisions: an optimised engine must reproduce them. */
    readonly digestOver: number;
    readonly digestEffects: string;
    readonly digestEffectsAndRules: string;
  };
}

export async function runPolicySize(arg: PolicyWorkerArg): Promise<PolicyWorkerResult> {
  const handle = startChild(benchFile('./policy-worker.ts'), arg, { extraExecArgv: ['--expose-gc'] });
  try {
    const msg = await handle.next<{ result: PolicyWorkerResult }>('result');
    return msg.result;
  } finally {
    await handle.stop();
  }
}
