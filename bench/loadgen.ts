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
  const agent = new Agent({ keepAlive: true, maxSockets: opts.concurrency, maxFreeSockets: opts.concurrency, keepAliveMsecs: 30_000 });
  const samples = new Samples();
  const unexpected: Record<string, number> = {};
  let errors = 0;
  let responses = 0;
  let firstError: string | null = null;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(opts.seconds * 1e9));

  async function worker(): Promise<void> {
    for (;;) {
      const t0 = process.hrtime.bigint();
      if (t0 >= end) return;
      try {
        const status = await once(agent, url, opts.headers);
        const t1 = process.hrtime.bigint();
        responses++;
        if (status === opts.expectStatus) samples.push(Number(t1 - t0) / 1e6);
        else unexpected[status] = (unexpected[status] ?? 0) + 1;
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
    }
  }

  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  const elapsedSeconds = Number(process.hrtime.bigint() - start) / 1e9;
  agent.destroy();
  return {
    concurrency: opts.concurrency,
    requests: samples.length,
    responses,
    errors,
    unexpectedStatus: unexpected,
    firstError,
    elapsedSeconds,
    requestsPerSecond: samples.length / elapsedSeconds,
    latencyMs: summarise(samples.view()),
  };
}
