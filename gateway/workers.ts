import { availableParallelism } from 'node:os';
import { basename, dirname, extname, join } from 'node:path';
import { readdirSync } from 'node:fs';
import Type from 'typebox';
import type { Static } from '../core/schema.js';

/**
 * The `workers` setting: how many processes serve the one listening port (gateway/cluster.ts).
 * `auto` is the number of cores, except under tests (NODE_ENV=test) and with in-memory state,
 * which one process alone can keep consistent.
 */
export const WORKERS_SCHEMA = Type.Union([Type.Integer({ minimum: 1, maximum: 256 }), Type.Unsafe<'auto'>({ const: 'auto' })], { default: 'auto' });
export type WorkersSetting = Static<typeof WORKERS_SCHEMA>;

export const MAX_WORKERS = 256;

export function checkWorkers(raw: { readonly workers: WorkersSetting; readonly state?: { readonly backend: string }; readonly assertion?: { readonly rotationIntervalSeconds: number } }): string[] {
  const problems: string[] = [];
  const workers = raw.workers;
  if (typeof workers === 'number' && workers > 1) {
    if (raw.state?.backend !== 'redis') problems.push(`workers: ${workers} processes share locks, quotas, sessions and replay records only through Redis; set state.backend: redis or workers: 1`);
    if ((raw.assertion?.rotationIntervalSeconds ?? 0) > 0) problems.push('assertion.rotationIntervalSeconds: with workers > 1 every process must sign with the same key; rotate by replacing assertion.keyFile and restarting the workers (SIGHUP)');
  }
  return problems;
}

/** How many workers `start` runs; `--workers` on the command line wins over the config. */
export function resolveWorkers(setting: WorkersSetting, opts: { stateBackend: 'memory' | 'redis'; override?: number; env?: NodeJS.ProcessEnv }): number {
  if (opts.override !== undefined) return opts.override;
  if (setting !== 'auto') return setting;
  if ((opts.env ?? process.env).NODE_ENV === 'test' || opts.stateBackend !== 'redis') return 1;
  return Math.min(MAX_WORKERS, availableParallelism());
}

/**
 * One hash chain per worker: worker N writes `<name>.worker-N<ext>` next to the configured file, so
 * no two processes ever append to one chain; each verifies on its own (`ztgate audit verify`).
 * A restarted worker continues the chain of its slot.
 */
export function workerChainFile(file: string, slot: number): string {
  const ext = extname(file);
  return join(dirname(file), `${basename(file, ext)}.worker-${slot}${ext}`);
}

/** The configured chain file and every worker chain found next to it, by slot. */
export function chainBases(file: string): { name: string; file: string }[] {
  const ext = extname(file);
  const stem = basename(file, ext);
  const found = new Map<number, string>();
  let names: string[] = [];
  try {
    names = readdirSync(dirname(file));
  } catch {
    names = [];
  }
  const pattern = new RegExp(`^${stem.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.worker-(\\d+)(?:-|${ext.replace('.', '\\.')}|$)`);
  for (const name of names) {
    const m = pattern.exec(name);
    if (m) found.set(Number(m[1]), workerChainFile(file, Number(m[1])));
  }
  const workers = [...found.entries()].sort((a, b) => a[0] - b[0]).map(([slot, f]) => ({ name: `worker-${slot}`, file: f }));
  return [{ name: basename(file), file }, ...workers];
}
