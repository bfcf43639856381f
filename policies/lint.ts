import { knownServices } from './access.js';
import type { PolicyContext } from './config.js';
import { PolicyEngine, PolicyError, type PolicySources } from './engine.js';
import { EMPTY_CONDITIONS, isStateSecret, parseConditions, type Conditions } from './conditions.js';
import { lintMaskedSamples, readSamples } from './lint-samples.js';
import type { LintFinding } from './lint-finding.js';
import { MAX_HIERARCHY_LEVEL } from './fast-match.js';
import { isNationalId } from '../core/national-id.js';

/**
 * `ztgate policy lint`: what loading does not refuse but a reviewer must see. Syntax errors
 * (file:line) first, then, over the rules that parse: roles and agencies not in the catalogues
 * of the conditions file, allow rules that a deny rule always overrides (shadowed), rules that
 * can never allow (state-secret routes with no allowed network), rules an earlier rule already
 * covers, role inheritance cycles and chains longer than Casbin follows.
 */

interface Rule {
  readonly line: number;
  readonly sub: string;
  readonly dom: string;
  readonly route: string;
  readonly path: string;
  readonly methods: readonly string[] | '*';
  readonly eft: string;
  readonly text: string;
}

function rulesOf(text: string): { rules: Rule[]; groupings: { line: number; child: string; parent: string }[] } {
  const rules: Rule[] = [];
  const groupings: { line: number; child: string; parent: string }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const [kind, ...f] = line.split(',').map((x) => x.trim());
    if (kind === 'p' && f.length === 6) {
      const [sub, dom, route, path, act, eft] = f as [string, string, string, string, string, string];
      rules.push({ line: i + 1, sub, dom, route, path, methods: act === '*' ? '*' : act.split('|'), eft, text: line });
    } else if (kind === 'g' && f.length === 2) groupings.push({ line: i + 1, child: f[0]!, parent: f[1]! });
  });
  return { rules, groupings };
}

/** True when every path keyMatch2 matches for `inner` is also matched by `outer`. Conservative. */
export function pathCovers(outer: string, inner: string): boolean {
  const o = outer.split('/').slice(1);
  const n = inner.split('/').slice(1);
  for (let i = 0; i < o.length; i++) {
    const os = o[i]!;
    // "/*" matches "/" followed by anything: inner must reach this segment.
    if (os === '*' && i === o.length - 1) return i < n.length;
    const ns = n[i];
    if (ns === undefined) return false;
    if (os === '*') return false; // "*" inside a path: keep it simple, claim nothing
    if (os.startsWith(':')) {
      if (ns === '*' || ns === '') return false;
      continue;
    }
    if (os !== ns) return false;
  }
  return o.length === n.length;
}

function methodsCover(outer: Rule['methods'], inner: Rule['methods']): boolean {
  if (outer === '*') return true;
  if (inner === '*') return false;
  return inner.every((m) => outer.includes(m));
}

export async function lintPolicy(config: PolicyContext, sources: PolicySources, names: { model: string; policy: string; conditions: string }, opts: { samplesDir?: string } = {}): Promise<LintFinding[]> {
  const findings: LintFinding[] = [];
  const knownRoutes = knownServices(config);
  let c: Conditions;
  try {
    c = (await PolicyEngine.fromSources(sources, names, knownRoutes, { cacheEntries: 0 })).conditions;
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    for (const p of err.problems) {
      const m = /^(.*?:\d+): (.*)$/s.exec(p);
      findings.push({ level: 'error', at: m ? m[1]! : names.policy, message: m ? m[2]! : p });
    }
    // Go on with what does parse: a reviewer wants every problem of the change in one run.
    c = sources.conditions === null ? EMPTY_CONDITIONS : parseConditions(sources.conditions, names.conditions, knownRoutes).conditions;
  }
  if (opts.samplesDir) {
    const { samples, findings: unreadable } = readSamples(opts.samplesDir, knownRoutes);
    findings.push(...unreadable, ...lintMaskedSamples(c, names.conditions, samples));
  }
  const at = (line: number) => `${names.policy}:${line}`;
  const { rules, groupings } = rulesOf(sources.policy);
  const parents = new Map<string, string[]>();
  for (const g of groupings) parents.set(g.child, [...(parents.get(g.child) ?? []), g.parent]);

  // Catalogues.
  const roleKnown = (r: string) => r === '*' || isNationalId(r) || !c.roles || c.roles.has(r);
  for (const r of rules) {
    if (!roleKnown(r.sub)) findings.push({ level: 'error', at: at(r.line), message: `role "${r.sub}" is not in the roles catalogue (${names.conditions})` });
    if (r.dom !== '*' && c.agencies && !c.agencies.has(r.dom) && !c.communes.has(r.dom)) findings.push({ level: 'error', at: at(r.line), message: `agency "${r.dom}" is not in the agencies or communes catalogue` });
  }
  for (const g of groupings) {
    for (const r of [g.child, g.parent]) if (!roleKnown(r)) findings.push({ level: 'error', at: at(g.line), message: `role "${r}" is not in the roles catalogue (${names.conditions})` });
  }

  // Role inheritance: cycles, and chains longer than Casbin follows (its role manager stops at 10 links).
  const depth = (role: string, seen: string[]): number => {
    if (seen.includes(role)) return Infinity;
    return 1 + Math.max(0, ...(parents.get(role) ?? []).map((p) => depth(p, [...seen, role])));
  };
  for (const g of groupings) {
    const d = depth(g.child, []) - 1;
    if (d === Infinity) findings.push({ level: 'error', at: at(g.line), message: `role inheritance cycle through "${g.child}"` });
    else if (d > MAX_HIERARCHY_LEVEL) findings.push({ level: 'error', at: at(g.line), message: `"${g.child}" inherits through ${d} links; Casbin follows at most ${MAX_HIERARCHY_LEVEL}, the rest never apply` });
  }
  const inherits = (role: string, target: string): boolean => {
    const seen = new Set<string>();
    const walk = (r: string, d: number): boolean => {
      if (r === target) return true;
      if (d >= MAX_HIERARCHY_LEVEL || seen.has(r)) return false;
      seen.add(r);
      return (parents.get(r) ?? []).some((p) => walk(p, d + 1));
    };
    return walk(role, 0);
  };
  // D applies to everyone A applies to: same or wider subject, agency, service, methods and paths.
  const covers = (d: Rule, a: Rule) => (d.sub === '*' || d.sub === a.sub || (a.sub !== '*' && inherits(a.sub, d.sub))) && (d.dom === '*' || d.dom === a.dom) && (d.route === '*' || d.route === a.route) && methodsCover(d.methods, a.methods) && pathCovers(d.path, a.path);

  const routeOf = new Map(config.routes.map((r) => [r.id, r]));
  for (const a of rules) {
    if (a.eft !== 'allow') continue;
    const deny = rules.find((d) => d.eft === 'deny' && covers(d, a));
    if (deny) {
      findings.push({ level: 'error', at: at(a.line), message: `allow rule is shadowed: the deny rule on line ${deny.line} always overrides it ("${deny.text}")` });
      continue;
    }
    const route = routeOf.get(a.route);
    if (route && isStateSecret(route.classification) && c.stateSecretNetworks.length === 0) {
      findings.push({ level: 'error', at: at(a.line), message: `can never allow: "${a.route}" is classified ${route.classification} and the conditions list no stateSecretNetworks` });
    }
    const earlier = rules.find((e) => e.line < a.line && e.eft === 'allow' && covers(e, a));
    if (earlier) findings.push({ level: 'warning', at: at(a.line), message: `redundant: the allow rule on line ${earlier.line} already covers it` });
  }
  return findings;
}
