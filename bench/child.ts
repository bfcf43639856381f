import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Bench children: each measured component (one policy size, the gateway, the upstream) runs
 * in its own Node process, so heap and RSS figures belong to it alone and it does not share
 * an event loop with the load generator. A tiny request/response protocol over the IPC channel.
 */

export interface ChildHandle {
  readonly child: ChildProcess;
  call<T>(cmd: string, arg?: unknown): Promise<T>;
  /** Resolves with the first message of the given type. */
  next<T>(type: string): Promise<T>;
  stop(): Promise<void>;
}

export function benchFile(name: string): string {
  return fileURLToPath(new URL(name, import.meta.url));
}

export function startChild(file: string, arg: unknown, opts: { extraExecArgv?: string[] } = {}): ChildHandle {
  const child = fork(file, [JSON.stringify(arg)], {
    // process.execArgv carries `--import tsx`, so children can be TypeScript too.
    execArgv: [...process.execArgv, ...(opts.extraExecArgv ?? [])],
    // A child's stdout goes to our stderr: stdout carries the report only.
    stdio: ['ignore', 2, 2, 'ipc'],
    serialization: 'advanced',
  });
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  const waiters = new Map<string, ((v: any) => void)[]>();
  let exited: Error | null = null;
  child.on('message', (msg: any) => {
    if (msg && typeof msg.id === 'number' && pending.has(msg.id)) {
      const p = pending.get(msg.id)!;
      pending.delete(msg.id);
      if (msg.error) p.reject(new Error(`${file}: ${msg.error}`));
      else p.resolve(msg.result);
    } else if (msg && typeof msg.type === 'string') {
      const list = waiters.get(msg.type);
      if (list?.length) list.shift()!(msg);
    }
  });
  child.on('exit', (code, signal) => {
    exited = new Error(`${file} exited (code ${code}, signal ${signal})`);
    for (const p of pending.values()) p.reject(exited);
    pending.clear();
  });
  return {
    child,
    call<T>(cmd: string, a?: unknown): Promise<T> {
      if (exited) return Promise.reject(exited);
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ id, cmd, arg: a });
      });
    },
    next<T>(type: string): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        if (exited) return reject(exited);
        const list = waiters.get(type) ?? [];
        list.push(resolve);
        waiters.set(type, list);
        child.once('exit', () => reject(exited ?? new Error(`${file} exited`)));
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(timer);
    },
  };
}

/** Child side: never outlive the parent (its IPC channel closes when it exits, however it exits). */
let exitsWithParent = false;
export function exitWithParent(): void {
  if (exitsWithParent) return;
  exitsWithParent = true;
  process.once('disconnect', () => process.exit(0));
}

/** Child side: the argument the parent passed, and a handler for its calls. */
export function childArg<T>(): T {
  exitWithParent();
  return JSON.parse(process.argv[2] ?? 'null') as T;
}

export function serveCalls(handlers: Record<string, (arg: any) => unknown>): void {
  exitWithParent();
  process.on('message', async (msg: any) => {
    if (!msg || typeof msg.id !== 'number') return;
    try {
      const handler = handlers[msg.cmd];
      if (!handler) throw new Error(`unknown command ${msg.cmd}`);
      process.send!({ id: msg.id, result: await handler(msg.arg) });
    } catch (err) {
      process.send!({ id: msg.id, error: (err as Error).stack ?? String(err) });
    }
  });
}

export interface ProcessStats {
  readonly rss: number;
  readonly heapUsed: number;
  /** Peak resident set size over the process's life, bytes. */
  readonly maxRss: number;
  /** user + system CPU time, microseconds. */
  readonly cpuMicros: number;
}

export function processStats(): ProcessStats {
  const mem = process.memoryUsage();
  const cpu = process.cpuUsage();
  return { rss: mem.rss, heapUsed: mem.heapUsed, maxRss: process.resourceUsage().maxRSS * 1024, cpuMicros: cpu.user + cpu.system };
}
