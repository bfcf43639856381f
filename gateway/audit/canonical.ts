import { sha256hex } from '../../identity/digest.js';

/**
 * Canonical JSON for hashing, after RFC 8785 (JCS): object keys sorted by code unit, no
 * whitespace, JSON.stringify for strings and numbers (the events hold integers and short
 * decimals only). The same bytes on every machine, whatever order a producer wrote keys in.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError('non-finite number');
    return value === undefined ? 'null' : JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  const keys = Object.keys(value as Record<string, unknown>)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

export const GENESIS_HASH = '0'.repeat(64);

/** The hash of a chain record: SHA-256 over the canonical form of everything but `hash`. */
export function recordHash(record: { seq: number; type: string; prev_hash: string; hash?: string }): string {
  const { hash: _h, ...body } = record;
  return sha256hex(canonicalJson(body));
}
