import type { DestinationStream } from 'pino';
import type { Store } from '../../core/store.js';
import { hoChiMinhWallClock } from '../../policies/conditions.js';

/**
 * The decision feed: every decision event this instance wrote, as the decision log wrote it,
 * kept in a bounded ring for the live screen and counted per agency for the yearly report
 * (agencies report before 1 October). The counts live in the shared Store so every instance
 * adds to the same numbers. The runtime tees the decision log into it; the admin routes
 * (gateway/admin/decisions-routes.ts) only read it.
 *
 * The ring is per instance by design (recent activity on the screen); the complete, lossless
 * record is the SOC stream. Counts are batched in memory and added to the Store once a second:
 * a crash loses at most that second of statistics, never a decision event.
 */

/** What the live screen shows of one decision event: no token, cookie, header or query string. */
export interface DecisionSummary {
  readonly id: string;
  readonly time: string;
  readonly action: string;
  readonly decision: 'allow' | 'deny';
  readonly reasons: readonly string[];
  readonly rule: string | null;
  readonly policyVersion: string | null;
  readonly service: string | null;
  readonly securityLevel: number | null;
  readonly official: string | null;
  readonly agency: string | null;
  readonly method: string | null;
  readonly path: string | null;
  readonly status: number | null;
}

export interface DecisionFilter {
  readonly outcome?: 'allow' | 'deny';
  readonly agency?: string;
  readonly service?: string;
  readonly official?: string;
  /** `access` (data plane) or `admin` (management plane); both when absent. */
  readonly kind?: 'access' | 'admin';
}

export interface DecisionFeed {
  /** Where counts go; until attached they are kept in memory. */
  attachStore(store: Store): void;
  /** One decision event as the decision log wrote it (a JSON line). */
  ingest(line: string): void;
  recent(filter?: DecisionFilter, limit?: number): DecisionSummary[];
  subscribe(listener: (d: DecisionSummary) => void): () => void;
  readonly subscribers: number;
  /** Adds the pending counts to the Store. */
  flush(): Promise<void>;
  counts(query: { fromMonth: string; toMonth: string }): Promise<AgencyCount[]>;
  close(): Promise<void>;
}

export interface AgencyCount {
  readonly agency: string;
  readonly service: string;
  readonly allowed: number;
  readonly denied: number;
}

/** Recent decisions kept per instance for the screen. */
export const RING_SIZE = 2000;
const COUNT_FLUSH_INTERVAL_MS = 1000;
const UNKNOWN = '-';

/** Months are those of Vietnam (UTC+7, no daylight saving), as agencies report them. */
export function monthOf(isoTime: string): string {
  return hoChiMinhWallClock(Date.parse(isoTime)).toISOString().slice(0, 7);
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? v : null;
}

/** The value at `path` inside nested objects, or undefined. */
function field(v: unknown, ...path: string[]): unknown {
  for (const key of path) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined;
  return v;
}

function num(v: unknown): number | null {
  return typeof v === 'number' ? v : null;
}

export function summarise(e: unknown): DecisionSummary | null {
  const decision = field(e, 'ztgate', 'decision');
  if (decision !== 'allow' && decision !== 'deny') return null;
  const reasons = field(e, 'ztgate', 'reasons');
  return {
    id: String(field(e, 'event', 'id') ?? ''),
    time: String(field(e, '@timestamp') ?? ''),
    action: String(field(e, 'event', 'action') ?? ''),
    decision,
    reasons: Array.isArray(reasons) ? reasons.map(String) : [],
    rule: str(field(e, 'ztgate', 'rule')),
    policyVersion: str(field(e, 'ztgate', 'policy_version')),
    service: str(field(e, 'ztgate', 'route', 'id')),
    securityLevel: num(field(e, 'ztgate', 'route', 'security_level')),
    official: str(field(e, 'user', 'id')),
    agency: str(field(e, 'organization', 'id')),
    // Database-plane statements: the statement kind and its normalised text (no literal is ever in it).
    method: str(field(e, 'http', 'request', 'method')) ?? str(field(e, 'db', 'operation')),
    path: str(field(e, 'url', 'path')) ?? str(field(e, 'db', 'statement')),
    status: num(field(e, 'http', 'response', 'status_code')),
  };
}

export function matches(d: DecisionSummary, f: DecisionFilter): boolean {
  return (!f.outcome || d.decision === f.outcome) && (!f.agency || d.agency === f.agency) && (!f.service || d.service === f.service) && (!f.official || d.official === f.official) && (!f.kind || (f.kind === 'admin' ? d.action === 'admin-request' : d.action !== 'admin-request'));
}

const COUNT_KEY = (month: string, member: string) => `decisions:count:${month}:${member}`;
const INDEX_KEY = (year: string) => `decisions:count-index:${year}`;

export function createDecisionFeed(): DecisionFeed {
  let store: Store | null = null;
  const ring: DecisionSummary[] = [];
  let next = 0;
  const listeners = new Set<(d: DecisionSummary) => void>();
  // month|agency|service|decision → count not yet in the Store
  let pending = new Map<string, number>();
  let flushing: Promise<void> = Promise.resolve();

  const flushNow = async () => {
    if (pending.size === 0 || !store) return;
    const s = store;
    const batch = pending;
    pending = new Map();
    const byYear = new Map<string, string[]>();
    for (const member of batch.keys()) {
      const year = member.slice(0, 4);
      byYear.set(year, [...(byYear.get(year) ?? []), member]);
    }
    try {
      await Promise.all([
        ...[...batch].map(([member, n]) => {
          const [month, ...rest] = member.split('|');
          return s.incr(COUNT_KEY(month!, rest.join('|')), n);
        }),
        ...[...byYear].map(([year, members]) => s.sadd(INDEX_KEY(year), ...members)),
      ]);
    } catch {
      // Store unreachable: keep the counts for the next flush rather than lose them.
      for (const [member, n] of batch) pending.set(member, (pending.get(member) ?? 0) + n);
    }
  };
  const timer = setInterval(() => {
    flushing = flushing.then(flushNow);
  }, COUNT_FLUSH_INTERVAL_MS);
  timer.unref();

  return {
    attachStore(s) {
      store = s;
    },
    ingest(line) {
      let d: DecisionSummary | null;
      try {
        d = summarise(JSON.parse(line));
      } catch {
        return;
      }
      if (!d) return;
      if (ring.length < RING_SIZE) ring.push(d);
      else ring[next] = d;
      next = (next + 1) % RING_SIZE;
      if (d.action !== 'admin-request' && d.time) {
        const member = `${monthOf(d.time)}|${d.agency ?? UNKNOWN}|${d.service ?? UNKNOWN}|${d.decision}`;
        pending.set(member, (pending.get(member) ?? 0) + 1);
      }
      for (const l of listeners) l(d);
    },
    recent(filter = {}, limit = RING_SIZE) {
      const ordered = ring.length < RING_SIZE ? ring : [...ring.slice(next), ...ring.slice(0, next)];
      const out = ordered.filter((d) => matches(d, filter));
      return out.slice(Math.max(0, out.length - limit));
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    get subscribers() {
      return listeners.size;
    },
    flush() {
      flushing = flushing.then(flushNow);
      return flushing;
    },
    async counts({ fromMonth, toMonth }) {
      await this.flush();
      const s = store;
      if (!s) return [];
      const years: string[] = [];
      for (let y = Number(fromMonth.slice(0, 4)); y <= Number(toMonth.slice(0, 4)); y++) years.push(String(y));
      const members = (await Promise.all(years.map((y) => s.smembers(INDEX_KEY(y))))).flat();
      const wanted = members.filter((m) => m.slice(0, 7) >= fromMonth && m.slice(0, 7) <= toMonth);
      const values = await Promise.all(wanted.map((m) => s.get(COUNT_KEY(m.slice(0, 7), m.slice(8)))));
      const rows = new Map<string, { agency: string; service: string; allowed: number; denied: number }>();
      wanted.forEach((m, i) => {
        const [, agency, service, decision] = m.split('|') as [string, string, string, string];
        const key = `${agency}|${service}`;
        const row = rows.get(key) ?? { agency, service, allowed: 0, denied: 0 };
        row[decision === 'allow' ? 'allowed' : 'denied'] += Number(values[i] ?? 0);
        rows.set(key, row);
      });
      return [...rows.values()].sort((a, b) => a.agency.localeCompare(b.agency) || a.service.localeCompare(b.service));
    },
    async close() {
      clearInterval(timer);
      listeners.clear();
      await this.flush();
    },
  };
}

/** Sends every decision event to its destination and, parsed, to the feed. */
export function teeToFeed(destination: DestinationStream, feed: DecisionFeed): DestinationStream {
  // The feed reads the lines after the responses have gone out, in batches, never inside a request.
  let queued: string[] = [];
  const drain = () => {
    const lines = queued;
    queued = [];
    for (const line of lines) feed.ingest(line);
  };
  return {
    write(chunk: string) {
      const result = destination.write(chunk);
      if (queued.push(chunk) === 1) setImmediate(drain);
      return result;
    },
  } as DestinationStream;
}
