import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { DEVICE_TIERS, type DeviceTier } from '../core/levels.js';
import type { DevicesConfig, PostureSignerConfig } from './config.js';
import type { Store } from '../core/store.js';
import { CodedError } from '../core/errors.js';

/**
 * Device posture (tình trạng an toàn thiết bị): a JWT signed by an endpoint-management / EDR
 * signer whose public keys are configured, saying how healthy one device is now; and the device
 * trust tier computed from the registry status and that report. The claims are documented in the
 * README ("Posture report") so that a vendor can produce them.
 */

export const POSTURE_TYP = 'posture+jwt';

export interface PostureReport {
  readonly issuer: string;
  /** `sub`: the device id (RFC 7638 thumbprint of the device key). */
  readonly deviceId: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
  readonly jti: string;
  readonly os: { readonly name: string; readonly version: string };
  readonly patchAgeDays: number;
  readonly diskEncrypted: boolean;
  readonly screenLock: boolean;
  readonly edrRunning: boolean;
  /** Epoch seconds of the last completed malware scan. */
  readonly lastMalwareScan: number;
  /** 0 (no risk) – 100, as the EDR rates it. */
  readonly riskScore: number;
}

export type PostureFailure = 'posture-stale' | 'posture-signer-unknown' | 'posture-signature-invalid' | 'posture-device-mismatch' | 'posture-replayed' | 'posture-invalid' | 'posture-signer-unavailable' | 'device-registry-unavailable';

/** The stable code of each posture failure (the failure itself is the reason the gateway records). */
export const POSTURE_ERROR_CODES = {
  'posture-stale': 'ERR_POSTURE_STALE',
  'posture-signer-unknown': 'ERR_POSTURE_SIGNER_UNKNOWN',
  'posture-signature-invalid': 'ERR_POSTURE_SIGNATURE_INVALID',
  'posture-device-mismatch': 'ERR_POSTURE_DEVICE_MISMATCH',
  'posture-replayed': 'ERR_POSTURE_REPLAYED',
  'posture-invalid': 'ERR_POSTURE_INVALID',
  'posture-signer-unavailable': 'ERR_POSTURE_SIGNER_UNAVAILABLE',
  'device-registry-unavailable': 'ERR_POSTURE_REGISTRY_UNAVAILABLE',
} as const satisfies Record<PostureFailure, `ERR_POSTURE_${string}`>;
export type PostureErrorCode = (typeof POSTURE_ERROR_CODES)[PostureFailure];

export class PostureError extends CodedError {
  readonly code: PostureErrorCode;
  constructor(
    readonly reason: PostureFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'PostureError';
    this.code = POSTURE_ERROR_CODES[reason];
  }
}

export interface PostureVerifier {
  /** Verifies a posture report presented by `deviceId`; throws PostureError with a distinct reason. */
  verify(jwt: string, deviceId: string): Promise<PostureReport>;
}

function keysOf(signer: PostureSignerConfig, timeoutMs: number): JWTVerifyGetKey {
  return signer.jwksUri ? createRemoteJWKSet(new URL(signer.jwksUri), { timeoutDuration: timeoutMs, cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 }) : createLocalJWKSet(structuredClone(signer.jwks) as unknown as JSONWebKeySet);
}

function failureOf(err: unknown): PostureError {
  const fail = (reason: PostureFailure, message: string) => new PostureError(reason, message, { cause: err });
  if (err instanceof errors.JWTExpired) return fail('posture-stale', `posture report too old (${err.claim})`);
  if (err instanceof errors.JWKSNoMatchingKey) return fail('posture-signer-unknown', 'no configured signer key matches the report');
  if (err instanceof errors.JWSSignatureVerificationFailed || err instanceof errors.JWKSMultipleMatchingKeys || err instanceof errors.JOSEAlgNotAllowed) {
    return fail('posture-signature-invalid', 'posture report signature does not verify');
  }
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return fail('posture-signer-unavailable', 'posture signer keys unavailable');
  if (err instanceof errors.JWTClaimValidationFailed) return fail('posture-invalid', `posture report claim ${err.claim} is invalid`);
  if (err instanceof errors.JOSEError) return fail('posture-invalid', 'malformed posture report');
  // Anything else is the signer's JWKS fetch failing: refuse, never trust an unverified report.
  return fail('posture-signer-unavailable', 'posture signer keys unavailable');
}

const isInt = (v: unknown, min: number, max: number): v is number => Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
const isText = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 128;

function reportOf(p: JWTPayload, skewSeconds: number): PostureReport {
  const invalid = (claim: string) => new PostureError('posture-invalid', `posture report claim ${claim} is missing or malformed`);
  const os = p.os as Record<string, unknown> | undefined;
  if (!os || typeof os !== 'object' || !isText(os.name) || !isText(os.version)) throw invalid('os');
  if (!isInt(p.patch_age_days, 0, 36_500)) throw invalid('patch_age_days');
  for (const flag of ['disk_encrypted', 'screen_lock', 'edr_running'] as const) if (typeof p[flag] !== 'boolean') throw invalid(flag);
  if (!isInt(p.last_malware_scan, 0, p.iat! + skewSeconds)) throw invalid('last_malware_scan');
  if (!isInt(p.risk_score, 0, 100)) throw invalid('risk_score');
  if (!isText(p.jti) || p.jti.length > 256) throw invalid('jti');
  return {
    issuer: p.iss!,
    deviceId: p.sub!,
    issuedAt: p.iat!,
    expiresAt: p.exp!,
    jti: p.jti,
    os: { name: os.name, version: os.version },
    patchAgeDays: p.patch_age_days as number,
    diskEncrypted: p.disk_encrypted as boolean,
    screenLock: p.screen_lock as boolean,
    edrRunning: p.edr_running as boolean,
    lastMalwareScan: p.last_malware_scan as number,
    riskScore: p.risk_score as number,
  };
}

/**
 * Replay rule: a report may be presented again and again by its own device until it expires (the
 * signer issues reports on its own schedule, not per request). What a report may not do is come
 * back after a newer one: once a device has presented a report issued at T, any report issued
 * before T is refused as replayed. Otherwise a device could keep showing yesterday's clean report
 * after the EDR has signed today's "malware found" one. A report for another device is refused
 * by `sub` (posture-device-mismatch); an expired one by `exp` and the maximum age (posture-stale).
 */
export function createPostureVerifier(devices: DevicesConfig, store: Store, opts: { jwksTimeoutMs?: number } = {}): PostureVerifier {
  const signers = new Map(devices.postureSigners.map((s) => [s.issuer, { config: s, keys: keysOf(s, opts.jwksTimeoutMs ?? 5000) }]));
  const skew = devices.clockSkewSeconds;

  return {
    async verify(jwt, deviceId) {
      let iss: unknown;
      try {
        if (decodeProtectedHeader(jwt).typ !== POSTURE_TYP) throw new PostureError('posture-invalid', `posture report typ must be ${POSTURE_TYP}`);
        iss = decodeJwt(jwt).iss;
      } catch (err) {
        throw err instanceof PostureError ? err : new PostureError('posture-invalid', 'malformed posture report', { cause: err });
      }
      const signer = typeof iss === 'string' ? signers.get(iss) : undefined;
      if (!signer) throw new PostureError('posture-signer-unknown', 'posture report from a signer that is not configured');

      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(jwt, signer.keys, {
          issuer: signer.config.issuer,
          algorithms: [...signer.config.algorithms],
          typ: POSTURE_TYP,
          requiredClaims: ['sub', 'iat', 'exp', 'jti'],
          maxTokenAge: devices.postureMaxAgeSeconds,
          clockTolerance: skew,
        }));
      } catch (err) {
        throw failureOf(err);
      }
      if (payload.sub !== deviceId) throw new PostureError('posture-device-mismatch', 'posture report was issued for another device');
      const report = reportOf(payload, skew);

      const key = `posture:latest:${deviceId}`;
      try {
        const latest = Number((await store.get(key)) ?? 0);
        if (report.issuedAt < latest) throw new PostureError('posture-replayed', 'a newer posture report of this device was already presented');
        if (report.issuedAt > latest) await store.set(key, String(report.issuedAt), { ttlMs: (devices.postureMaxAgeSeconds + skew) * 1000 });
      } catch (err) {
        if (err instanceof PostureError) throw err;
        throw new PostureError('device-registry-unavailable', 'posture replay cache unavailable', { cause: err });
      }
      return report;
    },
  };
}

/** The compliance thresholds a report misses, by claim name; empty when compliant. */
export function complianceFailures(report: PostureReport, compliance: DevicesConfig['compliance'], nowSeconds: number): string[] {
  const failures: string[] = [];
  if (report.patchAgeDays > compliance.maxPatchAgeDays) failures.push('patch_age_days');
  if (compliance.requireDiskEncryption && !report.diskEncrypted) failures.push('disk_encrypted');
  if (compliance.requireScreenLock && !report.screenLock) failures.push('screen_lock');
  if (compliance.requireEdrRunning && !report.edrRunning) failures.push('edr_running');
  if (nowSeconds - report.lastMalwareScan > compliance.maxScanAgeDays * 86_400) failures.push('last_malware_scan');
  if (report.riskScore > compliance.maxRiskScore) failures.push('risk_score');
  return failures;
}

/**
 * unknown < registered (approved device, proof verified) < compliant (and a fresh posture report
 * meeting every threshold) < high-assurance (and the key is bound to hardware: an mTLS client
 * certificate from the province's CA for the same key, or a hardware key attested at approval).
 */
export function deviceTier(facts: { approved: boolean; compliant: boolean; hardwareBound: boolean }): DeviceTier {
  if (!facts.approved) return 'unknown';
  if (!facts.compliant) return 'registered';
  return facts.hardwareBound ? 'high-assurance' : 'compliant';
}

export function tierAtLeast(tier: DeviceTier, minimum: DeviceTier): boolean {
  return DEVICE_TIERS.indexOf(tier) >= DEVICE_TIERS.indexOf(minimum);
}
