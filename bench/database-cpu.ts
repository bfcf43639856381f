/**
 * CPU time the database plane spends per statement, measured rather than inferred from throughput
 * (which the machine's load skews): pgbench -S runs a fixed number of transactions through the
 * gateway in this process, and process.cpuUsage() around the run is divided by the statements.
 * With BENCH_CPU_PROF=1 the same window is CPU-profiled (node:inspector) into
 * bench/results/profiles/database-<mode>.cpuprofile, without start-up or pgbench's own set-up.
 *
 *   node --import tsx bench/database-cpu.ts [simple|extended ...]   (BENCH_DB_TRANSACTIONS=20000 per client set)
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withBenchGateway } from './database-bench.js';

const RESULTS = fileURLToPath(new URL('./results/profiles/', import.meta.url));
const CLIENTS = 4;

function pgbench(args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('pgbench', args, { env: { PATH: process.env.PATH!, ...env }, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout)));
  });
}

const modes = process.argv.slice(2).filter((a) => a === 'simple' || a === 'extended');
const transactions = Number(process.env.BENCH_DB_TRANSACTIONS ?? 20_000);
const profile = process.env.BENCH_CPU_PROF === '1';

await withBenchGateway({}, async ({ envOf, events }) => {
  for (const mode of modes.length > 0 ? modes : ['simple', 'extended']) {
    const perClient = Math.ceil(transactions / CLIENTS);
    const args = ['-n', '-S', '-M', mode, '-c', String(CLIENTS), '-j', '2', '-t', String(perClient)];
    // A short warm-up: the parser's WebAssembly, the caches, the JIT.
    await pgbench([...args.slice(0, -1), '500'], envOf('gateway'));
    const session = profile ? new Session() : null;
    if (session) {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    }
    const load = loadavg()[0]!;
    const before = events();
    const cpu = process.cpuUsage();
    const started = process.hrtime.bigint();
    const out = await pgbench(args, envOf('gateway'));
    const used = process.cpuUsage(cpu);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (session) {
      const { profile: p } = await session.post('Profiler.stop');
      mkdirSync(RESULTS, { recursive: true });
      writeFileSync(join(RESULTS, `database-${mode}.cpuprofile`), JSON.stringify(p));
      session.disconnect();
    }
    const done = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? perClient * CLIENTS);
    const us = (used.user + used.system) / done;
    process.stdout.write(
      `${mode}: ${done} statements in ${seconds.toFixed(1)} s (${(done / seconds).toFixed(0)} tps), gateway CPU ${us.toFixed(0)} µs per statement (user ${(used.user / done).toFixed(0)}, system ${(used.system / done).toFixed(0)}), ${events() - before} events, load ${load.toFixed(2)}→${loadavg()[0]!.toFixed(2)}\n`,
    );
  }
});
process.exit(0);
