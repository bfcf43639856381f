import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import Type, { type Static } from 'typebox';
import { Id } from '../../core/schema.js';
import { GatewayError } from '../errors.js';
import { ADMIN_API_PREFIX } from './api-prefix.js';
import type { AdminModule } from './app.js';
import { useStrictValidation } from './openapi.js';
import { Body, Items, Reply } from './schemas.js';
import { NATIONAL_ID_PATTERN } from '../../core/national-id.js';
import { matches, monthOf, RING_SIZE, type DecisionSummary } from '../audit/decision-feed.js';

/**
 * Live decisions for security admins: the recent decisions of the decision feed
 * (gateway/audit/decision-feed.ts), filtered, streamed as Server-Sent Events and exported as
 * CSV, and the per-agency counts for the yearly report.
 */

/** Open streams per instance; each costs a socket and a listener. */
const MAX_STREAMS = 32;
const HEARTBEAT_MS = 15_000;

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

const Nullable = <T extends 'string' | 'integer'>(type: T) => Type.Unsafe<(T extends 'string' ? string : number) | null>({ type: [type, 'null'] });

const FilterQuery = Body({
  outcome: Type.Optional(Type.Enum(['allow', 'deny'])),
  agency: Type.Optional(Id()),
  service: Type.Optional(Id()),
  official: Type.Optional(Type.String({ pattern: NATIONAL_ID_PATTERN })),
  kind: Type.Optional(Type.Enum(['access', 'admin'])),
  limit: Type.Integer({ minimum: 1, maximum: RING_SIZE, default: 200 }),
});

const DecisionSummaryReply = Reply({
  id: Type.String(),
  time: Type.String({ format: 'date-time' }),
  action: Type.String(),
  decision: Type.Enum(['allow', 'deny']),
  reasons: Type.Array(Type.String()),
  rule: Nullable('string'),
  policyVersion: Nullable('string'),
  service: Nullable('string'),
  securityLevel: Nullable('integer'),
  official: Nullable('string'),
  agency: Nullable('string'),
  method: Nullable('string'),
  path: Nullable('string'),
  status: Nullable('integer'),
});

const MONTH = '^\\d{4}-(0[1-9]|1[0-2])$';
const CountsQuery = Body({
  year: Type.Optional(Type.Integer({ minimum: 2000, maximum: 2999 })),
  from: Type.Optional(Type.String({ pattern: MONTH })),
  to: Type.Optional(Type.String({ pattern: MONTH })),
});

const CountsReply = Reply({
  from: Type.String(),
  to: Type.String(),
  rows: Type.Array(Reply({ agency: Type.String(), service: Type.String(), allowed: Type.Integer(), denied: Type.Integer() })),
});

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
    app.get(
      `${ADMIN_API_PREFIX}/decisions`,
      {
        schema: {
          summary: 'Quyết định gần đây / Recent decisions',
          description: 'The most recent decision events this instance wrote, oldest first, filtered.',
          tags: ['decisions'],
          querystring: FilterQuery,
          response: { 200: Items(DecisionSummaryReply) },
        },
      },
      async (request: FastifyRequest<{ Querystring: Static<typeof FilterQuery> }>) => {
        const { limit, ...filter } = request.query;
        return { items: feed.recent(filter, limit) };
      },
    );

    app.get(
      `${ADMIN_API_PREFIX}/decisions.csv`,
      {
        schema: {
          summary: 'Xuất quyết định gần đây (CSV) / Export recent decisions (CSV)',
          tags: ['decisions'],
          querystring: FilterQuery,
          response: { 200: { description: 'CSV (UTF-8 with BOM)', content: { 'text/csv': { schema: { type: 'string' } } } } },
        },
      },
      async (request: FastifyRequest<{ Querystring: Static<typeof FilterQuery> }>, reply) => {
        const { limit, ...filter } = request.query;
        const rows = feed.recent(filter, limit).map((d) => [d.time, d.decision, d.reasons.join(' '), d.official, d.agency, d.service, d.method, d.path, d.status, d.rule, d.policyVersion, d.id]);
        request.zt.admin = { operation: 'decisions.export', detail: { rows: rows.length, ...filter } };
        return reply.type('text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="ztgate-decisions.csv"').send(toCsv(CSV_DECISIONS_HEADER, rows));
      },
    );

    app.get(
      `${ADMIN_API_PREFIX}/decisions/stream`,
      {
        schema: {
          summary: 'Luồng quyết định trực tiếp (SSE) / Live decision stream (SSE)',
          description: 'text/event-stream: first the recent decisions matching the filter, then each new one as `event: decision`.',
          tags: ['decisions'],
          querystring: FilterQuery,
          response: { 200: { description: 'Server-Sent Events', content: { 'text/event-stream': { schema: { type: 'string' } } } } },
        },
      },
      async (request: FastifyRequest<{ Querystring: Static<typeof FilterQuery> }>, reply) => {
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
        return reply.type('text/event-stream; charset=utf-8').header('cache-control', 'no-store').header('x-accel-buffering', 'no').send(out);
      },
    );

    app.get(
      `${ADMIN_API_PREFIX}/decisions/counts`,
      {
        schema: {
          summary: 'Thống kê theo cơ quan / Per-agency counts',
          description: 'Data-plane decisions per agency and service over whole months (Vietnam time), for the yearly report. Default: the current calendar year.',
          tags: ['decisions'],
          querystring: CountsQuery,
          response: { 200: CountsReply },
        },
      },
      async (request: FastifyRequest<{ Querystring: Static<typeof CountsQuery> }>) => {
        const r = range(request.query);
        return { from: r.fromMonth, to: r.toMonth, rows: await feed.counts(r) };
      },
    );

    app.get(
      `${ADMIN_API_PREFIX}/decisions/counts.csv`,
      {
        schema: {
          summary: 'Xuất thống kê theo cơ quan (CSV) / Export per-agency counts (CSV)',
          tags: ['decisions'],
          querystring: CountsQuery,
          response: { 200: { description: 'CSV (UTF-8 with BOM)', content: { 'text/csv': { schema: { type: 'string' } } } } },
        },
      },
      async (request: FastifyRequest<{ Querystring: Static<typeof CountsQuery> }>, reply) => {
        const r = range(request.query);
        const rows = (await feed.counts(r)).map((c) => [r.fromMonth, r.toMonth, c.agency, c.service, c.allowed, c.denied, c.allowed + c.denied]);
        request.zt.admin = { operation: 'decisions.counts.export', detail: { from: r.fromMonth, to: r.toMonth, rows: rows.length } };
        return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="ztgate-thong-ke-${r.fromMonth}_${r.toMonth}.csv"`).send(toCsv(CSV_COUNTS_HEADER, rows));
      },
    );
  }
};
