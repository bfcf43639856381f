import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { calculateJwkThumbprint, decodeJwt, EmbeddedJWK, errors, jwtVerify, type JWK } from 'jose';
import type { DeviceTier } from '../../core/levels.js';
import type { GatewayConfig, RouteConfig } from '../config.js';
import { GatewayError, type ErrorCode } from '../errors.js';
import type { Reason } from '../../core/reasons.js';
import type { Store } from '../../core/store.js';
import type { Principal } from '../../core/principal.js';
import { DeviceRegistry, type DeviceStatus } from '../../identity/devices.js';
import { complianceFailures, createPostureVerifier, deviceTier, PostureError, tierAtLeast, type PostureVerifier } from '../../identity/posture.js';
import { clientCertificateKey } from '../tls.js';
import { DpopSignatureError, verifyDpopSignature } from '../../identity/dpop-proof.js';

/**
 * Step 4, device: which registered device the request comes from, proven by possession of its
 * key, and how healthy it is → the device trust tier, checked against the route's minimum.
 *
 * Proof of possession is an RFC 9449 DPoP proof in the `DPoP` header, signed per request by the
 * device key over method, URL and time, bound to the access token (`ath`). A token stolen from
 * one device is useless on another: the device must be the caller's own (owner = national ID),
 * and a token bound to a key (`cnf.jkt`, RFC 9449 §6) works only with proofs by that key.
 *
 * Or, on a TLS listener with `requestClientCertificate`, a client certificate issued by the
 * configured device CA: the handshake proves possession of its key, whose RFC 7638 thumbprint is
 * the device id, as for a DPoP key. A certificate is the key bound to hardware the province's CA
 * vouched for: an approved, compliant device presenting it reaches `high-assurance`. When both a
 * proof and a certificate are presented, they must name the same key.
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
export function minimumTier(route: Pick<RouteConfig, 'minDeviceTier' | 'securityLevel'>, devices: GatewayConfig['devices']): DeviceTier {
  return route.minDeviceTier ?? devices.defaultMinTierBySecurityLevel[String(route.securityLevel) as '1'];
}

/** Ends the request when the device falls short of what the route asks for. */
export function requireDeviceTier(device: DeviceTrust, route: Pick<RouteConfig, 'minDeviceTier' | 'securityLevel'>, devices: GatewayConfig['devices']): void {
  if (device.refusal) throw device.refusal;
  const minimum = minimumTier(route, devices);
  if (tierAtLeast(device.tier, minimum)) return;
  throw deviceError(device.shortfall ?? 'device-tier-insufficient', `Thiết bị ở mức ${device.tier}, dịch vụ yêu cầu ${minimum} / device tier ${device.tier}, the service requires ${minimum}`);
}

/**
 * The management plane's device requirement (admin.minDeviceTier): one minimum for every admin
 * request. A shortfall is always 403 device-tier-insufficient, naming what was missing.
 */
export function requireAdminDeviceTier(device: DeviceTrust, minimum: DeviceTier): void {
  if (device.refusal) throw device.refusal;
  if (tierAtLeast(device.tier, minimum)) return;
  const missing = device.shortfall && device.shortfall !== 'device-tier-insufficient' ? ` (${device.shortfall})` : '';
  throw deviceError('device-tier-insufficient', `Thiết bị ở mức ${device.tier}, mặt phẳng quản trị yêu cầu ${minimum}${missing} / device tier ${device.tier}, the management plane requires ${minimum}${missing}`);
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
  /** The connection: a TLS socket may carry a verified client certificate. */
  readonly socket?: unknown;
}

export interface VerifiedProof {
  readonly deviceId: string;
  readonly jwk: JWK;
}

/** The device key of a request, and how it was proven. */
export interface DeviceIdentity extends VerifiedProof {
  readonly via: 'dpop' | 'mtls';
}

/** A proof verified locally; its jti is not claimed yet (`replayKey`, one SET NX PX). */
interface CheckedIdentity extends DeviceIdentity {
  readonly replayKey: string | null;
}

export interface AssessOptions {
  /**
   * Called once the device key is known from local checks alone, before the shared state is
   * read: whatever the caller reads from the Store here (locks, grants) goes to Redis in the same
   * round trip as the proof's replay check and the registry read. Not called when the proof fails.
   */
  readonly onIdentified?: (deviceId: string | null) => void;
}

export interface DeviceAssessor {
  /**
   * The device key of a request: its DPoP proof and/or its verified client certificate; null
   * when neither. Throws a GatewayError when a proof fails or the two name different keys.
   */
  identify(request: DeviceRequest): Promise<DeviceIdentity | null>;
  /** Verifies the DPoP proof of a request; null when none was sent. Throws a GatewayError when one was sent and fails. */
  verifyProof(request: DeviceRequest): Promise<VerifiedProof | null>;
  /** Everything known about the device of an authenticated request. Throws only when it cannot be checked (503). */
  assess(request: DeviceRequest, principal: Principal, opts?: AssessOptions): Promise<DeviceTrust>;
}

export function createDeviceAssessor(
  config: GatewayConfig,
  store: Store,
  opts: {
    registry?: DeviceRegistry;
    posture?: PostureVerifier;
    now?: () => number;
    /** Scheme, host and port proofs name in htu (RFC 9449 §4.3); config.publicUrl by default. */
    publicUrl?: (request: DeviceRequest) => string;
  } = {},
): DeviceAssessor {
  const devices = config.devices;
  const registry = opts.registry ?? new DeviceRegistry(store);
  const posture = opts.posture ?? createPostureVerifier(devices, store, { jwksTimeoutMs: config.identity.jwksTimeoutMs });
  const now = opts.now ?? Date.now;
  const skew = devices.clockSkewSeconds;
  // A jti must be remembered for as long as its proof could be accepted.
  const replayWindowMs = (devices.proofMaxAgeSeconds + 2 * skew) * 1000;

  /** Everything about a proof that needs no shared state; the jti is claimed by claimJti. */
  async function checkProof(request: DeviceRequest): Promise<(VerifiedProof & { replayKey: string }) | null> {
    const header = request.headers.dpop;
    if (header === undefined || header === '') return null;
    // RFC 9449 §4.3 (1): exactly one DPoP header; Node joins repeated ones with ", ".
    if (Array.isArray(header) || header.includes(',')) throw deviceError('device-proof-invalid', 'more than one DPoP header');

    let payload: Record<string, unknown>;
    let jwk: JWK | undefined;
    let thumbprint: string | undefined;
    let fast;
    try {
      // The common shape (ES256 or Ed25519, a bare public JWK) is verified with node:crypto and a cached key.
      fast = verifyDpopSignature(header, DPOP_TYP, devices.proofAlgorithms);
    } catch (err) {
      if (err instanceof DpopSignatureError) throw deviceError('device-proof-invalid', 'DPoP proof does not verify', err);
      throw err;
    }
    if (fast) {
      ({ payload, thumbprint } = fast);
      jwk = fast.jwk as JWK;
      // What jose's requiredClaims and iat checks demand of the generic path.
      if (!['jti', 'iat', 'htm', 'htu'].every((c) => c in payload) || typeof payload.iat !== 'number') throw deviceError('device-proof-invalid', 'DPoP proof does not verify');
    } else {
      let verified;
      try {
        verified = await jwtVerify(header, EmbeddedJWK, { typ: DPOP_TYP, algorithms: [...devices.proofAlgorithms], requiredClaims: ['jti', 'iat', 'htm', 'htu'] });
      } catch (err) {
        throw deviceError('device-proof-invalid', err instanceof errors.JOSEAlgNotAllowed ? 'DPoP proof algorithm not allowed' : 'DPoP proof does not verify', err);
      }
      payload = verified.payload;
      jwk = verified.protectedHeader.jwk as JWK | undefined;
    }
    if (!jwk || ['d', 'p', 'q', 'k'].some((m) => (jwk as Record<string, unknown>)[m] !== undefined)) throw deviceError('device-proof-invalid', 'DPoP proof jwk must be a public key');
    if (typeof payload.jti !== 'string' || payload.jti.length < 8 || payload.jti.length > 256) throw deviceError('device-proof-invalid', 'DPoP proof jti must be 8–256 characters');

    const nowSeconds = now() / 1000;
    const iat = payload.iat as number;
    if (iat > nowSeconds + skew || iat < nowSeconds - devices.proofMaxAgeSeconds - skew) throw deviceError('device-clock-skew', 'DPoP proof iat is outside the accepted window');
    const target = `${opts.publicUrl?.(request) ?? config.publicUrl}${request.url.split('?')[0]}`;
    // The same text normalises the same way: URL parsing is needed only when a client wrote it otherwise.
    if (payload.htm !== request.method || typeof payload.htu !== 'string' || (payload.htu !== target && normaliseHtu(payload.htu) !== normaliseHtu(target))) {
      throw deviceError('device-proof-mismatch', 'DPoP proof was made for another method or URL');
    }
    const token = typeof request.headers.authorization === 'string' ? BEARER.exec(request.headers.authorization)?.[1] : undefined;
    let jkt: unknown;
    if (token) {
      // RFC 9449 §4.3 (11) and §6.1: the proof names this access token; a bound token names this key.
      if (payload.ath !== sha256url(token)) throw deviceError('device-proof-invalid', 'DPoP proof ath does not match the access token');
      jkt = boundKey(token);
    }
    const deviceId = thumbprint ?? (await calculateJwkThumbprint(jwk, 'sha256'));
    if (jkt !== undefined && jkt !== deviceId) throw deviceError('device-proof-invalid', 'the access token is bound to another key (cnf.jkt)');

    return { deviceId, jwk, replayKey: `dpop:jti:${deviceId}:${sha256url(payload.jti as string)}` };
  }

  /**
   * After every other check, so that unverifiable proofs cannot fill the cache: one SET NX PX,
   * atomic on every instance at once.
   */
  async function claimJti(replayKey: string): Promise<void> {
    let fresh: boolean;
    try {
      fresh = await store.set(replayKey, '1', { ifAbsent: true, ttlMs: replayWindowMs });
    } catch (err) {
      throw deviceError('device-registry-unavailable', undefined, err);
    }
    if (!fresh) throw deviceError('device-proof-replayed', 'DPoP proof already used');
  }

  async function verifyProof(request: DeviceRequest): Promise<VerifiedProof | null> {
    const proof = await checkProof(request);
    if (!proof) return null;
    await claimJti(proof.replayKey);
    return { deviceId: proof.deviceId, jwk: proof.jwk };
  }

  /** The device key of a request from local checks; a DPoP proof's jti is still to be claimed. */
  async function identifyLocally(request: DeviceRequest): Promise<CheckedIdentity | null> {
    const proof = await checkProof(request);
    const certificate = await clientCertificateKey(request.socket);
    if (!certificate) return proof ? { ...proof, via: 'dpop' } : null;
    if (proof && proof.deviceId !== certificate.deviceId) {
      throw deviceError('device-certificate-mismatch', 'Bằng chứng DPoP và chứng thư máy khách thuộc hai khóa khác nhau / the DPoP proof and the client certificate name different keys');
    }
    if (!proof) {
      // A key-bound token (cnf.jkt) is accepted over mTLS only when the certificate holds that key.
      const token = typeof request.headers.authorization === 'string' ? BEARER.exec(request.headers.authorization)?.[1] : undefined;
      const jkt = token ? boundKey(token) : undefined;
      if (jkt !== undefined && jkt !== certificate.deviceId) throw deviceError('device-proof-invalid', 'the access token is bound to another key (cnf.jkt)');
    }
    return { ...certificate, via: 'mtls', replayKey: proof?.replayKey ?? null };
  }

  async function identify(request: DeviceRequest): Promise<DeviceIdentity | null> {
    const found = await identifyLocally(request);
    if (!found) return null;
    if (found.replayKey) await claimJti(found.replayKey);
    return { deviceId: found.deviceId, jwk: found.jwk, via: found.via };
  }

  return {
    verifyProof,
    identify,
    async assess(request, principal, opts = {}) {
      const base = { id: null, tier: 'unknown', status: null, via: null, postureFailures: null, refusal: null, shortfall: null } as const;
      const refused = (err: unknown): DeviceTrust => {
        if (err instanceof GatewayError && err.statusCode >= 500) throw err;
        return { ...base, refusal: err as GatewayError };
      };
      let proof: CheckedIdentity | null;
      try {
        proof = await identifyLocally(request);
      } catch (err) {
        return refused(err);
      }
      opts.onIdentified?.(proof?.deviceId ?? null);
      if (!proof) {
        const token = typeof request.headers.authorization === 'string' ? BEARER.exec(request.headers.authorization)?.[1] : undefined;
        const bound = token !== undefined && boundKey(token) !== undefined;
        // A key-bound token without its proof is a token away from its device.
        return { ...base, refusal: bound ? deviceError('device-proof-missing', 'the access token is bound to a device key; a DPoP proof is required') : null, shortfall: 'device-proof-missing' };
      }
      const id = proof.deviceId;
      // Both sent before either is awaited: one round trip to Redis (with whatever onIdentified read).
      const claimed = proof.replayKey ? claimJti(proof.replayKey) : null;
      const reading = registry.get(id);
      reading.catch(() => undefined);
      if (claimed) {
        try {
          await claimed;
        } catch (err) {
          return refused(err);
        }
      }
      let record;
      try {
        record = await reading;
      } catch (err) {
        throw deviceError('device-registry-unavailable', undefined, err);
      }
      const known = { ...base, id, via: proof.via } as const;
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
      // A certificate from the device CA binds the key to hardware as an admin's attestation does.
      const tier = deviceTier({ approved: true, compliant: failures.length === 0, hardwareBound: record.hardwareKey || proof.via === 'mtls' });
      return { ...registered, tier, postureFailures: failures, shortfall: failures.length > 0 ? 'device-tier-insufficient' : null };
    },
  };
}
