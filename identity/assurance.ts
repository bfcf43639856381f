import type { AssuranceLevel } from '../core/principal.js';

/**
 * The identity assurance level (VNeID mức 1 / mức 2, or what an IdP says through `acr`, `amr` or
 * a level claim), mapped by configuration. What the mapping does not know counts as 0, the lowest:
 * an unrecognised value must never raise a level.
 */
export interface AssuranceEvidence {
  readonly acr?: unknown;
  readonly amr?: unknown;
  readonly level?: unknown;
}

export function assuranceLevelOf(evidence: AssuranceEvidence, mapping: Readonly<Record<string, AssuranceLevel>>): AssuranceLevel {
  const values: string[] = [];
  const add = (v: unknown) => {
    if (typeof v === 'string' && v.length > 0 && v.length <= 256) values.push(v);
    else if (typeof v === 'number' && Number.isInteger(v)) values.push(String(v));
  };
  add(evidence.acr);
  add(evidence.level);
  if (Array.isArray(evidence.amr)) evidence.amr.slice(0, 16).forEach(add);
  let level: AssuranceLevel = 0;
  for (const v of values) {
    const mapped = Object.hasOwn(mapping, v) ? mapping[v]! : 0;
    if (mapped > level) level = mapped;
  }
  return level;
}

/** The `acr` value to ask the IdP for (OIDC Core §3.1.2.1 acr_values) to reach `level`: every value that maps to it or above. */
export function acrValuesFor(level: AssuranceLevel, mapping: Readonly<Record<string, AssuranceLevel>>): string[] {
  return Object.entries(mapping)
    .filter(([, l]) => l >= level)
    .sort(([, a], [, b]) => a - b)
    .map(([value]) => value)
    .filter((value) => !/^\d+$/.test(value)); // bare level numbers are level-claim values, not acr values
}
