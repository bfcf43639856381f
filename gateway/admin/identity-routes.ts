import type { FastifyInstance, FastifyRequest } from 'fastify';
import Type, { type Static } from 'typebox';
import { GatewayError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import { StoreError } from '../../core/store.js';
import { CLEARANCES } from '../../core/levels.js';
import { isNationalId } from '../../core/national-id.js';
import { OFFICIAL_STATUSES, parseRoster, RosterError, RosterUnavailableError } from '../../identity/roster.js';
import { diffRoster, entryChange } from '../../identity/roster-diff.js';
import { ADMIN_API_PREFIX } from './api-prefix.js';
import type { AdminModule } from './app.js';
import { Body, Items, NationalIdParams, NullableString, Params, ReasonBody, Reply } from './schemas.js';

const SESSIONS_ENDED = { 200: Reply({ sessionsEnded: Type.Integer() }) };

/** The schema admits "   "; an audited reason must say something. */
function requiredReason(text: string): string {
  const reason = text.trim();
  if (!reason) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: 'reason: bắt buộc nêu lý do / a reason is required' });
  return reason;
}
import { useStrictValidation } from './openapi.js';

/**
 * Identity administration: the official roster (list, import from CSV or JSON, change an
 * official's status), ending every session of an official, and rotating the assertion key.
 * Every change is audited through request.zt.admin.
 */

const Official = Reply({
  nationalId: Type.String(),
  name: Type.String(),
  agency: Type.String(),
  unit: Type.String(),
  position: Type.String(),
  roles: Type.Array(Type.String()),
  clearance: Type.Enum(CLEARANCES),
  status: Type.Enum(OFFICIAL_STATUSES),
});

const StatusBody = Body({ status: Type.Enum(OFFICIAL_STATUSES), reason: Type.String({ minLength: 1, maxLength: 1000 }) });

const SessionParams = Params({ handle: Type.String({ pattern: '^[0-9a-f]{64}$' }) });

const SessionSummary = Reply({
  handle: Type.String(),
  nationalId: Type.String(),
  acr: NullableString(),
  createdAt: Type.String({ format: 'date-time' }),
  expiresAt: Type.String({ format: 'date-time' }),
  lastSeenAt: NullableString({ format: 'date-time' }),
  client: Type.Unsafe<{ address?: string | null; userAgent?: string | null } | null>({ type: ['object', 'null'], properties: { address: NullableString(), userAgent: NullableString() } }),
  current: Type.Boolean(),
});

function unavailable(err: unknown): never {
  if (err instanceof RosterUnavailableError || err instanceof StoreError) throw new GatewayError('ZTG_ERR_IDP_UNAVAILABLE', 'roster-unavailable', { cause: err });
  throw err;
}

/** Four-eyes: no admin changes what decides their own access, whether by import or status change. */
function selfChange(): GatewayError {
  return new GatewayError('ZTG_ERR_ROSTER_SELF_CHANGE', 'roster-self-change');
}

function notFound(nationalId: string): GatewayError {
  return new GatewayError('ZTG_ERR_OFFICIAL_NOT_FOUND', 'official-not-found', { detail: `Không có cán bộ ${nationalId} trong danh sách / ${nationalId} is not on the roster` });
}

export const identityModule: AdminModule = (app: FastifyInstance, runtime: Runtime) => {
  const { roster, sessions } = runtime.identity;
  useStrictValidation(app);

  if (roster) {
    // A roster file as HR exports it: the import endpoint takes CSV as well as JSON.
    app.addContentTypeParser('text/csv', { parseAs: 'string' }, (_request, body, done) => done(null, body));

    app.get(
      `${ADMIN_API_PREFIX}/roster`,
      {
        schema: {
          summary: 'Danh sách cán bộ / List the official roster',
          tags: ['identity'],
          response: { 200: Reply({ count: Type.Integer(), items: Type.Array(Official) }) },
        },
      },
      async () => {
        const items = await roster.list().catch(unavailable);
        return { count: items.length, items };
      },
    );

    app.put(
      `${ADMIN_API_PREFIX}/roster`,
      {
        schema: {
          summary: 'Nạp lại toàn bộ danh sách cán bộ / Replace the roster (CSV or JSON)',
          description:
            'Body: text/csv with the header nationalId,name,agency,unit,position,roles,clearance,status (roles separated by |), ' +
            'or application/json {"officials":[...]}. Every row is checked first; any problem refuses the whole import (400, each problem named by row and column) and nothing changes. ' +
            'An import that adds, removes or changes the roles, clearance, agency, unit or status of the admin who sends it is refused (403 ZTG_ERR_ROSTER_SELF_CHANGE): another admin must. ' +
            'The audit event lists every official added, removed or changed (first 200, with counts).',
          tags: ['identity'],
          response: { 200: Reply({ count: Type.Integer(), version: Type.String() }) },
        },
      },
      async (request: FastifyRequest<{ Body: unknown }>) => {
        const type = String(request.headers['content-type'] ?? '')
          .split(';')[0]!
          .trim()
          .toLowerCase();
        let entries;
        try {
          if (type === 'text/csv') entries = parseRoster(String(request.body ?? ''), 'csv', 'roster import');
          else if (type === 'application/json') entries = parseRoster(JSON.stringify(request.body ?? null), 'json', 'roster import');
          else throw new RosterError('roster import', ['Content-Type must be text/csv or application/json']);
        } catch (err) {
          if (err instanceof RosterError) throw new GatewayError('ZTG_ERR_ROSTER_INVALID', 'roster-invalid', { detail: err.message, cause: err });
          throw err;
        }
        const before = await roster.list().catch(unavailable);
        const diff = diffRoster(before, entries);
        const self = request.zt.principal!.nationalId;
        const own =
          diff.changes.find((c) => c.nationalId === self) ??
          entryChange(
            before.find((e) => e.nationalId === self),
            entries.find((e) => e.nationalId === self),
          );
        if (own) {
          request.zt.admin = { operation: 'roster.import', detail: { refused: 'self-change', own, added: diff.added, removed: diff.removed, changed: diff.changed, format: type } };
          throw selfChange();
        }
        const result = await roster.replace(entries).catch(unavailable);
        request.zt.admin = { operation: 'roster.import', detail: { count: result.count, version: result.version, format: type, ...diff } };
        return result;
      },
    );

    app.get(
      `${ADMIN_API_PREFIX}/roster/:nationalId`,
      {
        schema: { summary: 'Một cán bộ / One official', tags: ['identity'], params: NationalIdParams, response: { 200: Official } },
      },
      async (request: FastifyRequest<{ Params: Static<typeof NationalIdParams> }>) => {
        const entry = await roster.lookup(request.params.nationalId).catch(unavailable);
        if (!entry) throw notFound(request.params.nationalId);
        return entry;
      },
    );

    app.patch(
      `${ADMIN_API_PREFIX}/roster/:nationalId`,
      {
        schema: {
          summary: "Đổi trạng thái cán bộ / Change an official's status",
          description: 'Suspending or retiring an official refuses their tokens at once on every instance and ends all their browser sessions.',
          tags: ['identity'],
          params: NationalIdParams,
          body: StatusBody,
          response: { 200: Reply({ official: Official, sessionsEnded: Type.Integer() }) },
        },
      },
      async (request: FastifyRequest<{ Params: Static<typeof NationalIdParams>; Body: Static<typeof StatusBody> }>) => {
        const { nationalId } = request.params;
        if (nationalId === request.zt.principal!.nationalId) {
          request.zt.admin = { operation: 'roster.status', target: nationalId, detail: { refused: 'self-change', after: request.body.status } };
          throw selfChange();
        }
        const before = await roster.lookup(nationalId).catch(unavailable);
        if (!before) throw notFound(nationalId);
        const official = await roster.setStatus(nationalId, request.body.status).catch(unavailable);
        if (!official) throw notFound(nationalId);
        const sessionsEnded = request.body.status !== 'active' && sessions ? await sessions.endAllOf(nationalId).catch(unavailable) : 0;
        request.zt.admin = { operation: 'roster.status', target: nationalId, detail: { before: before.status, after: official.status, reason: request.body.reason, sessionsEnded } };
        return { official, sessionsEnded };
      },
    );
  }

  if (sessions) {
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

    app.get(
      `${ADMIN_API_PREFIX}/sessions`,
      {
        schema: {
          summary: 'Các phiên đăng nhập đang mở / Active browser sessions',
          description: "Who is signed in, from which address and browser, since when and last seen when, on every instance; `current` marks the caller's own session. No token or cookie is ever shown.",
          tags: ['identity'],
          response: { 200: Items(SessionSummary) },
        },
      },
      async (request) => {
        const own = request.zt.principal!.sessionId;
        const items = await sessions.list().catch(unavailable);
        return { items: items.map((x) => ({ ...x, createdAt: iso(x.createdAt), expiresAt: iso(x.expiresAt), lastSeenAt: iso(x.lastSeenAt), current: x.handle === own })) };
      },
    );

    app.delete(
      `${ADMIN_API_PREFIX}/sessions/:handle`,
      {
        schema: {
          summary: 'Kết thúc một phiên đăng nhập / End one session',
          description: 'The session ends on every gateway instance at once; its browser must sign in again. Body: {"reason": "…"} (required, audited).',
          tags: ['identity'],
          params: SessionParams,
          body: ReasonBody,
          response: SESSIONS_ENDED,
        },
      },
      async (request: FastifyRequest<{ Params: Static<typeof SessionParams>; Body: Static<typeof ReasonBody> }>) => {
        const { handle } = request.params;
        const reason = requiredReason(request.body.reason);
        const record = await sessions.read(handle).catch(unavailable);
        if (!record) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'session-unknown', { detail: 'Không có phiên này (đã kết thúc?) / no such session (already ended?)' });
        await sessions.end(handle).catch(unavailable);
        request.zt.admin = { operation: 'sessions.end', target: handle, detail: { reason, nationalId: record.nationalId } };
        return { sessionsEnded: 1 };
      },
    );

    app.delete(
      `${ADMIN_API_PREFIX}/officials/:nationalId/sessions`,
      {
        schema: {
          summary: 'Kết thúc mọi phiên đăng nhập của cán bộ / End every session of an official',
          description: 'Every browser session of the official ends on every gateway instance at once; their next request must sign in again. Body: {"reason": "…"} (required, audited).',
          tags: ['identity'],
          params: NationalIdParams,
          body: ReasonBody,
          response: SESSIONS_ENDED,
        },
      },
      async (request: FastifyRequest<{ Params: Static<typeof NationalIdParams>; Body: Static<typeof ReasonBody> }>) => {
        const { nationalId } = request.params;
        if (!isNationalId(nationalId)) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed');
        const reason = requiredReason(request.body.reason);
        const sessionsEnded = await sessions.endAllOf(nationalId).catch(unavailable);
        request.zt.admin = { operation: 'sessions.revoke', target: nationalId, detail: { reason, sessionsEnded } };
        return { sessionsEnded };
      },
    );
  }

  app.post(
    `${ADMIN_API_PREFIX}/assertion-keys/rotate`,
    {
      schema: {
        summary: 'Đổi khóa ký assertion / Rotate the assertion signing key',
        description: 'Signs with the key already published as next, for every configured algorithm (ES256, ML-DSA-65); the old keys stay in the JWKS until the assertions they signed have expired. Applies to the instance that answers.',
        tags: ['identity'],
        response: { 200: Reply({ kid: Type.String(), retiredKid: Type.String(), rotated: Type.Array(Reply({ alg: Type.String(), kid: Type.String(), retiredKid: Type.String() })) }) },
      },
    },
    async (request) => {
      const result = await runtime.signer.rotate();
      request.zt.admin = { operation: 'assertion-keys.rotate', target: result.kid, detail: { retiredKid: result.retiredKid, rotated: result.rotated } };
      return result;
    },
  );
};
