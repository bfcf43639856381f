import type { FastifyInstance, FastifyRequest } from 'fastify';
import { APPROVAL_STATUSES, CLASSIFICATIONS } from '../../core/levels.js';
import type { RouteConfig } from '../config.js';
import { GatewayError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import { ServiceChangeError, type PendingServiceChange, type ServiceOverride, type ServicePatch } from '../service-registry.js';
import { ADMIN_API_PREFIX } from './api-prefix.js';
import type { AdminModule } from './app.js';
import { useStrictValidation } from './openapi.js';

/**
 * Shared database services, for security admins: list them with the attributes in force, and
 * change security level, classification, owner agency or approval at run time. Every approval
 * change says who, when and why; it takes effect on every instance at once (gateway/service-registry.ts).
 * A change that weakens protection (declassify, lower the level, approve for use) waits as a
 * pending change until ANOTHER security admin confirms it (four-eyes).
 */

const approvalSchema = {
  type: 'object',
  properties: {
    status: { enum: APPROVAL_STATUSES },
    approvedBy: { type: 'string' },
    approvedAt: { type: 'string' },
    reason: { type: 'string' },
    proposedBy: { type: 'string', description: 'four-eyes: who proposed it, when another admin (approvedBy) confirmed it' },
  },
} as const;

const pendingSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    serviceId: { type: 'string' },
    patch: {
      type: 'object',
      properties: {
        securityLevel: { type: 'integer' },
        classification: { enum: CLASSIFICATIONS },
        ownerAgency: { type: 'string' },
        approval: { type: 'object', properties: { status: { enum: APPROVAL_STATUSES }, reason: { type: 'string' } } },
      },
    },
    proposedBy: { type: 'string' },
    proposedAt: { type: 'string' },
    reason: { type: ['string', 'null'] },
  },
} as const;

const serviceSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    pathPrefix: { type: 'string' },
    host: { type: 'string' },
    ownerAgency: { type: 'string' },
    securityLevel: { type: 'integer', minimum: 1, maximum: 5 },
    classification: { enum: CLASSIFICATIONS },
    approval: approvalSchema,
    overridden: { type: 'boolean', description: 'true when an admin changed it since the configuration was loaded' },
    updatedBy: { type: ['string', 'null'] },
    updatedAt: { type: ['string', 'null'] },
    pendingChanges: { type: 'array', items: pendingSchema, description: 'changes that weaken protection, waiting for a second security admin' },
  },
} as const;

const patchSchema = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    securityLevel: { type: 'integer', minimum: 1, maximum: 5 },
    classification: { enum: CLASSIFICATIONS },
    ownerAgency: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' },
    approval: {
      type: 'object',
      additionalProperties: false,
      required: ['status', 'reason'],
      properties: {
        status: { enum: APPROVAL_STATUSES },
        reason: { type: 'string', minLength: 1, maxLength: 1000, description: 'Lý do / why: required for every approval change' },
      },
    },
  },
} as const;

const changeParams = {
  type: 'object',
  required: ['id', 'changeId'],
  properties: { id: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' }, changeId: { type: 'string', pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' } },
} as const;

const commentBody = {
  type: 'object',
  additionalProperties: false,
  required: ['comment'],
  properties: { comment: { type: 'string', minLength: 1, maxLength: 1000, description: 'Nhận xét / why: required, audited' } },
} as const;

const params = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' } } } as const;

function view(route: RouteConfig, override: ServiceOverride | null, pendingChanges: readonly PendingServiceChange[]) {
  return {
    id: route.id,
    name: route.name,
    pathPrefix: route.pathPrefix,
    ...(route.host ? { host: route.host } : {}),
    ownerAgency: route.ownerAgency,
    securityLevel: route.securityLevel,
    classification: route.classification,
    approval: route.approval,
    overridden: override !== null,
    updatedBy: override?.updatedBy ?? null,
    updatedAt: override?.updatedAt ?? null,
    pendingChanges,
  };
}

function translateChange(err: unknown): never {
  if (err instanceof ServiceChangeError) {
    if (err.code === 'ERR_SERVICE_UNKNOWN') throw new GatewayError('ZTG_ERR_ROUTE_NOT_FOUND', 'route-not-found', { cause: err });
    if (err.code === 'ERR_CHANGE_UNKNOWN') throw new GatewayError('ZTG_ERR_SERVICE_CHANGE_NOT_FOUND', 'service-change-not-found', { detail: err.message, cause: err });
    if (err.code === 'ERR_FOUR_EYES_REQUIRED') throw new GatewayError('ZTG_ERR_FOUR_EYES_REQUIRED', 'four-eyes-required', { cause: err });
    throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: err.message, cause: err });
  }
  throw err;
}

const attributes = (r: RouteConfig) => ({ securityLevel: r.securityLevel, classification: r.classification, ownerAgency: r.ownerAgency, approvalStatus: r.approval.status });

export const servicesModule: AdminModule = (app: FastifyInstance, runtime: Runtime) => {
  const { services } = runtime;
  useStrictValidation(app);

  app.get(`${ADMIN_API_PREFIX}/services`, {
    schema: {
      summary: 'Danh sách dịch vụ / List shared database services',
      tags: ['services'],
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: serviceSchema } } } },
    },
  }, async () => {
    const pending = await services.pending();
    return { items: services.list().map((s) => view(s.route, s.override, pending.filter((c) => c.serviceId === s.route.id))) };
  });

  app.get(`${ADMIN_API_PREFIX}/services/:id`, {
    schema: { summary: 'Một dịch vụ / One service', tags: ['services'], params, response: { 200: serviceSchema } },
  }, async (request: FastifyRequest<{ Params: { id: string } }>) => {
    const s = services.get(request.params.id);
    if (!s) throw new GatewayError('ZTG_ERR_ROUTE_NOT_FOUND', 'route-not-found');
    return view(s.route, s.override, await services.pending(s.route.id));
  });

  app.patch(`${ADMIN_API_PREFIX}/services/:id`, {
    schema: {
      summary: 'Sửa thuộc tính dịch vụ / Change a service',
      description:
        'Changes security level, classification, owner agency or approval status at run time, on every instance. ' +
        'An approval change must carry a reason; who and when are recorded from the session. Upstream, path and new services come from the configuration. ' +
        'Four-eyes: a change that weakens protection (classification or security level lowered, or approval set to approved) is not applied: ' +
        'it answers 202 with the pending change, which ANOTHER security admin confirms (POST …/changes/{changeId}/confirm) or rejects. Other changes apply at once (200).',
      tags: ['services'],
      params,
      body: patchSchema,
      response: { 200: serviceSchema, 202: { type: 'object', properties: { pending: pendingSchema } } },
    },
  }, async (request: FastifyRequest<{ Params: { id: string }; Body: ServicePatch }>, reply) => {
    const { id } = request.params;
    const before = services.get(id);
    if (!before) throw new GatewayError('ZTG_ERR_ROUTE_NOT_FOUND', 'route-not-found');
    const by = request.zt.principal!.nationalId;
    if (services.weakens(id, request.body)) {
      const pending = await services.propose(id, request.body, by).catch(translateChange);
      request.zt.admin = {
        operation: 'services.change.propose',
        target: id,
        detail: { changeId: pending.id, before: attributes(before.route), patch: request.body, ...(pending.reason ? { reason: pending.reason } : {}) },
      };
      return reply.code(202).send({ pending });
    }
    const route = await services.update(id, request.body, by).catch(translateChange);
    request.zt.admin = {
      operation: request.body.approval ? 'services.approval' : 'services.update',
      target: id,
      detail: {
        before: attributes(before.route),
        after: attributes(route),
        ...(request.body.approval ? { reason: request.body.approval.reason } : {}),
      },
    };
    return view(route, services.get(id)!.override, await services.pending(id));
  });

  app.get(`${ADMIN_API_PREFIX}/services/:id/changes`, {
    schema: {
      summary: 'Thay đổi đang chờ xác nhận / Pending changes of a service',
      tags: ['services'],
      params,
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: pendingSchema } } } },
    },
  }, async (request: FastifyRequest<{ Params: { id: string } }>) => {
    if (!services.get(request.params.id)) throw new GatewayError('ZTG_ERR_ROUTE_NOT_FOUND', 'route-not-found');
    return { items: await services.pending(request.params.id) };
  });

  app.post(`${ADMIN_API_PREFIX}/services/:id/changes/:changeId/confirm`, {
    schema: {
      summary: 'Xác nhận thay đổi (bốn mắt) / Confirm a pending change (four-eyes)',
      description: 'By a security admin OTHER than the proposer (the proposer gets 403 ZTG_ERR_FOUR_EYES_REQUIRED); the change then applies on every instance. Body: {"comment": "…"} (required, audited).',
      tags: ['services'],
      params: changeParams,
      body: commentBody,
      response: { 200: serviceSchema },
    },
  }, async (request: FastifyRequest<{ Params: { id: string; changeId: string }; Body: { comment: string } }>) => {
    const { id, changeId } = request.params;
    const before = services.get(id);
    if (!before) throw new GatewayError('ZTG_ERR_ROUTE_NOT_FOUND', 'route-not-found');
    const comment = request.body.comment.trim();
    if (!comment) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: 'comment: bắt buộc / a comment is required' });
    // Audited also when refused: the SOC sees who tried to confirm their own change.
    request.zt.admin = { operation: 'services.change.confirm', target: id, detail: { changeId, comment } };
    const { change, route } = await services.confirm(id, changeId, request.zt.principal!.nationalId).catch(translateChange);
    request.zt.admin = {
      operation: 'services.change.confirm',
      target: id,
      detail: { changeId, proposedBy: change.proposedBy, before: attributes(before.route), after: attributes(route), ...(change.reason ? { reason: change.reason } : {}), comment },
    };
    return view(route, services.get(id)!.override, await services.pending(id));
  });

  app.post(`${ADMIN_API_PREFIX}/services/:id/changes/:changeId/reject`, {
    schema: {
      summary: 'Từ chối thay đổi đang chờ / Reject a pending change',
      description: 'Another security admin refuses it, or its proposer withdraws it; nothing changes. Body: {"comment": "…"} (required, audited).',
      tags: ['services'],
      params: changeParams,
      body: commentBody,
      response: { 200: { type: 'object', properties: { rejected: pendingSchema } } },
    },
  }, async (request: FastifyRequest<{ Params: { id: string; changeId: string }; Body: { comment: string } }>) => {
    const { id, changeId } = request.params;
    const comment = request.body.comment.trim();
    if (!comment) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: 'comment: bắt buộc / a comment is required' });
    const rejected = await services.reject(id, changeId).catch(translateChange);
    request.zt.admin = { operation: 'services.change.reject', target: id, detail: { changeId, proposedBy: rejected.proposedBy, patch: rejected.patch, comment } };
    return { rejected };
  });
};
