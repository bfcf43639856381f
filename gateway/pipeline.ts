import type { FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayConfig } from './config.js';
import type { AssertionSigner } from './assertion.js';
import { GatewayError } from './errors.js';
import type { DecisionContext } from './events.js';
import type { PolicyEngine } from '../policies/engine.js';
import { checkBody, checkMethod, checkPath, stripForgeableIdentityHeaders } from './steps/edge.js';
import { requireApproved, type RouteTable } from './steps/route.js';
import type { Authenticator } from './steps/authenticate.js';

/** Gateway endpoints that answer without authentication, by design. */
export const PUBLIC_ENDPOINTS = new Set(['/.well-known/jwks.json', '/healthz']);

export interface PipelineDeps {
  readonly config: GatewayConfig;
  readonly routes: RouteTable;
  readonly authenticator: Authenticator;
  readonly policy: () => PolicyEngine;
  readonly signer: AssertionSigner;
}

export interface PipelineState {
  zt: DecisionContext;
  assertion: string | null;
}

/**
 * The Zero Trust request pipeline, in order (README "One request, top to bottom").
 * Every step either adds to what is known about the request or ends it with a GatewayError;
 * whichever way it ends, gateway/app.ts writes exactly one decision event.
 */
export function createPipeline(deps: PipelineDeps) {
  return async function zeroTrust(request: FastifyRequest & PipelineState, _reply: FastifyReply): Promise<void> {
    const ctx = request.zt;

    // Edge hygiene: forged identity headers out, ambiguous paths and oversized bodies refused.
    ctx.strippedHeaders = stripForgeableIdentityHeaders(request.headers);
    checkMethod(request.method);
    const { path } = checkPath(request.url);
    checkBody(request.headers, deps.config.limits.bodyLimitBytes);

    // Route: the registered, approved shared database service.
    if (PUBLIC_ENDPOINTS.has(path) && (request.method === 'GET' || request.method === 'HEAD')) {
      ctx.reasons.push('public-endpoint');
      ctx.allowedWithoutPolicy = true;
      return;
    }
    const { route, innerPath } = deps.routes.match(request.headers.host, path);
    ctx.route = route;
    requireApproved(route);

    // Authenticate: who is asking, tied to a national ID.
    const principal = await deps.authenticator.authenticate(request.headers);
    ctx.principal = principal;

    // Decide: deny by default, deny overrides allow.
    let decision;
    try {
      decision = deps.policy().authorize(principal, { routeId: route.id, path: innerPath }, request.method);
    } catch (err) {
      throw new GatewayError('ZTG_ERR_INTERNAL', 'policy-error', { cause: err });
    }
    ctx.decision = decision;
    if (decision.effect !== 'allow') throw new GatewayError('ZTG_ERR_FORBIDDEN', decision.reasons[0] ?? 'policy-no-match');

    // Forward: a short-lived signed assertion of who was allowed, and why.
    request.assertion = await deps.signer.sign({ principal, routeId: route.id, decisionId: request.id, decision });
  };
}
