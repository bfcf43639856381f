import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config.js';
import type { DecisionLog, AuditEvent } from '../audit/log.js';
import type { DecisionContext } from '../events.js';
import type { Locks } from '../lock-registry.js';
import type { PolicyService } from '../../policies/active-policy.js';
import type { Store } from '../../core/store.js';
import { createMetrics, type GatewayMetrics } from './metrics.js';
import { createProbes, type Probes, type ReadinessReport } from './probes.js';
import { createTracing, type Tracing } from './tracing.js';
import { STEP, stepEnd, stepStart } from './steps.js';
import type { ResponseObligations } from '../steps/forward.js';

/** Metrics, traces and probes of one gateway process (README "Observability"). */
export interface Observability {
  readonly metrics: GatewayMetrics;
  readonly tracing: Tracing;
  readonly probes: Probes;
  /** Called once per request, with its decision event, after the event was written. */
  requestEnded(plane: 'data' | 'admin', ctx: DecisionContext, event: AuditEvent, method: string): void;
  close(): Promise<void>;
}

export interface ObservabilityDeps {
  readonly config: GatewayConfig;
  readonly store: Store;
  readonly decisionLog: DecisionLog;
  readonly policies: PolicyService;
  readonly locks: Locks;
  readonly log: Pick<Logger, 'info' | 'warn'>;
  readonly fetch?: typeof fetch;
}

export async function createObservability(deps: ObservabilityDeps): Promise<Observability> {
  const { config } = deps;
  const metrics = createMetrics({ agencies: config.ops?.agencyLabels ?? [...new Set(config.routes.map((r) => r.ownerAgency))], timeoutMs: config.probes.checkTimeoutMs });
  const tracing = await createTracing(config.tracing, deps.log);
  const probes = createProbes({ config, store: deps.store, decisionLog: deps.decisionLog, fetch: deps.fetch, log: deps.log, policyVersion: () => deps.policies.current().version ?? null });
  metrics.bind({
    readiness: () => probes.last(),
    state: () => ({ backend: config.state.backend, up: probes.stateUp() }),
    issuers: () => probes.issuers(),
    audit: () => {
      const s = deps.decisionLog.status();
      return { chain: s.chain, sinks: s.sinks.map((x) => ({ ...x, maxBytes: config.audit.spoolMaxBytes })) };
    },
    spoolOldest: () => deps.decisionLog.oldestWaiting(),
    locks: () => deps.locks.list(),
    policy: () => ({ id: deps.policies.currentId(), version: deps.policies.current().version, lastSwitch: deps.policies.lastSwitch() }),
    sessionIdleMs: config.identity.session.idleTimeoutSeconds * 1000,
  });
  return {
    metrics,
    tracing,
    probes,
    requestEnded(plane, ctx, event, method) {
      const z = event.ztgate as { decision: 'allow' | 'deny'; reasons: string[] };
      const e = event.event as unknown as { outcome: string; duration: number };
      const statusCode = (event.http as { response: { status_code: number } }).response.status_code;
      const service = ctx.route?.id ?? null;
      metrics.requestEnded({ plane, service, agency: ctx.principal?.agency ?? null, decision: z.decision, outcome: e.outcome, reasons: z.reasons, durationSeconds: e.duration / 1e9, steps: ctx.steps, upstreamStatus: ctx.upstreamStatus, sessionId: ctx.principal?.sessionId ?? null });
      if (ctx.trace) tracing.end(ctx.trace, { method, requestId: event.event.id, service, decision: z.decision, reasons: z.reasons, statusCode, steps: ctx.steps, upstreamStatus: ctx.upstreamStatus });
    },
    async close() {
      probes.close();
      await tracing.close();
      metrics.close();
    },
  };
}

/** The probe endpoints; the public data listener says which checks fail, the ops listener also why. */
export function registerProbeRoutes(app: FastifyInstance, probes: Probes, opts: { details: boolean }): void {
  const noStore = { 'cache-control': 'no-store' };
  app.get('/livez', async (_request, reply) => reply.headers(noStore).send({ status: 'ok' }));
  app.get('/startupz', async (_request, reply) => {
    const started = probes.phase() !== 'starting';
    return reply
      .code(started ? 200 : 503)
      .headers(noStore)
      .send({ status: started ? 'started' : 'starting' });
  });
  app.get('/readyz', async (_request, reply) => {
    const report = await probes.readiness();
    return reply
      .code(report.ready ? 200 : 503)
      .headers(noStore)
      .send(readinessBody(report, opts.details));
  });
}

function readinessBody(report: ReadinessReport, details: boolean): Record<string, unknown> {
  const checks: Record<string, unknown> = {};
  for (const c of report.checks) checks[c.name] = details ? { ok: c.ok, ...c.detail } : { ok: c.ok };
  return { status: report.status, checks, checkedAt: report.checkedAt };
}

/**
 * Around the response obligations of forwarded requests: the upstream step starts when the
 * request leaves (with the `traceparent` the upstream continues) and ends at its response headers.
 */
export function observeUpstream(tracing: Tracing, inner: ResponseObligations): ResponseObligations {
  return {
    requestHeaders(request, headers) {
      const ctx = request.zt;
      stepStart(ctx.steps, STEP.upstream);
      if (ctx.trace) Object.assign(headers, tracing.upstreamHeaders(ctx.trace));
      return inner.requestHeaders(request, headers);
    },
    onResponse(request, reply, res) {
      const ctx = request.zt;
      stepEnd(ctx.steps, STEP.upstream);
      ctx.upstreamStatus = res.statusCode;
      inner.onResponse(request, reply, res);
    },
  };
}
