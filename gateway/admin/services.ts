import type { FastifyInstance, FastifyRequest } from 'fastify';
import { APPROVAL_STATUSES, CLASSIFICATIONS, type RouteConfig } from '../config.js';
import { GatewayError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import { ServiceChangeError, type ServiceOverride, type ServicePatch } from '../services.js';
import { ADMIN_API_PREFIX, type AdminModule } from './app.js';
import { useStrictValidation } from './openapi.js';

/**
 * Shared database services, for security admins: list them with the attributes in force, and
 * change security level, classification, owner agency or approval at run time. Every approval
 * change says who, when and why; it takes effect on every instance at once (gateway/services.ts).
 */

const approvalSchema = {
  type: 'object',
  properties: {
    status: { enum: APPROVAL_STATUSES },
    approvedBy: { type: 'string' },
    approvedAt: { type: 'string' },
    reason: { type: 'string' },
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

const params = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' } } } as const;

function view(route: RouteConfig, override: ServiceOverride | null) {
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
  };
}

export const servicesModule: AdminModule = (app: FastifyInstance, runtime: Runtime) => {
  const { services } = runtime;
  useStrictValidation(app);

  app.get(`${ADMIN_API_PREFIX}/services`, {
    schema: {
      summary: 'Danh sách dịch vụ / List shared database services',
      tags: ['services'],
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: serviceSchema } } } },
    },
  }, async () => ({ items: services.list().map((s) => view(s.route, s.override)) }));

  app.get(`${ADMIN_API_PREFIX}/services/:id`, {
    schema: { summary: 'Một dịch vụ / One service', tags: ['services'], params, response: { 200: serviceSchema } },
  }, async (request: FastifyRequest<{ Params: { id: string } }>) => {
    const s = services.get(request.params.id);
    if (!s) throw new GatewayError('ZTG_ERR_ROUTE_NOT_FOUND', 'route-not-found');
    return view(s.route, s.override);
  });

  app.patch(`${ADMIN_API_PREFIX}/services/:id`, {
    schema: {
      summary: 'Sửa thuộc tính dịch vụ / Change a service',
      description:
        'Changes security level, classification, owner agency or approval status at run time, on every instance. ' +
        'An approval change must carry a reason; who and when are recorded from the session. Upstream, path and new services come from the configuration.',
      tags: ['services'],
      params,
      body: patchSchema,
      response: { 200: serviceSchema },
    },
  }, async (request: FastifyRequest<{ Params: { id: string }; Body: ServicePatch }>) => {
    const { id } = request.params;
    const before = services.get(id);
    if (!before) throw new GatewayError('ZTG_ERR_ROUTE_NOT_FOUND', 'route-not-found');
    let route: RouteConfig;
    try {
      route = await services.update(id, request.body, request.zt.principal!.nationalId);
    } catch (err) {
      if (err instanceof ServiceChangeError) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: err.message, cause: err });
      throw err;
    }
    const b = before.route;
    request.zt.admin = {
      operation: request.body.approval ? 'services.approval' : 'services.update',
      target: id,
      detail: {
        before: { securityLevel: b.securityLevel, classification: b.classification, ownerAgency: b.ownerAgency, approvalStatus: b.approval.status },
        after: { securityLevel: route.securityLevel, classification: route.classification, ownerAgency: route.ownerAgency, approvalStatus: route.approval.status },
        ...(request.body.approval ? { reason: request.body.approval.reason } : {}),
      },
    };
    return view(route, services.get(id)!.override);
  });
};
