import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../gateway/errors.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

function tableRows(heading: string): string[][] {
  const start = readme.indexOf(`### ${heading}\n`);
  expect(start, `README has a "### ${heading}" section`).toBeGreaterThan(-1);
  const section = readme.slice(start).split('\n## ')[0]!.split('\n### ')[0]!;
  return section
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map((l) =>
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    );
}

// Reason codes: test/reasons.test.ts.
describe('README documents every published code', () => {
  it('lists each error code with its HTTP status and message, and no code that does not exist', () => {
    const rows = tableRows('Error codes');
    const documented = new Map(rows.map(([code, status, message]) => [code!.replaceAll('`', ''), { status: Number(status), message }]));
    for (const [code, { status, message }] of Object.entries(ERROR_CODES)) {
      expect(documented.get(code), code).toEqual({ status, message });
    }
    expect([...documented.keys()].sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });
});
