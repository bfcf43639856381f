import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { REASONS } from '../../core/reasons.js';
import { STEPS, type StepTimes } from './steps.js';

/**
 * Prometheus metrics (README "Observability"), served on the ops listener only. Labels come from
 * the configuration or closed lists — service (route id), agency (configured list, else
 * "other"), decision, outcome, reason, step, sink, issuer — never a national ID, a path or
 * free text, so the number of series stays bounded. Counting a request is a few label lookups
 * when it ends; everything read from Redis, the IdP or the disk is read at scrape time.
 */

export const NONE = 'none';
export const OTHER = 'other';
const UPSTREAM_ERRORS = new Set(['upstream-timeout', 'upstream-unavailable']);
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface EndedRequest {
  readonly plane: 'data' | 'admin';
  readonly service: string | null;
  readonly agency: string | null;
  readonly decision: 'allow' | 'deny';
  readonly outcome: string;
  readonly reasons: readonly string[];
  /** Seconds from arrival to the end of the response. */
  readonly durationSeconds: number;
  readonly steps: StepTimes | null;
  readonly upstreamStatus: number;
  readonly sessionId: string | null;
}

/** What the scrape reads from the rest of the gateway; each reader may be slow or fail, and is bounded. */
export interface ScrapeSources {
  readonly readiness: () => { ready: boolean; checks: readonly { name: string; ok: boolean }[] } | null;
  readonly state: () => { backend: string; up: boolean | null };
  readonly issuers: () => readonly { issuer: string; up: boolean | null; keys: number }[];
  readonly audit: () => {
    chain: { healthy: boolean; headSeq: number; lastCheckpointAtMs: number | null } | null;
    sinks: readonly { name: string; type: string; connected: boolean; spoolBytes: number; maxBytes: number; backlogBytes: number; dropped: number; delivered: number }[];
  };
  readonly spoolOldest: () => Promise<readonly { sink: string; atMs: number | null }[]>;
  readonly locks: () => Promise<readonly { kind: string }[]>;
  readonly policy: () => { id: string; version: string; lastSwitch: { id: string; activatedAtMs: number | null; switchedAtMs: number } | null };
  readonly sessionIdleMs: number;
}

export interface GatewayMetrics {
  readonly registry: Registry;
  requestEnded(r: EndedRequest): void;
  /** Binds the scrape-time readers once the runtime exists. */
  bind(sources: ScrapeSources): void;
  /** Node.js process metrics (process_*, nodejs_*): only where something scrapes them. */
  collectProcessMetrics(): void;
  close(): void;
}

export function createMetrics(opts: { agencies: readonly string[]; timeoutMs: number }): GatewayMetrics {
  const registry = new Registry();
  const agencies = new Set(opts.agencies);
  const agencyLabel = (agency: string | null): string => (agency === null ? NONE : agencies.has(agency) ? agency : OTHER);
  const reasonLabel = (reason: string): string => (Object.hasOwn(REASONS, reason) ? reason : OTHER);
  let sources: ScrapeSources | null = null;
  // Sessions seen on this instance, by id, with when: the active-session gauge counts those seen within the idle timeout.
  const sessionsSeen = new Map<string, number>();

  const requests = new Counter({ name: 'ztgate_requests_total', help: 'Requests by plane, service, requesting agency, decision and outcome (one per decision event).', labelNames: ['plane', 'service', 'agency', 'decision', 'outcome'], registers: [registry] });
  const reasons = new Counter({ name: 'ztgate_decision_reasons_total', help: 'Reasons carried by decisions (README "Reason codes"), by plane, service, agency and decision.', labelNames: ['plane', 'service', 'agency', 'decision', 'reason'], registers: [registry] });
  const duration = new Histogram({ name: 'ztgate_request_duration_seconds', help: 'Whole request, arrival to end of response.', labelNames: ['plane', 'service', 'decision'], buckets: LATENCY_BUCKETS, registers: [registry] });
  const stepDuration = new Histogram({ name: 'ztgate_step_duration_seconds', help: 'Pipeline steps: identity, device, decision (locks, policy, quota), upstream (until its response headers).', labelNames: ['step', 'service'], buckets: LATENCY_BUCKETS, registers: [registry] });
  const upstreamResponses = new Counter({ name: 'ztgate_upstream_responses_total', help: 'Upstream responses by service and status class (2xx, 3xx, 4xx, 5xx).', labelNames: ['service', 'status_class'], registers: [registry] });
  const upstreamErrors = new Counter({ name: 'ztgate_upstream_errors_total', help: 'Upstream exchanges that failed (upstream-timeout, upstream-unavailable), by service.', labelNames: ['service', 'reason'], registers: [registry] });

  const bounded = <T>(p: Promise<T>): Promise<T> => Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error('timed out')), opts.timeoutMs).unref())]);

  new Gauge({
    name: 'ztgate_ready',
    help: '1 when /readyz answers 200 (every readiness check passes and not draining).',
    registers: [registry],
    collect() {
      const r = sources?.readiness();
      this.set(r?.ready ? 1 : 0);
    },
  });
  new Gauge({
    name: 'ztgate_readiness_check',
    help: 'Each readiness check by name: 1 passing, 0 failing.',
    labelNames: ['check'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of sources?.readiness()?.checks ?? []) this.set({ check: c.name }, c.ok ? 1 : 0);
    },
  });
  new Gauge({
    name: 'ztgate_state_store_up',
    help: 'Shared state store (Redis) answered the last readiness check: 1 yes, 0 no.',
    labelNames: ['backend'],
    registers: [registry],
    collect() {
      this.reset();
      const s = sources?.state();
      if (s && s.up !== null) this.set({ backend: s.backend }, s.up ? 1 : 0);
    },
  });
  new Gauge({
    name: 'ztgate_idp_up',
    help: "Issuer's signing keys (discovery and JWKS) fetched at the last readiness check: 1 yes, 0 no.",
    labelNames: ['issuer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const i of sources?.issuers() ?? []) if (i.up !== null) this.set({ issuer: i.issuer }, i.up ? 1 : 0);
    },
  });
  new Gauge({
    name: 'ztgate_idp_jwks_keys',
    help: "Signing keys in the issuer's JWKS usable with its configured algorithms.",
    labelNames: ['issuer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const i of sources?.issuers() ?? []) if (i.up !== null) this.set({ issuer: i.issuer }, i.keys);
    },
  });
  new Gauge({
    name: 'ztgate_audit_sink_up',
    help: 'SOC sink connected: 1 yes, 0 no (events wait in its spool).',
    labelNames: ['sink', 'type'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of sources?.audit().sinks ?? []) this.set({ sink: s.name, type: s.type }, s.connected ? 1 : 0);
    },
  });
  new Gauge({
    name: 'ztgate_audit_spool_bytes',
    help: 'Bytes in the SOC sink spool on disk.',
    labelNames: ['sink'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of sources?.audit().sinks ?? []) this.set({ sink: s.name }, s.spoolBytes);
    },
  });
  new Gauge({
    name: 'ztgate_audit_spool_max_bytes',
    help: 'Spool capacity (audit.spoolMaxBytes); past it new events stay in the local log only.',
    labelNames: ['sink'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of sources?.audit().sinks ?? []) this.set({ sink: s.name }, s.maxBytes);
    },
  });
  new Gauge({
    name: 'ztgate_audit_spool_backlog_bytes',
    help: 'Bytes not yet confirmed delivered to the SOC sink (spool depth).',
    labelNames: ['sink'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of sources?.audit().sinks ?? []) this.set({ sink: s.name }, s.backlogBytes);
    },
  });
  new Gauge({
    name: 'ztgate_audit_spool_oldest_age_seconds',
    help: 'Age of the oldest event waiting for the SOC sink; 0 when none waits.',
    labelNames: ['sink'],
    registers: [registry],
    async collect() {
      this.reset();
      if (!sources) return;
      const oldest = await bounded(sources.spoolOldest()).catch(() => []);
      const now = Date.now();
      for (const o of oldest) this.set({ sink: o.sink }, o.atMs === null ? 0 : Math.max(0, (now - o.atMs) / 1000));
    },
  });
  monotonic('ztgate_audit_sink_delivered_total', 'Events delivered to the SOC sink since start.', (s) => s.delivered);
  monotonic('ztgate_audit_spool_dropped_total', 'Events refused by a full spool since start (they remain in the local chain).', (s) => s.dropped);
  new Gauge({
    name: 'ztgate_audit_chain_healthy',
    help: 'Local hash-chained audit log accepts writes: 1 yes, 0 no (audit-required routes are refused).',
    registers: [registry],
    collect() {
      const c = sources?.audit().chain;
      this.set(c ? (c.healthy ? 1 : 0) : 1);
    },
  });
  new Gauge({
    name: 'ztgate_audit_chain_records',
    help: 'Sequence number of the last record in the local audit chain.',
    registers: [registry],
    collect() {
      this.set(sources?.audit().chain?.headSeq ?? 0);
    },
  });
  new Gauge({
    name: 'ztgate_audit_chain_last_checkpoint_age_seconds',
    help: 'Seconds since this instance last wrote a signed chain checkpoint.',
    registers: [registry],
    collect() {
      this.reset();
      const at = sources?.audit().chain?.lastCheckpointAtMs;
      if (at) this.set((Date.now() - at) / 1000);
    },
  });
  new Gauge({
    name: 'ztgate_locks_active',
    help: 'Locks in force (SOC, admins, detection rules), by kind.',
    labelNames: ['kind'],
    registers: [registry],
    async collect() {
      this.reset();
      if (!sources) return;
      const locks = await bounded(sources.locks()).catch(() => null);
      if (!locks) return;
      const counts: Record<string, number> = { user: 0, device: 0, session: 0, address: 0 };
      for (const l of locks) counts[l.kind] = (counts[l.kind] ?? 0) + 1;
      for (const [kind, n] of Object.entries(counts)) this.set({ kind }, n);
    },
  });
  new Gauge({
    name: 'ztgate_sessions_active',
    help: 'Browser sessions that made a request through this instance within the session idle timeout.',
    registers: [registry],
    collect() {
      const cutoff = Date.now() - (sources?.sessionIdleMs ?? 0);
      for (const [id, at] of sessionsSeen) if (at < cutoff) sessionsSeen.delete(id);
      this.set(sessionsSeen.size);
    },
  });
  new Gauge({
    name: 'ztgate_policy_info',
    help: 'The policy version in force on this instance (always 1; the version is in the labels).',
    labelNames: ['version_id', 'version'],
    registers: [registry],
    collect() {
      this.reset();
      const p = sources?.policy();
      if (p) this.set({ version_id: p.id, version: p.version }, 1);
    },
  });
  new Gauge({
    name: 'ztgate_policy_propagation_delay_seconds',
    help: 'For the last policy activation this instance followed: seconds from activation to the switch here.',
    registers: [registry],
    collect() {
      this.reset();
      const s = sources?.policy().lastSwitch;
      if (s?.activatedAtMs) this.set(Math.max(0, (s.switchedAtMs - s.activatedAtMs) / 1000));
    },
  });
  new Gauge({
    name: 'ztgate_policy_last_switch_timestamp_seconds',
    help: 'When this instance last switched to a newly activated policy version (Unix time).',
    registers: [registry],
    collect() {
      this.reset();
      const s = sources?.policy().lastSwitch;
      if (s) this.set(s.switchedAtMs / 1000);
    },
  });

  /** A counter mirrored from a sink's own running total (it only grows within a process). */
  function monotonic(name: string, help: string, read: (s: ReturnType<ScrapeSources['audit']>['sinks'][number]) => number): void {
    const seen = new Map<string, number>();
    new Counter({
      name,
      help,
      labelNames: ['sink'],
      registers: [registry],
      collect() {
        for (const s of sources?.audit().sinks ?? []) {
          const value = read(s);
          const delta = value - (seen.get(s.name) ?? 0);
          if (delta > 0) this.inc({ sink: s.name }, delta);
          else if (!seen.has(s.name)) this.inc({ sink: s.name }, 0);
          seen.set(s.name, value);
        }
      },
    });
  }

  let processMetrics = false;
  return {
    registry,
    requestEnded(r) {
      const service = r.service ?? NONE;
      const agency = agencyLabel(r.agency);
      requests.inc({ plane: r.plane, service, agency, decision: r.decision, outcome: r.outcome });
      for (const reason of r.reasons) {
        reasons.inc({ plane: r.plane, service, agency, decision: r.decision, reason: reasonLabel(reason) });
        if (UPSTREAM_ERRORS.has(reason)) upstreamErrors.inc({ service, reason });
      }
      duration.observe({ plane: r.plane, service, decision: r.decision }, r.durationSeconds);
      if (r.upstreamStatus > 0) upstreamResponses.inc({ service, status_class: `${Math.floor(r.upstreamStatus / 100)}xx` });
      const t = r.steps;
      if (t) {
        const now = performance.now();
        for (let i = 0; i < STEPS.length; i++) {
          const start = t[i * 2]!;
          if (start > 0) stepDuration.observe({ step: STEPS[i]!, service }, ((t[i * 2 + 1] || now) - start) / 1000);
        }
      }
      if (r.sessionId) sessionsSeen.set(r.sessionId, Date.now());
    },
    bind(s) {
      sources = s;
    },
    collectProcessMetrics() {
      if (processMetrics) return;
      processMetrics = true;
      collectDefaultMetrics({ register: registry });
    },
    close() {
      sessionsSeen.clear();
      registry.clear();
    },
  };
}
