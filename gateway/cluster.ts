import cluster, { type Worker } from 'node:cluster';
import { join } from 'node:path';
import type { GatewayConfig } from './config.js';
import { generateSharedAssertionKeys, type SharedAssertionKeys, type AssertionAlgorithm } from './assertion.js';
import { startGateway, type RunningGateway } from './server.js';
import { workerChainFile } from './workers.js';
import { isCancelMessage } from './database/cancels.js';

/**
 * Multi-core mode: a primary process that serves nothing itself and N workers that each run the
 * whole gateway on the same port (node:cluster hands them the connections). Everything two
 * requests must agree on lives in Redis (locks, quotas, sessions, replay records, policy versions),
 * so any worker may take any request. Per worker: its own hash chain (gateway/workers.ts) and its
 * own spool directories, so no two processes write one file. The assertion keys are the same in
 * every worker (from the key files, or generated once by the primary and handed over on the IPC
 * channel), so an upstream verifies any worker's assertion against the JWKS of any other.
 *
 * A PostgreSQL CancelRequest arrives on a connection of its own, which may reach another worker than
 * the statement it cancels: the primary passes such a key on to the other workers (database/cancels.ts).
 *
 * SIGHUP restarts the workers one at a time (each finishes its requests and closes its chain before
 * its successor opens it), the others keep serving the port; SIGTERM/SIGINT stop them all.
 */

interface ToWorker {
  readonly type: 'ztgate-start';
  readonly slot: number;
  readonly count: number;
  readonly keys: SharedAssertionKeys;
}
type FromWorker = { readonly type: 'ztgate-ready'; readonly url: string } | { readonly type: 'ztgate-failed'; readonly message: string };

const STOP_TIMEOUT_MS = 30_000;
const RESPAWN_DELAY_MS = 1000;

/** The configuration as worker `slot` runs it: its own chain file and spool directories. */
export function workerConfig(config: GatewayConfig, slot: number): GatewayConfig {
  const copy = structuredClone(config);
  const { chain, spoolDir } = copy.audit;
  return {
    ...copy,
    audit: { ...copy.audit, ...(chain ? { chain: { ...chain, file: workerChainFile(chain.file, slot) } } : {}), ...(spoolDir ? { spoolDir: join(spoolDir, `worker-${slot}`) } : {}) },
  };
}

export interface Primary {
  readonly url: string;
  readonly workers: number;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startPrimary(config: GatewayConfig, count: number, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<Primary> {
  const unfiled = config.assertion.algorithms.filter((alg: AssertionAlgorithm) => !config.assertion[alg === 'ES256' ? 'keyFile' : 'mlDsaKeyFile']);
  const keys = generateSharedAssertionKeys(unfiled);
  const slots = new Map<number, Worker>();
  let closing = false;
  let url = '';

  function fork(slot: number): Promise<Worker> {
    return new Promise((resolve, reject) => {
      const worker = cluster.fork({ ZTGATE_WORKER_SLOT: String(slot) });
      slots.set(slot, worker);
      let ready = false;
      worker.once('online', () => worker.send({ type: 'ztgate-start', slot, count, keys } satisfies ToWorker));
      worker.on('message', (m: FromWorker) => {
        if (isCancelMessage(m)) {
          // A PostgreSQL CancelRequest taken by this worker for a connection another one serves.
          for (const other of slots.values()) if (other !== worker && other.isConnected()) other.send(m);
          return;
        }
        if (m?.type === 'ztgate-ready') {
          ready = true;
          url = m.url;
          resolve(worker);
        } else if (m?.type === 'ztgate-failed') reject(new Error(`worker ${slot}: ${m.message}`));
      });
      worker.once('exit', (code, signal) => {
        if (!ready) return reject(new Error(`worker ${slot} exited before serving (${signal ?? code})`));
        if (slots.get(slot) !== worker || closing) return;
        // Died on its own: the others keep serving; a successor continues its chain.
        log(`ztgate: worker ${slot} exited (${signal ?? code}); starting it again`);
        setTimeout(() => void fork(slot).catch((err: Error) => log(`ztgate: ${err.message}`)), RESPAWN_DELAY_MS).unref();
      });
    });
  }

  /** drain: the whole instance stops (readiness turns 503 first); otherwise the others keep the port served. */
  function stop(worker: Worker, drain = false): Promise<void> {
    return new Promise((resolve) => {
      if (worker.isDead()) return resolve();
      const timer = setTimeout(() => worker.process.kill('SIGKILL'), STOP_TIMEOUT_MS);
      worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      worker.send({ type: 'ztgate-stop', drain });
    });
  }

  try {
    for (let slot = 1; slot <= count; slot++) await fork(slot);
  } catch (err) {
    closing = true;
    await Promise.all([...slots.values()].map((w) => stop(w)));
    throw err;
  }

  return {
    get url() {
      return url;
    },
    workers: count,
    async restart() {
      for (let slot = 1; slot <= count; slot++) {
        const old = slots.get(slot);
        slots.delete(slot); // its exit is expected
        if (old) await stop(old);
        if (closing) return;
        await fork(slot);
        log(`ztgate: worker ${slot} restarted`);
      }
    },
    async close() {
      closing = true;
      await Promise.all([...slots.values()].map((w) => stop(w, true)));
    },
  };
}

/** In a worker: waits for the primary's start message, runs the gateway, stops when told. */
export function runWorker(load: () => Promise<GatewayConfig>): void {
  let gateway: RunningGateway | null = null;
  let stopping = false;
  const stop = (drain: boolean) => {
    if (stopping) return;
    stopping = true;
    void ((drain ? gateway?.shutdown() : gateway?.close()) ?? Promise.resolve()).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('message', (m: ToWorker | { type: 'ztgate-stop'; drain: boolean }) => {
    if (m?.type === 'ztgate-stop') return stop(m.drain);
    if (m?.type !== 'ztgate-start') return;
    void (async () => {
      try {
        const config = workerConfig(await load(), m.slot);
        gateway = await startGateway(config, { sharedAssertionKeys: m.keys, worker: { slot: m.slot, count: m.count } });
        process.send!({ type: 'ztgate-ready', url: gateway.url } satisfies FromWorker);
      } catch (err) {
        process.send!({ type: 'ztgate-failed', message: (err as Error).message } satisfies FromWorker);
        process.exit(1);
      }
    })();
  });
  // The primary orchestrates stopping; a signal sent to the whole process group is its business.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => stop(true));
  process.on('disconnect', () => stop(false));
}

export const isWorker = (): boolean => cluster.isWorker;
