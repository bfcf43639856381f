import { readFileSync } from 'node:fs';

/**
 * How busy the machine was with work other than the bench: CPU time from /proc/stat (all
 * processes, plus hypervisor steal) minus the CPU time of the bench's own processes, over a
 * window. On a shared 2-core machine this says whether a figure was measured in quiet.
 * Linux only; null elsewhere.
 */
const TICK_MICROS = 10_000; // USER_HZ = 100 on Linux

export interface CpuMark {
  readonly at: bigint;
  /** Busy CPU time of the whole machine (incl. steal), microseconds; null without /proc/stat. */
  readonly machineBusyMicros: number | null;
  readonly stealMicros: number | null;
}

export function markCpu(): CpuMark {
  let busy: number | null = null;
  let steal: number | null = null;
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, st = 0] = f;
    busy = (user + nice + system + irq + softirq + st) * TICK_MICROS;
    steal = st * TICK_MICROS;
  } catch {
    // not Linux
  }
  return { at: process.hrtime.bigint(), machineBusyMicros: busy, stealMicros: steal };
}

export interface ForeignLoad {
  /** Average cores busy with other work (other processes and steal) during the window. */
  readonly otherCores: number | null;
  readonly stealCores: number | null;
}

/** `ownCpuMicros`: CPU time the bench's processes used in the same window. */
export function foreignLoad(from: CpuMark, to: CpuMark, ownCpuMicros: number): ForeignLoad {
  const wallMicros = Number(to.at - from.at) / 1000;
  if (from.machineBusyMicros === null || to.machineBusyMicros === null || wallMicros <= 0) return { otherCores: null, stealCores: null };
  const other = Math.max(0, to.machineBusyMicros - from.machineBusyMicros - ownCpuMicros) / wallMicros;
  return { otherCores: other, stealCores: (to.stealMicros! - from.stealMicros!) / wallMicros };
}
