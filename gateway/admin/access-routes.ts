import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { ADMIN_API_PREFIX } from './api-prefix.js';
import type { AdminModule } from './app.js';
import { accessFailure } from '../access/routes.js';
import { AccessError, type AccessRecord } from '../access/requests.js';

/**
 * Just-in-time access for security admins and the SOC (admin.socRoles): pending, active and past
 * requests and break-glass uses; revoke at once (every instance, next request); the mandatory
 * after-the-fact review of each break-glass use; the unreviewed uses by agency, for its head.
 * Approving is not here: the owner agency's approvers do it (gateway/access/routes.ts).
 */

const record = {
  type: 'object',
  additionalProperties: true,
  properties: {
    id: { type: 'string' },
    kind: { enum: ['access-request', 'break-glass'] },
    state: { enum: ['pending', 'active', 'denied', 'cancelled', 'revoked', 'expired', 'ended-unconfirmed'] },
    requester: { type: 'object', additionalProperties: true, properties: { nationalId: { type: 'string' }, agency: { type: ['string', 'null'] } } },
    routeId: { type: 'string' },
    ownerAgency: { type: 'string' },
    securityLevel: { type: 'integer' },
    role: { type: 'string' },
    purpose: { type: 'string' },
    caseRef: { type: ['string', 'null'] },
    durationSeconds: { type: 'integer' },
    requiredApprovals: { type: 'integer' },
    approvals: { type: 'array', items: { type: 'object', additionalProperties: true, properties: { nationalId: { type: 'string' }, at: { type: 'string' }, note: { type: ['string', 'null'] } } } },
    createdAt: { type: 'string' },
    activatedAt: { type: ['string', 'null'] },
    expiresAt: { type: ['string', 'null'] },
    endedAt: { type: ['string', 'null'] },
    endedBy: { type: ['string', 'null'] },
    endReason: { type: ['string', 'null'] },
    confirmBy: { type: ['string', 'null'] },
    confirmedBy: { type: ['object', 'null'], additionalProperties: true, properties: { nationalId: { type: 'string' }, at: { type: 'string' } } },
    review: { type: ['object', 'null'], additionalProperties: true, properties: { by: { type: 'string' }, at: { type: 'string' }, note: { type: 'string' } } },
  },
} as const;

const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', format: 'uuid' } } } as const;
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

  app.get(`${ADMIN_API_PREFIX}/access-requests`, {
    config: soc,
    schema: {
      summary: 'Yêu cầu truy cập và truy cập khẩn cấp / Access requests and break-glass uses',
      tags: ['access'],
      querystring: { type: 'object', additionalProperties: false, properties: { state: { enum: ['pending', 'active', 'past'], description: 'pending, active (live), or past (ended); all when absent' } } },
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: record } } } },
    },
  }, async (request: FastifyRequest<{ Querystring: { state?: 'pending' | 'active' | 'past' } }>) => {
    request.zt.admin = { operation: 'access.list', ...(request.query.state ? { detail: { state: request.query.state } } : {}) };
    return { items: await guarded(() => access.list({ state: request.query.state })) };
  });

  app.get(`${ADMIN_API_PREFIX}/access-requests/summary`, {
    config: soc,
    schema: {
      summary: 'Số yêu cầu chờ duyệt, đang hiệu lực và lần khẩn cấp chưa xem xét (huy hiệu) / Counts for the badge, and unreviewed break-glass uses by agency',
      tags: ['access'],
      response: {
        200: {
          type: 'object',
          properties: {
            pending: { type: 'integer' },
            active: { type: 'integer' },
            unreviewed: { type: 'integer' },
            unreviewedByAgency: { type: 'object', additionalProperties: { type: 'array', items: record } },
          },
        },
      },
    },
  }, async (request) => {
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
  });

  app.get(`${ADMIN_API_PREFIX}/access-requests/:id`, {
    config: soc,
    schema: { summary: 'Một yêu cầu truy cập / One access request', tags: ['access'], params: idParams, response: { 200: record } },
  }, async (request: FastifyRequest<{ Params: { id: string } }>) => {
    request.zt.admin = { operation: 'access.get', target: request.params.id };
    const r = await guarded(() => access.get(request.params.id));
    if (!r) throw accessFailure(new AccessError('ERR_ACCESS_NOT_FOUND', `không có yêu cầu ${request.params.id} / no access request ${request.params.id}`));
    return r;
  });

  app.post(`${ADMIN_API_PREFIX}/access-requests/:id/revoke`, {
    config: soc,
    schema: {
      summary: 'Thu hồi / Revoke',
      description: 'Ends a pending request or an active grant (access request or break-glass) on every instance from the next request.',
      tags: ['access'],
      params: idParams,
      body: { type: 'object', additionalProperties: false, required: ['reason'], properties: { reason: { type: 'string', minLength: 3, maxLength: 500, description: 'Lý do thu hồi / why' } } },
      response: { 200: record },
    },
  }, async (request: FastifyRequest<{ Params: { id: string }; Body: { reason: string } }>) => {
    request.zt.admin = { operation: 'access.revoke', target: request.params.id, detail: { reason: request.body.reason } };
    const r = await guarded(() => access.revoke(request.zt.principal!.nationalId, request.params.id, request.body.reason));
    request.zt.reasons.push('access-revoked');
    return r;
  });

  app.post(`${ADMIN_API_PREFIX}/access-requests/:id/review`, {
    schema: {
      summary: 'Xem xét sau sự việc một lần truy cập khẩn cấp / After-the-fact review of a break-glass use',
      tags: ['access'],
      params: idParams,
      body: { type: 'object', additionalProperties: false, required: ['note'], properties: { note: { type: 'string', minLength: 10, maxLength: 2000, description: 'Nhận xét: có chính đáng không, đã truy cập những gì / was it justified, what was accessed' } } },
      response: { 200: record },
    },
  }, async (request: FastifyRequest<{ Params: { id: string }; Body: { note: string } }>) => {
    request.zt.admin = { operation: 'access.review', target: request.params.id };
    const r = await guarded(() => access.review(request.zt.principal!.nationalId, request.params.id, request.body.note));
    request.zt.reasons.push('break-glass-reviewed');
    return r;
  });
};
