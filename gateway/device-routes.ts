import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayError } from './errors.js';
import { StoreError } from '../core/store.js';
import { deviceError, type DeviceAssessor } from './steps/device.js';
import { checkLocks } from './steps/locks.js';
import type { Locks } from './lock-registry.js';
import { DeviceRegistry, DeviceRegistryError, devicePublicKey, type DeviceRecord } from '../identity/devices.js';

/**
 * Device enrolment on the data plane: an authenticated official submits the device they are
 * using. The key enrolled is the key that signed the request's DPoP proof, or the key of the
 * client certificate the TLS handshake verified, so nobody can enrol (and so squat, one device
 * per key) a public key they do not hold. The device stays pending until a security admin
 * approves it on the management API (gateway/admin/devices-routes.ts). A locked official, session,
 * address (pipeline) or device key (here) enrols nothing.
 */

export const ENROLMENT_PATH = '/.ztgate/devices';

/** Gateway endpoints any authenticated official may call: authenticated by the pipeline, no route, no policy. */
export const OFFICIAL_ENDPOINTS: ReadonlySet<string> = new Set([ENROLMENT_PATH]);

/** Registry failures in the one error shape; a store failure refuses (503), it never half-applies. */
export function registryFailure(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof StoreError) return deviceError('device-registry-unavailable', undefined, err);
  if (!(err instanceof DeviceRegistryError)) throw err;
  switch (err.code) {
    case 'ERR_DEVICE_NOT_FOUND':
      return new GatewayError('ZTG_ERR_DEVICE_NOT_FOUND', 'device-not-found', { cause: err });
    case 'ERR_DEVICE_ALREADY_ENROLLED':
      return new GatewayError('ZTG_ERR_DEVICE_CONFLICT', 'device-already-enrolled', { detail: `Khóa thiết bị đã được đăng ký / ${err.message}`, cause: err });
    case 'ERR_DEVICE_STATE':
      return new GatewayError('ZTG_ERR_DEVICE_CONFLICT', 'device-state-conflict', { detail: `Trạng thái thiết bị không cho phép / ${err.message}`, cause: err });
    default:
      return new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: `Dữ liệu không hợp lệ / ${err.field ? `${err.field}: ` : ''}${err.message}`, cause: err });
  }
}

export function bodyObject(request: FastifyRequest): Record<string, unknown> {
  const body = request.body ?? {};
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: 'Nội dung phải là một đối tượng JSON / the body must be a JSON object' });
  }
  return body as Record<string, unknown>;
}

export function registerDeviceRoutes(app: FastifyInstance, registry: DeviceRegistry, assessor: DeviceAssessor, locks: Locks): void {
  app.post(ENROLMENT_PATH, async (request, reply) => {
    const principal = request.zt.principal!;
    const body = bodyObject(request);
    const proof = await assessor.identify(request);
    if (!proof) throw deviceError('device-proof-missing', 'Đăng ký thiết bị cần bằng chứng DPoP ký bằng khóa của thiết bị hoặc chứng thư máy khách (mTLS) / enrolment needs a DPoP proof signed by the device key, or a client certificate (mTLS)');
    request.zt.device = { id: proof.deviceId, tier: 'unknown', status: null, via: proof.via, postureFailures: null, refusal: null, shortfall: null };
    await checkLocks(locks, { nationalId: null, deviceId: proof.deviceId, sessionId: null, address: null });
    if (body.jwk !== undefined) {
      const sent = await devicePublicKey(body.jwk).catch((err: unknown) => {
        throw registryFailure(err);
      });
      if (sent.id !== proof.deviceId) {
        throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: 'jwk: không phải khóa của thiết bị đã chứng minh / jwk is not the key the DPoP proof or client certificate proved' });
      }
    }
    let record: DeviceRecord;
    try {
      record = await registry.enrol({ jwk: proof.jwk, name: body.name, ownerNationalId: principal.nationalId });
    } catch (err) {
      throw registryFailure(err);
    }
    request.zt.device = { id: record.id, tier: 'unknown', status: record.status, via: proof.via, postureFailures: null, refusal: null, shortfall: 'device-pending' };
    request.zt.reasons.push('device-enrolment');
    return reply.code(201).header('cache-control', 'no-store').send({ device: record });
  });

  app.get(ENROLMENT_PATH, async (request, reply) => {
    const principal = request.zt.principal!;
    let devices: DeviceRecord[];
    try {
      devices = await registry.list({ ownerNationalId: principal.nationalId });
    } catch (err) {
      throw registryFailure(err);
    }
    return reply.header('cache-control', 'no-store').send({ devices });
  });
}
