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
 *   - keyMatch2 means what the regular expression Casbin builds from the rule path means.
 *
 * Speed: everything a decision needs is built at load (path matchers, method bit masks, role
 * closures on first use). A decision allocates at most the request's first path segment: no
 * result tuples, no closures, no regular expression for the usual path shapes. Garbage makes
 * collector pauses, and those pauses are the tail of the latency distribution.
 */

/** The matcher of policies/model.conf this index implements, whitespace-insensitive. */
export const CANONICAL_MATCHER = '(p.sub=="*"||g(r.sub,p.sub))&&(p.dom=="*"||r.dom==p.dom)&&(p.route=="*"||r.route==p.route)&&keyMatch2(r.path,p.path)&&methodMatch(r.act,p.act)';

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

/**
 * A keyMatch2 pattern as segments, for the shapes parsePolicy() accepts: "/" then literal,
 * ":name" or "*" segments, "*" only last. Its regular expression is "^" + "/item" for each
 * item + "$", with a literal as itself (escaped dots), ":name" as [^/]+ and "*" as .* — so
 * matching walks the path once. Any other shape keeps Casbin's regular expression.
 */
const PARAM = 1;
const STAR = 2;
type Item = string | typeof PARAM | typeof STAR;

const LITERAL_SEGMENT = /^(?:[A-Za-z0-9_~-]|\\\.)*$/;
const PARAM_SEGMENT = /^:[A-Za-z0-9_]+$/;

export function compilePathItems(pattern: string): Item[] | null {
  if (!pattern.startsWith('/')) return null;
  const segs = pattern.slice(1).split('/');
  const items: Item[] = [];
  for (let k = 0; k < segs.length; k++) {
    const seg = segs[k]!;
    if (seg === '*' && k === segs.length - 1) items.push(STAR);
    else if (PARAM_SEGMENT.test(seg)) items.push(PARAM);
    else if (LITERAL_SEGMENT.test(seg)) items.push(seg.replaceAll('\\.', '.'));
    else return null;
  }
  return items;
}

/** `.` in a JavaScript regular expression without the s flag does not match these. */
function hasLineTerminator(s: string, from: number): boolean {
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 10 || c === 13 || c === 0x2028 || c === 0x2029) return true;
  }
  return false;
}

/** Same as keyMatch2Regex(pattern).test(path) for the items of that pattern. */
export function matchPathItems(items: readonly Item[], path: string): boolean {
  let pos = 0;
  const n = path.length;
  for (let k = 0; k < items.length; k++) {
    if (pos >= n || path.charCodeAt(pos) !== 47 /* / */) return false;
    pos++;
    const item = items[k]!;
    if (item === STAR) return !hasLineTerminator(path, pos);
    if (item === PARAM) {
      // [^/]+ is greedy and is followed by "/" or the end: it takes the whole segment.
      let end = path.indexOf('/', pos);
      if (end === -1) end = n;
      if (end === pos) return false;
      pos = end;
    } else {
      if (!path.startsWith(item, pos)) return false;
      pos += item.length;
    }
  }
  return pos === n;
}

const WILD = '\u0001';
const NO_MATCH: EnforceResult = Object.freeze([false, Object.freeze([])]) as EnforceResult;
/** authorize() codes besides rule positions: no rule matched. */
export const NO_RULE = -1;

interface Compiled {
  readonly rule: StoredRule;
  /** Path items, or null: use `regex`. */
  readonly items: readonly Item[] | null;
  readonly regex: RegExp | null;
  /** Bit mask of the rule's methods; -1 for "*". */
  readonly methods: number;
}

/** Rule positions of one (route, subject, first segment, agency), ascending = file order. */
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

/** Method names get one bit each; beyond 30 names every rule tests its list by name. */
const MAX_METHOD_BITS = 30;

export class RuleIndex {
  private readonly compiled: Compiled[];
  /** route → subject → first path segment → agency → positions. */
  private readonly byRoute = new Map<string, Map<string, SubjectEntry>>();
  private readonly parents = new Map<string, string[]>();
  private readonly closures = new Map<string, readonly string[]>();
  private readonly methodBits = new Map<string, number>();
  /** When the policy names more methods than bits: the lists by name. */
  private readonly methodLists: (readonly string[] | null)[] | null;

  constructor(rules: readonly StoredRule[], groupings: readonly (readonly string[])[]) {
    const acts = new Set<string>();
    for (const rule of rules) acts.add(rule[4]!);
    for (const act of acts) if (act !== '*') for (const m of act.split('|')) if (!this.methodBits.has(m)) this.methodBits.set(m, this.methodBits.size);
    const byBit = this.methodBits.size <= MAX_METHOD_BITS;
    if (byBit) for (const [m, bit] of this.methodBits) this.methodBits.set(m, 1 << bit);
    this.methodLists = byBit ? null : rules.map((r) => (r[4] === '*' ? null : r[4]!.split('|')));
    // Many rules share a path pattern or a method list: compile each once (load time at 100k rules).
    const patterns = new Map<string, { items: readonly Item[] | null; regex: RegExp | null; seg: string }>();
    const masks = new Map<string, number>();
    this.compiled = rules.map((rule, i) => {
      const [sub, dom, route, path, act, eft] = rule as [string, string, string, string, string, string];
      let pattern = patterns.get(path);
      if (pattern === undefined) {
        const items = compilePathItems(path);
        let regex: RegExp | null = null;
        if (items === null) {
          regex = keyMatch2Regex(path);
          // V8 compiles a regular expression on its first use: do it now, not inside a decision.
          regex.test(path);
        }
        patterns.set(path, (pattern = { items, regex, seg: firstSegmentOf(path) }));
      }
      const { items, regex, seg } = pattern;
      let subjects = this.byRoute.get(route);
      if (!subjects) this.byRoute.set(route, (subjects = new Map()));
      let entry = subjects.get(sub);
      if (!entry) subjects.set(sub, (entry = new Map()));
      let byDomain = entry.get(seg);
      if (!byDomain) entry.set(seg, (byDomain = new Map()));
      let bucket = byDomain.get(dom);
      if (!bucket) byDomain.set(dom, (bucket = { deny: [], allow: [] }));
      (eft === 'deny' ? bucket.deny : bucket.allow).push(i);
      let methods = act === '*' ? -1 : masks.get(act);
      if (methods === undefined) {
        methods = 0;
        if (byBit) for (const m of act.split('|')) methods |= this.methodBits.get(m)!;
        masks.set(act, methods);
      }
      return { rule, items, regex, methods };
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
      for (const n of frontier) {
        for (const p of this.parents.get(n) ?? []) {
          if (seen.has(p)) continue;
          seen.add(p);
          next.push(p);
        }
      }
      frontier = next;
    }
    found = Object.freeze([...seen]);
    this.closures.set(name, found);
    return found;
  }

  /** The rule at a position authorize() returned. */
  ruleAt(position: number): StoredRule {
    return this.compiled[position]!.rule;
  }

  get size(): number {
    return this.compiled.length;
  }

  // One evaluation's state. Decisions are synchronous, so no two evaluations interleave.
  private deny = Infinity;
  private allow = -1;
  private path = '';
  private act = '';
  private actBits = 0;
  private seg = '';
  private dom = '';
  private routeSubjects: Map<string, SubjectEntry> | undefined = undefined;
  private anyRouteSubjects: Map<string, SubjectEntry> | undefined = undefined;

  private begin(dom: string, route: string, path: string, act: string): void {
    this.path = path;
    this.act = act;
    this.actBits = this.methodBits.get(act) ?? 0;
    this.seg = firstSegmentOfRequest(path);
    this.dom = dom;
    this.routeSubjects = route === '*' ? undefined : this.byRoute.get(route);
    this.anyRouteSubjects = this.byRoute.get('*');
  }

  /** Route, subject, agency and first segment are settled by the bucket; method and path remain. */
  private matches(i: number): boolean {
    const c = this.compiled[i]!;
    if (c.methods !== -1) {
      if (this.methodLists === null) {
        if ((c.methods & this.actBits) === 0) return false;
      } else if (!this.methodLists[i]!.includes(this.act)) return false;
    }
    return c.items !== null ? matchPathItems(c.items, this.path) : c.regex!.test(this.path);
  }

  /**
   * Casbin evaluates in file order and stops at the first matching deny; without one, the last
   * matching allow explains the result. Only those two positions matter, so each list is scanned
   * from the end that can improve on the best found so far.
   */
  private scanBucket(b: Bucket | undefined): void {
    if (b === undefined) return;
    const deny = b.deny;
    for (let k = 0; k < deny.length; k++) {
      const i = deny[k]!;
      if (i >= this.deny) break;
      if (this.matches(i)) {
        this.deny = i;
        break;
      }
    }
    const allow = b.allow;
    for (let k = allow.length - 1; k >= 0; k--) {
      const i = allow[k]!;
      if (i <= this.allow) break;
      if (this.matches(i)) {
        this.allow = i;
        break;
      }
    }
  }

  private scanDomains(byDomain: Map<string, Bucket> | undefined): void {
    if (byDomain === undefined) return;
    this.scanBucket(byDomain.get(this.dom));
    // p.dom == "*" matches every agency; when the request's agency is "*" itself, that was the bucket above.
    if (this.dom !== '*') this.scanBucket(byDomain.get('*'));
  }

  private scanEntry(entry: SubjectEntry | undefined): void {
    if (entry === undefined) return;
    this.scanDomains(entry.get(this.seg));
    if (this.seg !== WILD) this.scanDomains(entry.get(WILD));
  }

  /** The rules whose p.sub is exactly `name`, on the request's route and on route *. */
  private scanName(name: string): void {
    if (this.routeSubjects !== undefined) this.scanEntry(this.routeSubjects.get(name));
    if (this.anyRouteSubjects !== undefined) this.scanEntry(this.anyRouteSubjects.get(name));
  }

  /** Every rule g(sub, p.sub) holds for, except p.sub == "*" (scanned once per request). */
  private scanSubject(sub: string): void {
    if (!this.parents.has(sub)) {
      if (sub !== '*') this.scanName(sub);
      return;
    }
    const names = this.closure(sub);
    for (let k = 0; k < names.length; k++) if (names[k] !== '*') this.scanName(names[k]!);
  }

  /** Same result as Casbin enforceExSync(sub, dom, route, path, act) on policies/model.conf. */
  enforceEx(sub: string, dom: string, route: string, path: string, act: string): EnforceResult {
    this.begin(dom, route, path, act);
    this.deny = Infinity;
    this.allow = -1;
    this.scanName('*');
    this.scanSubject(sub);
    if (this.deny !== Infinity) return [false, this.compiled[this.deny]!.rule];
    return this.allow >= 0 ? [true, this.compiled[this.allow]!.rule] : NO_MATCH;
  }

  /**
   * enforceEx for the national ID and then each role, combined as PolicyEngine does: the first
   * subject (in that order) with a matching deny decides; else the first subject's allow; else
   * none. Returns an allowing rule's position (>= 0), -(position + 2) for a denying rule, or
   * NO_RULE. Rules for p.sub == "*" apply to every subject alike, so they are scanned once.
   */
  authorize(nationalId: string, roles: readonly string[], dom: string, route: string, path: string, act: string): number {
    this.begin(dom, route, path, act);
    this.deny = Infinity;
    this.allow = -1;
    this.scanName('*');
    const starDeny = this.deny;
    const starAllow = this.allow;
    let allowed = NO_RULE;
    for (let k = -1; k < roles.length; k++) {
      this.deny = starDeny;
      this.allow = starAllow;
      this.scanSubject(k < 0 ? nationalId : roles[k]!);
      if (this.deny !== Infinity) return -(this.deny + 2);
      if (allowed === NO_RULE && this.allow >= 0) allowed = this.allow;
    }
    return allowed;
  }
}
