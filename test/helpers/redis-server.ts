import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './harness.js';

/**
 * A redis-server (or sentinel) of the test's own, on a free loopback port, for fault tests:
 * the test may stop, pause, flush or kill it. The shared Redis on 6379 is never touched.
 */
export interface OwnRedis {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  readonly process: ChildProcess;
  /** A plain client to this server (the test's own). */
  client(): Redis;
  pause(): void;
  resume(): void;
  /** SIGKILL: a crash, nothing written on the way out. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

const running = new Set<OwnRedis>();
process.once('exit', () => {
  for (const r of running) r.process.kill('SIGKILL');
});

export async function startRedis(opts: { args?: string[]; sentinel?: boolean; port?: number; dir?: string } = {}): Promise<OwnRedis> {
  const port = opts.port ?? (await freePort());
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'ztgate-redis-'));
  const bin = opts.sentinel ? 'redis-sentinel' : 'redis-server';
  // A sentinel needs a writable config file of its own; a server runs without persistence unless told otherwise.
  const args = opts.sentinel
    ? [join(dir, 'sentinel.conf'), '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, ...(opts.args ?? [])]
    : ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...(opts.args ?? [])];
  if (opts.sentinel) (await import('node:fs')).writeFileSync(join(dir, 'sentinel.conf'), '');
  const proc = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (c) => (stderr += c));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const r: OwnRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    process: proc,
    client: () => {
      const c = new Redis({ host: '127.0.0.1', port, lazyConnect: false, maxRetriesPerRequest: 1 });
      c.on('error', () => undefined);
      return c;
    },
    pause: () => void proc.kill('SIGSTOP'),
    resume: () => void proc.kill('SIGCONT'),
    async kill() {
      proc.kill('SIGCONT');
      proc.kill('SIGKILL');
      await exited;
      running.delete(r);
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGCONT');
        proc.kill('SIGTERM');
        await exited;
      }
      running.delete(r);
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
  running.add(r);
  const probe = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  probe.on('error', () => undefined);
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      return r;
    } catch {
      probe.disconnect();
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`${bin} on port ${port} did not start: ${stderr}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }
}

/** Connections the server accepted since it started (INFO stats). */
export async function connectionsReceived(redis: Redis): Promise<number> {
  const info = await redis.info('stats');
  return Number(/total_connections_received:(\d+)/.exec(info)?.[1] ?? NaN);
}
