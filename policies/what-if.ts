import type { Store } from '../core/store.js';
import type { AccessRequest } from './access.js';
import type { Decision } from '../core/principal.js';
import type { PolicyEngine } from './engine.js';

/**
 * What-if: the last N decision inputs, kept in a bounded ring in the shared store (so every
 * instance's traffic counts), and a draft evaluated against them before anyone approves it.
 * What is kept is the AccessRequest the engine saw — national ID, agency, roles, route, path,
 * method, device tier, purpose, address, time — never a token, cookie, session id or query.
 */

export interface RecordedDecision {
  readonly request: AccessRequest;
  readonly decision: { readonly effect: Decision['effect']; readonly reason: string; readonly rule: string | null; readonly policyVersion: string };
}

export interface Flip {
  readonly at: string;
  readonly nationalId: string;
  readonly agency: string | null;
  readonly roles: readonly string[];
  readonly route: string;
  readonly path: string;
  readonly method: string;
  readonly before: RecordedDecision['decision'];
  readonly after: { readonly effect: Decision['effect']; readonly reason: string; readonly rule: string | null };
}

export interface RecentDecisions {
  /** Fire and forget: a store failure loses a sample, never delays or fails the request. */
  record(request: AccessRequest, decision: Decision): void;
  list(limit?: number): Promise<RecordedDecision[]>;
}

const SEQ = 'policy:recent:seq';
const slot = (n: number) => `policy:recent:${n}`;

/** Recorded decisions wait this long in memory and go to the store together, off the request path. */
const FLUSH_INTERVAL_MS = 250;

export function createRecentDecisions(store: Store, capacity: number, retentionMs = 7 * 86_400_000): RecentDecisions {
  let pending: RecordedDecision[] = [];
  let timer: NodeJS.Timeout | null = null;
  let flushing: Promise<void> = Promise.resolve();
  // One INCRBY for the batch, then its slots written together (pipelined on the one connection).
  const flush = (): Promise<void> => {
    if (timer) clearTimeout(timer);
    timer = null;
    const batch = pending.slice(-capacity);
    pending = [];
    if (batch.length === 0) return flushing;
    flushing = flushing
      .then(async () => {
        const last = await store.incr(SEQ, batch.length);
        await Promise.all(batch.map((entry, i) => store.set(slot((last - batch.length + 1 + i) % capacity), JSON.stringify(entry), { ttlMs: retentionMs })));
      })
      .catch(() => undefined);
    return flushing;
  };
  return {
    record(request, decision) {
      const { sessionId: _secret, ...principal } = request.principal;
      pending.push({
        request: { ...request, principal: { ...principal, sessionId: null } },
        decision: { effect: decision.effect, reason: decision.reasons[0] ?? 'policy-no-match', rule: decision.rule, policyVersion: decision.policyVersion },
      });
      if (!timer) {
        timer = setTimeout(() => void flush(), FLUSH_INTERVAL_MS);
        timer.unref();
      }
    },
    async list(limit = capacity) {
      await flush();
      const n = Math.min(limit, capacity);
      const values = await Promise.all(Array.from({ length: capacity }, (_, i) => store.get(slot(i))));
      const entries = values.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as RecordedDecision);
      entries.sort((a, b) => b.request.timeMs - a.request.timeMs);
      return entries.slice(0, n);
    },
  };
}

/** The recorded requests whose effect (allow or deny) the draft would change. */
export function whatIf(draft: PolicyEngine, recorded: readonly RecordedDecision[]): { evaluated: number; flips: Flip[] } {
  const flips: Flip[] = [];
  for (const { request, decision: before } of recorded) {
    const after = draft.decide(request);
    if (after.effect === before.effect) continue;
    flips.push({
      at: new Date(request.timeMs).toISOString(),
      nationalId: request.principal.nationalId,
      agency: request.principal.agency,
      roles: request.principal.roles,
      route: request.route.id,
      path: request.path,
      method: request.method,
      before,
      after: { effect: after.effect, reason: after.reasons[0] ?? 'policy-no-match', rule: after.rule },
    });
  }
  return { evaluated: recorded.length, flips };
}
