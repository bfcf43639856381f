import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Latency at a fixed offered rate (open loop; the generator is bench/fixed-rate-worker.ts, its own
 * process). wrk keeps a fixed number of requests in flight, so a slow answer delays the requests
 * behind it and they are never counted as waiting; at a fixed rate they are.
 */
export interface FixedRateTask {
  readonly url: string;
  /** Requests per second, offered whatever the answers. */
  readonly rate: number;
  readonly connections: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** How long requests still unanswered at the end of the window are waited for. */
  readonly drainSeconds: number;
  readonly tokens: readonly string[];
}

export interface FixedRateRun {
  readonly rate: number;
  readonly scheduled: number;
  /** Answers within the measured window, per second. */
  readonly answeredPerSecond: number;
  /** Requests of the window still unanswered after the drain. */
  readonly unanswered: number;
  readonly errors: number;
  /** Every request answered, no errors, and no growing queue (the median wait of the window's last fifth at most twice its first fifth's + 5 ms). */
  readonly kept: boolean;
  readonly medianFirstLastMs: readonly [number, number];
  /** From each request's due time to its last byte. */
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly p999: number; readonly max: number };
  /** CPU of the generator process per wall second. */
  readonly loadgenCores: number;
}

export function fixedRateRun(task: FixedRateTask): Promise<FixedRateRun> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(new URL('./fixed-rate-worker.ts', import.meta.url)), [], { cwd: fileURLToPath(new URL('../', import.meta.url)), execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: FixedRateRun | null = null;
    child.once('message', (r: FixedRateRun) => {
      result = r;
      child.disconnect();
    });
    child.once('exit', (code) => (result ? resolve(result) : reject(new Error(`the fixed-rate generator exited (${code}) without a result`))));
    child.send(task);
  });
}

/** Rates tried, highest first, when the gateway cannot keep the target: fractions of its closed-loop rate. */
export const FALLBACK_FRACTIONS = [0.9, 0.75, 0.6, 0.45, 0.3, 0.15] as const;
