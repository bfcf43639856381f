import type { Logger } from 'pino';
import type { GatewayConfig, IssuerConfig } from '../config.js';
import type { DecisionLog } from '../audit/log.js';
import type { Store } from '../../core/store.js';

/**
 * Health probes (README "Observability"): /livez — the process answers; /startupz — listeners are
 * open; /readyz — every named check passes and the gateway is not draining. Readiness is also
 * checked in the background, so each change (ready, not ready, state lost, state restored, issuer
 * keys lost or back) is one operator log line when it happens, never one per probe.
 */

export const CHECKS = ['policy-loaded', 'state-store', 'issuer-keys', 'audit-sinks'] as const;
export type CheckName = (typeof CHECKS)[number];

export interface CheckResult {
  readonly name: CheckName;
  readonly ok: boolean;
  readonly detail: Record<string, unknown>;
}

export type Phase = 'starting' | 'running' | 'draining';

export interface ReadinessReport {
  readonly status: 'ready' | 'not-ready' | 'starting' | 'draining';
  readonly ready: boolean;
  readonly checks: readonly CheckResult[];
  readonly checkedAt: string;
}

export interface IssuerHealth {
  readonly issuer: string;
  readonly up: boolean | null;
  readonly keys: number;
  readonly error?: string;
}

export interface Probes {
  phase(): Phase;
  /** Listeners are open: startup is over, background checks begin. */
  started(): void;
  /** Graceful shutdown begins: /readyz answers 503 from now on. */
  drain(): void;
  /** A fresh readiness report (concurrent callers share one evaluation; one younger than a second is reused). */
  readiness(): Promise<ReadinessReport>;
  last(): ReadinessReport | null;
  issuers(): readonly IssuerHealth[];
  stateUp(): boolean | null;
  close(): void;
}

export interface ProbeDeps {
  readonly config: GatewayConfig;
  readonly store: Store;
  readonly policyVersion: () => string | null;
  readonly decisionLog: DecisionLog;
  readonly fetch?: typeof fetch;
  readonly log: Pick<Logger, 'info' | 'warn'>;
}

const REUSE_MS = 1000;
const PROBE_KEY = 'readyz-probe';

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Keys an issuer publishes for the algorithms configured for it (discovery when no jwksUri is set). */
async function issuerKeys(issuer: IssuerConfig, fetchImpl: typeof fetch, timeoutMs: number): Promise<number> {
  const get = async (url: string): Promise<Record<string, unknown>> => {
    const res = await fetchImpl(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'error', headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(`${url} answered ${res.status}`);
    return (await res.json()) as Record<string, unknown>;
  };
  let jwksUri = issuer.jwksUri;
  if (!jwksUri) {
    const doc = await get(`${issuer.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
    if (typeof doc.jwks_uri !== 'string') throw new Error('discovery has no jwks_uri');
    jwksUri = doc.jwks_uri;
  }
  const jwks = await get(jwksUri);
  const keys = Array.isArray(jwks.keys) ? (jwks.keys as Record<string, unknown>[]) : [];
  return keys.filter((k) => k.use !== 'enc' && (typeof k.alg !== 'string' || issuer.algorithms.includes(k.alg))).length;
}

export function createProbes(deps: ProbeDeps): Probes {
  const { config, log } = deps;
  const fetchImpl = deps.fetch ?? fetch;
  const timeoutMs = config.probes.checkTimeoutMs;
  let phase: Phase = 'starting';
  let last: ReadinessReport | null = null;
  let lastAt = 0;
  let running: Promise<ReadinessReport> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let issuerHealth: IssuerHealth[] = config.identity.issuers.map((i) => ({ issuer: i.issuer, up: null, keys: 0 }));
  let stateUp: boolean | null = null;
  const issuerCheckedAt: number[] = [];

  async function checkState(): Promise<CheckResult> {
    const backend = config.state.backend;
    try {
      // Any read proves Redis answers; the key is never written.
      await withTimeout(deps.store.get(PROBE_KEY), timeoutMs, 'the state store');
      return { name: 'state-store', ok: true, detail: { backend } };
    } catch (err) {
      return { name: 'state-store', ok: false, detail: { backend, error: (err as Error).message } };
    }
  }

  async function checkIssuers(): Promise<CheckResult> {
    const reuseAfter = Date.now() - config.probes.issuerKeysMaxAgeMs;
    issuerHealth = await Promise.all(
      config.identity.issuers.map(async (i, n): Promise<IssuerHealth> => {
        const before = issuerHealth[n];
        if (before?.up && (issuerCheckedAt[n] ?? 0) > reuseAfter) return before;
        issuerCheckedAt[n] = Date.now();
        try {
          const keys = await withTimeout(issuerKeys(i, fetchImpl, timeoutMs), timeoutMs, `issuer ${i.issuer}`);
          return keys > 0 ? { issuer: i.issuer, up: true, keys } : { issuer: i.issuer, up: false, keys, error: 'no signing key for the configured algorithms' };
        } catch (err) {
          return { issuer: i.issuer, up: false, keys: 0, error: (err as Error).message };
        }
      }),
    );
    return { name: 'issuer-keys', ok: issuerHealth.every((i) => i.up), detail: { issuers: issuerHealth } };
  }

  function checkSinks(): CheckResult {
    const status = deps.decisionLog.status();
    const problems: string[] = [];
    if (status.chain && !status.chain.healthy) problems.push(`the local audit chain ${status.chain.file} is not writable`);
    for (const s of status.sinks) if (s.spoolBytes >= config.audit.spoolMaxBytes) problems.push(`the spool of SOC sink "${s.name}" is full`);
    return { name: 'audit-sinks', ok: problems.length === 0, detail: { chain: status.chain ? { healthy: status.chain.healthy } : null, sinks: status.sinks.map((s) => ({ name: s.name, connected: s.connected, spoolBytes: s.spoolBytes })), problems } };
  }

  function logChanges(prev: ReadinessReport | null, next: ReadinessReport, prevIssuers: readonly IssuerHealth[]): void {
    const state = next.checks.find((c) => c.name === 'state-store')!;
    if (stateUp !== null && stateUp !== state.ok) {
      if (state.ok) log.info({ backend: config.state.backend }, 'shared state restored: the state store answers again');
      else log.warn({ backend: config.state.backend, error: state.detail.error }, 'shared state lost: the state store does not answer; requests that need it are refused');
    }
    stateUp = state.ok;
    issuerHealth.forEach((now, i) => {
      const before = prevIssuers[i];
      if (!before || before.up === null || before.up === now.up) return;
      if (now.up) log.info({ issuer: now.issuer, keys: now.keys }, 'issuer keys available again');
      else log.warn({ issuer: now.issuer, error: now.error }, 'issuer keys unavailable');
    });
    if (phase !== 'running') return;
    if (prev?.ready === next.ready && prev.status !== 'starting') return;
    if (next.ready) log.info({ policyVersion: deps.policyVersion() }, 'ready');
    else log.warn({ failing: next.checks.filter((c) => !c.ok).map((c) => c.name) }, 'not ready');
  }

  async function evaluate(): Promise<ReadinessReport> {
    const prevIssuers = issuerHealth;
    const version = deps.policyVersion();
    const policy: CheckResult = { name: 'policy-loaded', ok: version !== null, detail: { version } };
    const [state, issuers] = await Promise.all([checkState(), checkIssuers()]);
    const checks = [policy, state, issuers, checkSinks()];
    const passing = checks.every((c) => c.ok);
    const status = phase === 'draining' ? 'draining' : phase === 'starting' ? 'starting' : passing ? 'ready' : 'not-ready';
    const report: ReadinessReport = { status, ready: status === 'ready', checks, checkedAt: new Date().toISOString() };
    logChanges(last, report, prevIssuers);
    last = report;
    lastAt = Date.now();
    return report;
  }

  const probes: Probes = {
    phase: () => phase,
    started() {
      if (phase !== 'starting') return;
      phase = 'running';
      last = null;
      void probes.readiness();
      timer = setInterval(() => void probes.readiness(), config.probes.checkIntervalMs);
      timer.unref();
    },
    drain() {
      if (phase === 'draining') return;
      phase = 'draining';
      if (last) last = { ...last, status: 'draining', ready: false };
      log.info({ drainDelayMs: config.probes.drainDelayMs }, 'draining: /readyz answers 503; requests are still served until the listeners close');
    },
    readiness() {
      if (running) return running;
      if (last && Date.now() - lastAt < REUSE_MS && (phase !== 'draining' || last.status === 'draining')) return Promise.resolve(last);
      running = evaluate().finally(() => (running = null));
      return running;
    },
    last: () => last,
    issuers: () => issuerHealth,
    stateUp: () => stateUp,
    close() {
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
  return probes;
}
