import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Runtime } from '../runtime.js';
import { registerProbeRoutes } from './index.js';

/**
 * The ops listener: Prometheus metrics and the probes, for the monitoring and orchestration
 * network only (ops.listen; 127.0.0.1:9464 by default). Never the data port: metrics name
 * services and agencies, and readiness details name internal addresses.
 */
export async function buildOpsApp(runtime: Runtime, opts: { logger: Logger }): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: opts.logger, logController: new LogController({ disableRequestLogging: true }), return503OnClosing: true }) as unknown as FastifyInstance;
  const { metrics, probes } = runtime.observability;
  metrics.collectProcessMetrics();
  app.get('/metrics', async (_request, reply) => {
    const body = await metrics.registry.metrics();
    return reply.header('content-type', metrics.registry.contentType).header('cache-control', 'no-store').send(body);
  });
  registerProbeRoutes(app, probes, { details: true });
  return app;
}
