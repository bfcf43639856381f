import type { FastifyRequest } from 'fastify';
import Type from 'typebox';
import { GatewayError } from '../errors.js';
import { bodyObject, registryFailure } from '../device-routes.js';
import { ADMIN_API_PREFIX } from './api-prefix.js';
import type { AdminModule } from './app.js';
import { AnyObject, LenientBody, Params, Reply } from './schemas.js';
import { DEVICE_STATUSES, DeviceRegistry, DeviceRegistryError, type DeviceRecord, type DeviceStatus } from '../../identity/devices.js';
import { isNationalId, NATIONAL_ID_PATTERN } from '../../core/national-id.js';

const Action = Reply({ by: Type.String(), at: Type.String(), reason: Type.String() });

/** A device as the registry keeps it: the public key only, never a private part. */
const Device = Reply({
  id: Type.String({ description: 'RFC 7638 SHA-256 thumbprint of the device key, base64url' }),
  publicJwk: AnyObject({ description: 'public members only (RFC 7638 §3.2)' }),
  ownerNationalId: Type.String(),
  name: Type.String(),
  status: Type.Enum(DEVICE_STATUSES),
  hardwareKey: Type.Boolean({ description: 'the approving admin attested a hardware-bound key (TPM, secure enclave)' }),
  enrolled: Action,
  approved: Action,
  quarantined: Action,
  retired: Action,
});

const IdParams = Params({ id: Type.String({ minLength: 1, maxLength: 128, description: 'device id (key thumbprint)' }) });
const OneDevice = { 200: Reply({ device: Device }) };
const Reason = () => Type.String({ minLength: 1, maxLength: 1000, description: 'Lý do / why' });
const ApproveBody = LenientBody({ reason: Type.Optional(Reason()), hardwareKey: Type.Boolean({ default: false }) });
/** A quarantine says why: it is what the SOC and the owner read. */
const QuarantineBody = LenientBody({ reason: Reason() });
const RetireBody = LenientBody({ reason: Type.Optional(Reason()) });
const ListQuery = Type.Object({
  status: Type.Optional(Type.Enum(DEVICE_STATUSES)),
  owner: Type.Optional(Type.String({ pattern: NATIONAL_ID_PATTERN, description: 'owner national ID' })),
});

/**
 * Device registry operations for security admins: list, approve, quarantine, retire.
 * Every change is written to the shared registry, which every gateway instance reads on every
 * request: a quarantine refuses the device's next request wherever it arrives. Each handler
 * records what it changed in request.zt.admin for the audit event.
 */
export const deviceAdmin: AdminModule = (app, runtime) => {
  const registry = new DeviceRegistry(runtime.store);
  const base = `${ADMIN_API_PREFIX}/devices`;

  const run = async <T>(op: () => Promise<T>): Promise<T> => {
    try {
      return await op();
    } catch (err) {
      if (err instanceof DeviceRegistryError && err.code === 'ERR_DEVICE_SELF_APPROVAL') throw new GatewayError('ZTG_ERR_DEVICE_SELF_APPROVAL', 'device-self-approval', { cause: err });
      if (err instanceof DeviceRegistryError && err.code === 'ERR_DEVICE_BUSY') {
        throw new GatewayError('ZTG_ERR_DEVICE_CONFLICT', 'device-state-conflict', { detail: `Thiết bị đang được thay đổi, hãy thử lại / ${err.message}`, cause: err });
      }
      throw registryFailure(err);
    }
  };
  const adminId = (request: FastifyRequest) => request.zt.principal!.nationalId;
  const audit = (request: FastifyRequest, operation: string, record: DeviceRecord, detail: Record<string, unknown> = {}) => {
    request.zt.admin = { operation, target: record.id, detail: { owner: record.ownerNationalId, status: record.status, ...detail } };
  };

  app.get(
    base,
    {
      schema: {
        summary: 'Danh sách thiết bị / List devices',
        tags: ['devices'],
        querystring: ListQuery,
        response: { 200: Reply({ devices: Type.Array(Device) }) },
      },
    },
    async (request) => {
      const query = request.query as Record<string, unknown>;
      const status = query.status;
      const owner = query.owner;
      if (status !== undefined && !(DEVICE_STATUSES as readonly unknown[]).includes(status)) {
        throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: `status: phải là / must be one of ${DEVICE_STATUSES.join(', ')}` });
      }
      if (owner !== undefined && !isNationalId(owner)) {
        throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: 'owner: phải là số định danh 12 chữ số / must be a 12-digit national ID' });
      }
      const devices = await run(() => registry.list({ ...(status ? { status: status as DeviceStatus } : {}), ...(owner ? { ownerNationalId: owner as string } : {}) }));
      request.zt.admin = { operation: 'device.list', detail: { count: devices.length, ...(status ? { status } : {}), ...(owner ? { owner } : {}) } };
      return { devices };
    },
  );

  app.get(
    `${base}/:id`,
    {
      schema: { summary: 'Một thiết bị / One device', tags: ['devices'], params: IdParams, response: OneDevice },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      const device = await run(() => registry.get(id));
      if (!device) throw new GatewayError('ZTG_ERR_DEVICE_NOT_FOUND', 'device-not-found');
      request.zt.admin = { operation: 'device.get', target: id };
      return { device };
    },
  );

  app.post(
    `${base}/:id/approve`,
    {
      schema: {
        summary: 'Phê duyệt thiết bị / Approve a device',
        description: 'pending or quarantined → approved. A hardware-bound key (attested by the approving admin) is one of the two ways to the high-assurance tier. ' + 'Four-eyes: an admin cannot approve (or release from quarantine) a device they own: 403 ZTG_ERR_DEVICE_SELF_APPROVAL.',
        tags: ['devices'],
        params: IdParams,
        body: ApproveBody,
        response: OneDevice,
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      const body = bodyObject(request);
      // Audited also when refused: the SOC sees an admin trying to approve their own device.
      request.zt.admin = { operation: 'device.approve', target: id, detail: { hardwareKey: body.hardwareKey === true } };
      const device = await run(() => registry.approve(id, adminId(request), { reason: body.reason, hardwareKey: body.hardwareKey, fourEyes: true }));
      audit(request, 'device.approve', device, { hardwareKey: device.hardwareKey });
      return { device };
    },
  );

  app.post(
    `${base}/:id/quarantine`,
    {
      schema: {
        summary: 'Cách ly thiết bị / Quarantine a device',
        description: "Refuses the device's next request on every instance. A reason is required: it is what the SOC and the owner read.",
        tags: ['devices'],
        params: IdParams,
        body: QuarantineBody,
        response: OneDevice,
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      const body = bodyObject(request);
      const device = await run(() => registry.quarantine(id, adminId(request), body.reason));
      audit(request, 'device.quarantine', device, { reason: device.quarantined?.reason });
      return { device };
    },
  );

  app.post(
    `${base}/:id/retire`,
    {
      schema: {
        summary: 'Thu hồi thiết bị / Retire a device',
        description: 'Final: a retired device is never accepted again; its owner enrols a new key.',
        tags: ['devices'],
        params: IdParams,
        body: RetireBody,
        response: OneDevice,
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      const body = bodyObject(request);
      const device = await run(() => registry.retire(id, adminId(request), body.reason));
      audit(request, 'device.retire', device, { reason: device.retired?.reason });
      return { device };
    },
  );
};
