import { Agent, request } from 'node:http';
import { Samples, summarise, type Summary } from './stats.js';

/**
 * Closed-loop load: `concurrency` workers, each sending its next request as soon as the
 * previous answer has been read in full, over keep-alive connections (node:http Agent,
 * lighter per request than fetch, so less of the 2 cores goes to the client).
 */
export interface LoadOptions {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly expectStatus: number;
  readonly concurrency: number;
  readonly seconds: number;
  /** Reuse connections across runs (warm-up, then measured); otherwise a private agent. */
  readonly agent?: Agent;
  /** Accumulate into these (several runs, one result); otherwise fresh ones. */
  readonly into?: LoadAccumulator;
}

/** Raw counts and samples, summed over one or more runs. */
export class LoadAccumulator {
  readonly samples = new Samples();
  responses = 0;
  errors = 0;
  elapsedSeconds = 0;
  firstError: string | null = null;
  readonly unexpectedStatus: Record<string, number> = {};

  result(concurrency: number): LoadResult {
    return {
      concurrency,
      requests: this.samples.length,
      responses: this.responses,
      errors: this.errors,
      unexpectedStatus: { ...this.unexpectedStatus },
      firstError: this.firstError,
      elapsedSeconds: this.elapsedSeconds,
      requestsPerSecond: this.samples.length / this.elapsedSeconds,
      latencyMs: summarise(this.samples.view()),
    };
  }
}

export interface LoadResult {
  readonly concurrency: number;
  /** Responses with the expected status, within the measured window. */
  readonly requests: number;
  /** All responses received, any status (for event accounting). */
  readonly responses: number;
  readonly errors: number;
  readonly unexpectedStatus: Readonly<Record<string, number>>;
  readonly firstError: string | null;
  readonly elapsedSeconds: number;
  readonly requestsPerSecond: number;
  readonly latencyMs: Summary;
}

export function createAgent(concurrency: number): Agent {
  return new Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency, keepAliveMsecs: 30_000 });
}

function once(agent: Agent, url: URL, headers: Readonly<Record<string, string>>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ agent, hostname: url.hostname, port: url.port, path: url.pathname + url.search, method: 'GET', headers }, (res) => {
      res.on('data', () => {});
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const url = new URL(opts.url);
  const agent = opts.agent ?? createAgent(opts.concurrency);
  const acc = opts.into ?? new LoadAccumulator();
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(opts.seconds * 1e9));

  async function worker(): Promise<void> {
    for (;;) {
      const t0 = process.hrtime.bigint();
      if (t0 >= end) return;
      try {
        const status = await once(agent, url, opts.headers);
        const t1 = process.hrtime.bigint();
        acc.responses++;
        if (status === opts.expectStatus) acc.samples.push(Number(t1 - t0) / 1e6);
        else acc.unexpectedStatus[status] = (acc.unexpectedStatus[status] ?? 0) + 1;
      } catch (err) {
        acc.errors++;
        acc.firstError ??= (err as Error).message;
      }
    }
  }

  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  // A run ends when its last request is answered, a little after `end`: rates use the real span.
  acc.elapsedSeconds += Number(process.hrtime.bigint() - start) / 1e9;
  if (!opts.agent) agent.destroy();
  return acc.result(opts.concurrency);
}
