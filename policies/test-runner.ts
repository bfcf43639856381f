import { parse as parseYaml } from 'yaml';
import type { PolicyContext } from './config.js';
import type { Principal } from '../core/principal.js';
import { CLEARANCES, DEVICE_TIERS, type Clearance, type DeviceTier } from '../core/levels.js';
import type { AccessRequest } from './access.js';
import type { PolicyEngine } from './engine.js';
import { CodedError } from '../core/errors.js';

/**
 * `ztgate policy test`: a table of expected decisions run against the policy (CI runs it for
 * the demo policy through test/policy-cli.test.ts). A case names an official, a request and the
 * expected decision — effect, reason, optionally the rule, the condition and obligation types.
 *
 *   officials:
 *     an: { nationalId: "056085000001", agency: so-tu-phap, roles: [ho-tich-reader], assurance: 2 }
 *   defaults: { time: "2026-03-02T09:00:00+07:00", ip: 10.56.1.10 }
 *   cases:
 *     - name: Sở Tư pháp đọc Hộ tịch
 *       who: an
 *       request: { route: ho-tich, path: /records, method: GET }
 *       expect: { decision: allow, reason: policy-allowed, obligations: [mask-fields] }
 */

export interface CaseResult {
  readonly name: string;
  readonly ok: boolean;
  readonly problem?: string;
}

/** The policy test table itself is wrong (not a case that fails): each problem names the case or the file. */
export class CasesError extends CodedError {
  readonly code = 'ERR_POLICY_CASES_INVALID';
  constructor(readonly problems: readonly string[]) {
    super(`bảng kiểm thử chính sách không hợp lệ / invalid policy test table\n  - ${problems.join('\n  - ')}`);
    this.name = 'CasesError';
  }
}

/** The table as written; every value is checked below before it is relied on. */
interface CasesFile {
  readonly officials?: Readonly<Record<string, OfficialEntry>>;
  readonly defaults?: { readonly time?: string; readonly ip?: string };
  readonly cases: readonly (CaseEntry | null | undefined)[];
}
interface OfficialEntry {
  readonly nationalId?: unknown;
  readonly agency?: string;
  readonly roles?: readonly string[];
  readonly clearance?: string;
  readonly assurance?: number;
  readonly authAgeSeconds?: number;
}
interface CaseEntry {
  readonly name?: unknown;
  readonly who?: string | OfficialEntry;
  readonly request?: {
    readonly route?: string;
    readonly path?: string;
    readonly method?: string;
    readonly device?: string;
    readonly time?: string;
    readonly ip?: string;
    readonly purpose?: { readonly code?: unknown; readonly caseRef?: unknown };
  };
  readonly expect?: { readonly decision?: unknown; readonly reason?: string; readonly rule?: string | null; readonly condition?: string | null; readonly obligations?: readonly string[] };
}

export function runPolicyCases(engine: PolicyEngine, config: PolicyContext, text: string, file: string): CaseResult[] {
  let parsed: unknown;
  try {
    parsed = parseYaml(text, { strict: true, uniqueKeys: true });
  } catch (err) {
    throw new CasesError([`${file}: ${(err as Error).message.split('\n')[0]}`]);
  }
  const problems: string[] = [];
  if (!parsed || typeof parsed !== 'object' || !Array.isArray((parsed as { cases?: unknown }).cases)) throw new CasesError([`${file}: needs a "cases" list`]);
  const doc = parsed as CasesFile;
  const officials = doc.officials ?? {};
  const defaults = doc.defaults ?? {};
  const routes = new Map(config.routes.map((r) => [r.id, r]));
  const results: CaseResult[] = [];
  doc.cases.forEach((c, i) => {
    const name = typeof c?.name === 'string' ? c.name : `cases[${i}]`;
    const o = typeof c?.who === 'string' ? officials[c.who] : c?.who;
    const r = c?.request ?? {};
    const route = r.route === undefined ? undefined : routes.get(r.route);
    const expected = c?.expect ?? {};
    if (!o || typeof o.nationalId !== 'string') problems.push(`${file}: ${name}: "who" must name an entry of officials or be an official`);
    if (!route) problems.push(`${file}: ${name}: request.route "${r.route}" is not a configured route`);
    if (typeof r.path !== 'string' || typeof r.method !== 'string') problems.push(`${file}: ${name}: request needs path and method`);
    if (expected.decision !== 'allow' && expected.decision !== 'deny') problems.push(`${file}: ${name}: expect.decision must be allow or deny`);
    const tier = r.device ?? null;
    if (tier !== null && !(DEVICE_TIERS as readonly string[]).includes(tier)) problems.push(`${file}: ${name}: request.device must be one of ${DEVICE_TIERS.join(', ')}`);
    const clearance = o?.clearance ?? 'none';
    if (!(CLEARANCES as readonly string[]).includes(clearance)) problems.push(`${file}: ${name}: clearance must be one of ${CLEARANCES.join(', ')}`);
    const time = Date.parse(r.time ?? defaults.time ?? '');
    if (Number.isNaN(time)) problems.push(`${file}: ${name}: request.time (or defaults.time) must be an ISO 8601 time`);
    // Each of these was reported above; they narrow the types for what follows.
    if (problems.length > 0 || !o || typeof r.path !== 'string' || typeof r.method !== 'string') return;
    const principal: Principal = Object.freeze({
      nationalId: o.nationalId,
      agency: o.agency ?? null,
      roles: Object.freeze([...(o.roles ?? [])]),
      clearance: clearance as Clearance,
      assuranceLevel: (o.assurance ?? 0) as 0 | 1 | 2,
      sessionId: null,
      acr: null,
      issuer: 'urn:ztgate:policy-test',
      authTime: o.authAgeSeconds !== undefined ? Math.floor(time / 1000) - o.authAgeSeconds : Math.floor(time / 1000),
    } as Principal);
    const request: AccessRequest = {
      principal,
      route: { id: route!.id, securityLevel: route!.securityLevel, classification: route!.classification },
      path: r.path,
      method: r.method,
      device: tier ? { tier: tier as DeviceTier } : null,
      purpose: r.purpose ? { code: String(r.purpose.code), caseRef: String(r.purpose.caseRef) } : null,
      sourceIp: r.ip ?? defaults.ip ?? null,
      timeMs: time,
    };
    const d = engine.decide(request);
    const got = { decision: d.effect, reason: d.reasons[0], rule: d.rule, condition: d.condition ?? null, obligations: d.obligations.map((x) => x.type) };
    const mismatch: string[] = [];
    if (got.decision !== expected.decision) mismatch.push(`decision ${got.decision}, expected ${expected.decision}`);
    if (expected.reason !== undefined && got.reason !== expected.reason) mismatch.push(`reason ${got.reason}, expected ${expected.reason}`);
    if (expected.rule !== undefined && got.rule !== expected.rule) mismatch.push(`rule "${got.rule}", expected "${expected.rule}"`);
    if (expected.condition !== undefined && got.condition !== expected.condition) mismatch.push(`condition ${got.condition}, expected ${expected.condition}`);
    if (expected.obligations !== undefined && JSON.stringify([...got.obligations].sort()) !== JSON.stringify([...expected.obligations].sort())) {
      mismatch.push(`obligations [${got.obligations.join(', ')}], expected [${expected.obligations.join(', ')}]`);
    }
    results.push(mismatch.length === 0 ? { name, ok: true } : { name, ok: false, problem: mismatch.join('; ') });
  });
  if (problems.length > 0) throw new CasesError(problems);
  return results;
}
