/**
 * Child process: the gateway, built from a config made in code, decision events written to
 * a null stream (counted, so the bench can check one event per request).
 */
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../gateway/config.js';
import { startGateway } from '../gateway/server.js';
import { childArg, processStats, serveCalls } from './child.js';

export interface GatewayWorkerArg {
  readonly upstreamUrl: string;
  readonly issuer: string;
  readonly jwksUri: string;
  readonly audience: string;
  readonly model: string;
  readonly policyFile: string;
}

const arg = childArg<GatewayWorkerArg>();
const ROOT = fileURLToPath(new URL('../', import.meta.url));

let decisionEvents = 0;
let decisionBytes = 0;
const nullSink = new Writable({
  write(chunk: Buffer | string, _enc, done) {
    const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    decisionBytes += text.length;
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) decisionEvents++;
    done();
  },
});

const approval = { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-01' };
const config = parseConfig(
  {
    listen: { host: '127.0.0.1', port: 0 },
    publicUrl: 'http://127.0.0.1:0',
    identity: {
      issuers: [{ issuer: arg.issuer, audience: arg.audience, algorithms: ['ES256'], jwksUri: arg.jwksUri }],
    },
    policy: { model: arg.model, policy: arg.policyFile },
    routes: [{ id: 'bench', name: 'Dịch vụ đo (bench)', pathPrefix: '/bench', upstream: arg.upstreamUrl, ownerAgency: 'so-bench', securityLevel: 2, classification: 'internal', approval }],
  },
  'bench',
  ROOT,
);

const gateway = await startGateway(config, { decisionLog: nullSink });
let connections = 0;
gateway.app.server.on('connection', () => void connections++);
const gc = (globalThis as { gc?: () => void }).gc;
serveCalls({
  stats: (opts: { gc?: boolean } | undefined) => {
    // A forced GC tells retained memory from garbage not yet collected.
    if (opts?.gc && gc) gc();
    return { ...processStats(), decisionEvents, decisionBytes, connections };
  },
});
process.on('SIGTERM', () => {
  gateway.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
process.send!({ type: 'ready', url: gateway.url });
