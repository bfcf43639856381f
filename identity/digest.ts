import { createHash } from 'node:crypto';

/** SHA-256 of a UTF-8 string, lowercase hex: store keys, bindings and file checksums. */
export function sha256hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** Session ids are bearer secrets: events, locks and index keys carry this digest, never the id itself. */
export function sessionDigest(value: string): string {
  return sha256hex(value).slice(0, 32);
}
