import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { GatewayConfig } from './config.js';
import { buildApp } from './app.js';
import { buildAdminApp, type AdminModule } from './admin/app.js';
import { locksModule } from './admin/locks.js';
import { createRuntime, type Runtime, type RuntimeOptions } from './runtime.js';
import { servicesModule } from './admin/services.js';
import { liveModule } from './admin/live.js';
import { uiModule } from './admin/ui.js';
import { deviceAdmin } from './admin/devices.js';
import { identityModule } from './admin/identity.js';
import { policiesModule } from './admin/policies.js';

/** Owns the process side: builds the shared runtime, starts the listeners, closes them gracefully. */
export interface RunningGateway {
  readonly runtime: Runtime;
  readonly app: FastifyInstance;
  readonly url: string;
  /** The management listener, when `admin` is configured. */
  readonly admin: FastifyInstance | null;
  readonly adminUrl: string | null;
  close(): Promise<void>;
}

function urlOf(app: FastifyInstance, host: string, tls = false): string {
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Management API modules, in the order their routes are registered. */
export const ADMIN_MODULES: AdminModule[] = [
  servicesModule,
  liveModule,
  uiModule(),
  deviceAdmin,
  locksModule,
  identityModule,
  policiesModule,
];

export async function startGateway(config: GatewayConfig, opts: RuntimeOptions & { logger?: Logger } = {}): Promise<RunningGateway> {
  const runtime = await createRuntime(config, opts);
  const started: FastifyInstance[] = [];
  const closeAll = async () => {
    for (const app of started.reverse()) await app.close();
    await runtime.close();
  };
  try {
    const app = await buildApp(runtime, { logger: opts.logger });
    started.push(app);
    await app.listen({ host: config.listen.host, port: config.listen.port });
    let admin: FastifyInstance | null = null;
    if (config.admin) {
      admin = await buildAdminApp(runtime, { logger: opts.logger, modules: ADMIN_MODULES });
      started.push(admin);
      await admin.listen({ host: config.admin.listen.host, port: config.admin.listen.port });
    }
    return {
      runtime,
      app,
      url: urlOf(app, config.listen.host, config.listen.tls !== undefined),
      admin,
      adminUrl: admin && config.admin ? urlOf(admin, config.admin.listen.host, config.admin.listen.tls !== undefined) : null,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
