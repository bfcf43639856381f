import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { calculateJwkThumbprint, decodeJwt, EmbeddedJWK, errors, jwtVerify, type JWK } from 'jose';
import type { DeviceTier, GatewayConfig, RouteConfig } from '../config.js';
import { GatewayError, type ErrorCode } from '../errors.js';
import type { Reason } from '../reasons.js';
import type { Store } from '../store.js';
import type { Principal } from '../../identity/principal.js';
import { DeviceRegistry, type DeviceStatus } from '../../identity/devices.js';
import { complianceFailures, createPostureVerifier, deviceTier, PostureError, tierAtLeast, type PostureVerifier } from '../../identity/posture.js';

/**
 * Step 4, device: which registered device the request comes from, proven by possession of its
 * key, and how healthy it is → the device trust tier, checked against the route's minimum.
 *
 * Proof of possession is an RFC 9449 DPoP proof in the `DPoP` header, signed per request by the
 * device key over method, URL and time, bound to the access token (`ath`). A token stolen from
 * one device is useless on another: the device must be the caller's own (owner = national ID),
 * and a token bound to a key (`cnf.jkt`, RFC 9449 §6) works only with proofs by that key.
 *
 * Two kinds of shortfall, on purpose:
 * - a credential that is presented and fails verification (bad, replayed or misdirected proof,
 *   a device of someone else, a quarantined or retired device, a forged or foreign posture
 *   report) is always refused, whatever the route asks for: it is an attack signal;
 * - a credential that is absent or not established yet (no proof, an unregistered or pending
 *   key, no posture report or a stale one, a non-compliant device) only lowers the tier; the
 *   route's minimum decides, and a refusal names what was missing.
 */

export const DPOP_TYP = 'dpop+jwt';
export const POSTURE_HEADER = 'x-device-posture';

/** What is known about the device of a request; request.zt.device, and in the decision event. */
export interface DeviceTrust {
  /** RFC 7638 thumbprint of the device key, once a proof verified. */
  readonly id: string | null;
  readonly tier: DeviceTier;
  readonly status: DeviceStatus | 'unregistered' | null;
  /** How the key was proven: a DPoP proof; `mtls` when a client certificate also bound it. */
  readonly via: 'dpop' | 'mtls' | null;
  /** Compliance thresholds the posture report missed (claim names); null without a verified report. */
  readonly postureFailures: readonly string[] | null;
  /** Refused whatever the route asks for. */
  readonly refusal: GatewayError | null;
  /** Why the tier is not higher: the reason a route asking for more is refused with. */
  readonly shortfall: Reason | null;
}

const PROOF_ERRORS: ReadonlySet<Reason> = new Set(['device-proof-missing', 'device-proof-invalid', 'device-proof-replayed', 'device-proof-mismatch', 'device-clock-skew']);

export function deviceError(reason: Reason, detail?: string, cause?: unknown): GatewayError {
  let code: ErrorCode = 'ZTG_ERR_DEVICE_UNTRUSTED';
  if (PROOF_ERRORS.has(reason)) code = 'ZTG_ERR_DEVICE_PROOF_INVALID';
  else if (reason === 'device-registry-unavailable' || reason === 'posture-signer-unavailable') code = 'ZTG_ERR_DEVICE_UNVERIFIABLE';
  const headers: Record<string, string> = {};
  // RFC 9449 §7.1: the challenge names the scheme and the algorithms a proof may use.
  if (code === 'ZTG_ERR_DEVICE_PROOF_INVALID') headers['www-authenticate'] = `DPoP algs="ES256 EdDSA"${reason === 'device-proof-missing' ? '' : ', error="invalid_dpop_proof"'}`;
  return new GatewayError(code, reason, { detail, headers, cause });
}

/** The route's own minimum, else the default for its security level (cấp độ). */
export function minimumTier(route: RouteConfig, devices: GatewayConfig['devices']): DeviceTier {
  return route.minDeviceTier ?? devices.defaultMinTierBySecurityLevel[String(route.securityLevel) as '1'];
}

/** Ends the request when the device falls short of what the route asks for. */
export function requireDeviceTier(device: DeviceTrust, route: RouteConfig, devices: GatewayConfig['devices']): void {
  if (device.refusal) throw device.refusal;
  const minimum = minimumTier(route, devices);
  if (tierAtLeast(device.tier, minimum)) return;
  throw deviceError(device.shortfall ?? 'device-tier-insufficient', `Thiết bị ở mức ${device.tier}, dịch vụ yêu cầu ${minimum} / device tier ${device.tier}, the service requires ${minimum}`);
}

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const sha256url = (text: string) => createHash('sha256').update(text, 'ascii').digest('base64url');

/** `cnf.jkt` of an access token the authenticate step has already verified (RFC 9449 §6.1). */
function boundKey(token: string): unknown {
  try {
    return (decodeJwt(token).cnf as { jkt?: unknown } | undefined)?.jkt;
  } catch {
    return undefined;
  }
}

/** RFC 9449 §4.3: htu compared without query and fragment, after syntax- and scheme-based normalisation. */
function normaliseHtu(value: string): string | null {
  try {
    const url = new URL(value);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return null;
    url.search = '';
    url.hash = '';
    return url.href;
  } catch {
    return null;
  }
}

export interface DeviceRequest {
  readonly method: string;
  /** The request target as received (checked by the edge step); the query is not part of htu. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

export interface VerifiedProof {
  readonly deviceId: string;
  readonly jwk: JWK;
}

export interface DeviceAssessor {
  /** Verifies the DPoP proof of a request; null when none was sent. Throws a GatewayError when one was sent and fails. */
  verifyProof(request: DeviceRequest): Promise<VerifiedProof | null>;
  /** Everything known about the device of an authenticated request. Throws only when it cannot be checked (503). */
  assess(request: DeviceRequest, principal: Principal): Promise<DeviceTrust>;
}

export function createDeviceAssessor(config: GatewayConfig, store: Store, opts: { registry?: DeviceRegistry; posture?: PostureVerifier; now?: () => number } = {}): DeviceAssessor {
  const devices = config.devices;
  const registry = opts.registry ?? new DeviceRegistry(store);
  const posture = opts.posture ?? createPostureVerifier(devices, store, { jwksTimeoutMs: config.identity.jwksTimeoutMs });
  const now = opts.now ?? Date.now;
  const skew = devices.clockSkewSeconds;
  // A jti must be remembered for as long as its proof could be accepted.
  const replayWindowMs = (devices.proofMaxAgeSeconds + 2 * skew) * 1000;

  async function verifyProof(request: DeviceRequest): Promise<VerifiedProof | null> {
    const header = request.headers.dpop;
    if (header === undefined || header === '') return null;
    // RFC 9449 §4.3 (1): exactly one DPoP header; Node joins repeated ones with ", ".
    if (Array.isArray(header) || header.includes(',')) throw deviceError('device-proof-invalid', 'more than one DPoP header');

    let verified;
    try {
      verified = await jwtVerify(header, EmbeddedJWK, { typ: DPOP_TYP, algorithms: [...devices.proofAlgorithms], requiredClaims: ['jti', 'iat', 'htm', 'htu'] });
    } catch (err) {
      throw deviceError('device-proof-invalid', err instanceof errors.JOSEAlgNotAllowed ? 'DPoP proof algorithm not allowed' : 'DPoP proof does not verify', err);
    }
    const { payload, protectedHeader } = verified;
    const jwk = protectedHeader.jwk as JWK | undefined;
    if (!jwk || ['d', 'p', 'q', 'k'].some((m) => (jwk as Record<string, unknown>)[m] !== undefined)) throw deviceError('device-proof-invalid', 'DPoP proof jwk must be a public key');
    if (typeof payload.jti !== 'string' || payload.jti.length < 8 || payload.jti.length > 256) throw deviceError('device-proof-invalid', 'DPoP proof jti must be 8–256 characters');

    const nowSeconds = now() / 1000;
    const iat = payload.iat!;
    if (iat > nowSeconds + skew || iat < nowSeconds - devices.proofMaxAgeSeconds - skew) throw deviceError('device-clock-skew', 'DPoP proof iat is outside the accepted window');
    const expectedHtu = normaliseHtu(`${config.publicUrl}${request.url.split('?')[0]}`);
    if (payload.htm !== request.method || typeof payload.htu !== 'string' || normaliseHtu(payload.htu) !== expectedHtu) {
      throw deviceError('device-proof-mismatch', 'DPoP proof was made for another method or URL');
    }
    const token = typeof request.headers.authorization === 'string' ? BEARER.exec(request.headers.authorization)?.[1] : undefined;
    let jkt: unknown;
    if (token) {
      // RFC 9449 §4.3 (11) and §6.1: the proof names this access token; a bound token names this key.
      if (payload.ath !== sha256url(token)) throw deviceError('device-proof-invalid', 'DPoP proof ath does not match the access token');
      jkt = boundKey(token);
    }
    const deviceId = await calculateJwkThumbprint(jwk, 'sha256');
    if (jkt !== undefined && jkt !== deviceId) throw deviceError('device-proof-invalid', 'the access token is bound to another key (cnf.jkt)');

    // Last, so that unverifiable proofs cannot fill the cache: SET NX on every instance at once.
    let fresh: boolean;
    try {
      fresh = await store.set(`dpop:jti:${deviceId}:${sha256url(payload.jti)}`, '1', { ifAbsent: true, ttlMs: replayWindowMs });
    } catch (err) {
      throw deviceError('device-registry-unavailable', undefined, err);
    }
    if (!fresh) throw deviceError('device-proof-replayed', 'DPoP proof already used');
    return { deviceId, jwk };
  }

  return {
    verifyProof,
    async assess(request, principal) {
      const base = { id: null, tier: 'unknown', status: null, via: null, postureFailures: null, refusal: null, shortfall: null } as const;
      let proof: VerifiedProof | null;
      try {
        proof = await verifyProof(request);
      } catch (err) {
        if (err instanceof GatewayError && err.statusCode >= 500) throw err;
        return { ...base, refusal: err as GatewayError };
      }
      if (!proof) {
        const token = typeof request.headers.authorization === 'string' ? BEARER.exec(request.headers.authorization)?.[1] : undefined;
        const bound = token !== undefined && boundKey(token) !== undefined;
        // A key-bound token without its proof is a token away from its device.
        return { ...base, refusal: bound ? deviceError('device-proof-missing', 'the access token is bound to a device key; a DPoP proof is required') : null, shortfall: 'device-proof-missing' };
      }
      const id = proof.deviceId;
      let record;
      try {
        record = await registry.get(id);
      } catch (err) {
        throw deviceError('device-registry-unavailable', undefined, err);
      }
      const known = { ...base, id, via: 'dpop' } as const;
      if (!record) return { ...known, status: 'unregistered', shortfall: 'device-unregistered' };
      const status = record.status;
      if (record.ownerNationalId !== principal.nationalId) return { ...known, status, refusal: deviceError('device-owner-mismatch') };
      if (status === 'quarantined') return { ...known, status, refusal: deviceError('device-quarantined') };
      if (status === 'retired') return { ...known, status, refusal: deviceError('device-retired') };
      if (status === 'pending') return { ...known, status, shortfall: 'device-pending' };

      const registered = { ...known, status, tier: 'registered' } as const;
      const reportJwt = request.headers[POSTURE_HEADER];
      if (reportJwt === undefined || reportJwt === '') return { ...registered, shortfall: 'posture-missing' };
      if (typeof reportJwt !== 'string') return { ...registered, refusal: deviceError('posture-invalid', 'more than one posture report') };
      let report;
      try {
        report = await posture.verify(reportJwt, id);
      } catch (err) {
        if (!(err instanceof PostureError)) throw err;
        const failure = deviceError(err.reason, undefined, err);
        if (failure.statusCode >= 500) throw failure;
        // A stale report is the signer's schedule, not an attack: it lowers the tier.
        return err.reason === 'posture-stale' ? { ...registered, shortfall: 'posture-stale' } : { ...registered, refusal: failure };
      }
      const failures = complianceFailures(report, devices.compliance, Math.floor(now() / 1000));
      const tier = deviceTier({ approved: true, compliant: failures.length === 0, hardwareBound: record.hardwareKey });
      return { ...registered, tier, postureFailures: failures, shortfall: failures.length > 0 ? 'device-tier-insufficient' : null };
    },
  };
}
