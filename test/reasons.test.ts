import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { REASONS } from '../core/reasons.js';
import { ROOT } from './helpers/harness.js';
// @ts-expect-error -- a browser module of the admin UI, plain JavaScript without declarations
import { REASON_VI } from '../admin-ui/labels.js';

/**
 * The reasons are a closed list (core/reasons.ts) that SOC rules branch on: each one is
 * documented where readers look for it, each one is emitted by some product code (a reason
 * nothing emits is dead), and product code emits no reason outside the list. Positions typed
 * `Reason` (GatewayError, the pipeline context, decisions) are held to the list by the compiler
 * (`npm run typecheck`); the scan below covers the ones typed `string`.
 */

const KEBAB = /^[a-z]+(-[a-z0-9]+)*$/;
/** The closed list itself. */
const LIST_FILES = new Set(['core/reasons.ts']);
/** Code that decides and emits; admin-ui/ only names reasons, demo/ is not product. */
const PRODUCT_DIRS = ['core', 'identity', 'policies', 'gateway'];

function sources(dir: string): string[] {
  let entries;
  try {
    entries = readdirSync(join(ROOT, dir), { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) => (e.isDirectory() ? sources(`${dir}/${e.name}`) : /\.(ts|js)$/.test(e.name) ? [`${dir}/${e.name}`] : []));
}

// Parsed, not type-checked: strings in comments, regular expressions and templates are told apart.
const product = PRODUCT_DIRS.flatMap(sources)
  .filter((f) => !LIST_FILES.has(f))
  .map((file) => ({ file, source: ts.createSourceFile(file, readFileSync(join(ROOT, file), 'utf8'), ts.ScriptTarget.Latest, true) }));

type Literal = ts.StringLiteral | ts.NoSubstitutionTemplateLiteral;

function literals(source: ts.SourceFile): Literal[] {
  const found: Literal[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) found.push(node);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** `reason`, `reasons`, `limitReason`, `err.reason`, `ctx.reasons`… */
const REASON_NAME = /reasons?$/i;
function namedReason(node: ts.Node): boolean {
  if (ts.isIdentifier(node) || ts.isStringLiteral(node)) return REASON_NAME.test(node.text);
  if (ts.isPropertyAccessExpression(node)) return REASON_NAME.test(node.name.text);
  return false;
}

/** Another vocabulary also called a reason: why the audit chain wrote a checkpoint (CheckpointReason). */
const CHECKPOINT_REASONS = ['open', 'periodic', 'rotate', 'retention', 'close'];
const OTHER_REASONS: Record<string, readonly string[]> = { 'gateway/audit/chain.ts': CHECKPOINT_REASONS, 'gateway/audit/verify.ts': CHECKPOINT_REASONS };

const ASSIGN_OR_COMPARE = new Set([ts.SyntaxKind.EqualsToken, ts.SyntaxKind.EqualsEqualsEqualsToken, ts.SyntaxKind.ExclamationEqualsEqualsToken]);

/**
 * Literals in the places a reason is emitted or compared, whatever their declared type: the
 * value of a key or variable named …reason(s) (or an element of the array given to one), the
 * argument of `….reasons.push()`, one side of a comparison with one. Positions typed `Reason`
 * are checked by the compiler too; this also covers those typed `string`.
 */
function reasonLiterals(source: ts.SourceFile): string[] {
  const inReasonPlace = (lit: Literal): boolean => {
    // Up through what passes a value on unchanged: arrays, `a ? b : c`, `a ?? b`, `a || b`, parentheses, `as`.
    let at: ts.Node = lit;
    for (;;) {
      const up = at.parent;
      const passesOn =
        ts.isArrayLiteralExpression(up) ||
        ts.isParenthesizedExpression(up) ||
        ts.isAsExpression(up) ||
        ts.isSatisfiesExpression(up) ||
        (ts.isConditionalExpression(up) && up.condition !== at) ||
        (ts.isBinaryExpression(up) && [ts.SyntaxKind.QuestionQuestionToken, ts.SyntaxKind.BarBarToken].includes(up.operatorToken.kind));
      if (!passesOn) break;
      at = up;
    }
    const parent = at.parent;
    if ((ts.isPropertyAssignment(parent) || ts.isVariableDeclaration(parent)) && parent.initializer === at) return namedReason(parent.name);
    if (ts.isBinaryExpression(parent) && ASSIGN_OR_COMPARE.has(parent.operatorToken.kind)) return namedReason(parent.left === at ? parent.right : parent.left);
    if (ts.isCallExpression(parent) && ts.isPropertyAccessExpression(parent.expression) && parent.expression.name.text === 'push') return namedReason(parent.expression.expression);
    return false;
  };
  // Text with spaces is a reason written for people (a lock's, an access request's), not a code.
  return literals(source)
    .filter((lit) => inReasonPlace(lit) && !/\s/.test(lit.text))
    .map((lit) => lit.text);
}

function readmeReasonRows(): Map<string, string> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('### Reason codes\n');
  expect(start, 'README has a "### Reason codes" section').toBeGreaterThan(-1);
  const section = readme.slice(start).split('\n## ')[0]!.split('\n### ')[0]!;
  const rows = section
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map((l) =>
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    );
  return new Map(rows.map(([reason, meaning]) => [reason!.replaceAll('`', ''), meaning!]));
}

describe('every reason of the closed list is documented', () => {
  it('in README "Reason codes", with the meaning the list gives, and the README lists no other', () => {
    const documented = readmeReasonRows();
    for (const [reason, meaning] of Object.entries(REASONS)) expect(documented.get(reason), reason).toBe(meaning);
    expect([...documented.keys()].sort()).toEqual(Object.keys(REASONS).sort());
  });

  it('in the admin UI, by a Vietnamese name (admin-ui/labels.js), and no name is left for a reason that does not exist', () => {
    for (const reason of Object.keys(REASONS)) {
      expect(REASON_VI[reason], reason).toBeTruthy();
      expect(REASON_VI[reason], reason).not.toBe(reason);
    }
    expect(Object.keys(REASON_VI).sort()).toEqual(Object.keys(REASONS).sort());
  });

  it('as a kebab-case code the SOC decision event schema accepts', () => {
    const schema = JSON.parse(readFileSync(join(ROOT, 'gateway/audit/decision-event.schema.json'), 'utf8'));
    const pattern = new RegExp(schema.properties.ztgate.properties.reasons.items.pattern);
    for (const reason of Object.keys(REASONS)) {
      expect(reason).toMatch(KEBAB);
      expect(reason).toMatch(pattern);
    }
  });
});

describe('reasons and the product code', () => {
  it('finds the product code to scan', () => {
    expect(product.length).toBeGreaterThan(50);
    expect(product.map((p) => p.file)).toContain('gateway/pipeline.ts');
  });

  it('every reason is emitted by product code somewhere (a reason nothing can emit is dead)', () => {
    const used = new Set(product.flatMap((p) => literals(p.source).map((l) => l.text)));
    const dead = Object.keys(REASONS).filter((r) => !used.has(r));
    expect(dead, `reasons no product code emits: ${dead.join(', ')}`).toEqual([]);
  });

  it('every reason product code emits or compares is in the list', () => {
    const unknown = product.flatMap((p) =>
      reasonLiterals(p.source)
        .filter((r) => !Object.hasOwn(REASONS, r) && !OTHER_REASONS[p.file]?.includes(r))
        .map((r) => `${p.file}: ${r}`),
    );
    expect(unknown, `reasons outside core/reasons.ts:\n${unknown.join('\n')}`).toEqual([]);
  });

  it('the scan sees reasons where they are written, and not in comments or type checks', () => {
    const code = ts.createSourceFile(
      'fixture.ts',
      `
      ctx.reasons.push('token-typo');
      deny({ reason: 'lock-typo' });
      lock({ reason: 'hết thời hạn / period ended' });
      if (err.reason === "lock-gone" || typeof reason !== 'string') throw new Error('not-a-reason');
      let limitReason = 'quota-typo';
      limitReason = \`quota-late\`;
      const e = { reasons: ['policy-allowed', 'policy-typo'] };
      const f = { reasons: list.length > 0 ? list : (['route-typo'] as string[]), reason: other ?? 'session-typo' };
      // reason: 'in-a-comment' /* ignore: 'policy-no-match' */
      /* reasons: ['in-a-block'] */
      `,
      ts.ScriptTarget.Latest,
      true,
    );
    expect(reasonLiterals(code)).toEqual(['token-typo', 'lock-typo', 'lock-gone', 'quota-typo', 'quota-late', 'policy-allowed', 'policy-typo', 'route-typo', 'session-typo']);
    expect(literals(code).map((l) => l.text)).not.toContain('policy-no-match');
  });
});
