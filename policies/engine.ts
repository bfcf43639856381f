import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { newEnforcer, newModelFromString, type Enforcer } from 'casbin';
import type { Principal } from '../identity/principal.js';

/**
 * The policy decision point: Casbin owns the semantics (policies/model.conf), this module
 * gives it a typed face — authorize(principal, resource, action) → Decision — and refuses
 * policy files it cannot read unambiguously, naming file and line.
 */

export type Effect = 'allow' | 'deny';

export interface Decision {
  readonly effect: Effect;
  readonly reasons: readonly ('policy-allowed' | 'policy-denied' | 'policy-no-match')[];
  /** The matched rule as written in the policy file, e.g. "p, ho-tich-reader, *, ho-tich, /records, GET|HEAD, allow". */
  readonly rule: string | null;
  readonly policyVersion: string;
  readonly obligations: readonly never[];
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

interface ParsedPolicy {
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

export class PolicyEngine {
  private constructor(
    private readonly enforcer: Enforcer,
    readonly version: string,
  ) {}

  static async load(modelFile: string, policyFile: string, knownRoutes: ReadonlySet<string>): Promise<PolicyEngine> {
    let modelText: string;
    let policyText: string;
    try {
      modelText = readFileSync(modelFile, 'utf8');
      policyText = readFileSync(policyFile, 'utf8');
    } catch (err) {
      throw new PolicyError([`cannot read policy files: ${(err as Error).message}`]);
    }
    const parsed = parsePolicy(policyText, policyFile, knownRoutes);
    let enforcer: Enforcer;
    try {
      enforcer = await newEnforcer(newModelFromString(modelText));
      await enforcer.addFunction('methodMatch', methodMatch);
      if (parsed.rules.length > 0) await enforcer.addNamedPolicies('p', parsed.rules.map((r) => r.map((f, i) => (i === 3 ? toKeyMatch2(f) : f))));
      if (parsed.groupings.length > 0) await enforcer.addNamedGroupingPolicies('g', parsed.groupings);
      // Evaluate once so a model that parses but cannot evaluate fails at load, not per request.
      // The request copies the first rule: matchers short-circuit, and one that matches nothing
      // would never reach (and so never test) its later functions.
      const [sub, dom, route, path, act] = parsed.rules[0] ?? ['000000000000', '', '', '/', 'GET'];
      enforcer.enforceExSync(sub, dom, route, path, act!.split('|')[0]);
    } catch (err) {
      throw new PolicyError([`${modelFile}: ${(err as Error).message}`]);
    }
    const version = 'sha256:' + createHash('sha256').update(modelText).update('\0').update(policyText).digest('hex').slice(0, 16);
    return new PolicyEngine(enforcer, version);
  }

  /**
   * Deny overrides allow across every subject the official acts as (their national ID and
   * each role): one matched deny rule denies, whatever another role allows.
   */
  authorize(principal: Principal, resource: Resource, action: string): Decision {
    const subjects = [principal.nationalId, ...principal.roles];
    let allowRule: string[] | null = null;
    for (const subject of subjects) {
      const [allowed, rule] = this.enforcer.enforceExSync(subject, principal.agency ?? '', resource.routeId, resource.path, action);
      if (!allowed && rule.length > 0) return this.decision('deny', 'policy-denied', rule);
      if (allowed && allowRule === null) allowRule = rule;
    }
    return allowRule ? this.decision('allow', 'policy-allowed', allowRule) : this.decision('deny', 'policy-no-match', null);
  }

  private decision(effect: Effect, reason: Decision['reasons'][number], rule: string[] | null): Decision {
    return Object.freeze({
      effect,
      reasons: Object.freeze([reason]),
      rule: rule ? `p, ${rule.map((f, i) => (i === 3 ? fromKeyMatch2(f) : f)).join(', ')}` : null,
      policyVersion: this.version,
      obligations: Object.freeze([]),
    });
  }
}
