import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

export async function startRedis(opts: { args?: string[]; sentinel?: boolean; sentinelConf?: string; port?: number; dir?: string } = {}): Promise<OwnRedis> {
  const port = opts.port ?? (await freePort());
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'ztgate-redis-'));
  const bin = opts.sentinel ? 'redis-sentinel' : 'redis-server';
  // A sentinel needs a writable config file of its own; a server runs without persistence unless told otherwise.
  const args = opts.sentinel ? [join(dir, 'sentinel.conf'), '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, ...(opts.args ?? [])] : ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...(opts.args ?? [])];
  if (opts.sentinel) writeFileSync(join(dir, 'sentinel.conf'), opts.sentinelConf ?? '');
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

/** A master, its replica and a sentinel watching them: failover within about two seconds of the master's death. */
export interface SentinelTopology {
  readonly masterName: string;
  readonly sentinel: OwnRedis;
  readonly nodes: OwnRedis[];
  /** The server the sentinel names as master now. */
  master(): Promise<OwnRedis>;
  stop(): Promise<void>;
}

export async function startSentinelTopology(): Promise<SentinelTopology> {
  const masterName = 'ztgate-test';
  const first = await startRedis();
  const second = await startRedis({ args: ['--replicaof', '127.0.0.1', String(first.port)] });
  const sentinel = await startRedis({
    sentinel: true,
    sentinelConf:
      [
        `sentinel monitor ${masterName} 127.0.0.1 ${first.port} 1`,
        `sentinel down-after-milliseconds ${masterName} 400`,
        `sentinel failover-timeout ${masterName} 2000`,
        `sentinel parallel-syncs ${masterName} 1`,
        // Known from the start, instead of from the master's INFO up to ten seconds later.
        `sentinel known-replica ${masterName} 127.0.0.1 ${second.port}`,
      ].join('\n') + '\n',
  });
  const nodes = [first, second];
  const ask = sentinel.client();
  // The replica is in sync before the test relies on it.
  const replica = second.client();
  const deadline = Date.now() + 10_000;
  try {
    for (;;) {
      const info = await replica.info('replication');
      if (/master_link_status:up/.test(info)) break;
      if (Date.now() > deadline) throw new Error('the replica did not sync');
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    replica.disconnect();
  }
  // …and the sentinel knows it (it learns replicas from the master's INFO): only then can it fail over.
  for (;;) {
    const replicas = (await ask.call('SENTINEL', 'replicas', masterName)) as string[][];
    const known = replicas.some((r) => {
      const f = Object.fromEntries(r.flatMap((v, i) => (i % 2 === 0 ? [[v, r[i + 1]]] : [])));
      return Number(f.port) === second.port && f.flags === 'slave' && f['master-link-status'] === 'ok';
    });
    if (known) break;
    if (Date.now() > deadline + 15_000) throw new Error('the sentinel did not discover the replica');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    masterName,
    sentinel,
    nodes,
    async master() {
      const [, port] = (await ask.call('SENTINEL', 'get-master-addr-by-name', masterName)) as [string, string];
      return nodes.find((n) => n.port === Number(port))!;
    },
    async stop() {
      ask.disconnect();
      await sentinel.stop();
      for (const n of nodes) await n.stop();
    },
  };
}

/** Waits until every write so far reached a replica (WAIT), so a failover loses none of it. */
export async function replicated(master: OwnRedis, replicas = 1, hashTag = 'ztgate-test'): Promise<void> {
  const c = master.client();
  try {
    // WAIT counts from this connection's last write: write once, then everything before it is covered.
    // A replica still in its first full sync acknowledges nothing: on a loaded machine that can take
    // longer than one WAIT, so probe again until the bound, then fail naming what was acknowledged.
    const deadline = Date.now() + 30_000;
    let acked = 0;
    while (acked < replicas && Date.now() < deadline) {
      await c.set(`{${hashTag}}:replication-probe`, String(Date.now()));
      acked = Number(await c.call('WAIT', String(replicas), '2000'));
    }
    if (acked < replicas) throw new Error(`only ${acked} replicas acknowledged within 30 s`);
  } finally {
    c.disconnect();
  }
}

/** A Redis Cluster of three masters with a replica each (redis-cli --cluster create). */
export interface ClusterTopology {
  readonly nodes: OwnRedis[];
  /** The master serving the slot of this hash tag now. */
  masterOf(tag: string): Promise<OwnRedis>;
  stop(): Promise<void>;
}

export async function startCluster(): Promise<ClusterTopology> {
  const nodes: OwnRedis[] = [];
  try {
    for (let i = 0; i < 6; i++) nodes.push(await startRedis({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '1000'] }));
    const { execFileSync } = await import('node:child_process');
    execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '1', '--cluster-yes'], { stdio: 'ignore', timeout: 20_000 });
    const deadline = Date.now() + 15_000;
    for (const n of nodes) {
      const c = n.client();
      try {
        while (!/cluster_state:ok/.test(String(await c.call('CLUSTER', 'INFO')))) {
          if (Date.now() > deadline) throw new Error(`cluster node ${n.port} not ok`);
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        c.disconnect();
      }
    }
  } catch (err) {
    for (const n of nodes) await n.stop();
    throw err;
  }
  return {
    nodes,
    async masterOf(tag) {
      for (const n of nodes) {
        if (n.process.exitCode !== null || n.process.signalCode !== null) continue;
        const c = n.client();
        try {
          const slot = Number(await c.call('CLUSTER', 'KEYSLOT', `{${tag}}`));
          const slots = (await c.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][];
          const owner = slots.find(([from, to]) => slot >= from && slot <= to)!;
          return nodes.find((x) => x.port === Number(owner[2][1]))!;
        } finally {
          c.disconnect();
        }
      }
      throw new Error('no cluster node answers');
    },
    async stop() {
      for (const n of nodes) await n.stop();
    },
  };
}
