import { Ajv } from 'ajv';
import Type from 'typebox';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { ERROR_CODES } from '../errors.js';
import { REASONS } from '../../core/reasons.js';
import { ADMIN_API_PREFIX } from './api-prefix.js';

/**
 * The admin API describes itself: every route registered on the management listener declares
 * a fastify JSON schema, and this module turns the registered routes into an OpenAPI 3.1
 * document (served at /api/v1/openapi.json) and into docs/admin-api.md, so that the reference
 * is generated from the code and cannot drift from it (test/admin-ui-openapi.test.ts).
 */

/** What this module reads of a fastify route schema; the JSON Schemas inside are passed on as they are. */
interface RouteSchema {
  readonly summary?: string;
  readonly description?: string;
  readonly tags?: readonly string[];
  readonly params?: ObjectSchema;
  readonly querystring?: ObjectSchema;
  readonly body?: unknown;
  readonly response?: Readonly<Record<string, ResponseSchema>>;
}
interface ObjectSchema {
  readonly properties?: Readonly<Record<string, Record<string, unknown>>>;
  readonly required?: readonly string[];
}
/** Either an OpenAPI response (`description`, `content`) or, in short, the JSON Schema of a JSON body. */
type ResponseSchema = Record<string, unknown> & { readonly description?: string; readonly content?: Readonly<Record<string, { readonly schema: unknown }>> };

interface Parameter {
  readonly name: string;
  readonly in: 'path' | 'query';
  readonly required: boolean;
  readonly description?: unknown;
  readonly schema: unknown;
}
interface Response {
  readonly description: string;
  readonly content?: Readonly<Record<string, { readonly schema: unknown }>>;
}
interface Operation {
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly tags: readonly (string | undefined)[];
  readonly parameters: readonly Parameter[];
  readonly requestBody?: { readonly required: true; readonly content: { readonly 'application/json': { readonly schema: unknown } } };
  readonly responses: Readonly<Record<string, Response>>;
  readonly 'x-ztgate-undocumented'?: true;
}
/** The OpenAPI 3.1 document, as far as renderMarkdown reads it. */
export interface OpenApiDocument {
  readonly openapi: string;
  readonly info: { readonly title: string; readonly version: string; readonly description: string };
  readonly paths: Readonly<Record<string, Readonly<Record<string, Operation>>>>;
  readonly [key: string]: unknown;
}

interface CollectedRoute {
  readonly method: string;
  readonly url: string;
  readonly schema: RouteSchema | undefined;
}

const collected = new WeakMap<FastifyInstance, CollectedRoute[]>();

/** Call before any route is registered: child scopes inherit the hook, so every module is seen. */
export function registerOpenApi(app: FastifyInstance): void {
  const routes: CollectedRoute[] = [];
  collected.set(app, routes);
  app.addHook('onRoute', (opts: RouteOptions) => {
    if (!opts.url.startsWith(ADMIN_API_PREFIX)) return;
    for (const method of [opts.method].flat()) {
      // fastify adds a HEAD route for every GET; it says nothing new.
      if (method === 'HEAD') continue;
      routes.push({ method: method.toLowerCase(), url: opts.url, schema: opts.schema as RouteSchema | undefined });
    }
  });
  app.get(
    `${ADMIN_API_PREFIX}/openapi.json`,
    {
      schema: {
        summary: 'Tài liệu OpenAPI của API quản trị / This OpenAPI document',
        tags: ['meta'],
        response: { 200: { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object', additionalProperties: true } } } } },
      },
    },
    async (_request, reply) => reply.type('application/json; charset=utf-8').send(JSON.stringify(openApiDocument(app))),
  );
}

/**
 * Validation for the routes of a module: unknown keys are refused (400), never silently dropped
 * as fastify's default does, so a script that sends `upstream` learns it cannot be changed.
 */
export function useStrictValidation(app: FastifyInstance): void {
  const ajv = new Ajv({ coerceTypes: 'array', useDefaults: true, removeAdditional: false, allErrors: true, strict: false });
  app.setValidatorCompiler(({ schema }) => ajv.compile(schema));
}

/** The one error shape of every refusal (README "Errors"). */
const errorSchema = Type.Object({
  error: Type.Object({
    code: Type.Enum(Object.keys(ERROR_CODES)),
    reason: Type.Enum(Object.keys(REASONS)),
    message: Type.String(),
  }),
  requestId: Type.String(),
});

/** Fastify writes `:id`; OpenAPI writes `{id}`. */
const toOpenApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

function parameters(schema: RouteSchema | undefined): Parameter[] {
  const out: Parameter[] = [];
  for (const [where, key] of [
    ['path', 'params'],
    ['query', 'querystring'],
  ] as const) {
    const s = schema?.[key];
    if (!s?.properties) continue;
    for (const [name, prop] of Object.entries(s.properties)) {
      const { description, default: _d, ...rest } = prop;
      out.push({
        name,
        in: where,
        required: where === 'path' || (s.required?.includes(name) ?? false),
        ...(description ? { description } : {}),
        schema: prop.default === undefined ? rest : { ...rest, default: prop.default },
      });
    }
  }
  return out;
}

function responses(schema: RouteSchema | undefined): Record<string, Response> {
  const out: Record<string, Response> = {};
  for (const [status, s] of Object.entries(schema?.response ?? {})) {
    if (s.content) {
      out[status] = { description: s.description ?? '', content: Object.fromEntries(Object.entries(s.content).map(([type, c]) => [type, { schema: c.schema }])) };
    } else {
      const { description, ...rest } = s;
      out[status] = { description: description ?? 'OK', content: { 'application/json': { schema: rest } } };
    }
  }
  if (Object.keys(out).length === 0) out['200'] = { description: 'OK (no response schema declared)' };
  out['4XX'] = { description: 'Lỗi do yêu cầu / request refused (README "Errors")', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
  return out;
}

export function openApiDocument(app: FastifyInstance): OpenApiDocument {
  const routes = [...(collected.get(app) ?? [])].sort((a, b) => a.url.localeCompare(b.url) || a.method.localeCompare(b.method));
  const paths: Record<string, Record<string, Operation>> = {};
  for (const r of routes) {
    const s = r.schema;
    const op: Operation = {
      operationId: `${r.method}${r.url.slice(ADMIN_API_PREFIX.length).replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
      summary: s?.summary ?? '',
      ...(s?.description ? { description: s.description } : {}),
      tags: s?.tags ?? [r.url.slice(ADMIN_API_PREFIX.length + 1).split('/')[0]],
      parameters: parameters(s),
      ...(s?.body ? { requestBody: { required: true, content: { 'application/json': { schema: s.body } } } } : {}),
      responses: responses(s),
      ...(s ? {} : { 'x-ztgate-undocumented': true as const }),
    };
    (paths[toOpenApiPath(r.url)] ??= {})[r.method] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'ztgate admin API',
      version: '1',
      description: 'API quản trị của cổng Zero Trust / the management API of the Zero Trust gateway. Served on the management listener only; ' + 'every call needs a security admin (bearer access token, or the admin UI session cookie plus the X-CSRF-Token header on changes) ' + 'and is one audited event.',
    },
    servers: [{ url: '/' }],
    security: [{ bearerAuth: [] }, { sessionCookie: [], csrfToken: [] }],
    components: {
      securitySchemes: {
        bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'OIDC access token (RFC 9068) of an official with a security-admin role' },
        sessionCookie: { type: 'apiKey', in: 'cookie', name: 'session', description: 'Browser session of the admin UI (see README "Browser sign-in")' },
        csrfToken: { type: 'apiKey', in: 'header', name: 'X-CSRF-Token', description: 'Required with the session cookie on POST, PUT, PATCH and DELETE; from GET /api/v1/csrf' },
      },
      schemas: { Error: errorSchema },
    },
    paths,
  };
}

// ---------------------------------------------------------------------------------------------
// Markdown reference (docs/admin-api.md)

const compact = (v: unknown) => JSON.stringify(v);

export function renderMarkdown(doc: OpenApiDocument): string {
  const lines: string[] = [
    '# ztgate admin API',
    '',
    '<!-- Generated from the code by test/admin-ui-openapi.test.ts (UPDATE_DOCS=1 npx vitest run test/admin-ui-openapi.test.ts). Do not edit. -->',
    '',
    doc.info.description,
    '',
    'Machine-readable: `GET /api/v1/openapi.json` (OpenAPI 3.1) on the management listener.',
    '',
    '## Authentication',
    '',
    '- `Authorization: Bearer <access token>` for scripts: no CSRF token needed.',
    '- The admin UI session cookie for browsers: every `POST`, `PUT`, `PATCH` and `DELETE` also needs `X-CSRF-Token` ' + '(from `GET /api/v1/csrf`) and a same-origin `Origin`; otherwise `403 csrf-token-invalid`.',
    '',
    'Errors use the gateway\'s one shape (`{"error":{"code","reason","message"},"requestId"}`), see the README tables.',
    '',
    '## Operations',
    '',
    '| Method | Path | Summary |',
    '|---|---|---|',
  ];
  const ops: [string, string, Operation][] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) ops.push([path, method, op]);
  }
  for (const [path, method, op] of ops) lines.push(`| \`${method.toUpperCase()}\` | \`${path}\` | ${op.summary || '—'} |`);
  for (const [path, method, op] of ops) {
    lines.push('', `### \`${method.toUpperCase()} ${path}\``, '');
    if (op.summary) lines.push(op.summary, '');
    if (op.description) lines.push(op.description, '');
    if (op['x-ztgate-undocumented']) lines.push('_No schema declared for this route._', '');
    if (op.parameters.length > 0) {
      lines.push('| Parameter | In | Required | Schema |', '|---|---|---|---|');
      for (const p of op.parameters) lines.push(`| \`${p.name}\` | ${p.in} | ${p.required ? 'yes' : 'no'} | \`${compact(p.schema).replaceAll('|', '\\|')}\` |`);
      lines.push('');
    }
    if (op.requestBody) lines.push('Request body (`application/json`):', '', '```json', JSON.stringify(op.requestBody.content['application/json'].schema, null, 2), '```', '');
    for (const [status, r] of Object.entries(op.responses)) {
      if (status === '4XX') continue;
      const [type, c] = Object.entries(r.content ?? {})[0] ?? [];
      lines.push(`Response \`${status}\`${type ? ` (\`${type}\`)` : ''}${r.description && r.description !== 'OK' ? `: ${r.description}` : ''}`);
      if (c?.schema && type === 'application/json') lines.push('', '```json', JSON.stringify(c.schema, null, 2), '```');
      lines.push('');
    }
  }
  return (
    lines
      .join('\n')
      .replace(/\n{3,}/g, '\n\n')
      .trimEnd() + '\n'
  );
}
