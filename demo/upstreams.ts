/**
 * Demo shared-data services (cơ sở dữ liệu dùng chung giả lập) — the upstreams the gateway
 * protects in the demo.
 *
 * Each upstream serves one synthetic dataset (demo/data/<dataset>.json) and trusts nothing but
 * what the gateway vouched for: EVERY request, including unknown paths, must carry a valid
 * assertion (a JWT signed by the gateway, audience = the dataset id) — `x-ztgate-assertion`
 * (ES256) or, for an upstream that moved to post-quantum signatures, `x-ztgate-assertion-pq`
 * (ML-DSA-65). Each upstream pins one header and one algorithm, as docs/upstream-assertion.md
 * shows. This is defence in depth — a caller that reaches the upstream directly, bypassing the
 * gateway, gets 401.
 *
 * All data is DỮ LIỆU GIẢ LẬP — SYNTHETIC DEMO DATA; nothing belongs to a real person.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { demoFile } from './paths.js';
import { isNationalId } from '../core/national-id.js';

import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';

export type DemoDatasetId = 'ho-tich' | 'dat-dai' | 'y-te';

export interface DemoUpstreamOptions {
  dataset: DemoDatasetId;
  /** Interface to bind; default 127.0.0.1. */
  host?: string;
  /** Port to bind; default 0 (ephemeral). */
  port?: number;
  /** Expected `iss` of assertions, e.g. http://127.0.0.1:8080. */
  gatewayIssuer: string;
  /** The gateway's JWKS, e.g. http://127.0.0.1:8080/.well-known/jwks.json. */
  gatewayJwksUrl: string;
  /** Clock skew accepted when checking exp/iat/nbf; default 5 seconds. */
  clockToleranceSeconds?: number;
  /** The one signature this upstream accepts; default ES256. */
  assertionAlgorithm?: AssertionAlgorithm;
}

export interface DemoUpstream {
  url: string;
  dataset: DemoDatasetId;
  close(): Promise<void>;
}

export const DEMO_DATASET_IDS: readonly DemoDatasetId[] = ['ho-tich', 'dat-dai', 'y-te'];

export type AssertionAlgorithm = 'ES256' | 'ML-DSA-65';
/** Headers the gateway adds to every forwarded request, one per signature algorithm. */
export const ASSERTION_HEADERS: Readonly<Record<AssertionAlgorithm, string>> = { ES256: 'x-ztgate-assertion', 'ML-DSA-65': 'x-ztgate-assertion-pq' };
const ASSERTION_TYP = 'ztgate-assertion+jwt';
const MAX_TOKEN_AGE = '120s';
const DEFAULT_LIMIT = 20;
const MAX_LIMIT = 100;
const MAX_NOTE_CHARS = 500;
/** Notes are kept in memory only; cap them so a demo left running cannot grow without bound. */
const MAX_NOTES_IN_MEMORY = 1000;
/**
 * The record field naming the commune (xã, phường) a record belongs to. When the gateway's
 * assertion carries `scope: { commune }` (the policy's commune-scope obligation), the service
 * filters on it: a commune official sees only their commune's records.
 */
const COMMUNE_FIELD: Record<DemoDatasetId, string> = { 'ho-tich': 'noiDangKy', 'y-te': 'xaPhuong', 'dat-dai': 'xaPhuong' };

interface DemoRecord {
  id: string;
  [field: string]: unknown;
}

interface DatasetFile {
  _note: string;
  title: string;
  records: DemoRecord[];
}

interface VerifiedAssertion {
  sub: string;
  agency: string;
  roles: string[];
  jti: string;
  /** The commune the request is scoped to, when the assertion says so. */
  commune: string | null;
  payload: JWTPayload;
}

interface DemoNote {
  id: string;
  recordId: string;
  note: string;
  author: string;
  agency: string;
  createdAt: string;
}

class AssertionError extends Error {}

/** Directory holding the synthetic datasets (repo-root/demo/data). */
export function demoDataDir(): string {
  return demoFile('data');
}

async function loadDataset(dataset: DemoDatasetId): Promise<DatasetFile> {
  const file = join(demoDataDir(), `${dataset}.json`);
  const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    typeof (parsed as DatasetFile).title !== 'string' ||
    typeof (parsed as DatasetFile)._note !== 'string' ||
    !Array.isArray((parsed as DatasetFile).records) ||
    !(parsed as DatasetFile).records.every((r) => typeof r === 'object' && r !== null && typeof (r as DemoRecord).id === 'string')
  ) {
    throw new Error(`ztgate demo: ${file} is not a valid dataset file`);
  }
  return parsed as DatasetFile;
}

function singleHeader(name: string, value: string | string[] | undefined): string | undefined {
  if (Array.isArray(value)) {
    throw new AssertionError(`multiple ${name} headers`);
  }
  return value;
}

/** Parse an optional non-negative integer query parameter; returns an error message on failure. */
function parseIntParam(raw: unknown, name: string, fallback: number, min: number, max: number): { value: number } | { error: string } {
  if (raw === undefined) return { value: fallback };
  const message = `${name} must be an integer between ${min} and ${max}`;
  if (typeof raw !== 'string' || !/^\d{1,9}$/.test(raw)) return { error: message };
  const value = Number(raw);
  if (value < min || value > max) return { error: message };
  return { value };
}

export async function startDemoUpstream(opts: DemoUpstreamOptions): Promise<DemoUpstream> {
  const { dataset } = opts;
  if (!DEMO_DATASET_IDS.includes(dataset)) {
    throw new Error(`ztgate demo: unknown dataset ${String(dataset)}`);
  }
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 0;
  const clockTolerance = opts.clockToleranceSeconds ?? 5;
  const algorithm = opts.assertionAlgorithm ?? 'ES256';
  const header = ASSERTION_HEADERS[algorithm];
  const data = await loadDataset(dataset);
  const byId = new Map<string, DemoRecord>(data.records.map((r) => [r.id, r]));
  const notes = new Map<string, DemoNote[]>();
  let noteCount = 0;

  const jwks = createRemoteJWKSet(new URL(opts.gatewayJwksUrl));

  async function verifyAssertion(token: string, request: { method: string; url: string }): Promise<VerifiedAssertion> {
    const { payload } = await jwtVerify(token, jwks, {
      issuer: opts.gatewayIssuer,
      audience: dataset,
      algorithms: [algorithm],
      typ: ASSERTION_TYP,
      maxTokenAge: MAX_TOKEN_AGE,
      clockTolerance,
      requiredClaims: ['iss', 'aud', 'sub', 'iat', 'exp', 'jti'],
    });
    const { sub, agency, roles, jti } = payload as JWTPayload & { agency?: unknown; roles?: unknown };
    if (!isNationalId(sub)) {
      throw new AssertionError('"sub" must be a 12-digit personal identification number');
    }
    if (typeof agency !== 'string' || agency.length === 0) {
      throw new AssertionError('"agency" claim missing');
    }
    if (roles !== undefined && !(Array.isArray(roles) && roles.every((r) => typeof r === 'string'))) {
      throw new AssertionError('"roles" claim must be an array of strings');
    }
    if (typeof jti !== 'string' || jti.length === 0) {
      throw new AssertionError('"jti" claim missing');
    }
    // The request the gateway decided: an assertion seen in transit cannot be replayed for another
    // method or path within its lifetime.
    const http = (payload as { http?: { method?: unknown; path?: unknown } }).http;
    if (http !== undefined) {
      const q = request.url.indexOf('?');
      let path: string;
      try {
        path = decodeURIComponent(q === -1 ? request.url : request.url.slice(0, q));
      } catch {
        throw new AssertionError('request path is not valid percent-encoding');
      }
      if (http.method !== request.method || http.path !== path) {
        throw new AssertionError(`assertion was issued for ${String(http.method)} ${String(http.path)}, not this request`);
      }
    }
    const scope = (payload as { scope?: unknown }).scope;
    const commune = scope && typeof scope === 'object' ? (scope as { commune?: unknown }).commune : undefined;
    if (scope !== undefined && (typeof commune !== 'string' || commune.length === 0)) {
      throw new AssertionError('"scope.commune" must be a commune id');
    }
    return { sub, agency, roles: (roles as string[] | undefined) ?? [], jti, commune: (commune as string | undefined) ?? null, payload };
  }

  // Per-request verified assertion, kept out of FastifyRequest's type to avoid a global augmentation.
  const assertions = new WeakMap<FastifyRequest, VerifiedAssertion>();

  function requestedBy(request: FastifyRequest): { nationalId: string; agency: string } | undefined {
    const a = assertions.get(request);
    return a ? { nationalId: a.sub, agency: a.agency } : undefined;
  }

  function assertionOf(request: FastifyRequest): VerifiedAssertion {
    const a = assertions.get(request);
    // Unreachable: the onRequest hook rejects every request without a verified assertion.
    if (!a) throw new Error('assertion missing after verification');
    return a;
  }

  const app = Fastify({
    logger: false,
    bodyLimit: 16 * 1024,
    forceCloseConnections: true,
  });

  // Every request — every route, the 404 handler too — must carry a valid gateway assertion.
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    reply.header('cache-control', 'no-store');
    let token: string | undefined;
    try {
      token = singleHeader(header, request.headers[header]);
      if (!token) throw new AssertionError(`missing ${header} header`);
      assertions.set(request, await verifyAssertion(token, request));
    } catch (err) {
      let message: string;
      if (err instanceof AssertionError || err instanceof joseErrors.JOSEError) {
        message = err.message;
      } else {
        // e.g. the JWKS endpoint is unreachable: fail closed.
        message = `assertion could not be verified: ${err instanceof Error ? err.message : String(err)}`;
      }
      return reply.code(401).send({ error: 'assertion-invalid', message });
    }
  });

  app.setNotFoundHandler((request, reply) => {
    return reply.code(404).send({
      error: 'not-found',
      message: `no route ${request.method} ${request.url.split('?')[0]}`,
      requestedBy: requestedBy(request),
    });
  });

  app.setErrorHandler((error, request, reply) => {
    const status = (error as { statusCode?: number }).statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return reply.code(status).send({
        error: status === 413 ? 'payload-too-large' : status === 415 ? 'unsupported-media-type' : 'bad-request',
        message: error instanceof Error ? error.message : String(error),
        requestedBy: requestedBy(request),
      });
    }
    return reply.code(500).send({ error: 'internal', message: 'internal error', requestedBy: requestedBy(request) });
  });

  app.get('/records', async (request, reply) => {
    const query = (request.query ?? {}) as Record<string, unknown>;
    const limit = parseIntParam(query['limit'], 'limit', DEFAULT_LIMIT, 1, MAX_LIMIT);
    if ('error' in limit) {
      return reply.code(400).send({ error: 'invalid-query', message: limit.error, requestedBy: requestedBy(request) });
    }
    const offset = parseIntParam(query['offset'], 'offset', 0, 0, 1_000_000);
    if ('error' in offset) {
      return reply.code(400).send({ error: 'invalid-query', message: offset.error, requestedBy: requestedBy(request) });
    }
    const commune = assertionOf(request).commune;
    const visible = commune ? data.records.filter((r) => r[COMMUNE_FIELD[dataset]] === commune) : data.records;
    return {
      dataset,
      title: data.title,
      synthetic: true,
      total: visible.length,
      limit: limit.value,
      offset: offset.value,
      ...(commune ? { scope: { commune } } : {}),
      items: visible.slice(offset.value, offset.value + limit.value),
      requestedBy: requestedBy(request),
    };
  });

  app.get<{ Params: { id: string } }>('/records/:id', async (request, reply) => {
    const commune = assertionOf(request).commune;
    const found = byId.get(request.params.id);
    // Outside the scope, a record does not exist for this caller.
    const record = found && (!commune || found[COMMUNE_FIELD[dataset]] === commune) ? found : undefined;
    if (!record) {
      return reply.code(404).send({
        error: 'not-found',
        message: `record ${request.params.id} not found in ${dataset}`,
        requestedBy: requestedBy(request),
      });
    }
    return {
      dataset,
      title: data.title,
      synthetic: true,
      // Notes travel inside the record they annotate: one record container per response.
      item: { ...record, notes: notes.get(record.id) ?? [] },
      requestedBy: requestedBy(request),
    };
  });

  app.post<{ Params: { id: string } }>('/records/:id/notes', async (request, reply) => {
    const record = byId.get(request.params.id);
    if (!record) {
      return reply.code(404).send({
        error: 'not-found',
        message: `record ${request.params.id} not found in ${dataset}`,
        requestedBy: requestedBy(request),
      });
    }
    // A write under a commune scope touches only that commune's records: the gateway cannot see
    // which record a write touches, so the service that owns the records enforces the scope.
    const scoped = assertionOf(request).commune;
    if (scoped && record[COMMUNE_FIELD[dataset]] !== scoped) {
      return reply.code(403).send({
        error: 'outside-scope',
        message: `record ${request.params.id} is outside commune ${scoped}`,
        requestedBy: requestedBy(request),
      });
    }
    const body = request.body as unknown;
    const note = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>)['note'] : undefined;
    if (typeof note !== 'string' || note.trim().length === 0) {
      return reply.code(400).send({
        error: 'invalid-body',
        message: 'body must be JSON {"note": string} with a non-empty note',
        requestedBy: requestedBy(request),
      });
    }
    if ([...note].length > MAX_NOTE_CHARS) {
      return reply.code(400).send({
        error: 'invalid-body',
        message: `note must be at most ${MAX_NOTE_CHARS} characters`,
        requestedBy: requestedBy(request),
      });
    }
    if (noteCount >= MAX_NOTES_IN_MEMORY) {
      return reply.code(503).send({
        error: 'notes-full',
        message: `this demo service keeps at most ${MAX_NOTES_IN_MEMORY} notes in memory`,
        requestedBy: requestedBy(request),
      });
    }
    const a = assertionOf(request);
    const created: DemoNote = {
      id: randomUUID(),
      recordId: record.id,
      note,
      author: a.sub,
      agency: a.agency,
      createdAt: new Date().toISOString(),
    };
    const list = notes.get(record.id) ?? [];
    list.push(created);
    notes.set(record.id, list);
    noteCount++;
    return reply.code(201).send({
      dataset,
      synthetic: true,
      note: created,
      // The record written to, so a gateway applying record obligations can check its scope.
      item: record,
      requestedBy: requestedBy(request),
    });
  });

  await app.listen({ host, port });
  const address = app.server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' || address.address.includes(':') ? `[${address.address}]` : address.address;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${address.port}`,
    dataset,
    close(): Promise<void> {
      closing ??= app.close();
      return closing;
    },
  };
}
