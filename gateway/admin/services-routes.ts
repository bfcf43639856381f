import type { FastifyInstance, FastifyRequest } from 'fastify';
import Type, { type Static } from 'typebox';
import { SecurityLevel } from '../../core/schema.js';
import { APPROVAL_STATUSES, CLASSIFICATIONS } from '../../core/levels.js';
import type { RouteConfig } from '../config.js';
import { GatewayError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import { ServiceChangeError, type PendingServiceChange, type ServiceOverride } from '../service-registry.js';
import { ADMIN_API_PREFIX } from './api-prefix.js';
import type { AdminModule } from './app.js';
import { Body, Items, NullableString, Params, Reply } from './schemas.js';
import { useStrictValidation } from './openapi.js';

/**
 * Shared database services, for security admins: list them with the attributes in force, and
 * change security level, classification, owner agency or approval at run time. Every approval
 * change says who, when and why; it takes effect on every instance at once (gateway/service-registry.ts).
 * A change that weakens protection (declassify, lower the level, approve for use) waits as a
 * pending change until ANOTHER security admin confirms it (four-eyes).
 */

const SERVICE_ID = '^[a-z0-9][a-z0-9-]{0,62}$';

const Approval = Reply({
  status: Type.Enum(APPROVAL_STATUSES),
  approvedBy: Type.String(),
  approvedAt: Type.String(),
  reason: Type.String(),
  proposedBy: Type.String({ description: 'four-eyes: who proposed it, when another admin (approvedBy) confirmed it' }),
});

const Pending = Reply({
  id: Type.String(),
  serviceId: Type.String(),
  patch: Reply({
    securityLevel: Type.Integer(),
    classification: Type.Enum(CLASSIFICATIONS),
    ownerAgency: Type.String(),
    approval: Reply({ status: Type.Enum(APPROVAL_STATUSES), reason: Type.String() }),
  }),
  proposedBy: Type.String(),
  proposedAt: Type.String(),
  reason: NullableString(),
});

const Service = Reply({
  id: Type.String(),
  name: Type.String(),
  pathPrefix: Type.String(),
  host: Type.String(),
  ownerAgency: Type.String(),
  securityLevel: Type.Integer({ minimum: 1, maximum: 5 }),
  classification: Type.Enum(CLASSIFICATIONS),
  approval: Approval,
  overridden: Type.Boolean({ description: 'true when an admin changed it since the configuration was loaded' }),
  updatedBy: NullableString(),
  updatedAt: NullableString(),
  pendingChanges: Type.Array(Pending, { description: 'changes that weaken protection, waiting for a second security admin' }),
});

const PatchBody = Type.Object(
  {
    securityLevel: Type.Optional(SecurityLevel()),
    classification: Type.Optional(Type.Enum(CLASSIFICATIONS)),
    ownerAgency: Type.Optional(Type.String({ pattern: SERVICE_ID })),
    approval: Type.Optional(
      Body({
        status: Type.Enum(APPROVAL_STATUSES),
        reason: Type.String({ minLength: 1, maxLength: 1000, description: 'Lý do / why: required for every approval change' }),
      }),
    ),
  },
  { additionalProperties: false, minProperties: 1 },
);

const IdParams = Params({ id: Type.String({ pattern: SERVICE_ID }) });

const ChangeParams = Params({
  id: Type.String({ pattern: SERVICE_ID }),
  changeId: Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' }),
});

const ChangeCommentBody = Body({ comment: Type.String({ minLength: 1, maxLength: 1000, description: 'Nhận xét / why: required, audited' }) });

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

  app.get(
    `${ADMIN_API_PREFIX}/services`,
    {
      schema: {
        summary: 'Danh sách dịch vụ / List shared database services',
        tags: ['services'],
        response: { 200: Items(Service) },
      },
    },
    async () => {
      const pending = await services.pending();
      return {
        items: services.list().map((s) =>
          view(
            s.route,
            s.override,
            pending.filter((c) => c.serviceId === s.route.id),
          ),
        ),
      };
    },
  );

  app.get(
    `${ADMIN_API_PREFIX}/services/:id`,
    {
      schema: { summary: 'Một dịch vụ / One service', tags: ['services'], params: IdParams, response: { 200: Service } },
    },
    async (request: FastifyRequest<{ Params: Static<typeof IdParams> }>) => {
      const s = services.get(request.params.id);
      if (!s) throw new GatewayError('ZTG_ERR_ROUTE_NOT_FOUND', 'route-not-found');
      return view(s.route, s.override, await services.pending(s.route.id));
    },
  );

  app.patch(
    `${ADMIN_API_PREFIX}/services/:id`,
    {
      schema: {
        summary: 'Sửa thuộc tính dịch vụ / Change a service',
        description:
          'Changes security level, classification, owner agency or approval status at run time, on every instance. ' +
          'An approval change must carry a reason; who and when are recorded from the session. Upstream, path and new services come from the configuration. ' +
          'Four-eyes: a change that weakens protection (classification or security level lowered, or approval set to approved) is not applied: ' +
          'it answers 202 with the pending change, which ANOTHER security admin confirms (POST …/changes/{changeId}/confirm) or rejects. Other changes apply at once (200).',
        tags: ['services'],
        params: IdParams,
        body: PatchBody,
        response: { 200: Service, 202: Reply({ pending: Pending }) },
      },
    },
    async (request: FastifyRequest<{ Params: Static<typeof IdParams>; Body: Static<typeof PatchBody> }>, reply) => {
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
    },
  );

  app.get(
    `${ADMIN_API_PREFIX}/services/:id/changes`,
    {
      schema: {
        summary: 'Thay đổi đang chờ xác nhận / Pending changes of a service',
        tags: ['services'],
        params: IdParams,
        response: { 200: Items(Pending) },
      },
    },
    async (request: FastifyRequest<{ Params: Static<typeof IdParams> }>) => {
      if (!services.get(request.params.id)) throw new GatewayError('ZTG_ERR_ROUTE_NOT_FOUND', 'route-not-found');
      return { items: await services.pending(request.params.id) };
    },
  );

  app.post(
    `${ADMIN_API_PREFIX}/services/:id/changes/:changeId/confirm`,
    {
      schema: {
        summary: 'Xác nhận thay đổi (bốn mắt) / Confirm a pending change (four-eyes)',
        description: 'By a security admin OTHER than the proposer (the proposer gets 403 ZTG_ERR_FOUR_EYES_REQUIRED); the change then applies on every instance. Body: {"comment": "…"} (required, audited).',
        tags: ['services'],
        params: ChangeParams,
        body: ChangeCommentBody,
        response: { 200: Service },
      },
    },
    async (request: FastifyRequest<{ Params: Static<typeof ChangeParams>; Body: Static<typeof ChangeCommentBody> }>) => {
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
    },
  );

  app.post(
    `${ADMIN_API_PREFIX}/services/:id/changes/:changeId/reject`,
    {
      schema: {
        summary: 'Từ chối thay đổi đang chờ / Reject a pending change',
        description: 'Another security admin refuses it, or its proposer withdraws it; nothing changes. Body: {"comment": "…"} (required, audited).',
        tags: ['services'],
        params: ChangeParams,
        body: ChangeCommentBody,
        response: { 200: Reply({ rejected: Pending }) },
      },
    },
    async (request: FastifyRequest<{ Params: Static<typeof ChangeParams>; Body: Static<typeof ChangeCommentBody> }>) => {
      const { id, changeId } = request.params;
      const comment = request.body.comment.trim();
      if (!comment) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: 'comment: bắt buộc / a comment is required' });
      const rejected = await services.reject(id, changeId).catch(translateChange);
      request.zt.admin = { operation: 'services.change.reject', target: id, detail: { changeId, proposedBy: rejected.proposedBy, patch: rejected.patch, comment } };
      return { rejected };
    },
  );
};
