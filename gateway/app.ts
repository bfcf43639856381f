import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { GatewayError } from './errors.js';
import { createListenerApp } from './http.js';
import { createPipeline, expectsContinue } from './pipeline.js';
import type { Runtime } from './runtime.js';
import { registerForwarders } from './steps/forward.js';
import { responseObligations } from './steps/obligations.js';
import { createRouteTable } from './steps/route.js';
import { createDeviceAssessor } from './steps/device.js';
import { registerDeviceRoutes } from './device-routes.js';
import { DeviceRegistry } from '../identity/devices.js';
import { registerAuthRoutes } from './auth-routes.js';
import { httpsServerOptions } from './tls.js';
import { observeUpstream, registerProbeRoutes } from './observability/index.js';
import { registerAccessRoutes } from './access/routes.js';

/** The data plane: the Zero Trust pipeline in front of every shared database service. */
export async function buildApp(runtime: Runtime, opts: { logger?: Logger } = {}): Promise<FastifyInstance> {
  const { config, signer } = runtime;
  const app = createListenerApp({ runtime, action: 'access-decision', logger: opts.logger, bodyLimitBytes: config.limits.bodyLimitBytes, https: config.listen.tls ? httpsServerOptions(config.listen.tls) : undefined });

  const deviceRegistry = new DeviceRegistry(runtime.store);
  const devices = createDeviceAssessor(config, runtime.store, { registry: deviceRegistry });
  const pipeline = createPipeline({
    devices,
    locks: runtime.locks,
    decisionLog: runtime.decisionLog,
    config,
    routes: runtime.services.table(createRouteTable(config.routes)),
    authenticator: runtime.authenticator,
    policy: runtime.policy,
    signer,
    store: runtime.store,
    access: runtime.access,
    recentDecisions: runtime.policies.recent,
    state: runtime.state,
  });
  // Node answers `Expect: 100-continue` with 100 on arrival unless someone listens for it: the body
  // is asked for only once the pipeline has authorised the request; a refusal goes out without 100.
  app.server.on('checkContinue', (req, res) => app.server.emit('request', req, res));
  app.addHook('onRequest', async (request, reply) => {
    await pipeline(request, reply);
    if (expectsContinue(request.headers) && !reply.raw.headersSent) reply.raw.writeContinue();
  });

  app.get('/.well-known/jwks.json', async (_request, reply) => reply.header('cache-control', 'public, max-age=300').send(signer.jwks));
  registerDeviceRoutes(app, deviceRegistry, devices, runtime.locks);
  registerAccessRoutes(app, runtime.access, runtime.services, config.access, config.publicUrl);
  app.get('/healthz', async () => ({ status: 'ok', policyVersion: runtime.policy().version }));
  registerProbeRoutes(app, runtime.observability.probes, { details: false });
  await registerAuthRoutes(app, runtime);

  await registerForwarders(
    app,
    config.routes,
    (request) => {
      // Unreachable unless the pipeline allowed: the proxy handler only runs after it.
      if (!request.assertion) throw new GatewayError('ZTG_ERR_INTERNAL', 'gateway-error');
      return request.assertion;
    },
    observeUpstream(runtime.observability.tracing, responseObligations(runtime)),
  );
  return app;
}
