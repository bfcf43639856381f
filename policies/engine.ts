import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { newEnforcer, newModelFromString, type Enforcer } from 'casbin';
import type { Principal } from '../identity/principal.js';
import type { AccessRequest, Obligation } from './access.js';
import { EMPTY_CONDITIONS, evaluateConditions, parseConditions, purposeProblem, type ConditionReason, type Conditions } from './conditions.js';
import { CANONICAL_MATCHER, RuleIndex, type EnforceResult } from './fast-match.js';

/**
 * The policy decision point: Casbin owns the semantics (policies/model.conf), this module
 * gives it a typed face — authorize(principal, resource, action) → Decision — and refuses
 * policy files it cannot read unambiguously, naming file and line.
 */

export type Effect = 'allow' | 'deny';

export type DecisionReason = 'policy-allowed' | 'policy-denied' | 'policy-no-match' | ConditionReason;

export interface Decision {
  readonly effect: Effect;
  readonly reasons: readonly DecisionReason[];
  /** The matched rule as written in the policy file, e.g. "p, ho-tich-reader, *, ho-tich, /records, GET|HEAD, allow". */
  readonly rule: string | null;
  readonly policyVersion: string;
  /** What the gateway must do with an allowed request's response (decide() only; authorize() has none). */
  readonly obligations: readonly Obligation[];
  /** The attribute condition that denied an allowed rule, by name (policies/conditions.ts). */
  readonly condition?: string;
}

export interface Resource {
  readonly routeId: string;
  /** Path inside the service, without its prefix and query. */
  readonly path: string;
}

export class PolicyError extends Error {
  readonly code = 'ERR_POLICY_INVALID';
  constructor(readonly problems: readonly string[]) {
    super(`chính sách không hợp lệ / invalid policy\n  - ${problems.join('\n  - ')}`);
    this.name = 'PolicyError';
  }
}

const NAME = /^(\*|[a-z0-9][a-z0-9_.:-]{0,63})$/;
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
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
export function parsePolicy(text: string, file: string, knownRoutes: ReadonlySet<string>): ParsedPolicy {
  const problems: string[] = [];
  const rules: string[][] = [];
  const groupings: string[][] = [];
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    const at = `${file}:${index + 1}`;
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(',').map((f) => f.trim());
    const [kind, ...rest] = fields;
    if (kind === 'p') {
      if (rest.length !== 6) {
        problems.push(`${at}: a "p" rule has 6 fields (subject, agency, service, path, methods, allow|deny); found ${rest.length}`);
        return;
      }
      const [sub, dom, route, path, act, eft] = rest as [string, string, string, string, string, string];
      if (!NAME.test(sub)) problems.push(`${at}: subject "${sub}" is not a role name, national ID or *`);
      if (!NAME.test(dom)) problems.push(`${at}: agency "${dom}" is not an agency id or *`);
      if (route !== '*' && !knownRoutes.has(route)) problems.push(`${at}: service "${route}" is not a configured route`);
      if (!PATH.test(path)) problems.push(`${at}: path "${path}" must start with / and use only keyMatch2 patterns (:name, *) as whole segments`);
      if (act !== '*' && !act.split('|').every((m) => METHODS.has(m))) {
        problems.push(`${at}: methods "${act}" must be * or HTTP methods joined by | (e.g. GET|HEAD)`);
      }
      if (eft !== 'allow' && eft !== 'deny') problems.push(`${at}: effect "${eft}" must be allow or deny`);
      const key = rest.join(',');
      const earlier = seen.get(key);
      if (earlier !== undefined) problems.push(`${at}: repeats the rule on line ${earlier}`);
      seen.set(key, index + 1);
      rules.push(rest);
    } else if (kind === 'g') {
      if (rest.length !== 2 || !rest.every((r) => NAME.test(r) && r !== '*')) {
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
  /** Entries of the decision cache (full decision input → Casbin result); 0 disables it. */
  readonly cacheEntries?: number;
  /** Evaluate with plain Casbin even when the fast index applies (for comparison). */
  readonly plainCasbin?: boolean;
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
 * An approximate LRU in two generations: hits in the old generation move to the new one; when
 * the new one is full it becomes the old one and the oldest entries go all at once. No per-entry
 * bookkeeping, so a miss (most of a random stream) costs one lookup and one insert.
 */
class Lru<V> {
  private young = new Map<string, V>();
  private old = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(key: string): V | undefined {
    const v = this.young.get(key);
    if (v !== undefined) return v;
    const o = this.old.get(key);
    if (o !== undefined) this.set(key, o);
    return o;
  }
  set(key: string, value: V): void {
    if (this.young.size >= Math.ceil(this.max / 2)) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, value);
  }
}

export function policyVersionOf(sources: PolicySources): string {
  const hash = createHash('sha256').update(sources.model).update('\0').update(sources.policy);
  if (sources.conditions !== null) hash.update('\0').update(sources.conditions);
  return 'sha256:' + hash.digest('hex').slice(0, 16);
}

export class PolicyEngine {
  private readonly cache: Lru<Decision> | null;

  private constructor(
    private readonly enforcer: Enforcer,
    private readonly index: RuleIndex | null,
    readonly version: string,
    readonly sources: PolicySources,
    readonly conditions: Conditions,
    /** Parsed rules and role links, for the linter. */
    readonly parsed: ParsedPolicy,
    cacheEntries: number,
  ) {
    this.cache = cacheEntries > 0 ? new Lru(cacheEntries) : null;
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
    let enforcer: Enforcer;
    try {
      enforcer = await newEnforcer(newModelFromString(sources.model));
      await enforcer.addFunction('methodMatch', methodMatch);
      if (stored.length > 0) await enforcer.addNamedPolicies('p', stored);
      if (parsed.groupings.length > 0) await enforcer.addNamedGroupingPolicies('g', parsed.groupings);
      // Evaluate once so a model that parses but cannot evaluate fails at load, not per request.
      // The request copies the first rule: matchers short-circuit, and one that matches nothing
      // would never reach (and so never test) its later functions.
      const [sub, dom, route, path, act] = parsed.rules[0] ?? ['000000000000', '', '', '/', 'GET'];
      enforcer.enforceExSync(sub, dom, route, path, act!.split('|')[0]);
    } catch (err) {
      throw new PolicyError([`${names.model}: ${(err as Error).message}`]);
    }
    // Casbin is the definition; the index is used only for the model it reproduces.
    const index = !opts.plainCasbin && isCanonicalModel(sources.model) ? new RuleIndex(stored, parsed.groupings) : null;
    return new PolicyEngine(enforcer, index, policyVersionOf(sources), sources, conditions, parsed, opts.cacheEntries ?? 10_000);
  }

  /** enforceEx for one subject: the index when it applies, else Casbin. */
  enforceEx(sub: string, dom: string, route: string, path: string, act: string): EnforceResult {
    return this.index ? this.index.enforceEx(sub, dom, route, path, act) : (this.enforcer.enforceExSync(sub, dom, route, path, act) as unknown as EnforceResult);
  }

  /** Plain Casbin, rule by rule: the reference the fast path is tested against. */
  enforceExWithCasbin(sub: string, dom: string, route: string, path: string, act: string): EnforceResult {
    return this.enforcer.enforceExSync(sub, dom, route, path, act) as unknown as EnforceResult;
  }

  /**
   * The Casbin decision. Deny overrides allow across every subject the official acts as (their
   * national ID and each role): one matched deny rule denies, whatever another role allows.
   */
  authorize(principal: Principal, resource: Resource, action: string): Decision {
    const key = this.cache && resource.path.length <= 1024 ? `${principal.nationalId}\u0001${principal.agency ?? ''}\u0001${resource.routeId}\u0001${action}\u0001${resource.path}\u0001${principal.roles.join('\u0002')}` : null;
    if (key !== null) {
      const hit = this.cache!.get(key);
      if (hit) return hit;
    }
    const decision = this.combine(principal, resource, action, (s, d, r, p, a) => this.enforceEx(s, d, r, p, a));
    if (key !== null) this.cache!.set(key, decision);
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

  /** Whether this policy lists purpose codes; without them X-Purpose is neither read nor checked. */
  get usesPurpose(): boolean {
    return this.conditions.purposeCodes.size > 0;
  }

  /** Why a declared purpose is not acceptable, or null (gateway/steps/decide.ts answers 400). */
  purposeProblem(purpose: AccessRequest['purpose']): string | null {
    return purposeProblem(purpose, this.conditions);
  }

  /** The full decision: Casbin, then the attribute conditions, with the obligations of an allow. */
  decide(request: AccessRequest): Decision {
    const base = this.authorize(request.principal, { routeId: request.route.id, path: request.path }, request.method);
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
      reasons: Object.freeze([reason]),
      rule: rule ? `p, ${rule.map((f, i) => (i === 3 ? fromKeyMatch2(f) : f)).join(', ')}` : null,
      policyVersion: this.version,
      obligations: Object.freeze([]),
    });
  }
}

type StoredRuleLike = readonly string[];
