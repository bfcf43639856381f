import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { GatewayError } from '../errors.js';
import { createListenerApp } from '../http.js';
import type { Runtime } from '../runtime.js';
import { checkPath, stripForgeableIdentityHeaders } from '../steps/edge.js';
import Type from 'typebox';
import { registerOpenApi } from './openapi.js';
import { NullableString, Reply } from './schemas.js';
import { adminErrorPage } from './error-page.js';
import { createCsrfGuard, registerCsrfRoute } from './csrf.js';
import { registerAdminSignIn } from './signin.js';
import { AUTH_PATH_PREFIX } from '../auth-paths.js';
import { createDeviceAssessor, requireAdminDeviceTier } from '../steps/device.js';
import { checkLocks, requireStateIntact } from '../steps/locks.js';
import { requireRouteAssurance } from '../steps/assurance.js';
import type { Reason } from '../../core/reasons.js';
import { httpsServerOptions } from '../tls.js';
import { ADMIN_API_PREFIX } from './api-prefix.js';

/**
 * The management plane: a separate listener for security admins, behind the same Zero Trust
 * checks as the data plane — authenticated official, trusted device (admin.minDeviceTier: DPoP
 * proof or mTLS client certificate), no lock, security-admin role — and audited:
 * every request is one event with what it changed (request.zt.admin).
 *
 * Feature modules add their routes under /api/v1 through an AdminModule.
 */
export type AdminModule = (app: FastifyInstance, runtime: Runtime) => void | Promise<void>;

export async function buildAdminApp(runtime: Runtime, opts: { logger?: Logger; modules?: readonly AdminModule[] } = {}): Promise<FastifyInstance> {
  const admin = runtime.config.admin!;
  const app = createListenerApp({ runtime, action: 'admin-request', logger: opts.logger, bodyLimitBytes: admin.bodyLimitBytes, https: admin.listen.tls ? httpsServerOptions(admin.listen.tls) : undefined, errorPage: adminErrorPage });
  // Before any route: the OpenAPI document is built from every route registered after this.
  registerOpenApi(app);
  const csrf = createCsrfGuard(runtime.store);
  // DPoP proofs to this listener name its own URL (htu), not the data plane's.
  const scheme = admin.listen.tls ? 'https' : 'http';
  const devices = createDeviceAssessor(runtime.config, runtime.store, { publicUrl: (request) => admin.publicUrl ?? `${scheme}://${String(request.headers.host)}` });

  // Admin pages and answers carry officials' personal data and the admin's view of the province:
  // no cache anywhere may keep them (not even the browser's back button), and no browser may
  // guess a type other than the one sent. Set first, so refusals carry them too.
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('cache-control', 'no-store').header('x-content-type-options', 'nosniff');
  });

  app.addHook('onRequest', async (request) => {
    const ctx = request.zt;
    ctx.strippedHeaders = stripForgeableIdentityHeaders(request.headers);
    const { path } = checkPath(request.url);
    if (path.startsWith(AUTH_PATH_PREFIX)) {
      // Admin browser sign-in itself (gateway/admin/signin.ts): there is nobody to check yet.
      ctx.allowedWithoutPolicy = true;
      return;
    }
    // Shared state lost: no admin reads an empty lock list or writes a change that could not be kept.
    requireStateIntact(runtime.state);
    // A browser without a session is sent to sign in; an API call gets 401.
    const requestInfo = { method: request.method, url: request.url, note: (reason: Reason) => ctx.reasons.push(reason) };
    const principal = await runtime.authenticator.authenticate(request.headers, requestInfo);
    ctx.principal = principal;
    // Assurance as on the data plane: admin.minAssuranceLevel (MFA by default), admin.maxAuthAgeSeconds.
    requireRouteAssurance(principal, admin, { identity: runtime.config.identity, browser: principal.sessionId !== null && runtime.authenticator.isBrowserNavigation(request.headers, requestInfo), returnTo: request.url });
    // Device, then locks: the same steps, in the same order, as on the data plane.
    ctx.device = await devices.assess(request, principal);
    requireAdminDeviceTier(ctx.device, admin.minDeviceTier);
    await checkLocks(runtime.locks, { nationalId: principal.nationalId, deviceId: ctx.device.id, sessionId: principal.sessionId, address: request.socket.remoteAddress });
    // Routes marked `config: { socAllowed: true }` (the lock endpoints) also admit admin.socRoles.
    const socAllowed = (request.routeOptions.config as { socAllowed?: boolean } | undefined)?.socAllowed === true;
    if (!principal.roles.some((role) => admin.roles.includes(role) || (socAllowed && (admin.socRoles ?? []).includes(role)))) {
      throw new GatewayError('ZTG_ERR_FORBIDDEN', 'admin-role-required');
    }
    await csrf.check(request);
    ctx.allowedWithoutPolicy = true;
  });

  app.get(
    `${ADMIN_API_PREFIX}/whoami`,
    {
      schema: {
        summary: 'Ai đang đăng nhập / Who is calling',
        tags: ['session'],
        response: { 200: Reply({ nationalId: Type.String(), agency: NullableString(), roles: Type.Array(Type.String()), assuranceLevel: Type.Integer() }) },
      },
    },
    async (request) => {
      const p = request.zt.principal!;
      return { nationalId: p.nationalId, agency: p.agency, roles: p.roles, assuranceLevel: p.assuranceLevel };
    },
  );

  registerCsrfRoute(app, csrf);
  await registerAdminSignIn(app, runtime);
  for (const register of opts.modules ?? []) await app.register(async (scope) => register(scope, runtime));
  return app;
}
