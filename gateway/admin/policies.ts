import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import { PolicyError, type PolicySources } from '../../policies/engine.js';
import { diffSources, PolicyVersionError, type PolicyVersion } from '../../policies/versions.js';
import { whatIf } from '../../policies/what-if.js';
import { ADMIN_API_PREFIX, type AdminModule } from './app.js';

/**
 * Policy change management for security admins: versions, drafts, diff against the active
 * version, submission, approval by ANOTHER admin (four-eyes), rejection, rollback and what-if
 * over recent decisions. An approval or rollback switches every instance (policies/service.ts).
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
};
