import type { FastifyInstance, FastifyRequest } from 'fastify';
import Type, { type Static, type TProperties } from 'typebox';
import type { Runtime } from '../runtime.js';
import { ADMIN_API_PREFIX } from './api-prefix.js';
import type { AdminModule } from './app.js';
import { Body, Items, NullableString, Params, Reply } from './schemas.js';
import { accessFailure } from '../access/routes.js';
import { AccessError, type AccessRecord } from '../access/requests.js';

/**
 * Just-in-time access for security admins and the SOC (admin.socRoles): pending, active and past
 * requests and break-glass uses; revoke at once (every instance, next request); the mandatory
 * after-the-fact review of each break-glass use; the unreviewed uses by agency, for its head.
 * Approving is not here: the owner agency's approvers do it (gateway/access/routes.ts).
 */

/** An object that may carry more than it lists (a record keeps growing with its history). */
const Open = <P extends TProperties>(properties: P) => Type.Partial(Type.Object(properties), { additionalProperties: true });
const NullableOpen = <P extends TProperties>(properties: P) => Type.Unsafe<Record<string, unknown> | null>({ ...Open(properties), type: ['object', 'null'] });

const AccessRecordReply = Open({
  id: Type.String(),
  kind: Type.Enum(['access-request', 'break-glass']),
  state: Type.Enum(['pending', 'active', 'denied', 'cancelled', 'revoked', 'expired', 'ended-unconfirmed']),
  requester: Open({ nationalId: Type.String(), agency: NullableString() }),
  routeId: Type.String(),
  ownerAgency: Type.String(),
  securityLevel: Type.Integer(),
  role: Type.String(),
  purpose: Type.String(),
  caseRef: NullableString(),
  durationSeconds: Type.Integer(),
  requiredApprovals: Type.Integer(),
  approvals: Type.Array(Open({ nationalId: Type.String(), at: Type.String(), note: NullableString() })),
  createdAt: Type.String(),
  activatedAt: NullableString(),
  expiresAt: NullableString(),
  endedAt: NullableString(),
  endedBy: NullableString(),
  endReason: NullableString(),
  confirmBy: NullableString(),
  confirmedBy: NullableOpen({ nationalId: Type.String(), at: Type.String() }),
  review: NullableOpen({ by: Type.String(), at: Type.String(), note: Type.String() }),
});

const IdParams = Params({ id: Type.String({ format: 'uuid' }) });
const ListQuery = Body({ state: Type.Optional(Type.Enum(['pending', 'active', 'past'], { description: 'pending, active (live), or past (ended); all when absent' })) });
const RevokeBody = Body({ reason: Type.String({ minLength: 3, maxLength: 500, description: 'Lý do thu hồi / why' }) });
const ReviewBody = Body({ note: Type.String({ minLength: 10, maxLength: 2000, description: 'Nhận xét: có chính đáng không, đã truy cập những gì / was it justified, what was accessed' }) });

const soc = { socAllowed: true };

export const accessModule: AdminModule = (app: FastifyInstance, runtime: Runtime) => {
  const { access } = runtime;
  const guarded = async <T>(op: () => Promise<T>): Promise<T> => {
    try {
      return await op();
    } catch (err) {
      throw accessFailure(err);
    }
  };

  app.get(
    `${ADMIN_API_PREFIX}/access-requests`,
    {
      config: soc,
      schema: {
        summary: 'Yêu cầu truy cập và truy cập khẩn cấp / Access requests and break-glass uses',
        tags: ['access'],
        querystring: ListQuery,
        response: { 200: Items(AccessRecordReply) },
      },
    },
    async (request: FastifyRequest<{ Querystring: Static<typeof ListQuery> }>) => {
      request.zt.admin = { operation: 'access.list', ...(request.query.state ? { detail: { state: request.query.state } } : {}) };
      return { items: await guarded(() => access.list({ state: request.query.state })) };
    },
  );

  app.get(
    `${ADMIN_API_PREFIX}/access-requests/summary`,
    {
      config: soc,
      schema: {
        summary: 'Số yêu cầu chờ duyệt, đang hiệu lực và lần khẩn cấp chưa xem xét (huy hiệu) / Counts for the badge, and unreviewed break-glass uses by agency',
        tags: ['access'],
        response: {
          200: Reply({
            pending: Type.Integer(),
            active: Type.Integer(),
            unreviewed: Type.Integer(),
            unreviewedByAgency: Type.Unsafe<Record<string, unknown[]>>({ type: 'object', additionalProperties: Type.Array(AccessRecordReply) }),
          }),
        },
      },
    },
    async (request) => {
      request.zt.admin = { operation: 'access.summary' };
      return guarded(async () => {
        const live = await access.list({ state: 'active' });
        const pending = await access.list({ state: 'pending' });
        const unreviewed = await access.unreviewed();
        const unreviewedByAgency: Record<string, AccessRecord[]> = {};
        // Listed under the agency of the official who used it: its head answers for it.
        for (const r of unreviewed) (unreviewedByAgency[r.requester.agency ?? '(không rõ)'] ??= []).push(r);
        return { pending: pending.length, active: live.length, unreviewed: unreviewed.length, unreviewedByAgency };
      });
    },
  );

  app.get(
    `${ADMIN_API_PREFIX}/access-requests/:id`,
    {
      config: soc,
      schema: { summary: 'Một yêu cầu truy cập / One access request', tags: ['access'], params: IdParams, response: { 200: AccessRecordReply } },
    },
    async (request: FastifyRequest<{ Params: Static<typeof IdParams> }>) => {
      request.zt.admin = { operation: 'access.get', target: request.params.id };
      const r = await guarded(() => access.get(request.params.id));
      if (!r) throw accessFailure(new AccessError('ERR_ACCESS_NOT_FOUND', `không có yêu cầu ${request.params.id} / no access request ${request.params.id}`));
      return r;
    },
  );

  app.post(
    `${ADMIN_API_PREFIX}/access-requests/:id/revoke`,
    {
      config: soc,
      schema: {
        summary: 'Thu hồi / Revoke',
        description: 'Ends a pending request or an active grant (access request or break-glass) on every instance from the next request.',
        tags: ['access'],
        params: IdParams,
        body: RevokeBody,
        response: { 200: AccessRecordReply },
      },
    },
    async (request: FastifyRequest<{ Params: Static<typeof IdParams>; Body: Static<typeof RevokeBody> }>) => {
      request.zt.admin = { operation: 'access.revoke', target: request.params.id, detail: { reason: request.body.reason } };
      const r = await guarded(() => access.revoke(request.zt.principal!.nationalId, request.params.id, request.body.reason));
      request.zt.reasons.push('access-revoked');
      return r;
    },
  );

  app.post(
    `${ADMIN_API_PREFIX}/access-requests/:id/review`,
    {
      schema: {
        summary: 'Xem xét sau sự việc một lần truy cập khẩn cấp / After-the-fact review of a break-glass use',
        tags: ['access'],
        params: IdParams,
        body: ReviewBody,
        response: { 200: AccessRecordReply },
      },
    },
    async (request: FastifyRequest<{ Params: Static<typeof IdParams>; Body: Static<typeof ReviewBody> }>) => {
      request.zt.admin = { operation: 'access.review', target: request.params.id };
      const r = await guarded(() => access.review(request.zt.principal!.nationalId, request.params.id, request.body.note));
      request.zt.reasons.push('break-glass-reviewed');
      return r;
    },
  );
};
