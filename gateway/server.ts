import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { GatewayConfig } from './config.js';
import { buildApp } from './app.js';
import { buildAdminApp, type AdminModule } from './admin/app.js';
import { locksModule } from './admin/locks-routes.js';
import { accessModule } from './admin/access-routes.js';
import { createRuntime, operatorLogger, type Runtime, type RuntimeOptions } from './runtime.js';
import { buildOpsApp } from './observability/ops-app.js';
import { servicesModule } from './admin/services-routes.js';
import { liveModule } from './admin/decisions-routes.js';
import { uiModule } from './admin/ui.js';
import { deviceAdmin } from './admin/devices-routes.js';
import { identityModule } from './admin/identity-routes.js';
import { policiesModule } from './admin/policies-routes.js';
import type { DatabaseListener } from './database/listener.js';

/** Owns the process side: builds the shared runtime, starts the listeners, closes them gracefully. */
export interface RunningGateway {
  readonly runtime: Runtime;
  readonly app: FastifyInstance;
  readonly url: string;
  /** The management listener, when `admin` is configured. */
  readonly admin: FastifyInstance | null;
  readonly adminUrl: string | null;
  /** The ops listener (metrics, probes), when `ops` is configured. */
  readonly ops: FastifyInstance | null;
  readonly opsUrl: string | null;
  /** The PostgreSQL listener (gateway/database/), when `databases` is configured. */
  readonly database: DatabaseListener | null;
  /** Closes at once: listeners, then the runtime. */
  close(): Promise<void>;
  /** Graceful shutdown (SIGTERM): /readyz turns 503, requests are served for probes.drainDelayMs, then close(). */
  shutdown(): Promise<void>;
}

function urlOf(app: FastifyInstance, host: string, tls = false): string {
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Management API modules, in the order their routes are registered. */
export const ADMIN_MODULES: AdminModule[] = [servicesModule, liveModule, uiModule(), deviceAdmin, locksModule, accessModule, identityModule, policiesModule];

export async function startGateway(config: GatewayConfig, opts: RuntimeOptions & { logger?: Logger } = {}): Promise<RunningGateway> {
  // One operator log for the runtime and every listener.
  const logger = opts.logger ?? operatorLogger(config, opts.logDestination);
  const runtime = await createRuntime(config, { ...opts, logger });
  const started: FastifyInstance[] = [];
  let closing: Promise<void> | null = null;
  let database: DatabaseListener | null = null;
  const closeAll = () =>
    (closing ??= (async () => {
      await database?.close();
      for (const app of started.reverse()) await app.close();
      await runtime.close();
      logger.info('stopped');
    })());
  try {
    let ops: FastifyInstance | null = null;
    if (config.ops) {
      // First, so the orchestrator sees /livez and a 503 /startupz while the rest starts.
      ops = await buildOpsApp(runtime, { logger });
      started.push(ops);
      await ops.listen({ host: config.ops.listen.host, port: config.ops.listen.port, listenTextResolver: (address) => `listening: ops (metrics, probes) at ${address}` });
    }
    const app = await buildApp(runtime, { logger });
    started.push(app);
    await app.listen({ host: config.listen.host, port: config.listen.port, listenTextResolver: (address) => `listening: data plane at ${address}` });
    let admin: FastifyInstance | null = null;
    if (config.admin) {
      admin = await buildAdminApp(runtime, { logger, modules: ADMIN_MODULES });
      started.push(admin);
      await admin.listen({ host: config.admin.listen.host, port: config.admin.listen.port, listenTextResolver: (address) => `listening: management at ${address}` });
    }
    if (config.databases) {
      // Loaded only when configured: the PostgreSQL parser is WebAssembly, compiled at first use.
      const { startDatabaseListener } = await import('./database/listener.js');
      database = await startDatabaseListener(runtime, config.databases, { logger });
    }
    const gateway: RunningGateway = {
      runtime,
      database,
      app,
      url: urlOf(app, config.listen.host, config.listen.tls !== undefined),
      admin,
      adminUrl: admin && config.admin ? urlOf(admin, config.admin.listen.host, config.admin.listen.tls !== undefined) : null,
      ops,
      opsUrl: ops && config.ops ? urlOf(ops, config.ops.listen.host) : null,
      close: closeAll,
      async shutdown() {
        runtime.observability.probes.drain();
        await new Promise((resolve) => setTimeout(resolve, config.probes.drainDelayMs));
        await closeAll();
      },
    };
    logger.info({ policyVersion: runtime.policy().version, stateBackend: config.state.backend, tracing: runtime.observability.tracing.enabled }, 'started');
    runtime.observability.probes.started();
    return gateway;
  } catch (err) {
    await closeAll();
    throw err;
  }
}
