import type { FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import { bodyObject, registryFailure } from '../device-routes.js';
import { ADMIN_API_PREFIX, type AdminModule } from './app.js';
import { DEVICE_STATUSES, DeviceRegistry, type DeviceRecord, type DeviceStatus } from '../../identity/devices.js';
import { isNationalId } from '../../identity/national-id.js';

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
      throw registryFailure(err);
    }
  };
  const adminId = (request: FastifyRequest) => request.zt.principal!.nationalId;
  const audit = (request: FastifyRequest, operation: string, record: DeviceRecord, detail: Record<string, unknown> = {}) => {
    request.zt.admin = { operation, target: record.id, detail: { owner: record.ownerNationalId, status: record.status, ...detail } };
  };

  app.get(base, async (request) => {
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
  });

  app.get(`${base}/:id`, async (request) => {
    const { id } = request.params as { id: string };
    const device = await run(() => registry.get(id));
    if (!device) throw new GatewayError('ZTG_ERR_DEVICE_NOT_FOUND', 'device-not-found');
    request.zt.admin = { operation: 'device.get', target: id };
    return { device };
  });

  app.post(`${base}/:id/approve`, async (request) => {
    const { id } = request.params as { id: string };
    const body = bodyObject(request);
    const device = await run(() => registry.approve(id, adminId(request), { reason: body.reason, hardwareKey: body.hardwareKey }));
    audit(request, 'device.approve', device, { hardwareKey: device.hardwareKey });
    return { device };
  });

  app.post(`${base}/:id/quarantine`, async (request) => {
    const { id } = request.params as { id: string };
    const body = bodyObject(request);
    const device = await run(() => registry.quarantine(id, adminId(request), body.reason));
    audit(request, 'device.quarantine', device, { reason: device.quarantined?.reason });
    return { device };
  });

  app.post(`${base}/:id/retire`, async (request) => {
    const { id } = request.params as { id: string };
    const body = bodyObject(request);
    const device = await run(() => registry.retire(id, adminId(request), body.reason));
    audit(request, 'device.retire', device, { reason: device.retired?.reason });
    return { device };
  });
};
