import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { GatewayError } from './errors.js';
import { createListenerApp } from './http.js';
import { createPipeline } from './pipeline.js';
import type { Runtime } from './runtime.js';
import { registerForwarders } from './steps/forward.js';
import { createRouteTable } from './steps/route.js';

/** The data plane: the Zero Trust pipeline in front of every shared database service. */
export async function buildApp(runtime: Runtime, opts: { logger?: Logger } = {}): Promise<FastifyInstance> {
  const { config, signer } = runtime;
  const app = createListenerApp({ runtime, action: 'access-decision', logger: opts.logger, bodyLimitBytes: config.limits.bodyLimitBytes });

  app.addHook('onRequest', createPipeline({ config, routes: createRouteTable(config.routes), authenticator: runtime.authenticator, policy: runtime.policy, signer }));

  app.get('/.well-known/jwks.json', async (_request, reply) => reply.header('cache-control', 'public, max-age=300').send(signer.jwks));
  app.get('/healthz', async () => ({ status: 'ok', policyVersion: runtime.policy().version }));

  await registerForwarders(app, config.routes, (request) => {
    // Unreachable unless the pipeline allowed: the proxy handler only runs after it.
    if (!request.assertion) throw new GatewayError('ZTG_ERR_INTERNAL', 'gateway-error');
    return request.assertion;
  });
  return app;
}
