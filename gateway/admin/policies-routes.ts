import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import { PolicyError, type PolicySources } from '../../policies/engine.js';
import { diffSources, PolicyVersionError, type PolicyVersion } from '../../policies/versions.js';
import { whatIf } from '../../policies/what-if.js';
import { DEVICE_TIERS, type DeviceTier } from '../../core/levels.js';
import { HTTP_METHODS, type AccessRequest } from '../../policies/access.js';
import { withRosterEntry } from '../../identity/roster.js';
import { NATIONAL_ID_PATTERN } from '../../core/national-id.js';
import type { Principal } from '../../core/principal.js';
import { ADMIN_API_PREFIX } from './api-prefix.js';
import type { AdminModule } from './app.js';

/**
 * Policy change management for security admins: versions, drafts, diff against the active
 * version, submission, approval by ANOTHER admin (four-eyes), rejection, rollback and what-if
 * over recent decisions. An approval or rollback switches every instance (policies/active-policy.ts).
 * Every call records what it did in the audit event (request.zt.admin).
 */

const P = `${ADMIN_API_PREFIX}/policies`;

const summarySchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    hash: { type: 'string' },
    parent: { type: ['string', 'null'] },
    author: { type: 'string' },
    createdAt: { type: 'string' },
    comment: { type: 'string' },
    state: { enum: ['draft', 'submitted', 'active', 'superseded', 'rejected'] },
    rollbackOf: { type: 'string' },
    submittedAt: { type: 'string' },
    activatedAt: { type: 'string' },
    supersededAt: { type: 'string' },
    review: { type: 'object', properties: { by: { type: 'string' }, at: { type: 'string' }, comment: { type: 'string' }, outcome: { enum: ['approved', 'rejected'] } } },
  },
} as const;

const versionSchema = {
  type: 'object',
  properties: {
    ...summarySchema.properties,
    diff: { type: 'string' },
    sources: { type: 'object', properties: { model: { type: 'string' }, policy: { type: 'string' }, conditions: { type: ['string', 'null'] } } },
  },
} as const;

const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^v[0-9]{1,9}$' } } } as const;
const commentBody = {
  type: 'object',
  additionalProperties: false,
  required: ['comment'],
  properties: { comment: { type: 'string', minLength: 3, maxLength: 2000, description: 'Ý kiến / why' } },
} as const;
const draftBody = {
  type: 'object',
  additionalProperties: false,
  required: ['comment'],
  properties: {
    comment: { type: 'string', minLength: 3, maxLength: 2000, description: 'Nội dung thay đổi / what changes and why' },
    policy: { type: 'string', maxLength: 32 * 1024 * 1024, description: 'policy CSV; omitted: the active one' },
    conditions: { type: ['string', 'null'], maxLength: 1024 * 1024, description: 'conditions YAML; omitted: the active one; null: none' },
    model: { type: 'string', maxLength: 64 * 1024, description: 'Casbin model; omitted: the active one' },
  },
} as const;

function translate(err: unknown): never {
  if (err instanceof PolicyVersionError) {
    if (err.code === 'ERR_POLICY_VERSION_NOT_FOUND') throw new GatewayError('ZTG_ERR_POLICY_NOT_FOUND', 'policy-version-not-found', { detail: err.message, cause: err });
    if (err.code === 'ERR_POLICY_SAME_APPROVER') throw new GatewayError('ZTG_ERR_POLICY_SAME_APPROVER', 'policy-same-approver', { detail: err.message, cause: err });
    throw new GatewayError('ZTG_ERR_POLICY_CONFLICT', 'policy-state-conflict', { detail: err.message, cause: err });
  }
  if (err instanceof PolicyError) throw new GatewayError('ZTG_ERR_POLICY_INVALID', 'policy-invalid', { detail: err.message, cause: err });
  throw err;
}

const summary = ({ sources: _s, diff: _d, ...rest }: PolicyVersion) => rest;

type WithId = FastifyRequest<{ Params: { id: string } }>;

const textsBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    policy: draftBody.properties.policy,
    conditions: draftBody.properties.conditions,
    model: draftBody.properties.model,
  },
} as const;

const decideBody = {
  type: 'object',
  additionalProperties: false,
  required: ['nationalId', 'routeId', 'method', 'path'],
  properties: {
    nationalId: { type: 'string', pattern: NATIONAL_ID_PATTERN, description: 'Số định danh cán bộ / the official' },
    roles: { type: 'array', maxItems: 32, items: { type: 'string', pattern: '^[a-z][a-z0-9_.:-]{0,63}$' }, description: 'omitted: the roles the roster gives the official' },
    agency: { type: 'string', pattern: '^[a-z0-9][a-z0-9_.:-]{0,63}$', description: 'omitted: the agency the roster gives the official' },
    deviceTier: { enum: DEVICE_TIERS, default: 'unknown' },
    routeId: { type: 'string', minLength: 1, maxLength: 64 },
    method: { enum: [...HTTP_METHODS] },
    path: { type: 'string', pattern: '^/', maxLength: 2048, description: 'path inside the service, without its prefix and query' },
    purpose: { type: 'object', additionalProperties: false, required: ['code', 'caseRef'], properties: { code: { type: 'string', maxLength: 64 }, caseRef: { type: 'string', maxLength: 64 } } },
    version: { type: 'string', pattern: '^v[0-9]{1,9}$', description: 'omitted: the version in force' },
  },
} as const;

interface DecideBody {
  nationalId: string;
  roles?: string[];
  agency?: string;
  deviceTier: DeviceTier;
  routeId: string;
  method: string;
  path: string;
  purpose?: { code: string; caseRef: string };
  version?: string;
}

export const policiesModule: AdminModule = (app: FastifyInstance, runtime: Runtime) => {
  const { policies } = runtime;
  const who = (request: FastifyRequest) => request.zt.principal!.nationalId;

  app.get(P + '/versions', {
    schema: { summary: 'Các phiên bản chính sách / Policy versions', tags: ['policies'], response: { 200: { type: 'object', properties: { active: { type: ['string', 'null'] }, inForceHere: { type: 'string' }, items: { type: 'array', items: summarySchema } } } } },
  }, async (request) => {
    request.zt.admin = { operation: 'policy.list' };
    const [items, active] = await Promise.all([policies.versions.list(), policies.versions.activeId()]).catch(translate);
    return { active, inForceHere: policies.currentId(), items: items.map(summary) };
  });

  app.get(P + '/versions/:id', {
    schema: { summary: 'Một phiên bản: nội dung, tác giả, diff / One version: texts, author, diff', tags: ['policies'], params: idParams, response: { 200: versionSchema } },
  }, async (request: WithId) => {
    request.zt.admin = { operation: 'policy.get', target: request.params.id };
    return policies.versions.get(request.params.id).catch(translate);
  });

  app.post(P + '/versions', {
    schema: {
      summary: 'Tạo bản nháp / Create a draft',
      description: 'Checks the texts completely (errors name file:line) before storing anything; the active version stays in force.',
      tags: ['policies'],
      body: draftBody,
      response: { 201: versionSchema },
    },
  }, async (request: FastifyRequest<{ Body: { comment: string; policy?: string; conditions?: string | null; model?: string } }>, reply) => {
    const active = policies.current().sources;
    const body = request.body;
    const sources: PolicySources = { model: body.model ?? active.model, policy: body.policy ?? active.policy, conditions: body.conditions === undefined ? active.conditions : body.conditions };
    try {
      await policies.build(sources, 'draft');
    } catch (err) {
      request.zt.admin = { operation: 'policy.draft-refused', detail: { comment: body.comment } };
      translate(err);
    }
    const draft = await policies.versions.createDraft({ author: who(request), comment: body.comment, sources }).catch(translate);
    request.zt.admin = { operation: 'policy.draft', target: draft.id, detail: { hash: draft.hash, parent: draft.parent, comment: draft.comment } };
    return reply.code(201).send(draft);
  });

  app.get(P + '/versions/:id/diff', {
    schema: { summary: 'So với phiên bản đang áp dụng / Diff against the active version', tags: ['policies'], params: idParams, response: { 200: { type: 'object', properties: { id: { type: 'string' }, against: { type: 'string' }, diff: { type: 'string' } } } } },
  }, async (request: WithId) => {
    const v = await policies.versions.get(request.params.id).catch(translate);
    request.zt.admin = { operation: 'policy.diff', target: v.id };
    return { id: v.id, against: policies.currentId(), diff: diffSources(policies.current().sources, v.sources) };
  });

  app.post(P + '/versions/:id/submit', {
    schema: { summary: 'Gửi duyệt / Submit for approval', tags: ['policies'], params: idParams, response: { 200: summarySchema } },
  }, async (request: WithId) => {
    const v = await policies.versions.submit(request.params.id, who(request)).catch(translate);
    request.zt.admin = { operation: 'policy.submit', target: v.id, detail: { hash: v.hash } };
    return summary(v);
  });

  app.post(P + '/versions/:id/approve', {
    schema: {
      summary: 'Phê duyệt và áp dụng (bốn mắt) / Approve and activate (four-eyes)',
      description: 'Only a security admin other than the author. Every instance sharing the store switches to it within about a second.',
      tags: ['policies'],
      params: idParams,
      body: commentBody,
      response: { 200: summarySchema },
    },
  }, async (request: FastifyRequest<{ Params: { id: string }; Body: { comment: string } }>) => {
    const id = request.params.id;
    const draft = await policies.versions.get(id).catch(translate);
    // Built again: the routes may have changed since the draft was checked.
    await policies.build(draft.sources, draft.id).catch(translate);
    let v: PolicyVersion;
    try {
      v = await policies.versions.approve(id, who(request), request.body.comment);
    } catch (err) {
      request.zt.admin = { operation: 'policy.approve-refused', target: id, detail: { author: draft.author, error: (err as { code?: string }).code } };
      translate(err);
    }
    await policies.announce(v);
    request.zt.admin = { operation: 'policy.approve', target: v.id, detail: { hash: v.hash, author: v.author, comment: request.body.comment } };
    return summary(v);
  });

  app.post(P + '/versions/:id/reject', {
    schema: { summary: 'Từ chối / Reject', tags: ['policies'], params: idParams, body: commentBody, response: { 200: summarySchema } },
  }, async (request: FastifyRequest<{ Params: { id: string }; Body: { comment: string } }>) => {
    const v = await policies.versions.reject(request.params.id, who(request), request.body.comment).catch(translate);
    request.zt.admin = { operation: 'policy.reject', target: v.id, detail: { comment: request.body.comment } };
    return summary(v);
  });

  app.post(P + '/versions/:id/rollback', {
    schema: {
      summary: 'Quay lại một phiên bản trước / Roll back to an earlier version',
      description: 'Creates and activates a new version with the texts of an earlier, once-active version.',
      tags: ['policies'],
      params: idParams,
      body: commentBody,
      response: { 200: summarySchema },
    },
  }, async (request: FastifyRequest<{ Params: { id: string }; Body: { comment: string } }>) => {
    const target = await policies.versions.get(request.params.id).catch(translate);
    await policies.build(target.sources, target.id).catch(translate);
    const v = await policies.versions.rollback(target.id, who(request), request.body.comment).catch(translate);
    await policies.announce(v);
    request.zt.admin = { operation: 'policy.rollback', target: v.id, detail: { rollbackOf: target.id, hash: v.hash, comment: request.body.comment } };
    return summary(v);
  });

  app.post(P + '/versions/:id/what-if', {
    schema: {
      summary: 'Thử trên các quyết định gần đây / What-if over recent decisions',
      description: 'Evaluates the version against the last N decision inputs and lists the requests whose decision would flip.',
      tags: ['policies'],
      params: idParams,
      body: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 100_000 } } },
      response: {
        200: {
          type: 'object',
          properties: {
            id: { type: 'string' },
            evaluated: { type: 'integer' },
            flips: { type: 'array', items: { type: 'object', additionalProperties: true } },
          },
        },
      },
    },
  }, async (request: FastifyRequest<{ Params: { id: string }; Body: { limit?: number } | undefined }>) => {
    const v = await policies.versions.get(request.params.id).catch(translate);
    const engine = await policies.build(v.sources, v.id).catch(translate);
    const recorded = await policies.recent.list(request.body?.limit);
    const result = whatIf(engine, recorded);
    request.zt.admin = { operation: 'policy.what-if', target: v.id, detail: { evaluated: result.evaluated, flips: result.flips.length } };
    return { id: v.id, ...result };
  });

  app.post(P + '/validate', {
    schema: {
      summary: 'Kiểm tra bản nháp, không lưu / Check draft texts without storing them',
      description: 'Parses the texts exactly as an approval would load them (omitted texts: the active ones). Answers 200 either way; problems name file:line.',
      tags: ['policies'],
      body: textsBody,
      response: { 200: { type: 'object', properties: { valid: { type: 'boolean' }, problems: { type: 'array', items: { type: 'string' } } } } },
    },
  }, async (request: FastifyRequest<{ Body: { policy?: string; conditions?: string | null; model?: string } }>) => {
    const active = policies.current().sources;
    const body = request.body ?? {};
    const sources: PolicySources = { model: body.model ?? active.model, policy: body.policy ?? active.policy, conditions: body.conditions === undefined ? active.conditions : body.conditions };
    let problems: readonly string[] = [];
    try {
      await policies.build(sources, 'draft');
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      problems = err.problems;
    }
    request.zt.admin = { operation: 'policy.validate', detail: { valid: problems.length === 0, problems: problems.length } };
    return { valid: problems.length === 0, problems };
  });

  app.post(P + '/decide', {
    schema: {
      summary: 'Thử một quyết định / What would the policy decide for this request',
      description:
        'Evaluates one request (official, device tier, service, method, path) against the version in force or a named version, ' +
        'and answers the decision, the matched rule and the reasons. Only the policy decides here: locks, quotas and the service approval are not evaluated.',
      tags: ['policies'],
      body: decideBody,
      response: {
        200: {
          type: 'object',
          properties: {
            version: { type: 'string' },
            policyVersion: { type: 'string' },
            effect: { enum: ['allow', 'deny'] },
            rule: { type: ['string', 'null'] },
            reasons: { type: 'array', items: { type: 'string' } },
            condition: { type: 'string' },
            obligations: { type: 'array', items: { type: 'object', additionalProperties: true } },
            principal: { type: 'object', properties: { nationalId: { type: 'string' }, agency: { type: ['string', 'null'] }, roles: { type: 'array', items: { type: 'string' } } } },
          },
        },
      },
    },
  }, async (request: FastifyRequest<{ Body: DecideBody }>) => {
    const body = request.body;
    const route = runtime.services.get(body.routeId)?.route;
    if (!route) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: `routeId: không có dịch vụ "${body.routeId}" / no service "${body.routeId}"` });
    let principal: Principal = {
      nationalId: body.nationalId, agency: body.agency ?? null, unit: null, roles: body.roles ?? [], clearance: 'none',
      assuranceLevel: 2, sessionId: null, acr: null, issuer: 'what-if', authTime: null,
    };
    // The roster is who the official is; explicit roles or agency ask "what if they were …".
    const entry = runtime.identity.roster ? await runtime.identity.roster.lookup(body.nationalId).catch((err: unknown) => {
      throw new GatewayError('ZTG_ERR_IDP_UNAVAILABLE', 'roster-unavailable', { cause: err });
    }) : null;
    if (entry) principal = withRosterEntry(principal, entry);
    if (body.roles) principal = { ...principal, roles: body.roles };
    if (body.agency) principal = { ...principal, agency: body.agency };
    if (!entry && !body.roles) {
      throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: `roles: cán bộ ${body.nationalId} không có trong danh sách, hãy nêu vai trò / not on the roster: name the roles` });
    }
    const engine = body.version
      ? await policies.versions.get(body.version).then((v) => policies.build(v.sources, v.id)).catch(translate)
      : policies.current();
    const access: AccessRequest = {
      principal,
      route: { id: route.id, securityLevel: route.securityLevel, classification: route.classification },
      // The same normal form the data plane decides on (gateway/steps/decide.ts), or the answer
      // here would differ from what /Admin gets in production.
      path: body.path,
      method: body.method,
      device: { tier: body.deviceTier },
      purpose: body.purpose ?? null,
      sourceIp: request.ip,
      timeMs: Date.now(),
    };
    const d = engine.decide(access);
    request.zt.admin = { operation: 'policy.decide', target: body.version ?? policies.currentId(), detail: { nationalId: body.nationalId, route: route.id, method: body.method, path: body.path, effect: d.effect } };
    return {
      version: body.version ?? policies.currentId(), policyVersion: d.policyVersion, effect: d.effect, rule: d.rule, reasons: d.reasons,
      ...(d.condition ? { condition: d.condition } : {}), obligations: d.obligations,
      principal: { nationalId: principal.nationalId, agency: principal.agency, roles: principal.roles },
    };
  });
};
