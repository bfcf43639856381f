import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import type { Store } from '../../core/store.js';
import type { Runtime } from '../runtime.js';
import type { ResponseObligations } from './forward.js';
import { isNationalId, maskNationalId } from '../../core/national-id.js';
import { hoChiMinhWallClock } from '../../policies/conditions.js';
import type { Obligation, Decision } from '../../core/principal.js';

/**
 * Steps 7 and 9: the obligations a policy attached to an allow.
 *
 * Before forwarding (quotas): an official who already received their daily record quota is
 * refused without asking the upstream. After (response obligations): the upstream's JSON is
 * buffered up to a bound, its records counted (the `items` array, or one `item`, or a top-level
 * array — any other shape under a scope, cap or quota obligation is withheld), checked against the commune scope, the per-response cap and the daily quota (counted
 * in the shared store), and the named fields masked. Whatever cannot be done — a body that is
 * not JSON, too large, compressed, a record of another commune, the store down — withholds the
 * body: fail closed, never forward what the policy said must not be seen.
 */

type Of<T extends Obligation['type']> = Extract<Obligation, { type: T }>;
const find = <T extends Obligation['type']>(d: Decision, type: T) => d.obligations.find((o) => o.type === type) as Of<T> | undefined;

/** Obligations that need the response body. */
export function needsResponseBody(decision: Decision | null | undefined): boolean {
  return !!decision && decision.effect === 'allow' && decision.obligations.length > 0;
}

const DAY_MS = 86_400_000;

/** Per official per day, the day as Vietnam counts it. */
export function dailyQuotaKey(nationalId: string, timeMs: number): string {
  const day = hoChiMinhWallClock(timeMs).toISOString().slice(0, 10);
  return `quota:records:${nationalId}:${day}`;
}

function quotaUnavailable(cause: unknown): GatewayError {
  return new GatewayError('ZTG_ERR_QUOTA_UNAVAILABLE', 'quota-unavailable', { cause });
}

/** Step 7: refuses before forwarding when today's quota is already used up. */
export async function checkDailyQuota(store: Store | undefined, decision: Decision, nationalId: string): Promise<void> {
  const quota = find(decision, 'max-records-per-day');
  if (!quota) return;
  if (!store) throw quotaUnavailable(new Error('no store'));
  let used: number;
  try {
    used = Number((await store.get(dailyQuotaKey(nationalId, Date.now()))) ?? 0);
  } catch (err) {
    throw quotaUnavailable(err);
  }
  if (used >= quota.max) throw new GatewayError('ZTG_ERR_QUOTA_EXCEEDED', 'quota-exceeded', { detail: `Đã khai thác ${used}/${quota.max} bản ghi hôm nay / ${used} of ${quota.max} records today` });
}

/** Headers to the upstream when the body must be inspected: plain, whole representations only. */
export function adjustUpstreamHeaders(decision: Decision | null | undefined, headers: IncomingHttpHeaders): IncomingHttpHeaders {
  if (!needsResponseBody(decision)) return headers;
  const { range: _range, 'if-range': _ifRange, ...rest } = headers;
  return { ...rest, 'accept-encoding': 'identity' };
}

/** How a masked value looks: national IDs keep the province code, digits keep their ends, addresses their area. */
export function maskValue(value: unknown): unknown {
  if (typeof value === 'string') {
    const text: string = value;
    if (isNationalId(value)) return maskNationalId(value);
    // Health insurance card (thẻ BHYT): object code, benefit level and province stay; the last ten
    // digits are the holder's national ID number, masked like it.
    if (/^[A-Z]{2}\d{13}$/.test(text)) return `${text.slice(0, 5)}${'*'.repeat(8)}${text.slice(-2)}`;
    if (/^\+?\d{8,15}$/.test(text)) return `${text.slice(0, 3)}${'*'.repeat(text.length - 5)}${text.slice(-2)}`;
    const comma = text.indexOf(',');
    return comma > 0 ? `***${text.slice(comma)}` : '***';
  }
  return value === null || value === undefined ? value : '***';
}

function maskFields(node: unknown, fields: ReadonlySet<string>): unknown {
  if (Array.isArray(node)) return node.map((n) => maskFields(n, fields));
  if (node && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) out[k] = fields.has(k) ? maskValue(v) : maskFields(v, fields);
    return out;
  }
  return node;
}

/** The records of a response: `items`, one `item`, or a top-level array; null when it has none of these. */
export function recordsOf(body: unknown): unknown[] | null {
  if (Array.isArray(body)) return body;
  if (body && typeof body === 'object') {
    const o = body as Record<string, unknown>;
    if (Array.isArray(o.items)) return o.items;
    if (o.item && typeof o.item === 'object') return [o.item];
  }
  return null;
}

/** One record container at most, and no array of objects beside it (records hidden from the checks). */
function checkSingleContainer(body: unknown): void {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return;
  const o = body as Record<string, unknown>;
  if ('items' in o && 'item' in o) throw failed('two record containers (items and item)');
  for (const [key, value] of Object.entries(o)) {
    if (key !== 'items' && key !== 'item' && Array.isArray(value) && value.some((v) => v !== null && typeof v === 'object')) {
      throw failed(`objects outside the record container (${key})`);
    }
  }
}

/** Any object anywhere in the body that names a commune must name the official's. */
function checkScopeEverywhere(node: unknown, scope: { recordField: string; commune: string }, depth = 0): void {
  if (depth > 64) throw failed('response nested too deeply to check its scope');
  if (Array.isArray(node)) {
    for (const n of node) checkScopeEverywhere(n, scope, depth + 1);
  } else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    if (Object.hasOwn(o, scope.recordField) && o[scope.recordField] !== scope.commune) throw failed(`record outside commune ${scope.commune}`);
    for (const v of Object.values(o)) checkScopeEverywhere(v, scope, depth + 1);
  }
}

async function readBounded(stream: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      stream.destroy();
      throw new GatewayError('ZTG_ERR_OBLIGATION_FAILED', 'obligation-failed', { cause: new Error(`response larger than ${limit} bytes`) });
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

const failed = (why: string) => new GatewayError('ZTG_ERR_OBLIGATION_FAILED', 'obligation-failed', { cause: new Error(why) });

export interface UpstreamResponse {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly stream: Readable;
}

/** Applies a decision's obligations to a buffered upstream response; returns the body to send. */
export async function applyObligations(decision: Decision, res: { statusCode: number; headers: IncomingHttpHeaders; body: Buffer }, ctx: { nationalId: string; store: Store | undefined; noteRecords: (n: number) => void }): Promise<Buffer> {
  if (res.body.length === 0) return res.body;
  const encoding = res.headers['content-encoding'];
  if (encoding && encoding !== 'identity') throw failed(`compressed response (${encoding})`);
  if (!/^application\/([a-z.+-]*\+)?json\b/i.test(String(res.headers['content-type'] ?? ''))) throw failed('response is not JSON');
  let body: unknown;
  try {
    body = JSON.parse(res.body.toString('utf8'));
  } catch (err) {
    throw failed(`unparseable JSON: ${(err as Error).message}`);
  }
  const scope = find(decision, 'commune-scope');
  const cap = find(decision, 'max-records-per-response');
  const quota = find(decision, 'max-records-per-day');
  if (scope || cap || quota) {
    // Under a record obligation every record must stand in the one container the gateway checks and
    // counts, whatever the status: records beside it would pass scope, cap and quota unseen.
    checkSingleContainer(body);
    if (scope) checkScopeEverywhere(body, scope);
  }
  if (res.statusCode >= 200 && res.statusCode < 300) {
    const counted = recordsOf(body);
    // Records in a shape the gateway does not know would pass scope, cap and quota as 0 records.
    if (counted === null && (scope || cap || quota)) {
      throw failed('no record container (items, item or a top-level array) in a response under a record obligation');
    }
    const records = counted ?? [];
    ctx.noteRecords(records.length);
    if (scope && records.some((r) => !r || typeof r !== 'object' || (r as Record<string, unknown>)[scope.recordField] !== scope.commune)) {
      // The upstream ignored the scope it was given: nothing of it reaches the official.
      throw failed(`record outside commune ${scope.commune}`);
    }
    if (cap && records.length > cap.max) {
      throw new GatewayError('ZTG_ERR_QUOTA_EXCEEDED', 'records-per-response-exceeded', { detail: `Phản hồi có ${records.length} bản ghi, tối đa ${cap.max} / ${records.length} records, at most ${cap.max} per response` });
    }
    if (quota && records.length > 0) {
      if (!ctx.store) throw quotaUnavailable(new Error('no store'));
      const key = dailyQuotaKey(ctx.nationalId, Date.now());
      let total: number;
      try {
        total = await ctx.store.incr(key, records.length, 2 * DAY_MS);
      } catch (err) {
        throw quotaUnavailable(err);
      }
      if (total > quota.max) {
        // Not delivered, so not counted.
        await ctx.store.incr(key, -records.length).catch(() => undefined);
        throw new GatewayError('ZTG_ERR_QUOTA_EXCEEDED', 'quota-exceeded', { detail: `Vượt hạn mức ${quota.max} bản ghi mỗi ngày / over the quota of ${quota.max} records per day` });
      }
    }
  }
  const mask = find(decision, 'mask-fields');
  return Buffer.from(JSON.stringify(mask ? maskFields(body, new Set(mask.fields)) : body));
}

const HEADERS_OF_THE_ORIGINAL_BODY = ['content-length', 'content-encoding', 'etag', 'content-md5', 'digest', 'content-range', 'accept-ranges', 'transfer-encoding'];

/** The reply-from onResponse hook: stream through untouched, or buffer and apply the obligations. */
export function createResponseObligations(opts: { store: Store | undefined; bufferLimitBytes: number }) {
  return function onResponse(request: FastifyRequest, reply: FastifyReply, res: UpstreamResponse): void {
    const decision = request.zt?.decision;
    if (!needsResponseBody(decision)) {
      reply.send(res.stream);
      return;
    }
    if (request.method === 'HEAD') {
      // No body to check, but its length and validators describe the unmasked one.
      for (const h of HEADERS_OF_THE_ORIGINAL_BODY) reply.removeHeader(h);
      reply.send(res.stream);
      return;
    }
    const ctx = request.zt;
    void (async () => {
      let out: Buffer;
      try {
        const body = await readBounded(res.stream, opts.bufferLimitBytes);
        out = await applyObligations(decision!, { statusCode: res.statusCode, headers: res.headers, body }, { nationalId: ctx.principal!.nationalId, store: opts.store, noteRecords: (n) => (ctx.records = n) });
      } catch (err) {
        // The refusal is the gateway's own JSON answer: nothing of the upstream's representation stays.
        for (const h of [...HEADERS_OF_THE_ORIGINAL_BODY, 'content-type']) reply.removeHeader(h);
        // Answered by the listener's error handler, like every other refusal (gateway/error-response.ts).
        reply.send(err instanceof GatewayError ? err : failed((err as Error).message));
        return;
      }
      for (const h of HEADERS_OF_THE_ORIGINAL_BODY) reply.removeHeader(h);
      reply.header('content-type', 'application/json; charset=utf-8').send(out);
    })();
  };
}

/** The response step as the forwarders take it. */
export function responseObligations(runtime: Runtime): ResponseObligations {
  return {
    requestHeaders: (request, headers) => adjustUpstreamHeaders(request.zt?.decision, headers),
    onResponse: createResponseObligations({ store: runtime.store, bufferLimitBytes: runtime.config.policy.responseBufferLimitBytes }),
  };
}
