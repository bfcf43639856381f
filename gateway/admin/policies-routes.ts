import type { FastifyInstance, FastifyRequest } from 'fastify';
import Type, { type Static } from 'typebox';
import { GatewayError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import { PolicyError, type PolicySources } from '../../policies/engine.js';
import { diffSources, PolicyVersionError, type PolicyVersion, type PolicyVersions } from '../../policies/versions.js';
import { whatIf } from '../../policies/what-if.js';
import { DEVICE_TIERS } from '../../core/levels.js';
import { HTTP_METHODS, type AccessRequest } from '../../policies/access.js';
import { withRosterEntry } from '../../identity/roster.js';
import { NATIONAL_ID_PATTERN } from '../../core/national-id.js';
import type { Principal } from '../../core/principal.js';
import { ADMIN_API_PREFIX } from './api-prefix.js';
import type { AdminModule } from './app.js';
import { AnyObject, Body, CommentBody, NullableString, Params, Reply } from './schemas.js';

/**
 * Policy change management for security admins: versions, drafts, diff against the active
 * version, submission, approval by ANOTHER admin (four-eyes), rejection, rollback and what-if
 * over recent decisions. An approval or rollback switches every instance (policies/active-policy.ts).
 * Every call records what it did in the audit event (request.zt.admin).
 */

const P = `${ADMIN_API_PREFIX}/policies`;

const VERSION_ID = '^v[0-9]{1,9}$';

const VersionSummary = Reply({
  id: Type.String(),
  hash: Type.String(),
  parent: NullableString(),
  author: Type.String(),
  createdAt: Type.String(),
  comment: Type.String(),
  state: Type.Enum(['draft', 'submitted', 'active', 'superseded', 'rejected']),
  rollbackOf: Type.String(),
  submittedAt: Type.String(),
  activatedAt: Type.String(),
  supersededAt: Type.String(),
  review: Reply({ by: Type.String(), at: Type.String(), comment: Type.String(), outcome: Type.Enum(['approved', 'rejected']) }),
});

const Version = Reply({
  ...VersionSummary.properties,
  diff: Type.String(),
  sources: Reply({ model: Type.String(), policy: Type.String(), conditions: NullableString() }),
});

const IdParams = Params({ id: Type.String({ pattern: VERSION_ID }) });
const WhatIfBody = Body({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })) });

/** The texts of a version; an omitted one is the active version's. */
const Texts = {
  policy: Type.Optional(Type.String({ maxLength: 32 * 1024 * 1024, description: 'policy CSV; omitted: the active one' })),
  conditions: Type.Optional(NullableString({ maxLength: 1024 * 1024, description: 'conditions YAML; omitted: the active one; null: none' })),
  model: Type.Optional(Type.String({ maxLength: 64 * 1024, description: 'Casbin model; omitted: the active one' })),
};
const DraftBody = Body({ comment: Type.String({ minLength: 3, maxLength: 2000, description: 'Nội dung thay đổi / what changes and why' }), ...Texts });
const TextsBody = Body(Texts);

const DecideBody = Body({
  nationalId: Type.String({ pattern: NATIONAL_ID_PATTERN, description: 'Số định danh cán bộ / the official' }),
  roles: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z][a-z0-9_.:-]{0,63}$' }), { maxItems: 32, description: 'omitted: the roles the roster gives the official' })),
  agency: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9_.:-]{0,63}$', description: 'omitted: the agency the roster gives the official' })),
  deviceTier: Type.Enum(DEVICE_TIERS, { default: 'unknown' }),
  routeId: Type.String({ minLength: 1, maxLength: 64 }),
  method: Type.Enum([...HTTP_METHODS]),
  path: Type.String({ pattern: '^/', maxLength: 2048, description: 'path inside the service, without its prefix and query' }),
  purpose: Type.Optional(Body({ code: Type.String({ maxLength: 64 }), caseRef: Type.String({ maxLength: 64 }) })),
  version: Type.Optional(Type.String({ pattern: VERSION_ID, description: 'omitted: the version in force' })),
});

const DecideReply = Reply({
  version: Type.String(),
  policyVersion: Type.String(),
  effect: Type.Enum(['allow', 'deny']),
  rule: NullableString(),
  reasons: Type.Array(Type.String()),
  condition: Type.String(),
  obligations: Type.Array(AnyObject()),
  principal: Reply({ nationalId: Type.String(), agency: NullableString(), roles: Type.Array(Type.String()) }),
});

/**
 * The review steps of a version. Each changes its state, is audited with what it did and answers
 * the version's summary; the ones that activate a version build it again first (the routes may
 * have changed since the draft was checked) and switch every instance to it.
 */
interface Review {
  readonly step: 'submit' | 'approve' | 'reject' | 'rollback';
  readonly schema: { readonly summary: string; readonly description?: string };
  readonly activates: boolean;
  /** A refused approval is audited too: the SOC sees who tried to approve what. */
  readonly auditRefusal?: boolean;
  readonly run: (versions: PolicyVersions, id: string, who: string, comment: string) => Promise<PolicyVersion>;
  readonly detail: (v: PolicyVersion, comment: string, target: PolicyVersion | null) => Record<string, unknown>;
}

const REVIEWS: readonly Review[] = [
  {
    step: 'submit',
    schema: { summary: 'Gửi duyệt / Submit for approval' },
    activates: false,
    run: (versions, id, who) => versions.submit(id, who),
    detail: (v) => ({ hash: v.hash }),
  },
  {
    step: 'approve',
    schema: {
      summary: 'Phê duyệt và áp dụng (bốn mắt) / Approve and activate (four-eyes)',
      description: 'Only a security admin other than the author. Every instance sharing the store switches to it within about a second.',
    },
    activates: true,
    auditRefusal: true,
    run: (versions, id, who, comment) => versions.approve(id, who, comment),
    detail: (v, comment) => ({ hash: v.hash, author: v.author, comment }),
  },
  {
    step: 'reject',
    schema: { summary: 'Từ chối / Reject' },
    activates: false,
    run: (versions, id, who, comment) => versions.reject(id, who, comment),
    detail: (_v, comment) => ({ comment }),
  },
  {
    step: 'rollback',
    schema: {
      summary: 'Quay lại một phiên bản trước / Roll back to an earlier version',
      description: 'Creates and activates a new version with the texts of an earlier, once-active version.',
    },
    activates: true,
    run: (versions, id, who, comment) => versions.rollback(id, who, comment),
    detail: (v, comment, target) => ({ rollbackOf: target!.id, hash: v.hash, comment }),
  },
];

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

type WithId = FastifyRequest<{ Params: Static<typeof IdParams> }>;

export const policiesModule: AdminModule = (app: FastifyInstance, runtime: Runtime) => {
  const { policies } = runtime;
  const who = (request: FastifyRequest) => request.zt.principal!.nationalId;

  app.get(
    P + '/versions',
    {
      schema: { summary: 'Các phiên bản chính sách / Policy versions', tags: ['policies'], response: { 200: Reply({ active: NullableString(), inForceHere: Type.String(), items: Type.Array(VersionSummary) }) } },
    },
    async (request) => {
      request.zt.admin = { operation: 'policy.list' };
      const [items, active] = await Promise.all([policies.versions.list(), policies.versions.activeId()]).catch(translate);
      return { active, inForceHere: policies.currentId(), items: items.map(summary) };
    },
  );

  app.get(
    P + '/versions/:id',
    {
      schema: { summary: 'Một phiên bản: nội dung, tác giả, diff / One version: texts, author, diff', tags: ['policies'], params: IdParams, response: { 200: Version } },
    },
    async (request: WithId) => {
      request.zt.admin = { operation: 'policy.get', target: request.params.id };
      return policies.versions.get(request.params.id).catch(translate);
    },
  );

  app.post(
    P + '/versions',
    {
      schema: {
        summary: 'Tạo bản nháp / Create a draft',
        description: 'Checks the texts completely (errors name file:line) before storing anything; the active version stays in force.',
        tags: ['policies'],
        body: DraftBody,
        response: { 201: Version },
      },
    },
    async (request: FastifyRequest<{ Body: Static<typeof DraftBody> }>, reply) => {
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
    },
  );

  app.get(
    P + '/versions/:id/diff',
    {
      schema: { summary: 'So với phiên bản đang áp dụng / Diff against the active version', tags: ['policies'], params: IdParams, response: { 200: Reply({ id: Type.String(), against: Type.String(), diff: Type.String() }) } },
    },
    async (request: WithId) => {
      const v = await policies.versions.get(request.params.id).catch(translate);
      request.zt.admin = { operation: 'policy.diff', target: v.id };
      return { id: v.id, against: policies.currentId(), diff: diffSources(policies.current().sources, v.sources) };
    },
  );

  for (const review of REVIEWS) {
    app.post(
      `${P}/versions/:id/${review.step}`,
      {
        schema: { ...review.schema, tags: ['policies'], params: IdParams, ...(review.step === 'submit' ? {} : { body: CommentBody }), response: { 200: VersionSummary } },
      },
      async (request: FastifyRequest<{ Params: Static<typeof IdParams>; Body: Static<typeof CommentBody> | undefined }>) => {
        const comment = request.body?.comment ?? '';
        const target = review.activates ? await policies.versions.get(request.params.id).catch(translate) : null;
        if (target) await policies.build(target.sources, target.id).catch(translate);
        let v: PolicyVersion;
        try {
          v = await review.run(policies.versions, target?.id ?? request.params.id, who(request), comment);
        } catch (err) {
          if (review.auditRefusal && target) {
            request.zt.admin = { operation: `policy.${review.step}-refused`, target: request.params.id, detail: { author: target.author, error: (err as { code?: string }).code } };
          }
          translate(err);
        }
        if (review.activates) await policies.announce(v);
        request.zt.admin = { operation: `policy.${review.step}`, target: v.id, detail: review.detail(v, comment, target) };
        return summary(v);
      },
    );
  }

  app.post(
    P + '/versions/:id/what-if',
    {
      schema: {
        summary: 'Thử trên các quyết định gần đây / What-if over recent decisions',
        description: 'Evaluates the version against the last N decision inputs and lists the requests whose decision would flip.',
        tags: ['policies'],
        params: IdParams,
        body: WhatIfBody,
        response: { 200: Reply({ id: Type.String(), evaluated: Type.Integer(), flips: Type.Array(AnyObject()) }) },
      },
    },
    async (request: FastifyRequest<{ Params: Static<typeof IdParams>; Body: Static<typeof WhatIfBody> | undefined }>) => {
      const v = await policies.versions.get(request.params.id).catch(translate);
      const engine = await policies.build(v.sources, v.id).catch(translate);
      const recorded = await policies.recent.list(request.body?.limit);
      const result = whatIf(engine, recorded);
      request.zt.admin = { operation: 'policy.what-if', target: v.id, detail: { evaluated: result.evaluated, flips: result.flips.length } };
      return { id: v.id, ...result };
    },
  );

  app.post(
    P + '/validate',
    {
      schema: {
        summary: 'Kiểm tra bản nháp, không lưu / Check draft texts without storing them',
        description: 'Parses the texts exactly as an approval would load them (omitted texts: the active ones). Answers 200 either way; problems name file:line.',
        tags: ['policies'],
        body: TextsBody,
        response: { 200: Reply({ valid: Type.Boolean(), problems: Type.Array(Type.String()) }) },
      },
    },
    async (request: FastifyRequest<{ Body: Static<typeof TextsBody> | undefined }>) => {
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
    },
  );

  app.post(
    P + '/decide',
    {
      schema: {
        summary: 'Thử một quyết định / What would the policy decide for this request',
        description: 'Evaluates one request (official, device tier, service, method, path) against the version in force or a named version, ' + 'and answers the decision, the matched rule and the reasons. Only the policy decides here: locks, quotas and the service approval are not evaluated.',
        tags: ['policies'],
        body: DecideBody,
        response: { 200: DecideReply },
      },
    },
    async (request: FastifyRequest<{ Body: Static<typeof DecideBody> }>) => {
      const body = request.body;
      const route = runtime.services.get(body.routeId)?.route;
      if (!route) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: `routeId: không có dịch vụ "${body.routeId}" / no service "${body.routeId}"` });
      let principal: Principal = {
        nationalId: body.nationalId,
        agency: body.agency ?? null,
        unit: null,
        roles: body.roles ?? [],
        clearance: 'none',
        assuranceLevel: 2,
        sessionId: null,
        acr: null,
        issuer: 'what-if',
        authTime: null,
      };
      // The roster is who the official is; explicit roles or agency ask "what if they were …".
      const entry = runtime.identity.roster
        ? await runtime.identity.roster.lookup(body.nationalId).catch((err: unknown) => {
            throw new GatewayError('ZTG_ERR_IDP_UNAVAILABLE', 'roster-unavailable', { cause: err });
          })
        : null;
      if (entry) principal = withRosterEntry(principal, entry);
      if (body.roles) principal = { ...principal, roles: body.roles };
      if (body.agency) principal = { ...principal, agency: body.agency };
      if (!entry && !body.roles) {
        throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: `roles: cán bộ ${body.nationalId} không có trong danh sách, hãy nêu vai trò / not on the roster: name the roles` });
      }
      const engine = body.version
        ? await policies.versions
            .get(body.version)
            .then((v) => policies.build(v.sources, v.id))
            .catch(translate)
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
        version: body.version ?? policies.currentId(),
        policyVersion: d.policyVersion,
        effect: d.effect,
        rule: d.rule,
        reasons: d.reasons,
        ...(d.condition ? { condition: d.condition } : {}),
        obligations: d.obligations,
        principal: { nationalId: principal.nationalId, agency: principal.agency, roles: principal.roles },
      };
    },
  );
};
