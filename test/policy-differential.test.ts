import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PolicyEngine } from '../policies/engine.js';
import { generatePolicy, generateRequests } from '../bench/policy-gen.js';
import { createPrng } from '../bench/prng.js';
import { newEnforcer, newModelFromString } from 'casbin';
import { compilePathItems, keyMatch2Regex, matchPathItems, RuleIndex } from '../policies/fast-match.js';
import type { Principal } from '../core/principal.js';

/**
 * The fast path (index + cache) against plain Casbin enforceEx on the same model, policy and
 * request: seeded random policies and requests, reproducible from the seed in the test name.
 */
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const MODEL_TEXT = readFileSync(join(ROOT, 'policies/model.conf'), 'utf8');
const NAMES = { model: 'model.conf', policy: 'policy.csv', conditions: 'conditions.yaml' };

async function engineFor(csv: string, routes: readonly string[]): Promise<PolicyEngine> {
  return PolicyEngine.fromSources({ model: MODEL_TEXT, policy: csv, conditions: null }, NAMES, new Set(routes), { cacheEntries: 64, casbinReference: true });
}

function who(nationalId: string, agency: string | null, roles: string[]): Principal {
  return Object.freeze({ nationalId, agency, roles: Object.freeze(roles), clearance: 'none', assuranceLevel: 0, sessionId: null, acr: null, issuer: 'urn:test', authTime: null });
}

const SHAPES = [
  // small and dense: many rules per role, lots of overlap, more denies
  { rules: 120, roles: 8, agencies: 3, routes: 3, groupings: 10, personalSubjects: 5, denyRatio: 0.3 },
  { rules: 400, roles: 30, agencies: 6, routes: 5, groupings: 40, personalSubjects: 10, denyRatio: 0.15 },
  { rules: 800, roles: 120, agencies: 12, routes: 8, groupings: 150, personalSubjects: 20, denyRatio: 0.12 },
];
const SEEDS = [1, 2, 20260101, 987654321];

describe('the indexed engine decides exactly as plain Casbin', () => {
  it('uses the index for policies/model.conf', async () => {
    const engine = await engineFor('p, r1, *, a, /x, GET, allow\n', ['a']);
    expect(engine.indexed).toBe(true);
  });

  for (const shape of SHAPES) {
    for (const seed of SEEDS) {
      it(`${shape.rules} rules, ${shape.roles} roles, seed ${seed}: every subject's enforceEx and every decision match`, { timeout: 120_000 }, async () => {
        const policy = generatePolicy({ ...shape, seed });
        const engine = await engineFor(policy.csv, policy.routes);
        // Repeats on purpose: the second pass is answered from the cache and must not differ either.
        // Plain Casbin scans every rule per subject: fewer requests for the larger shapes keep the test quick.
        const requests = generateRequests(policy, shape.rules > 500 ? 120 : shape.rules > 200 ? 200 : 300, { seed: seed ^ 0xabc, targetedRatio: 0.7 });
        const show = (d: { effect: string; reasons: readonly string[]; rule: string | null }) => `${d.effect} ${d.reasons.join()} ${d.rule}`;
        const mismatches: string[] = [];
        let allows = 0;
        let denies = 0;
        // Twice on purpose: the second pass is answered from the cache and must not differ either.
        for (const pass of [1, 2]) {
          requests.forEach((r, i) => {
            const fast = show(engine.authorize(r.principal, r.resource, r.method));
            const plain = show(engine.authorizeWithCasbin(r.principal, r.resource, r.method));
            if (fast !== plain) mismatches.push(`pass ${pass} request ${i}: fast "${fast}" ≠ casbin "${plain}"`);
            if (pass === 1 && fast.startsWith('allow')) allows++;
            if (pass === 1 && fast.includes('policy-denied')) denies++;
            // Each subject alone, too: the combination above could hide two compensating errors.
            if (pass === 1 && i % 2 === 0) {
              for (const s of [r.principal.nationalId, ...r.principal.roles]) {
                const args = [s, r.principal.agency ?? '', r.resource.routeId, r.resource.path, r.method] as const;
                const a = JSON.stringify(engine.enforceEx(...args));
                const b = JSON.stringify(engine.enforceExWithCasbin(...args));
                if (a !== b) mismatches.push(`request ${i} subject ${s}: fast ${a} ≠ casbin ${b}`);
              }
            }
          });
        }
        expect(mismatches).toEqual([]);
        // The comparison means something only if both outcomes occur.
        expect(allows).toBeGreaterThan(10);
        expect(denies).toBeGreaterThan(0);
      });
    }
  }

  it('role inheritance deeper than Casbin’s 10 levels is cut where Casbin cuts it', async () => {
    const chain = Array.from({ length: 14 }, (_, i) => `role-${i}`);
    const csv = [...chain.map((r) => `p, ${r}, *, a, /${r}, GET, allow`), ...chain.slice(1).map((r, i) => `g, ${chain[i]}, ${r}`)].join('\n');
    const engine = await engineFor(csv, ['a']);
    for (const target of chain) {
      const p = who('056085000001', null, ['role-0']);
      const fast = engine.authorize(p, { routeId: 'a', path: `/${target}` }, 'GET');
      expect(fast).toEqual(engine.authorizeWithCasbin(p, { routeId: 'a', path: `/${target}` }, 'GET'));
    }
    // role-10 is 10 links away (allowed), role-11 is 11 (not), as in Casbin's DefaultRoleManager(10).
    expect(engine.authorize(who('056085000001', null, ['role-0']), { routeId: 'a', path: '/role-10' }, 'GET').effect).toBe('allow');
    expect(engine.authorize(who('056085000001', null, ['role-0']), { routeId: 'a', path: '/role-11' }, 'GET').effect).toBe('deny');
  });

  it('hand-picked edge cases: dots, trailing slashes, wildcards in the first segment, route *, cycles', async () => {
    const csv = ['p, r1, *, a, /v1.0/records/:id, GET, allow', 'p, r1, *, a, /records, GET, allow', 'p, r1, *, a, /:kind/list, GET, allow', 'p, r1, dom1, *, /*, POST, allow', 'p, r2, *, *, /records/*, *, deny', 'p, *, *, a, /, HEAD, allow', 'p, r2, *, a, /records/:id, GET, allow', 'g, r1, r2', 'g, r2, r1'].join('\n');
    const engine = await engineFor(csv, ['a', 'b']);
    const rng = createPrng(7);
    const paths = ['/', '', '/v1.0/records/1', '/v1x0/records/1', '/records', '/records/', '/records/1', '/records/1/x', '/x/list', '/list', '/a/b/list', 'records', '//records'];
    for (let i = 0; i < 2000; i++) {
      const p = who(rng.chance(0.5) ? '056085000001' : '056085000002', rng.pick([null, 'dom1', 'dom2']), rng.chance(0.5) ? ['r1'] : rng.chance(0.5) ? ['r2'] : ['r3']);
      const resource = { routeId: rng.pick(['a', 'b', 'c']), path: rng.pick(paths) };
      const method = rng.pick(['GET', 'HEAD', 'POST', 'DELETE']);
      expect(engine.authorize(p, resource, method)).toEqual(engine.authorizeWithCasbin(p, resource, method));
    }
  });

  it('the regex-free path matcher agrees with Casbin’s keyMatch2 regular expression on random patterns and paths', () => {
    const rng = createPrng(57);
    const segs = ['a', 'b', 'v1\\.0', 'x-y', ':id', ':sid', '*', ''];
    const pathSegs = ['a', 'b', 'v1.0', 'v1x0', 'x-y', '1', '22', '', 'a\nb', 'a\u2028', '\r', ':id', '*', '.'];
    let compiled = 0;
    let matched = 0;
    for (let i = 0; i < 3000; i++) {
      const pattern = '/' + Array.from({ length: rng.int(0, 4) }, () => rng.pick(segs)).join('/');
      const items = compilePathItems(pattern);
      if (items === null) continue; // kept on Casbin's regular expression: nothing to compare
      compiled++;
      const regex = keyMatch2Regex(pattern);
      for (let j = 0; j < 20; j++) {
        const path = (rng.chance(0.9) ? '/' : '') + Array.from({ length: rng.int(0, 5) }, () => rng.pick(pathSegs)).join('/');
        const expected = regex.test(path);
        if (expected) matched++;
        expect(matchPathItems(items, path), `${pattern} on ${JSON.stringify(path)}`).toBe(expected);
      }
    }
    expect(compiled).toBeGreaterThan(1000);
    expect(matched).toBeGreaterThan(500);
  });

  it('paths with line terminators and empty segments decide as in Casbin (".*" does not match a newline)', async () => {
    const csv = ['p, r1, *, a, /files/*, GET, allow', 'p, r1, *, a, /files/:id, GET, deny', 'p, r1, *, a, /, GET, allow', 'p, *, *, a, /files/:id/x, *, allow'].join('\n');
    const engine = await engineFor(csv, ['a']);
    const paths = ['/files/a\nb', '/files/a/\n', '/files/\r', '/files/\u2028x', '/files/\u2029', '/files/', '/files//', '/files/1/x/', '/files/1/x', '/files//x/', '/', '//', '/\n'];
    for (const path of paths) {
      for (const method of ['GET', 'PUT']) {
        const p = who('056085000001', 'dom1', ['r1']);
        expect(engine.authorize(p, { routeId: 'a', path }, method), `${method} ${JSON.stringify(path)}`).toEqual(engine.authorizeWithCasbin(p, { routeId: 'a', path }, method));
      }
    }
  });

  it('more method names than bits: the index tests methods by name and still agrees with Casbin', async () => {
    // parsePolicy() allows 7 methods; the index itself takes any, and past 30 names it cannot use a bit each.
    const methods = Array.from({ length: 40 }, (_, i) => `M${i}`);
    const rng = createPrng(30);
    const rules: string[][] = [];
    for (let i = 0; i < 300; i++) {
      const act = rng.chance(0.1) ? '*' : [...new Set(Array.from({ length: rng.int(1, 3) }, () => rng.pick(methods)))].join('|');
      rules.push([rng.pick(['r1', 'r2', '*']), rng.pick(['*', 'd1']), rng.pick(['*', 'a']), rng.pick(['/x', '/x/:id', '/*', '/y/*']), act, rng.chance(0.2) ? 'deny' : 'allow']);
    }
    const unique = [...new Map(rules.map((r) => [r.join(','), r])).values()];
    const index = new RuleIndex(unique, [['r1', 'r2']]);
    const enforcer = await newEnforcer(newModelFromString(MODEL_TEXT));
    await enforcer.addFunction('methodMatch', (m: string, pattern: string) => pattern === '*' || pattern.split('|').includes(m));
    await enforcer.addNamedPolicies('p', unique);
    await enforcer.addNamedGroupingPolicies('g', [['r1', 'r2']]);
    let allowed = 0;
    for (let i = 0; i < 1500; i++) {
      const args = [rng.pick(['r1', 'r2', 'r3']), rng.pick(['d1', 'd2']), rng.pick(['a', 'b']), rng.pick(['/x', '/x/1', '/y/z/w', '/z']), rng.pick([...methods, 'GET'])] as const;
      const fast = index.enforceEx(...args);
      if (fast[0]) allowed++;
      expect(JSON.stringify(fast), args.join(' ')).toBe(JSON.stringify(enforcer.enforceExSync(...args)));
    }
    expect(allowed).toBeGreaterThan(50);
  });

  it('a changed model is not indexed: it falls back to plain Casbin and stays correct', async () => {
    const model = MODEL_TEXT.replace('keyMatch2(r.path, p.path)', 'keyMatch(r.path, p.path)');
    expect(model).not.toBe(MODEL_TEXT);
    const engine = await PolicyEngine.fromSources({ model, policy: 'p, r1, *, a, /x/*, GET, allow\n', conditions: null }, NAMES, new Set(['a']));
    expect(engine.indexed).toBe(false);
    expect(engine.authorize(who('056085000001', null, ['r1']), { routeId: 'a', path: '/x/y/z' }, 'GET').effect).toBe('allow');
  });
});
