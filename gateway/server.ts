import type { FastifyInstance } from 'fastify';
import type { DestinationStream, Logger } from 'pino';
import type { GatewayConfig } from './config.js';
import { buildApp } from './app.js';

/** Owns the listening process: starts the data-plane listener and closes it gracefully. */
export interface RunningGateway {
  readonly app: FastifyInstance;
  readonly url: string;
  close(): Promise<void>;
}

export async function startGateway(config: GatewayConfig, opts: { decisionLog?: DestinationStream; logger?: Logger; fetch?: typeof fetch } = {}): Promise<RunningGateway> {
  const { app } = await buildApp({ config, ...opts });
  await app.listen({ host: config.listen.host, port: config.listen.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.listen.port;
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  return { app, url: `http://${host}:${port}`, close: () => app.close() };
}
