import type { FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayConfig } from './config.js';
import type { AssertionSigner } from './assertion.js';
import type { RequestState } from './request-state.js';
import { GatewayError } from './errors.js';
import type { Reason } from '../core/reasons.js';
import { loggablePath } from './events.js';
import type { PolicyEngine } from '../policies/engine.js';
import { checkBody, checkMethod, checkPath, stripForgeableIdentityHeaders } from './steps/edge.js';
import { requireApproved, type RouteTable } from './steps/route.js';
import type { Authenticator } from './steps/authenticate.js';
import { AUTH_PATH_PREFIX } from './auth-paths.js';
import { requireRouteAssurance } from './steps/assurance.js';
import { checkLocks, requireStateIntact } from './steps/locks.js';
import { requireAuditRecord } from './steps/audit-check.js';
import type { Locks } from './lock-registry.js';
import type { DecisionLog } from './audit/log.js';
import { requireDeviceTier, type DeviceAssessor } from './steps/device.js';
import { OFFICIAL_ENDPOINTS } from './device-routes.js';
import { decide, readPurpose } from './steps/decide.js';
import type { Grant as DecideGrant } from '../policies/access.js';
import { upstreamBasePath } from './steps/forward.js';
import { checkDailyQuota } from './steps/obligations.js';
import { StoreError, type Store } from '../core/store.js';
import type { AccessService, ActiveGrant } from './access/requests.js';
import { ACCESS_PATH_PREFIX } from './access/routes.js';
import type { RecentDecisions } from '../policies/what-if.js';
import { newStepTimes, STEP, stepEnd, stepStart } from './observability/steps.js';

/** RFC 9110 §10.1.1: the client waits for 100 (Continue) before it sends the body. */
export function expectsContinue(headers: FastifyRequest['headers']): boolean {
  const expect = headers.expect;
  return typeof expect === 'string' && expect.toLowerCase() === '100-continue';
}

/** Gateway endpoints that answer without authentication, by design. */
export const PUBLIC_ENDPOINTS = new Set(['/.well-known/jwks.json', '/healthz', '/livez', '/readyz', '/startupz']);

export interface PipelineDeps {
  readonly config: GatewayConfig;
  readonly routes: RouteTable;
  readonly authenticator: Authenticator;
  readonly policy: () => PolicyEngine;
  readonly signer: AssertionSigner;
  readonly devices: DeviceAssessor;
  readonly locks: Locks;
  readonly decisionLog: DecisionLog;
  /** Record quotas (obligations); a decision that needs it without a store is refused. */
  readonly store?: Store;
  /** Grants from approved access requests and break-glass (gateway/access/requests.ts). */
  readonly access?: Pick<AccessService, 'activeGrant'>;
  /** Decision inputs kept for what-if evaluation of policy drafts. */
  readonly recentDecisions?: RecentDecisions;
  /** Whether the shared state is intact (gateway/state-keeper.ts). */
  readonly state?: { healthy(): boolean };
}

/**
 * The Zero Trust request pipeline, in order (README "One request, top to bottom").
 * Every step either adds to what is known about the request or ends it by throwing a GatewayError
 * (or a module's typed error that toGatewayError translates). The steps never answer and never
 * write the event themselves: the listener's error handler answers every refusal
 * (gateway/error-response.ts), and whichever way the request ends, gateway/http.ts
 * (writeDecisionEvent) writes exactly one decision event.
 */
export function createPipeline(deps: PipelineDeps) {
  return async function zeroTrust(request: FastifyRequest & RequestState, _reply: FastifyReply): Promise<void> {
    const ctx = request.zt;
    // The policy version in force when the request arrived decides it, even if another is activated meanwhile.
    const policy = deps.policy();

    // Edge hygiene: forged identity headers out, ambiguous paths and oversized bodies refused.
    ctx.strippedHeaders = stripForgeableIdentityHeaders(request.headers);
    checkMethod(request.method);
    const { path } = checkPath(request.url);
    // A client that sent `Expect: 100-continue` holds its body back until it is asked for
    // (gateway/app.ts answers 100 only once the request is authorised): nothing is in flight, so
    // who is asking is settled first and an anonymous client learns nothing about the limits.
    const bodyHeldBack = expectsContinue(request.headers);
    if (!bodyHeldBack) checkBody(request.headers, deps.config.limits.bodyLimitBytes);

    // Route: the registered, approved shared database service.
    const isPublic = PUBLIC_ENDPOINTS.has(path) && (request.method === 'GET' || request.method === 'HEAD');
    // Endpoints that answer without identity check the body at once.
    if (bodyHeldBack && (isPublic || path.startsWith(AUTH_PATH_PREFIX))) checkBody(request.headers, deps.config.limits.bodyLimitBytes);
    if (isPublic) {
      ctx.reasons.push('public-endpoint');
      ctx.allowedWithoutPolicy = true;
      return;
    }
    if (path.startsWith(AUTH_PATH_PREFIX)) {
      // Browser sign-in, sign-out and back-channel logout (gateway/auth-routes.ts): no service, no policy.
      ctx.allowedWithoutPolicy = true;
      return;
    }
    // Shared state lost (Redis lost its data): nothing is decided until it is rebuilt.
    requireStateIntact(deps.state);
    if (OFFICIAL_ENDPOINTS.has(path) || path === ACCESS_PATH_PREFIX || path.startsWith(`${ACCESS_PATH_PREFIX}/`)) {
      // Gateway endpoints for any authenticated official (device enrolment, access requests): no service, no policy.
      // The access page is visited in a browser: without a session it is sent to sign in, and back.
      const browserPage = path === ACCESS_PATH_PREFIX ? { method: request.method, url: request.url, note: (reason: Reason) => ctx.reasons.push(reason) } : undefined;
      ctx.principal = await deps.authenticator.authenticate(request.headers, browserPage);
      if (bodyHeldBack) checkBody(request.headers, deps.config.limits.bodyLimitBytes);
      // A locked official, session or address enrols nothing; the device's own lock is checked once its key is known.
      await checkLocks(deps.locks, { nationalId: ctx.principal.nationalId, deviceId: null, sessionId: ctx.principal.sessionId, address: request.socket.remoteAddress });
      ctx.allowedWithoutPolicy = true;
      return;
    }
    const { route, innerPath } = deps.routes.match(request.headers.host, path);
    ctx.route = route;
    requireApproved(route);
    const steps = (ctx.steps = newStepTimes());

    // Authenticate: who is asking, tied to a national ID (bearer token or browser session), on the roster.
    stepStart(steps, STEP.identity);
    const requestInfo = { method: request.method, url: request.url, note: (reason: Reason) => ctx.reasons.push(reason) };
    const principal = await deps.authenticator.authenticate(request.headers, requestInfo);
    ctx.principal = principal;
    if (bodyHeldBack) checkBody(request.headers, deps.config.limits.bodyLimitBytes);
    // How recently and how strongly the official authenticated, as the service demands (step-up).
    requireRouteAssurance(principal, route, { identity: deps.config.identity, browser: principal.sessionId !== null && deps.authenticator.isBrowserNavigation(request.headers, requestInfo), returnTo: request.url });
    stepEnd(steps, STEP.identity);

    // The shared state this request needs (the proof's jti, the device record, locks, grants) is read
    // in one Redis round trip: the reads start together once the device key is known, and their
    // results are taken in the order of the steps, so the first step to refuse still decides.
    const lockSubject = (deviceId: string | null | undefined) => ({ nationalId: principal.nationalId, deviceId, sessionId: principal.sessionId, address: request.socket.remoteAddress });
    let lockCheck: Promise<void> | null = null;
    let grantRead: Promise<ActiveGrant | null> | null = null;
    const readSharedState = (deviceId: string | null) => {
      lockCheck = checkLocks(deps.locks, lockSubject(deviceId));
      lockCheck.catch(() => undefined);
      if (policy.usesGrants && deps.access) {
        grantRead = deps.access.activeGrant(principal.nationalId, route.id);
        grantRead.catch(() => undefined);
      }
    };

    // Device: proof of possession of a registered device key and its posture → trust tier.
    stepStart(steps, STEP.device);
    ctx.device = await deps.devices.assess(request, principal, { onIdentified: readSharedState });
    requireDeviceTier(ctx.device, route, deps.config.devices);
    stepEnd(steps, STEP.device);

    // Locks: an official, device, session or address locked by the SOC, an admin or a detection rule.
    stepStart(steps, STEP.decision);
    await (lockCheck ?? checkLocks(deps.locks, lockSubject(ctx.device?.id)));

    // Grants: an approved access request or break-glass on this service, read from the shared store on
    // every request, so approval, expiry and revocation hold on every instance from the next request.
    if (policy.usesGrants && deps.access) {
      try {
        ctx.grant = await (grantRead ?? deps.access.activeGrant(principal.nationalId, route.id));
      } catch (err) {
        if (err instanceof StoreError) throw new GatewayError('ZTG_ERR_ACCESS_UNAVAILABLE', 'grant-state-unavailable', { cause: err });
        throw err;
      }
      if (ctx.grant?.kind === 'break-glass') ctx.reasons.push('break-glass-access');
    }

    // Decide: Casbin rules, then attribute conditions (clearance, network, time, purpose…); deny by default, deny overrides allow.
    const purpose = policy.usesPurpose ? readPurpose(request.headers) : null;
    ctx.purpose = purpose;
    const decision = decide(policy, { route, path: innerPath, method: request.method, principal, deviceTier: ctx.device?.tier ?? null, purpose, sourceIp: request.socket.remoteAddress ?? null, grant: ctx.grant as DecideGrant | null }, (d) => (ctx.decision = d), deps.recentDecisions);

    // Quotas: records this official already received today, against the decision's obligations.
    await checkDailyQuota(deps.store, decision, principal.nationalId);

    // Audit: an audit-required route is forwarded only once the local log durably holds its record.
    await requireAuditRecord(route, deps.config.audit, deps.decisionLog, { requestId: request.id, userId: principal.nationalId, method: request.method, path: loggablePath(request.url), rule: decision.rule, policyVersion: decision.policyVersion });
    stepEnd(steps, STEP.decision);

    // Forward: a short-lived signed assertion of who was allowed, and why.
    // The assertion names the method and path the upstream will receive (the proxy's rewritePrefix + inner path).
    request.assertion = await deps.signer.sign({ principal, routeId: route.id, decisionId: request.id, decision, http: { method: request.method, path: `${upstreamBasePath(route)}${innerPath}` } });
  };
}
