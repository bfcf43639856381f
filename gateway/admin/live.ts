import { PassThrough } from 'node:stream';
import type { DestinationStream } from 'pino';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import type { Store } from '../../core/store.js';
import { ADMIN_API_PREFIX, type AdminModule } from './app.js';
import { useStrictValidation } from './openapi.js';
import { NATIONAL_ID_PATTERN } from '../../core/national-id.js';
import { hoChiMinhWallClock } from '../../policies/conditions.js';

/**
 * Live decisions for security admins: the decision events this instance wrote, kept in a
 * bounded ring and streamed as Server-Sent Events, with filters; and per-agency counts for
 * the yearly report (agencies report before 1 October), kept in the shared Store so every
 * instance adds to the same numbers, exportable as CSV.
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
const RING_SIZE = 2000;
const COUNT_FLUSH_INTERVAL_MS = 1000;
/** Open streams per instance; each costs a socket and a listener. */
const MAX_STREAMS = 32;
const HEARTBEAT_MS = 15_000;
const UNKNOWN = '-';

/** Months are those of Vietnam (UTC+7, no daylight saving), as agencies report them. */
export function monthOf(isoTime: string): string {
  return hoChiMinhWallClock(Date.parse(isoTime)).toISOString().slice(0, 7);
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? v : null;
}

export function summarise(e: Record<string, any>): DecisionSummary | null {
  const decision = e?.ztgate?.decision;
  if (decision !== 'allow' && decision !== 'deny') return null;
  return {
    id: String(e.event?.id ?? ''),
    time: String(e['@timestamp'] ?? ''),
    action: String(e.event?.action ?? ''),
    decision,
    reasons: Array.isArray(e.ztgate.reasons) ? e.ztgate.reasons.map(String) : [],
    rule: str(e.ztgate.rule),
    policyVersion: str(e.ztgate.policy_version),
    service: str(e.ztgate.route?.id),
    securityLevel: typeof e.ztgate.route?.security_level === 'number' ? e.ztgate.route.security_level : null,
    official: str(e.user?.id),
    agency: str(e.organization?.id),
    // Database-plane statements: the statement kind and its normalised text (no literal is ever in it).
    method: str(e.http?.request?.method) ?? str(e.db?.operation),
    path: str(e.url?.path) ?? str(e.db?.statement),
    status: typeof e.http?.response?.status_code === 'number' ? e.http.response.status_code : null,
  };
}

export function matches(d: DecisionSummary, f: DecisionFilter): boolean {
  return (
    (!f.outcome || d.decision === f.outcome) &&
    (!f.agency || d.agency === f.agency) &&
    (!f.service || d.service === f.service) &&
    (!f.official || d.official === f.official) &&
    (!f.kind || (f.kind === 'admin' ? d.action === 'admin-request' : d.action !== 'admin-request'))
  );
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

// ---------------------------------------------------------------------------------------------
// CSV: for spreadsheets; a BOM so that Excel reads UTF-8, and cells that a spreadsheet would run
// as a formula are quoted as text (OWASP "CSV injection").

export function csvCell(value: unknown): string {
  let s = value === null || value === undefined ? '' : String(value);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n']/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function toCsv(header: readonly string[], rows: readonly (readonly unknown[])[]): string {
  return '\uFEFF' + [header, ...rows].map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
}

// ---------------------------------------------------------------------------------------------

const id = { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' } as const;
const filterQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    outcome: { enum: ['allow', 'deny'] },
    agency: id,
    service: id,
    official: { type: 'string', pattern: NATIONAL_ID_PATTERN },
    kind: { enum: ['access', 'admin'] },
    limit: { type: 'integer', minimum: 1, maximum: RING_SIZE, default: 200 },
  },
} as const;
const summarySchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    time: { type: 'string', format: 'date-time' },
    action: { type: 'string' },
    decision: { enum: ['allow', 'deny'] },
    reasons: { type: 'array', items: { type: 'string' } },
    rule: { type: ['string', 'null'] },
    policyVersion: { type: ['string', 'null'] },
    service: { type: ['string', 'null'] },
    securityLevel: { type: ['integer', 'null'] },
    official: { type: ['string', 'null'] },
    agency: { type: ['string', 'null'] },
    method: { type: ['string', 'null'] },
    path: { type: ['string', 'null'] },
    status: { type: ['integer', 'null'] },
  },
} as const;
const MONTH = '^\\d{4}-(0[1-9]|1[0-2])$';
const countsQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    year: { type: 'integer', minimum: 2000, maximum: 2999 },
    from: { type: 'string', pattern: MONTH },
    to: { type: 'string', pattern: MONTH },
  },
} as const;
const countsResponse = {
  type: 'object',
  properties: {
    from: { type: 'string' },
    to: { type: 'string' },
    rows: {
      type: 'array',
      items: { type: 'object', properties: { agency: { type: 'string' }, service: { type: 'string' }, allowed: { type: 'integer' }, denied: { type: 'integer' } } },
    },
  },
} as const;

type FilterQuery = DecisionFilter & { limit: number };

function range(q: { year?: number; from?: string; to?: string }): { fromMonth: string; toMonth: string } {
  const year = q.year ?? Number(monthOf(new Date().toISOString()).slice(0, 4));
  const fromMonth = q.from ?? `${year}-01`;
  const toMonth = q.to ?? `${year}-12`;
  if (fromMonth > toMonth) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: '"from" phải trước "to" / "from" must not be after "to"' });
  return { fromMonth, toMonth };
}

const CSV_DECISIONS_HEADER = ['Thời điểm (time)', 'Quyết định (decision)', 'Lý do (reasons)', 'Cán bộ (official)', 'Cơ quan (agency)', 'Dịch vụ (service)', 'Phương thức (method)', 'Đường dẫn (path)', 'Mã trạng thái (status)', 'Quy tắc (rule)', 'Phiên bản chính sách (policy version)', 'Mã yêu cầu (request id)'];
const CSV_COUNTS_HEADER = ['Từ tháng (from)', 'Đến tháng (to)', 'Cơ quan (agency)', 'Dịch vụ (service)', 'Cho phép (allowed)', 'Từ chối (denied)', 'Tổng (total)'];

export const liveModule: AdminModule = (app: FastifyInstance, runtime) => {
  const feed = runtime.decisionFeed;
  useStrictValidation(app);
  {
    app.get(`${ADMIN_API_PREFIX}/decisions`, {
      schema: {
        summary: 'Quyết định gần đây / Recent decisions',
        description: 'The most recent decision events this instance wrote, oldest first, filtered.',
        tags: ['decisions'],
        querystring: filterQuery,
        response: { 200: { type: 'object', properties: { items: { type: 'array', items: summarySchema } } } },
      },
    }, async (request: FastifyRequest<{ Querystring: FilterQuery }>) => {
      const { limit, ...filter } = request.query;
      return { items: feed.recent(filter, limit) };
    });

    app.get(`${ADMIN_API_PREFIX}/decisions.csv`, {
      schema: {
        summary: 'Xuất quyết định gần đây (CSV) / Export recent decisions (CSV)',
        tags: ['decisions'],
        querystring: filterQuery,
        response: { 200: { description: 'CSV (UTF-8 with BOM)', content: { 'text/csv': { schema: { type: 'string' } } } } },
      },
    }, async (request: FastifyRequest<{ Querystring: FilterQuery }>, reply) => {
      const { limit, ...filter } = request.query;
      const rows = feed.recent(filter, limit).map((d) => [d.time, d.decision, d.reasons.join(' '), d.official, d.agency, d.service, d.method, d.path, d.status, d.rule, d.policyVersion, d.id]);
      request.zt.admin = { operation: 'decisions.export', detail: { rows: rows.length, ...filter } };
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', 'attachment; filename="ztgate-decisions.csv"')
        .send(toCsv(CSV_DECISIONS_HEADER, rows));
    });

    app.get(`${ADMIN_API_PREFIX}/decisions/stream`, {
      schema: {
        summary: 'Luồng quyết định trực tiếp (SSE) / Live decision stream (SSE)',
        description: 'text/event-stream: first the recent decisions matching the filter, then each new one as `event: decision`.',
        tags: ['decisions'],
        querystring: filterQuery,
        response: { 200: { description: 'Server-Sent Events', content: { 'text/event-stream': { schema: { type: 'string' } } } } },
      },
    }, async (request: FastifyRequest<{ Querystring: FilterQuery }>, reply) => {
      if (feed.subscribers >= MAX_STREAMS) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: 'Quá nhiều luồng đang mở / too many open streams' });
      const { limit, ...filter } = request.query;
      const out = new PassThrough();
      const send = (d: DecisionSummary) => out.write(`event: decision\nid: ${d.id}\ndata: ${JSON.stringify(d)}\n\n`);
      out.write(': ztgate live decisions\nretry: 3000\n\n');
      for (const d of feed.recent(filter, Math.min(limit, 200))) send(d);
      const unsubscribe = feed.subscribe((d) => {
        // An admin's own stream would otherwise show itself when it ends.
        if (d.id !== request.id && matches(d, filter)) send(d);
      });
      const heartbeat = setInterval(() => out.write(': heartbeat\n\n'), HEARTBEAT_MS);
      heartbeat.unref();
      const stop = () => {
        clearInterval(heartbeat);
        unsubscribe();
        out.end();
      };
      request.raw.once('close', stop);
      app.server.once('close', stop);
      return reply
        .type('text/event-stream; charset=utf-8')
        .header('cache-control', 'no-store')
        .header('x-accel-buffering', 'no')
        .send(out);
    });

    app.get(`${ADMIN_API_PREFIX}/decisions/counts`, {
      schema: {
        summary: 'Thống kê theo cơ quan / Per-agency counts',
        description: 'Data-plane decisions per agency and service over whole months (Vietnam time), for the yearly report. Default: the current calendar year.',
        tags: ['decisions'],
        querystring: countsQuery,
        response: { 200: countsResponse },
      },
    }, async (request: FastifyRequest<{ Querystring: { year?: number; from?: string; to?: string } }>) => {
      const r = range(request.query);
      return { from: r.fromMonth, to: r.toMonth, rows: await feed.counts(r) };
    });

    app.get(`${ADMIN_API_PREFIX}/decisions/counts.csv`, {
      schema: {
        summary: 'Xuất thống kê theo cơ quan (CSV) / Export per-agency counts (CSV)',
        tags: ['decisions'],
        querystring: countsQuery,
        response: { 200: { description: 'CSV (UTF-8 with BOM)', content: { 'text/csv': { schema: { type: 'string' } } } } },
      },
    }, async (request: FastifyRequest<{ Querystring: { year?: number; from?: string; to?: string } }>, reply) => {
      const r = range(request.query);
      const rows = (await feed.counts(r)).map((c) => [r.fromMonth, r.toMonth, c.agency, c.service, c.allowed, c.denied, c.allowed + c.denied]);
      request.zt.admin = { operation: 'decisions.counts.export', detail: { from: r.fromMonth, to: r.toMonth, rows: rows.length } };
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="ztgate-thong-ke-${r.fromMonth}_${r.toMonth}.csv"`)
        .send(toCsv(CSV_COUNTS_HEADER, rows));
    });
  }
};
