import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { newEnforcer, newModelFromString, type Enforcer } from 'casbin';
import { canonicalPolicyPath, DATABASE_OBJECT_PREFIX, HTTP_METHODS, SQL_ACTIONS, type AccessRequest } from './access.js';
import type { Decision, Effect, Obligation, Principal } from '../core/principal.js';
import { EMPTY_CONDITIONS, evaluateConditions, grantUnlocks, parseConditions, purposeProblem, type ConditionReason, type Conditions } from './conditions.js';
import { CANONICAL_MATCHER, NO_RULE, RuleIndex, type EnforceResult } from './fast-match.js';
import { CodedError } from '../core/errors.js';

/**
 * The policy decision point: Casbin owns the semantics (policies/model.conf), this module
 * gives it a typed face — authorize(principal, resource, action) → Decision — and refuses
 * policy files it cannot read unambiguously, naming file and line.
 */

export type DecisionReason = 'policy-allowed' | 'policy-denied' | 'policy-no-match' | ConditionReason;

export interface Resource {
  readonly routeId: string;
  /** Path inside the service, without its prefix and query. */
  readonly path: string;
}

export class PolicyError extends CodedError {
  readonly code = 'ERR_POLICY_INVALID';
  constructor(readonly problems: readonly string[]) {
    super(`chính sách không hợp lệ / invalid policy\n  - ${problems.join('\n  - ')}`);
    this.name = 'PolicyError';
  }
}

const NAME = /^(\*|[a-z0-9][a-z0-9_.:-]{0,63})$/;
const METHODS: ReadonlySet<string> = new Set(HTTP_METHODS);
const STATEMENT_KINDS: ReadonlySet<string> = new Set(SQL_ACTIONS);
// keyMatch2 turns a rule path into a regular expression: ":name" and "*" are only safe as whole
// segments (":id.json" would match any segment, "/records*" would match "/record").
const SEGMENT = '(?:[A-Za-z0-9._~-]+|:[A-Za-z0-9_]+|\\*)';
const PATH = new RegExp(`^/(?:${SEGMENT}(?:/${SEGMENT})*/?)?$`);

/** keyMatch2 does not escape the rule path: a "." would match any character. */
const toKeyMatch2 = (path: string) => path.replaceAll('.', '\\.');
const fromKeyMatch2 = (path: string) => path.replaceAll('\\.', '.');

export interface ParsedPolicy {
  readonly rules: string[][];
  readonly groupings: string[][];
}

function methodMatch(method: string, pattern: string): boolean {
  return pattern === '*' || pattern.split('|').includes(method);
}

/** Parses the policy CSV strictly: one rule per line, every field checked. */
function memo<T>(check: (value: string) => T): (value: string) => T {
  const known = new Map<string, T>();
  return (value) => {
    let verdict = known.get(value);
    if (verdict === undefined && !known.has(value)) known.set(value, (verdict = check(value)));
    return verdict as T;
  };
}

export function parsePolicy(text: string, file: string, knownRoutes: ReadonlySet<string>): ParsedPolicy {
  const problems: string[] = [];
  const rules: string[][] = [];
  const groupings: string[][] = [];
  const seen = new Map<string, number>();
  // Large policies repeat the same roles, agencies, paths and method lists thousands of times:
  // each distinct value is checked once.
  const nameOk = memo((v: string) => NAME.test(v));
  const pathProblem = memo((path: string): string | null => {
    if (!PATH.test(path)) return `path "${path}" must start with / and use only keyMatch2 patterns (:name, *) as whole segments`;
    // Requests are decided on their canonical path (canonicalPolicyPath, policies/access.ts).
    if (path.split('/').some((seg) => !seg.startsWith(':') && /[A-Z]/.test(seg)) || (path.length > 1 && path.endsWith('/'))) {
      return `path "${path}" must be lower-case without a trailing slash: paths are matched lower-case without a trailing slash`;
    }
    return null;
  });
  const methodsOk = memo((act: string) => act === '*' || act.split('|').every((m) => METHODS.has(m)));
  const kindsOk = memo((act: string) => act === '*' || act.split('|').every((m) => STATEMENT_KINDS.has(m)));
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const at = `${file}:${index + 1}`;
    const fields = line.split(',').map((f) => f.trim());
    const [kind, ...rest] = fields;
    if (kind === 'p') {
      if (rest.length !== 6) {
        problems.push(`${at}: a "p" rule has 6 fields (subject, agency, service, path, methods, allow|deny); found ${rest.length}`);
        return;
      }
      const [sub, dom, route, path, act, eft] = rest as [string, string, string, string, string, string];
      if (!nameOk(sub)) problems.push(`${at}: subject "${sub}" is not a role name, national ID or *`);
      if (!nameOk(dom)) problems.push(`${at}: agency "${dom}" is not an agency id or *`);
      if (route !== '*' && !knownRoutes.has(route)) problems.push(`${at}: service "${route}" is not a configured route`);
      const badPath = pathProblem(path);
      if (badPath) problems.push(`${at}: ${badPath}`);
      if (route.startsWith(DATABASE_OBJECT_PREFIX)) {
        // A database service is decided per statement: its actions are statement kinds, never HTTP methods.
        if (!kindsOk(act)) problems.push(`${at}: statement kinds "${act}" must be * or ${SQL_ACTIONS.join(', ')} joined by | (e.g. SELECT|INSERT)`);
      } else if (!methodsOk(act)) problems.push(`${at}: methods "${act}" must be * or HTTP methods joined by | (e.g. GET|HEAD)`);
      if (eft !== 'allow' && eft !== 'deny') problems.push(`${at}: effect "${eft}" must be allow or deny`);
      const key = rest.join(',');
      const earlier = seen.get(key);
      if (earlier !== undefined) problems.push(`${at}: repeats the rule on line ${earlier}`);
      seen.set(key, index + 1);
      rules.push(rest);
    } else if (kind === 'g') {
      if (rest.length !== 2 || !rest.every((r) => nameOk(r) && r !== '*')) {
        problems.push(`${at}: a "g" line is "g, role, inherited-role" with two role names`);
        return;
      }
      groupings.push(rest);
    } else {
      problems.push(`${at}: lines start with "p" (rule) or "g" (role inheritance), not "${kind}"`);
    }
  });
  if (problems.length > 0) throw new PolicyError(problems);
  return { rules, groupings };
}

/** The texts a policy version is made of. `conditions` is optional: without it, Casbin alone decides. */
export interface PolicySources {
  readonly model: string;
  readonly policy: string;
  readonly conditions: string | null;
}

/** How problems name the texts: file paths, or version labels for drafts. */
export interface PolicySourceNames {
  readonly model: string;
  readonly policy: string;
  readonly conditions: string;
}

export interface PolicyEngineOptions {
  /** Entries of the decision cache (full decision input → decision), rounded up to a power of two; 0 disables it. */
  readonly cacheEntries?: number;
  /** Evaluate with plain Casbin even when the fast index applies (for comparison). */
  readonly plainCasbin?: boolean;
  /**
   * Where the index decides, also load every rule into Casbin for enforceExWithCasbin() and
   * authorizeWithCasbin() (the differential tests). Off by default: a second copy of 10,000 rules
   * in Casbin's model costs start-up time and memory, and only the reference comparisons read it.
   */
  readonly casbinReference?: boolean;
}

/** The definitions of policies/model.conf the fast index implements, whitespace removed. */
const CANONICAL_MODEL: Readonly<Record<string, string>> = {
  r: 'sub,dom,route,path,act',
  p: 'sub,dom,route,path,act,eft',
  g: '_,_',
  e: 'some(where(p.eft==allow))&&!some(where(p.eft==deny))',
  m: CANONICAL_MATCHER,
};

function isCanonicalModel(text: string): boolean {
  const defs = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([a-z][a-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (m) {
      if (defs.has(m[1]!)) return false;
      defs.set(m[1]!, m[2]!.replace(/\s+/g, ''));
    }
  }
  return defs.size === Object.keys(CANONICAL_MODEL).length && Object.entries(CANONICAL_MODEL).every(([k, v]) => defs.get(k) === v);
}

/**
 * The decision cache: direct-mapped, keyed by a 32-bit hash of the full decision input and
 * checked field by field, so a hit allocates nothing (no key string is built) and a miss
 * overwrites its slot in place (no map to grow, no generation to drop). A colliding request
 * evicts the older one; the slot count is cacheEntries rounded up to a power of two.
 */
interface CacheSlot {
  hash: number;
  nationalId: string;
  agency: string;
  routeId: string;
  action: string;
  path: string;
  roles: readonly string[];
  decision: Decision;
}

/** FNV-1a over the string's UTF-16 units, then a separator so ("ab","c") ≠ ("a","bc"). */
function fnv(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return Math.imul(h ^ 0x10000, 16777619);
}

class DecisionCache {
  private readonly slots: (CacheSlot | null)[];
  private readonly mask: number;
  constructor(entries: number) {
    let size = 1;
    while (size < entries) size *= 2;
    this.slots = new Array<CacheSlot | null>(size).fill(null);
    this.mask = size - 1;
  }

  static hash(nationalId: string, agency: string, routeId: string, action: string, path: string, roles: readonly string[]): number {
    let h = fnv(fnv(fnv(fnv(fnv(0x811c9dc5, nationalId), agency), routeId), action), path);
    for (let i = 0; i < roles.length; i++) h = fnv(h, roles[i]!);
    return h >>> 0;
  }

  get(hash: number, nationalId: string, agency: string, routeId: string, action: string, path: string, roles: readonly string[]): Decision | undefined {
    const s = this.slots[hash & this.mask];
    if (s === null || s === undefined || s.hash !== hash || s.path !== path || s.nationalId !== nationalId || s.agency !== agency || s.routeId !== routeId || s.action !== action) return undefined;
    const r = s.roles;
    if (r !== roles) {
      if (r.length !== roles.length) return undefined;
      for (let i = 0; i < r.length; i++) if (r[i] !== roles[i]) return undefined;
    }
    return s.decision;
  }

  set(hash: number, nationalId: string, agency: string, routeId: string, action: string, path: string, roles: readonly string[], decision: Decision): void {
    const at = hash & this.mask;
    const s = this.slots[at];
    if (s === null || s === undefined) {
      this.slots[at] = { hash, nationalId, agency, routeId, action, path, roles, decision };
      return;
    }
    s.hash = hash;
    s.nationalId = nationalId;
    s.agency = agency;
    s.routeId = routeId;
    s.action = action;
    s.path = path;
    s.roles = roles;
    s.decision = decision;
  }
}

export function policyVersionOf(sources: PolicySources): string {
  const hash = createHash('sha256').update(sources.model).update('\0').update(sources.policy);
  if (sources.conditions !== null) hash.update('\0').update(sources.conditions);
  return 'sha256:' + hash.digest('hex').slice(0, 16);
}

export class PolicyEngine {
  private readonly cache: DecisionCache | null;

  private constructor(
    private readonly enforcer: Enforcer,
    private readonly index: RuleIndex | null,
    readonly version: string,
    readonly sources: PolicySources,
    readonly conditions: Conditions,
    /** Parsed rules and role links, for the linter. */
    readonly parsed: ParsedPolicy,
    cacheEntries: number,
    private readonly casbinHasAllRules: boolean,
  ) {
    this.cache = cacheEntries > 0 ? new DecisionCache(cacheEntries) : null;
    // Dense from the start (a sparse array would turn into a slow dictionary); each decision is
    // made on its rule's first match: making all of them at load costs ~30 MiB at 100k rules.
    this.byPosition = new Array<Decision | undefined>(index ? index.size : 0).fill(undefined);
  }

  /** True when decisions come from the index (the model is policies/model.conf); false: plain Casbin. */
  get indexed(): boolean {
    return this.index !== null;
  }

  static async load(modelFile: string, policyFile: string, knownRoutes: ReadonlySet<string>, opts: PolicyEngineOptions & { conditionsFile?: string } = {}): Promise<PolicyEngine> {
    let sources: PolicySources;
    try {
      sources = {
        model: readFileSync(modelFile, 'utf8'),
        policy: readFileSync(policyFile, 'utf8'),
        conditions: opts.conditionsFile ? readFileSync(opts.conditionsFile, 'utf8') : null,
      };
    } catch (err) {
      throw new PolicyError([`cannot read policy files: ${(err as Error).message}`]);
    }
    return PolicyEngine.fromSources(sources, { model: modelFile, policy: policyFile, conditions: opts.conditionsFile ?? 'conditions' }, knownRoutes, opts);
  }

  /** Builds a complete engine from texts, or throws PolicyError naming every problem with file:line. */
  static async fromSources(sources: PolicySources, names: PolicySourceNames, knownRoutes: ReadonlySet<string>, opts: PolicyEngineOptions = {}): Promise<PolicyEngine> {
    const problems: string[] = [];
    let parsed: ParsedPolicy = { rules: [], groupings: [] };
    try {
      parsed = parsePolicy(sources.policy, names.policy, knownRoutes);
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      problems.push(...err.problems);
    }
    let conditions = EMPTY_CONDITIONS;
    if (sources.conditions !== null) {
      const result = parseConditions(sources.conditions, names.conditions, knownRoutes);
      problems.push(...result.problems);
      conditions = result.conditions;
    }
    if (problems.length > 0) throw new PolicyError(problems);
    const stored = parsed.rules.map((r) => r.map((f, i) => (i === 3 ? toKeyMatch2(f) : f)));
    // Casbin is the definition; the index is used only for the model it reproduces.
    const indexed = !opts.plainCasbin && isCanonicalModel(sources.model);
    const withAllRules = !indexed || opts.casbinReference === true;
    let enforcer: Enforcer;
    try {
      enforcer = await newEnforcer(newModelFromString(sources.model));
      await enforcer.addFunction('methodMatch', methodMatch);
      // With the index deciding, Casbin holds the first rule only: enough to prove the model evaluates.
      if (stored.length > 0) await enforcer.addNamedPolicies('p', withAllRules ? stored : stored.slice(0, 1));
      if (parsed.groupings.length > 0) await enforcer.addNamedGroupingPolicies('g', parsed.groupings);
      // Evaluate once so a model that parses but cannot evaluate fails at load, not per request.
      // The request copies the first rule: matchers short-circuit, and one that matches nothing
      // would never reach (and so never test) its later functions.
      const [sub, dom, route, path, act] = parsed.rules[0] ?? ['000000000000', '', '', '/', 'GET'];
      enforcer.enforceExSync(sub, dom, route, path, act!.split('|')[0]);
    } catch (err) {
      throw new PolicyError([`${names.model}: ${(err as Error).message}`]);
    }
    const index = indexed ? new RuleIndex(stored, parsed.groupings) : null;
    return new PolicyEngine(enforcer, index, policyVersionOf(sources), sources, conditions, parsed, opts.cacheEntries ?? 10_000, withAllRules);
  }

  /** enforceEx for one subject: the index when it applies, else Casbin. */
  enforceEx(sub: string, dom: string, route: string, path: string, act: string): EnforceResult {
    return this.index ? this.index.enforceEx(sub, dom, route, path, act) : (this.enforcer.enforceExSync(sub, dom, route, path, act) as unknown as EnforceResult);
  }

  /** Plain Casbin, rule by rule: the reference the fast path is tested against. */
  enforceExWithCasbin(sub: string, dom: string, route: string, path: string, act: string): EnforceResult {
    if (!this.casbinHasAllRules) throw new Error('Casbin holds only the first rule: load the engine with { casbinReference: true } to compare with it');
    return this.enforcer.enforceExSync(sub, dom, route, path, act) as unknown as EnforceResult;
  }

  /**
   * The Casbin decision. Deny overrides allow across every subject the official acts as (their
   * national ID and each role): one matched deny rule denies, whatever another role allows.
   */
  authorize(principal: Principal, resource: Resource, action: string): Decision {
    const { nationalId, roles } = principal;
    const agency = principal.agency ?? '';
    const { routeId, path } = resource;
    const cache = this.cache !== null && path.length <= 1024 ? this.cache : null;
    let hash = 0;
    if (cache !== null) {
      hash = DecisionCache.hash(nationalId, agency, routeId, action, path, roles);
      const hit = cache.get(hash, nationalId, agency, routeId, action, path, roles);
      if (hit !== undefined) return hit;
    }
    const decision = this.index !== null ? this.indexDecision(this.index.authorize(nationalId, roles, agency, routeId, path, action)) : this.combine(principal, resource, action, (s, d, r, p, a) => this.enforceEx(s, d, r, p, a));
    if (cache !== null) cache.set(hash, nationalId, agency, routeId, action, path, roles, decision);
    return decision;
  }

  /** authorize() through plain Casbin enforceEx, no index, no cache. */
  authorizeWithCasbin(principal: Principal, resource: Resource, action: string): Decision {
    return this.combine(principal, resource, action, (s, d, r, p, a) => this.enforceExWithCasbin(s, d, r, p, a));
  }

  private combine(principal: Principal, resource: Resource, action: string, enforce: (s: string, d: string, r: string, p: string, a: string) => EnforceResult): Decision {
    let allowRule: StoredRuleLike | null = null;
    const roles = principal.roles;
    for (let i = -1; i < roles.length; i++) {
      const subject = i < 0 ? principal.nationalId : roles[i]!;
      const [allowed, rule] = enforce(subject, principal.agency ?? '', resource.routeId, resource.path, action);
      if (!allowed && rule.length > 0) return this.decision('deny', 'policy-denied', rule);
      if (allowed && allowRule === null) allowRule = rule;
    }
    return allowRule ? this.decision('allow', 'policy-allowed', allowRule) : this.decision('deny', 'policy-no-match', null);
  }

  /** Whether this policy lets any grant unlock a role; without it, grants are not even read. */
  get usesGrants(): boolean {
    return [...this.conditions.grants.values()].some((byRoute) => byRoute.size > 0);
  }

  /** Whether this policy lists purpose codes; without them X-Purpose is neither read nor checked. */
  get usesPurpose(): boolean {
    return this.conditions.purposeCodes.size > 0;
  }

  /** Why a declared purpose is not acceptable, or null (gateway/steps/decide.ts answers 400). */
  purposeProblem(purpose: AccessRequest['purpose']): string | null {
    return purposeProblem(purpose, this.conditions);
  }

  /** The full decision: Casbin, then the attribute conditions, with the obligations of an allow. */
  decide(input: AccessRequest): Decision {
    // A grant is one more role for this service, where the policy lets that kind of grant unlock it;
    // the conditions (state-secret clearance and networks first) then hold as for any other role.
    const grant = input.grant;
    const request: AccessRequest = grant && !input.principal.roles.includes(grant.role) && grantUnlocks(this.conditions, grant, input.route.id) ? { ...input, principal: { ...input.principal, roles: [...input.principal.roles, grant.role] } } : input;
    // Every caller (data plane, admin decide tool, policy tests, what-if) decides on the canonical path.
    const base = this.authorize(request.principal, { routeId: request.route.id, path: canonicalPolicyPath(request.path) }, request.method);
    if (base.effect !== 'allow') return base;
    const outcome = evaluateConditions(request, this.conditions);
    if (outcome.denied) {
      return Object.freeze({ ...base, effect: 'deny', reasons: Object.freeze([outcome.denied.reason]), condition: outcome.denied.condition, obligations: Object.freeze([]) });
    }
    if (outcome.obligations.length === 0) return base;
    return Object.freeze({ ...base, obligations: Object.freeze(outcome.obligations) });
  }

  /**
   * Casbin decisions depend only on (effect, reason, rule): one frozen value each, made once, so
   * a decision allocates nothing (garbage collection pauses are what a tail latency is made of).
   */
  private readonly decisions = new Map<string, WeakMap<StoredRuleLike, Decision>>();
  private noMatch: Decision | null = null;

  /** The decision each rule makes, by position, for RuleIndex.authorize() codes. */
  private readonly byPosition: (Decision | undefined)[];

  private indexDecision(code: number): Decision {
    if (code === NO_RULE) return this.decision('deny', 'policy-no-match', null);
    const position = code >= 0 ? code : -code - 2;
    let d = this.byPosition[position];
    if (d === undefined) {
      const rule = this.index!.ruleAt(position);
      this.byPosition[position] = d = code >= 0 ? this.makeDecision('allow', 'policy-allowed', rule) : this.makeDecision('deny', 'policy-denied', rule);
    }
    return d;
  }

  private decision(effect: Effect, reason: DecisionReason, rule: StoredRuleLike | null): Decision {
    if (rule === null) return (this.noMatch ??= this.makeDecision(effect, reason, null));
    let byRule = this.decisions.get(reason);
    if (!byRule) this.decisions.set(reason, (byRule = new WeakMap()));
    let d = byRule.get(rule);
    if (!d) byRule.set(rule, (d = this.makeDecision(effect, reason, rule)));
    return d;
  }

  private makeDecision(effect: Effect, reason: DecisionReason, rule: StoredRuleLike | null): Decision {
    return Object.freeze({
      effect,
      reasons: (REASONS[reason] ??= Object.freeze([reason])),
      rule: rule ? `p, ${rule.map((f, i) => (i === 3 ? fromKeyMatch2(f) : f)).join(', ')}` : null,
      policyVersion: this.version,
      obligations: NO_OBLIGATIONS,
    });
  }
}

type StoredRuleLike = readonly string[];

// Frozen and shared by every decision that has them (one pair per decision would be ~10 MiB at 100k rules).
const REASONS: Partial<Record<DecisionReason, readonly DecisionReason[]>> = {};
const NO_OBLIGATIONS: readonly Obligation[] = Object.freeze([]);
