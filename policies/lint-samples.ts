import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Conditions } from './conditions.js';
import type { LintFinding } from './lint-finding.js';

/**
 * A mask that leaks: a condition masks a field (soDinhDanh) while another field of the same
 * record, left unmasked, carries its value or most of it (soTheBHYT ends with the last 10 digits of
 * the national ID). Checked on sample records of each route — the demo's synthetic data, or an
 * extract a province prepares — since only data shows which fields derive from which.
 */

/** Shorter shared runs are coincidence (dates, small numbers); longer ones carry the value. */
const MIN_SHARED = 6;

/** Every scalar field of a record at any depth, by name, as masking sees them (by name, anywhere). */
function leaves(node: unknown, out: [string, string][] = [], key = ''): [string, string][] {
  if (Array.isArray(node)) for (const n of node) leaves(n, out, key);
  else if (node && typeof node === 'object') for (const [k, v] of Object.entries(node)) leaves(v, out, k);
  else if (key && (typeof node === 'string' || typeof node === 'number')) out.push([key, String(node)]);
  return out;
}

/** Length of the longest run of characters `a` and `b` share. */
export function longestSharedRun(a: string, b: string): number {
  let best = 0;
  let prev = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    const row = new Array<number>(b.length + 1).fill(0);
    for (let j = 1; j <= b.length; j++) {
      if (a[i - 1] === b[j - 1]) {
        row[j] = prev[j - 1]! + 1;
        if (row[j]! > best) best = row[j]!;
      }
    }
    prev = row;
  }
  return best;
}

/** True when `unmasked` gives away `masked`: a shared run of at least two thirds of it. */
export function carries(unmasked: string, masked: string): boolean {
  if (masked.length < MIN_SHARED) return false;
  return longestSharedRun(masked, unmasked) >= Math.max(MIN_SHARED, Math.ceil((masked.length * 2) / 3));
}

/** Sample records by route id: DIR/<route>.json holding an array or { records | items: [...] }. */
export function readSamples(dir: string, routeIds: ReadonlySet<string>): { samples: Map<string, { file: string; records: unknown[] }>; findings: LintFinding[] } {
  const samples = new Map<string, { file: string; records: unknown[] }>();
  const findings: LintFinding[] = [];
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch (err) {
    return { samples, findings: [{ level: 'error', at: dir, message: `cannot read the sample data folder: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }] };
  }
  for (const name of names) {
    const route = name.slice(0, -'.json'.length);
    const file = join(dir, name);
    if (!routeIds.has(route)) {
      findings.push({ level: 'warning', at: file, message: `no configured route "${route}": sample data not checked` });
      continue;
    }
    try {
      const doc = JSON.parse(readFileSync(file, 'utf8')) as unknown;
      const records = Array.isArray(doc) ? doc : ((doc as { records?: unknown[]; items?: unknown[] } | null)?.records ?? (doc as { items?: unknown[] } | null)?.items);
      if (!Array.isArray(records)) throw new Error('expected an array, or an object with "records" or "items"');
      samples.set(route, { file, records });
    } catch (err) {
      findings.push({ level: 'error', at: file, message: `sample data unreadable: ${(err as Error).message}` });
    }
  }
  return { samples, findings };
}

export function lintMaskedSamples(conditions: Conditions, conditionsFile: string, samples: ReadonlyMap<string, { file: string; records: unknown[] }>): LintFinding[] {
  const findings: LintFinding[] = [];
  for (const entry of conditions.entries) {
    for (const obligation of entry.obligations) {
      if (obligation.type !== 'mask-fields') continue;
      const masked = new Set(obligation.fields);
      for (const [route, { file, records }] of samples) {
        if (entry.when.routes && !entry.when.routes.has(route)) continue;
        // One finding per pair of fields, with the first record that shows it and how many do.
        const leaks = new Map<string, { example: string; count: number }>();
        for (const record of records) {
          const fields = leaves(record);
          const id = (record as { id?: unknown } | null)?.id;
          for (const [mk, mv] of fields) {
            if (!masked.has(mk)) continue;
            for (const [uk, uv] of fields) {
              if (masked.has(uk) || !carries(uv, mv)) continue;
              const key = `${mk}\u0000${uk}`;
              const seen = leaks.get(key);
              if (seen) seen.count++;
              else leaks.set(key, { example: `${id === undefined ? '' : `record ${String(id)}: `}${uk} "${uv}" carries ${mk} "${mv}"`, count: 1 });
            }
          }
        }
        for (const [key, { example, count }] of leaks) {
          const [mk, uk] = key.split('\u0000') as [string, string];
          findings.push({
            level: 'warning',
            at: `${conditionsFile}:${entry.line}`,
            message: `${entry.name}: masks ${mk} but not ${uk}, which carries its value in ${count} sample record(s) of "${route}" (${file}; ${example}): add ${uk} to maskFields`,
          });
        }
      }
    }
  }
  return findings;
}
