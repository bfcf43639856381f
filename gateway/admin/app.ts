import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { GatewayError } from '../errors.js';
import { createListenerApp } from '../http.js';
import type { Runtime } from '../runtime.js';
import { checkPath, stripForgeableIdentityHeaders } from '../steps/edge.js';

/**
 * The management plane: a separate listener for security admins, behind the same Zero Trust
 * checks as the data plane — authenticated official, security-admin role — and audited:
 * every request is one event with what it changed (request.zt.admin).
 *
 * Feature modules add their routes under /api/v1 through an AdminModule.
 */
export type AdminModule = (app: FastifyInstance, runtime: Runtime) => void | Promise<void>;

export const ADMIN_API_PREFIX = '/api/v1';

export async function buildAdminApp(runtime: Runtime, opts: { logger?: Logger; modules?: readonly AdminModule[] } = {}): Promise<FastifyInstance> {
  const admin = runtime.config.admin!;
  const app = createListenerApp({ runtime, action: 'admin-request', logger: opts.logger, bodyLimitBytes: admin.bodyLimitBytes });

  app.addHook('onRequest', async (request) => {
    const ctx = request.zt;
    ctx.strippedHeaders = stripForgeableIdentityHeaders(request.headers);
    checkPath(request.url);
    const principal = await runtime.authenticator.authenticate(request.headers);
    ctx.principal = principal;
    if (!principal.roles.some((role) => admin.roles.includes(role))) {
      throw new GatewayError('ZTG_ERR_FORBIDDEN', 'admin-role-required');
    }
    ctx.allowedWithoutPolicy = true;
  });

  app.get(`${ADMIN_API_PREFIX}/whoami`, async (request) => {
    const p = request.zt.principal!;
    return { nationalId: p.nationalId, agency: p.agency, roles: p.roles, assuranceLevel: p.assuranceLevel };
  });

  for (const register of opts.modules ?? []) await app.register(async (scope) => register(scope, runtime));
  return app;
}
