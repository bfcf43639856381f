import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers/harness.js';

/**
 * The rules of .dependency-cruiser.cjs (`npm run lint:deps`), run on a small tree laid out like
 * the project: one forbidden arrow per rule beside the arrows the layers allow. The rules must
 * report exactly the forbidden ones, so a rule that stops biting, or starts refusing an allowed
 * arrow, fails here.
 */

const FILES: Record<string, string> = {
  'core/levels.ts': `import { readFileSync } from 'node:fs';\nimport { x } from './other.js';\nexport const levels = [x, readFileSync];\n`,
  'core/other.ts': `export const x = 1;\n`,
  // npm packages are not the project, ESM-only ones (typebox: an `exports` map and .mjs files) included.
  'core/schema.ts': `import Type from 'typebox';\nimport { Ajv } from 'ajv';\nexport const s = [Type.String(), Ajv];\n`,
  'identity/config.ts': `import Type from 'typebox';\nexport const c = Type.Object({});\n`,
  'policies/config.ts': `import Type from 'typebox';\nexport const c = Type.Object({});\n`,
  'core/upward.ts': `import { thing } from '../gateway/thing.js';\nexport const u = thing;\n`,
  'identity/principal.ts': `import { levels } from '../core/levels.js';\nexport const p = levels;\n`,
  'identity/upward.ts': `import type { Thing } from '../gateway/thing.js';\nexport type U = Thing;\n`,
  'policies/engine.ts': `import { levels } from '../core/levels.js';\nexport const e = levels;\n`,
  'policies/sideways.ts': `import { p } from '../identity/principal.js';\nexport const s = p;\n`,
  'gateway/thing.ts': `import { levels } from '../core/levels.js';\nimport { p } from '../identity/principal.js';\nimport { e } from '../policies/engine.js';\nexport type Thing = string;\nexport const thing = [levels, p, e];\n`,
  'gateway/steps/decide.ts': `import { routes } from '../admin/routes.js';\nexport const d = routes;\n`,
  'gateway/admin/routes.ts': `import { thing } from '../thing.js';\nexport const routes = thing;\n`,
  'gateway/server.ts': `import { routes } from './admin/routes.js';\nexport const server = routes;\n`,
  'gateway/cycle-a.ts': `import { b } from './cycle-b.js';\nexport const a = () => b;\n`,
  'gateway/cycle-b.ts': `import { a } from './cycle-a.js';\nexport const b = () => a;\n`,
  'gateway/uses-demo.ts': `import { demo } from '../demo/run.js';\nexport const ud = demo;\n`,
  'demo/run.ts': `import { server } from '../gateway/server.js';\nexport const demo = server;\n`,
};

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ztgate-deps-'));
  for (const [file, text] of Object.entries(FILES)) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), text);
  }
  copyFileSync(join(ROOT, '.dependency-cruiser.cjs'), join(dir, '.dependency-cruiser.cjs'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true }, include: ['core', 'identity', 'policies', 'gateway', 'demo'] }));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Violation {
  readonly from: string;
  readonly to: string;
  readonly rule: { readonly name: string };
}

const depcruise = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruiser.mjs'), 'core', 'identity', 'policies', 'gateway', 'demo', '--config', '.dependency-cruiser.cjs', ...args], { cwd: dir, encoding: 'utf8' });

describe('the dependency rules (npm run lint:deps)', () => {
  it('report each forbidden arrow by its rule, and none of the arrows the layers allow', () => {
    const run = depcruise('--output-type', 'json');
    expect(run.stderr).toBe('');
    const violations = (JSON.parse(run.stdout) as { summary: { violations: Violation[] } }).summary.violations;
    const found = violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`).sort();
    expect(found).toEqual(
      [
        'core-imports-nothing-of-the-project: core/upward.ts → gateway/thing.ts',
        'identity-imports-only-core: identity/upward.ts → gateway/thing.ts',
        'policies-imports-only-core: policies/sideways.ts → identity/principal.ts',
        'only-the-composition-root-imports-the-admin-plane: gateway/steps/decide.ts → gateway/admin/routes.ts',
        'product-never-imports-demo-bench-or-test: gateway/uses-demo.ts → demo/run.ts',
        'no-cycle: gateway/cycle-a.ts → gateway/cycle-b.ts',
      ].sort(),
    );
  });

  it('fail the command when any rule is broken, naming the rule', () => {
    const run = depcruise();
    expect(run.status).not.toBe(0);
    expect(run.stdout).toContain('error no-cycle: gateway/cycle-a.ts');
  });
});
