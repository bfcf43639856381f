import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CodedError, ConfigError } from '../../core/errors.js';
import type { CheckpointAlgorithm } from './config.js';

/**
 * Signing of chain checkpoints: compact JWS (RFC 7515) made with node:crypto, synchronously,
 * so a checkpoint is written at the exact place in the chain it vouches for. The algorithm and
 * the key are configuration (crypto agility); verifiers only need the public JWK.
 */

export const CHECKPOINT_TYP = 'ztgate-checkpoint+jws';

export interface PublicJwk {
  readonly kty: string;
  readonly crv: string;
  readonly x: string;
  readonly y?: string;
  readonly kid: string;
  readonly alg: CheckpointAlgorithm;
  readonly use: 'sig';
}

export interface CheckpointSigner {
  readonly alg: CheckpointAlgorithm;
  readonly kid: string;
  readonly publicJwk: PublicJwk;
  /** True when the key was generated at start (its JWK is only in the log itself). */
  readonly ephemeral: boolean;
  sign(payload: Record<string, unknown>): string;
}

const CURVE: Record<CheckpointAlgorithm, { crv: string; hash: string | null }> = {
  ES256: { crv: 'P-256', hash: 'sha256' },
  ES384: { crv: 'P-384', hash: 'sha384' },
  EdDSA: { crv: 'Ed25519', hash: null },
};

const b64u = (data: Buffer | string) => Buffer.from(data).toString('base64url');

/** RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order. */
export function jwkThumbprint(jwk: { kty: string; crv: string; x: string; y?: string }): string {
  const members = jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

function publicJwkOf(key: KeyObject, alg: CheckpointAlgorithm): PublicJwk {
  const jwk = createPublicKey(key).export({ format: 'jwk' }) as { kty: string; crv: string; x: string; y?: string };
  if (jwk.crv !== CURVE[alg].crv) throw new Error(`the key is on curve ${jwk.crv ?? jwk.kty}; ${alg} needs ${CURVE[alg].crv}`);
  const base = jwk.kty === 'EC' ? { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y! } : { kty: jwk.kty, crv: jwk.crv, x: jwk.x };
  return Object.freeze({ ...base, kid: jwkThumbprint(base), alg, use: 'sig' as const });
}

export function createCheckpointSigner(opts: { alg: CheckpointAlgorithm; keyFile?: string; keyFileSetting?: string }): CheckpointSigner {
  const { alg } = opts;
  let key: KeyObject;
  if (opts.keyFile) {
    try {
      key = createPrivateKey(readFileSync(opts.keyFile, 'utf8'));
      publicJwkOf(key, alg);
    } catch (err) {
      throw new ConfigError(opts.keyFile, [`${opts.keyFileSetting ?? 'audit.chain.signingKeyFile'}: not a readable PKCS#8 PEM private key for ${alg} (${(err as Error).message})`]);
    }
  } else {
    key = alg === 'EdDSA' ? generateKeyPairSync('ed25519').privateKey : generateKeyPairSync('ec', { namedCurve: CURVE[alg].crv }).privateKey;
  }
  const publicJwk = publicJwkOf(key, alg);
  const header = b64u(JSON.stringify({ alg, kid: publicJwk.kid, typ: CHECKPOINT_TYP }));
  return {
    alg,
    kid: publicJwk.kid,
    publicJwk,
    ephemeral: !opts.keyFile,
    sign(payload) {
      const input = `${header}.${b64u(JSON.stringify(payload))}`;
      const sig = sign(CURVE[alg].hash, Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
      return `${input}.${b64u(sig)}`;
    },
  };
}

/** Why a checkpoint signature is refused: its form, its key, or the signature itself. */
export type JwsErrorCode = 'ERR_AUDIT_JWS_MALFORMED' | 'ERR_AUDIT_JWS_KEY_UNKNOWN' | 'ERR_AUDIT_JWS_ALG_MISMATCH' | 'ERR_AUDIT_JWS_SIGNATURE_INVALID';

export class JwsError extends CodedError {
  constructor(
    readonly code: JwsErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'JwsError';
  }
}

/** Verifies a compact JWS against a set of public JWKs; returns the payload. */
export function verifyCheckpointJws(jws: string, keys: readonly PublicJwk[]): { payload: Record<string, unknown>; kid: string } {
  const parts = jws.split('.');
  if (parts.length !== 3) throw new JwsError('ERR_AUDIT_JWS_MALFORMED', 'not a compact JWS');
  let header: { alg?: string; kid?: string; typ?: string };
  let payload: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
    payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  } catch {
    throw new JwsError('ERR_AUDIT_JWS_MALFORMED', 'JWS header or payload is not JSON');
  }
  if (header.typ !== CHECKPOINT_TYP) throw new JwsError('ERR_AUDIT_JWS_MALFORMED', `unexpected typ ${String(header.typ)}`);
  const jwk = keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new JwsError('ERR_AUDIT_JWS_KEY_UNKNOWN', `no trusted key with kid ${String(header.kid)}`);
  if (header.alg !== jwk.alg || !(jwk.alg in CURVE)) throw new JwsError('ERR_AUDIT_JWS_ALG_MISMATCH', `algorithm ${String(header.alg)} does not match key ${jwk.kid}`);
  const { kid: _k, alg: _a, use: _u, ...material } = jwk;
  const key = createPublicKey({ key: material as never, format: 'jwk' });
  const ok = verify(CURVE[jwk.alg].hash, Buffer.from(`${parts[0]}.${parts[1]}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(parts[2]!, 'base64url'));
  if (!ok) throw new JwsError('ERR_AUDIT_JWS_SIGNATURE_INVALID', 'signature does not verify');
  return { payload, kid: jwk.kid };
}
