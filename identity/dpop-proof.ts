import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';

/**
 * The signature of an RFC 9449 DPoP proof, checked with node:crypto directly: one synchronous
 * verify against a KeyObject cached per device key, and the RFC 7638 thumbprint (the device id)
 * computed once per key, instead of jose's generic path (a key import, an async WebCrypto verify
 * through the thread pool and an async thumbprint on every request).
 *
 * Only the common shape takes this path: a compact JWS whose header is exactly typ `dpop+jwt`, an
 * allowed ES256 or EdDSA (Ed25519) alg and a public JWK with only its required members, and whose
 * payload carries no `exp` or `nbf`. Anything else returns `null`, and the caller verifies it with
 * jose as before, so an unusual proof gets exactly the verdict and error it always got.
 */

export interface FastDpopProof {
  readonly alg: 'ES256' | 'EdDSA';
  readonly payload: Readonly<Record<string, unknown>>;
  /** The public key from the header: only the members of RFC 7638 §3.2. */
  readonly jwk: Readonly<Record<string, string>>;
  /** RFC 7638 SHA-256 thumbprint of the key, base64url: the device id. */
  readonly thumbprint: string;
}

/** The proof has the common shape and its signature does not verify: it is refused. */
export class DpopSignatureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DpopSignatureError';
  }
}

const SHAPES = {
  ES256: { kty: 'EC', crv: 'P-256', members: ['crv', 'kty', 'x', 'y'] },
  EdDSA: { kty: 'OKP', crv: 'Ed25519', members: ['crv', 'kty', 'x'] },
} as const;

const COMPACT = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/;
const B64URL_MEMBER = /^[A-Za-z0-9_-]{1,256}$/;
const KEY_CACHE_MAX = 10_000;

interface CachedKey {
  readonly key: KeyObject;
  readonly thumbprint: string;
  readonly jwk: Readonly<Record<string, string>>;
}

/** Per device key, by its RFC 7638 canonical form; bounded, the oldest entry leaves first. */
const keys = new Map<string, CachedKey | null>();

function parseSegment(segment: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The cached key for a header JWK of the expected shape; null when it is not one, or not a point on the curve. */
function deviceKey(alg: keyof typeof SHAPES, jwk: unknown): CachedKey | null {
  if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) return null;
  const shape = SHAPES[alg];
  const members = jwk as Record<string, unknown>;
  const names = Object.keys(members);
  if (names.length !== shape.members.length || !shape.members.every((m) => names.includes(m))) return null;
  if (members.kty !== shape.kty || members.crv !== shape.crv) return null;
  for (const m of shape.members) if (typeof members[m] !== 'string' || !B64URL_MEMBER.test(members[m] as string)) return null;
  // RFC 7638 §3.2: the required members, in lexicographic order, no whitespace.
  const canonical = `{${shape.members.map((m) => `"${m}":"${members[m] as string}"`).join(',')}}`;
  const cached = keys.get(canonical);
  if (cached !== undefined) return cached;
  const publicJwk = Object.fromEntries(shape.members.map((m) => [m, members[m] as string]));
  let entry: CachedKey | null;
  try {
    // Refuses a point that is not on the curve, as jose's import does.
    entry = { key: createPublicKey({ key: publicJwk, format: 'jwk' }), thumbprint: createHash('sha256').update(canonical).digest('base64url'), jwk: publicJwk };
  } catch {
    entry = null;
  }
  if (keys.size >= KEY_CACHE_MAX) keys.delete(keys.keys().next().value!);
  keys.set(canonical, entry);
  return entry;
}

/**
 * Verifies a DPoP proof's signature on the fast path. Returns null when the proof is not of the
 * common shape with an allowed alg (the caller uses the generic path); throws DpopSignatureError
 * when it is and the signature does not verify.
 */
export function verifyDpopSignature(proof: string, typ: string, algorithms: readonly string[]): FastDpopProof | null {
  const parts = COMPACT.exec(proof);
  if (!parts) return null;
  const header = parseSegment(parts[1]!);
  if (!header) return null;
  const alg = header.alg;
  if (typeof alg !== 'string') return null;
  // An alg outside the allow-list (none, HS256…) is refused by the generic path, with its own error.
  if (!algorithms.includes(alg) || (alg !== 'ES256' && alg !== 'EdDSA')) return null;
  if (header.typ !== typ || Object.keys(header).length !== 3 || header.jwk === undefined) return null;
  const key = deviceKey(alg, header.jwk);
  if (!key) return null;
  const payload = parseSegment(parts[2]!);
  if (!payload || payload.exp !== undefined || payload.nbf !== undefined) return null;
  const signature = Buffer.from(parts[3]!, 'base64url');
  const input = Buffer.from(`${parts[1]}.${parts[2]}`, 'ascii');
  let ok = false;
  try {
    ok = alg === 'ES256' ? signature.length === 64 && verify('sha256', input, { key: key.key, dsaEncoding: 'ieee-p1363' }, signature) : verify(null, input, key.key, signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new DpopSignatureError('signature verification failed');
  return { alg, payload, jwk: key.jwk, thumbprint: key.thumbprint };
}
