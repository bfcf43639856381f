/**
 * The fast path of policies/model.conf: the same answer as Casbin's enforceEx() for that model,
 * without scanning every rule. Casbin stays the definition — test/policy-differential.test.ts
 * compares the two over thousands of seeded random policies and requests — and PolicyEngine
 * uses this index only when the model is the one it was written for (CANONICAL_MATCHER).
 *
 * What it reproduces, from node-casbin 5 (coreEnforcer.privateEnforce, DefaultEffectorStream
 * for "some(allow) && !some(deny)", DefaultRoleManager(10)):
 *   - rules are evaluated in file order; the first matching deny ends evaluation: [false, deny];
 *   - otherwise the LAST matching allow is the explanation: [true, allow]; none: [false, []];
 *   - g(r.sub, p.sub) is true for equal names or an inheritance path of at most 10 links;
 *   - keyMatch2 builds its regular expression from the rule path exactly as Casbin does.
 */

/** The matcher of policies/model.conf this index implements, whitespace-insensitive. */
export const CANONICAL_MATCHER =
  '(p.sub=="*"||g(r.sub,p.sub))&&(p.dom=="*"||r.dom==p.dom)&&(p.route=="*"||r.route==p.route)&&keyMatch2(r.path,p.path)&&methodMatch(r.act,p.act)';

/** DefaultRoleManager's maxHierarchyLevel in node-casbin 5. */
export const MAX_HIERARCHY_LEVEL = 10;

/** A stored rule: [sub, dom, route, path (keyMatch2 form), act, eft], as Casbin holds it. */
export type StoredRule = readonly string[];
/** enforceEx's answer: allowed, and the explaining rule ([] when none). */
export type EnforceResult = readonly [boolean, StoredRule];

/** Casbin's keyMatch2 pattern-to-regex transformation, verbatim (builtinOperators.keyMatch2). */
export function keyMatch2Regex(pattern: string): RegExp {
  let key2 = pattern.replace(/\/\*/g, '/.*');
  const regexp = new RegExp(/(.*):[^/]+(.*)/g);
  for (;;) {
    if (!key2.includes('/:')) break;
    key2 = key2.replace(regexp, '$1[^/]+$2');
  }
  if (key2 === '*') key2 = '(.*)';
  return new RegExp('^' + key2 + '$');
}

const WILD = '\u0001';
const NO_MATCH: EnforceResult = Object.freeze([false, Object.freeze([])]) as EnforceResult;

interface Compiled {
  readonly rule: StoredRule;
  readonly regex: RegExp;
  readonly methods: ReadonlySet<string> | null;
}

/** Rule positions of one (route, subject, first segment), ascending = file order. */
interface Bucket {
  readonly deny: number[];
  readonly allow: number[];
}

/** first path segment (or WILD) → agency (or *) → positions. */
type SubjectEntry = Map<string, Map<string, Bucket>>;

/** The first path segment a rule pattern fixes, or WILD when it starts with :name or *. */
function firstSegmentOf(pattern: string): string {
  if (!pattern.startsWith('/')) return WILD;
  const end = pattern.indexOf('/', 1);
  const seg = pattern.slice(1, end === -1 ? undefined : end);
  // Only plain literals index: anything with regex meaning (other than an escaped dot) does not.
  const literal = seg.replaceAll('\\.', '.');
  return /^[A-Za-z0-9_~.-]*$/.test(literal) && !seg.replaceAll('\\.', '').includes('.') ? literal : WILD;
}

function firstSegmentOfRequest(path: string): string {
  if (!path.startsWith('/')) return WILD + WILD; // matches no literal bucket; WILD rules still see it
  const end = path.indexOf('/', 1);
  return path.slice(1, end === -1 ? undefined : end);
}

export class RuleIndex {
  private readonly compiled: Compiled[];
  /** route → subject → first path segment → positions. */
  private readonly byRoute = new Map<string, Map<string, SubjectEntry>>();
  private readonly parents = new Map<string, string[]>();
  private readonly closures = new Map<string, readonly string[]>();

  constructor(rules: readonly StoredRule[], groupings: readonly (readonly string[])[]) {
    const regexes = new Map<string, RegExp>();
    this.compiled = rules.map((rule, i) => {
      const [sub, dom, route, path, act, eft] = rule as [string, string, string, string, string, string];
      let regex = regexes.get(path);
      if (!regex) {
        regexes.set(path, (regex = keyMatch2Regex(path)));
        // V8 compiles a regular expression on its first use: do it now, not inside a decision.
        regex.test(path);
      }
      let subjects = this.byRoute.get(route);
      if (!subjects) this.byRoute.set(route, (subjects = new Map()));
      let entry = subjects.get(sub);
      if (!entry) subjects.set(sub, (entry = new Map()));
      const seg = firstSegmentOf(path);
      let byDomain = entry.get(seg);
      if (!byDomain) entry.set(seg, (byDomain = new Map()));
      let bucket = byDomain.get(dom);
      if (!bucket) byDomain.set(dom, (bucket = { deny: [], allow: [] }));
      (eft === 'deny' ? bucket.deny : bucket.allow).push(i);
      return { rule, regex, methods: act === '*' ? null : new Set(act.split('|')) };
    });
    for (const [child, parent] of groupings as [string, string][]) {
      let list = this.parents.get(child);
      if (!list) this.parents.set(child, (list = []));
      if (!list.includes(parent)) list.push(parent);
    }
  }

  /** The names g(name, p.sub) is true for: itself and its roles up to MAX_HIERARCHY_LEVEL links away. */
  closure(name: string): readonly string[] {
    let found = this.closures.get(name);
    if (found) return found;
    if (!this.parents.has(name)) return [name];
    const seen = new Set([name]);
    let frontier = [name];
    for (let depth = 0; depth < MAX_HIERARCHY_LEVEL && frontier.length > 0; depth++) {
      const next: string[] = [];
      for (const n of frontier) for (const p of this.parents.get(n) ?? []) if (!seen.has(p)) (seen.add(p), next.push(p));
      frontier = next;
    }
    found = Object.freeze([...seen]);
    this.closures.set(name, found);
    return found;
  }

  private readonly scratch: Bucket[] = [];

  private collect(subjects: Map<string, SubjectEntry> | undefined, subs: readonly string[], seg: string, dom: string): void {
    if (!subjects) return;
    for (const s of subs) if (s !== '*') this.collectEntry(subjects.get(s), seg, dom);
    this.collectEntry(subjects.get('*'), seg, dom);
  }

  private collectEntry(entry: SubjectEntry | undefined, seg: string, dom: string): void {
    if (!entry) return;
    this.collectDomains(entry.get(seg), dom);
    if (seg !== WILD) this.collectDomains(entry.get(WILD), dom);
  }

  private collectDomains(byDomain: Map<string, Bucket> | undefined, dom: string): void {
    if (!byDomain) return;
    const b = byDomain.get(dom);
    if (b) this.scratch.push(b);
    // p.dom == "*" matches every agency; when the request's agency is "*" itself, b was that bucket.
    const any = dom === '*' ? undefined : byDomain.get('*');
    if (any) this.scratch.push(any);
  }

  /** Route, subject, agency and first segment are settled by the bucket; method and path remain. */
  private matches(i: number, path: string, act: string): boolean {
    const c = this.compiled[i]!;
    return (c.methods === null || c.methods.has(act)) && c.regex.test(path);
  }

  /** Same result as Casbin enforceExSync(sub, dom, route, path, act) on policies/model.conf. */
  enforceEx(sub: string, dom: string, route: string, path: string, act: string): EnforceResult {
    const subs = this.closure(sub);
    const seg = firstSegmentOfRequest(path);
    // Reused between calls: decisions are synchronous, so no two evaluations interleave.
    const buckets = this.scratch;
    buckets.length = 0;
    if (route !== '*') this.collect(this.byRoute.get(route), subs, seg, dom);
    this.collect(this.byRoute.get('*'), subs, seg, dom);
    if (buckets.length === 0) return NO_MATCH;
    // Casbin evaluates in file order and stops at the first matching deny; without one, the
    // last matching allow explains the result. Only those two positions matter, so each list
    // is scanned from the end that can improve on the best found so far.
    let deny = Infinity;
    for (const b of buckets) {
      for (const i of b.deny) {
        if (i >= deny) break;
        if (this.matches(i, path, act)) {
          deny = i;
          break;
        }
      }
    }
    if (deny !== Infinity) return [false, this.compiled[deny]!.rule];
    let allow = -1;
    for (const b of buckets) {
      for (let k = b.allow.length - 1; k >= 0; k--) {
        const i = b.allow[k]!;
        if (i <= allow) break;
        if (this.matches(i, path, act)) {
          allow = i;
          break;
        }
      }
    }
    return allow >= 0 ? [true, this.compiled[allow]!.rule] : NO_MATCH;
  }
}
