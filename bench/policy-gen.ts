import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IssuerConfig } from '../gateway/config.js';
import { principalFromClaims } from '../identity/principal-from-claims.js';
import type { Principal } from '../core/principal.js';
import type { Resource } from '../policies/engine.js';
import { createPrng, type Prng } from './prng.js';

/**
 * Synthetic policies in the project's CSV format (policies/demo-policy.csv), and request
 * streams to evaluate against them. Deterministic: the same options and seed give the same
 * bytes, so a later indexing or caching change can be compared against the same input.
 *
 *   p, subject, agency, route, path, methods, allow|deny
 *   g, role, inherits-from-role
 *
 * The output passes parsePolicy() (policies/engine.ts): valid names, configured routes only,
 * keyMatch2 paths, no repeated rules.
 */

export interface PolicyGenOptions {
  /** Number of distinct `p` rules. */
  readonly rules: number;
  readonly roles?: number;
  readonly agencies?: number;
  readonly routes?: number;
  /** Number of `g` lines (role inheritance, always a DAG: a role inherits only from an earlier one). */
  readonly groupings?: number;
  /** Officials with personal rules (subject = 12-digit national ID). */
  readonly personalSubjects?: number;
  /** Share of rules that deny. */
  readonly denyRatio?: number;
  readonly seed?: number;
}

export type ResolvedPolicyGenOptions = Required<PolicyGenOptions>;

export const POLICY_GEN_DEFAULTS = {
  roles: 1000,
  agencies: 50,
  routes: 20,
  groupings: 250,
  personalSubjects: 50,
  denyRatio: 0.12,
  seed: 20260101,
} as const satisfies Omit<ResolvedPolicyGenOptions, 'rules'>;

export interface GeneratedPolicy {
  readonly options: ResolvedPolicyGenOptions;
  /** Route ids to configure (PolicyEngine.load's knownRoutes). */
  readonly routes: readonly string[];
  readonly roles: readonly string[];
  readonly agencies: readonly string[];
  readonly nationalIds: readonly string[];
  /** `p` rules without the leading "p": [subject, agency, route, path, methods, effect]. */
  readonly rules: readonly (readonly string[])[];
  /** `g` lines without the leading "g": [role, inherited-role]. */
  readonly groupings: readonly (readonly [string, string])[];
  readonly csv: string;
}

const ROUTE_NAMES = ['ho-tich', 'y-te', 'dat-dai', 'giao-duc', 'thue', 'bao-hiem', 'cu-tru', 'doanh-nghiep', 'giao-thong', 'xay-dung', 'lao-dong', 'tai-chinh', 'tu-phap', 'cong-thuong', 'van-hoa', 'noi-vu', 'nong-nghiep', 'moi-truong', 'khoa-hoc', 'thong-tin'];
const RESOURCES = ['records', 'citizens', 'households', 'certificates', 'parcels', 'permits', 'vehicles', 'enterprises', 'licenses', 'patients', 'schools', 'invoices', 'benefits', 'reports', 'documents', 'cases', 'projects', 'inspections', 'contracts', 'registrations'];
const SUB_RESOURCES = ['notes', 'attachments', 'history', 'owners', 'members', 'status'];
const ROLE_KINDS = ['reader', 'editor', 'auditor', 'manager', 'clerk'];
const AGENCY_KINDS = ['so', 'ubnd-huyen', 'ubnd-xa', 'phuong', 'chi-cuc'];
const METHOD_SETS: readonly (readonly [string, number])[] = [
  ['GET|HEAD', 45],
  ['GET', 10],
  ['POST', 12],
  ['PUT|PATCH', 8],
  ['GET|HEAD|POST', 10],
  ['DELETE', 5],
  ['*', 10],
];
const REQUEST_METHODS: readonly (readonly [string, number])[] = [
  ['GET', 60],
  ['HEAD', 5],
  ['POST', 20],
  ['PUT', 5],
  ['PATCH', 4],
  ['DELETE', 6],
];

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function nationalId(rng: Prng): string {
  // Province code, century/sex digit, birth year, six random digits.
  return `${pad(rng.int(1, 96), 3)}${rng.int(0, 3)}${pad(rng.int(50, 99), 2)}${pad(rng.int(0, 999_999), 6)}`;
}

/** keyMatch2 patterns over a route's resources. */
function pathPattern(rng: Prng, resources: readonly string[]): string {
  const res = rng.pick(resources);
  const sub = rng.pick(SUB_RESOURCES);
  return rng.weighted<string>([
    [`/${res}`, 15],
    [`/${res}/:id`, 30],
    [`/${res}/*`, 15],
    [`/${res}/:id/${sub}`, 20],
    [`/${res}/:id/${sub}/:sid`, 8],
    [`/${res}/:id/*`, 10],
    ['/*', 2],
  ]);
}

/** A concrete path a keyMatch2 pattern matches. */
function instantiate(rng: Prng, pattern: string): string {
  return pattern
    .split('/')
    .map((seg) => {
      if (seg.startsWith(':')) return String(rng.int(1, 99_999));
      if (seg === '*') return rng.chance(0.5) ? String(rng.int(1, 99_999)) : `${rng.int(1, 99_999)}/${rng.pick(SUB_RESOURCES)}`;
      return seg;
    })
    .join('/');
}

export function generatePolicy(opts: PolicyGenOptions): GeneratedPolicy {
  const o: ResolvedPolicyGenOptions = { ...POLICY_GEN_DEFAULTS, ...opts };
  const rng = createPrng(o.seed);

  const routes = Array.from({ length: o.routes }, (_, i) => ROUTE_NAMES[i] ?? `dich-vu-${pad(i, 3)}`);
  const resourcesOf = new Map(routes.map((r) => [r, Array.from({ length: rng.int(3, 6) }, () => rng.pick(RESOURCES))]));
  const agencies = Array.from({ length: o.agencies }, (_, i) => `${AGENCY_KINDS[i % AGENCY_KINDS.length]}-${pad(i, 3)}`);
  const homeRoute = new Map<string, string>();
  const roles = Array.from({ length: o.roles }, (_, i) => {
    const route = routes[i % routes.length]!;
    const kind = ROLE_KINDS[Math.floor(i / routes.length) % ROLE_KINDS.length]!;
    const role = `${route}-${kind}-${Math.floor(i / (routes.length * ROLE_KINDS.length))}`;
    homeRoute.set(role, route);
    return role;
  });
  const nationalIds = [...new Set(Array.from({ length: o.personalSubjects }, () => nationalId(rng)))];

  const rules: string[][] = [];
  const seen = new Set<string>();
  const maxAttempts = o.rules * 20 + 1000;
  for (let attempt = 0; rules.length < o.rules; attempt++) {
    if (attempt > maxAttempts) throw new Error(`cannot generate ${o.rules} distinct rules from these options`);
    const kind = rng.weighted<'role' | 'person' | 'any'>([
      ['role', 93],
      ['person', 5],
      ['any', 2],
    ]);
    const subject = kind === 'role' ? rng.pick(roles) : kind === 'person' ? rng.pick(nationalIds) : '*';
    const route = rng.chance(0.01) ? '*' : kind === 'role' && rng.chance(0.8) ? homeRoute.get(subject)! : rng.pick(routes);
    const agency = rng.chance(0.35) ? '*' : rng.pick(agencies);
    const path = pathPattern(rng, route === '*' ? RESOURCES : resourcesOf.get(route)!);
    const methods = rng.weighted(METHOD_SETS);
    const effect = rng.chance(o.denyRatio) ? 'deny' : 'allow';
    const rule = [subject, agency, route, path, methods, effect];
    const key = rule.join(',');
    if (seen.has(key)) continue;
    seen.add(key);
    rules.push(rule);
  }

  const groupings: [string, string][] = [];
  const seenG = new Set<string>();
  const maxG = Math.min(o.groupings, (roles.length * (roles.length - 1)) / 2);
  while (groupings.length < maxG) {
    const child = rng.int(1, roles.length - 1);
    const parent = rng.int(0, child - 1);
    const pair: [string, string] = [roles[child]!, roles[parent]!];
    const key = pair.join(',');
    if (seenG.has(key)) continue;
    seenG.add(key);
    groupings.push(pair);
  }

  const lines = [
    `# Synthetic benchmark policy — DỮ LIỆU GIẢ LẬP / synthetic data`,
    `# rules=${o.rules} roles=${o.roles} agencies=${o.agencies} routes=${o.routes} groupings=${groupings.length} denyRatio=${o.denyRatio} seed=${o.seed}`,
    ...rules.map((r) => `p, ${r.join(', ')}`),
    ...groupings.map((g) => `g, ${g.join(', ')}`),
    '',
  ];
  return { options: o, routes, roles, agencies, nationalIds, rules, groupings, csv: lines.join('\n') };
}

/** Writes the policy CSV into `dir` and returns its path. */
export function writePolicy(policy: GeneratedPolicy, dir: string, name = `policy-${policy.options.rules}-${policy.options.seed}.csv`): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  writeFileSync(file, policy.csv);
  return file;
}

const BENCH_ISSUER: IssuerConfig = {
  issuer: 'urn:ztgate:bench',
  audience: ['urn:ztgate:data'],
  algorithms: ['ES256'],
  tokenTypes: ['at+jwt'],
  claimsPreset: 'ztgate-demo',
  claims: { nationalId: 'national_id', agency: 'agency', roles: 'roles', acr: 'acr', assuranceLevel: '' },
  assurance: {},
  defaultAssuranceLevel: 0,
};

export interface SyntheticRequest {
  readonly principal: Principal;
  readonly resource: Resource;
  readonly method: string;
}

export interface RequestGenOptions {
  /** Share of requests built from a random rule (so they can match it); the rest are fully random. */
  readonly targetedRatio?: number;
  readonly seed?: number;
}

/**
 * Requests for PolicyEngine.authorize(): half aimed at an existing rule (its role, agency,
 * route, a path its pattern matches, one of its methods), half random, so the stream mixes
 * allows, denies and no-matches.
 */
export function generateRequests(policy: GeneratedPolicy, count: number, opts: RequestGenOptions = {}): SyntheticRequest[] {
  const rng = createPrng(opts.seed ?? policy.options.seed ^ 0x5eed);
  const targetedRatio = opts.targetedRatio ?? 0.5;
  const out: SyntheticRequest[] = [];
  for (let i = 0; i < count; i++) {
    const roleCount = rng.weighted([
      [1, 50],
      [2, 35],
      [3, 15],
    ]);
    const roles = new Set<string>();
    let id = rng.chance(0.1) && policy.nationalIds.length > 0 ? rng.pick(policy.nationalIds) : nationalId(rng);
    let agency = rng.pick(policy.agencies);
    let route = rng.pick(policy.routes);
    let path: string;
    let method = rng.weighted(REQUEST_METHODS);
    const rule = rng.chance(targetedRatio) && policy.rules.length > 0 ? rng.pick(policy.rules) : undefined;
    if (rule) {
      const [sub, dom, rte, pattern, act] = rule as [string, string, string, string, string];
      if (/^\d{12}$/.test(sub)) id = sub;
      else if (sub !== '*') roles.add(sub);
      if (dom !== '*') agency = dom;
      if (rte !== '*') route = rte;
      path = instantiate(rng, pattern);
      if (act !== '*') method = rng.pick(act.split('|'));
    } else {
      path = instantiate(rng, pathPattern(rng, RESOURCES));
    }
    while (roles.size < roleCount) roles.add(rng.pick(policy.roles));
    out.push({
      // Through the gateway's own claim mapping, so the principal has whatever defaults it sets.
      principal: principalFromClaims({ sub: id, national_id: id, agency, roles: [...roles] }, BENCH_ISSUER),
      resource: Object.freeze({ routeId: route, path }),
      method,
    });
  }
  return out;
}

export interface MixOptions {
  /** Share of requests that repeat one of the last `window` requests of the stream. */
  readonly repeatRatio: number;
  readonly window: number;
}

/** 70% repeats of the last 2,000 requests: officials page through and poll the same resources. */
export const DEFAULT_MIX: MixOptions = { repeatRatio: 0.7, window: 2000 };

/**
 * A gateway-like request stream of `count` requests: each one, with probability repeatRatio,
 * repeats a request drawn uniformly from the last `window` of the stream (a decision cache
 * can answer it), and otherwise is the next request of `fresh` (it cannot). Deterministic.
 */
export function mixRequests(fresh: readonly SyntheticRequest[], count: number, opts: MixOptions, seed: number): SyntheticRequest[] {
  const rng = createPrng(seed);
  const out: SyntheticRequest[] = [];
  let next = 0;
  while (out.length < count) {
    if (out.length > 0 && (next >= fresh.length || rng.chance(opts.repeatRatio))) {
      const span = Math.min(opts.window, out.length);
      out.push(out[out.length - span + rng.int(0, span - 1)]!);
    } else if (next < fresh.length) out.push(fresh[next++]!);
    else break;
  }
  return out;
}
