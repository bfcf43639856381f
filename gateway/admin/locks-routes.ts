import type { FastifyInstance, FastifyRequest } from 'fastify';
import Type, { type Static } from 'typebox';
import { GatewayError } from '../errors.js';
import { checkLockValue, LOCK_KINDS, LockInputError, MAX_LOCK_SECONDS, type Lock, type LockKind } from '../lock-registry.js';
import type { Runtime } from '../runtime.js';
import { normalizeAddress } from '../steps/locks.js';
import { ADMIN_API_PREFIX } from './api-prefix.js';
import type { AdminModule } from './app.js';
import { Body, Items, Params, Reply } from './schemas.js';
import { sessionDigest } from '../../identity/digest.js';
import { registryFailure } from '../device-routes.js';
import { DeviceRegistry } from '../../identity/devices.js';

/**
 * Locks for security admins and SOC analysts (admin.socRoles, `soc-analyst` by default): list,
 * set with a reason and an expiry, lift with a reason. A lock holds on every instance from the
 * next request (gateway/lock-registry.ts). Each call is audited with what it changed.
 *
 * Locks hold on this plane too (gateway/admin/app.ts): a locked admin cannot reach it. Nobody
 * lifts a lock on themselves — their national ID, a device they own, their own session or the
 * address they call from — even from another device: another admin or SOC analyst must (four-eyes).
 */

/** Whether a lock names the caller, so that lifting it is for someone else. */
async function targetsCaller(request: FastifyRequest, registry: DeviceRegistry, kind: LockKind, value: string): Promise<boolean> {
  const p = request.zt.principal!;
  switch (kind) {
    case 'user':
      return value === p.nationalId;
    case 'session':
      return p.sessionId !== null && value === sessionDigest(p.sessionId);
    case 'address':
      return value === normalizeAddress(request.socket.remoteAddress);
    case 'device': {
      if (value === request.zt.device?.id) return true;
      try {
        return (await registry.get(value))?.ownerNationalId === p.nationalId;
      } catch (err) {
        throw registryFailure(err);
      }
    }
  }
}

const LockReply = Reply({
  kind: Type.Enum(LOCK_KINDS),
  value: Type.String(),
  reason: Type.String(),
  lockedBy: Type.String(),
  lockedAt: Type.String(),
  expiresAt: Type.String(),
});

const SetBody = Body({
  kind: Type.Enum(LOCK_KINDS),
  value: Type.String({ minLength: 1, maxLength: 200, description: 'national ID, device id, session digest (ztgate.session.id_digest) or IP address' }),
  reason: Type.String({ minLength: 3, maxLength: 500, description: 'Lý do / why: required' }),
  expiresInSeconds: Type.Integer({ minimum: 1, maximum: MAX_LOCK_SECONDS }),
});

const LiftBody = Body({ reason: Type.String({ minLength: 3, maxLength: 500, description: 'Lý do gỡ khóa / why the lock is lifted' }) });

const LockParams = Params({ kind: Type.Enum(LOCK_KINDS), value: Type.String({ minLength: 1, maxLength: 200 }) });

const soc = { socAllowed: true };

function badInput(err: unknown): never {
  if (err instanceof LockInputError) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: `${err.field}: ${err.message}`, cause: err });
  throw err;
}

export const locksModule: AdminModule = (app: FastifyInstance, runtime: Runtime) => {
  const { locks } = runtime;
  const registry = new DeviceRegistry(runtime.store);

  app.get(
    `${ADMIN_API_PREFIX}/locks`,
    {
      config: soc,
      schema: { summary: 'Danh sách khóa đang hiệu lực / Active locks', tags: ['locks'], response: { 200: Items(LockReply) } },
    },
    async (request) => {
      request.zt.admin = { operation: 'locks.list' };
      return { items: await locks.list() };
    },
  );

  app.post(
    `${ADMIN_API_PREFIX}/locks`,
    {
      config: soc,
      schema: { summary: 'Đặt khóa / Set a lock', description: 'Locks an official, device, session or source address on every instance, until it expires or is lifted.', tags: ['locks'], body: SetBody, response: { 201: LockReply } },
    },
    async (request: FastifyRequest<{ Body: Static<typeof SetBody> }>, reply) => {
      const { kind, reason, expiresInSeconds } = request.body;
      const value = kind === 'address' ? normalizeAddress(request.body.value)! : request.body.value;
      let lock: Lock;
      try {
        checkLockValue(kind, value);
        lock = await locks.set({ kind, value, reason, seconds: expiresInSeconds, lockedBy: request.zt.principal!.nationalId });
      } catch (err) {
        badInput(err);
      }
      request.zt.admin = { operation: 'locks.set', target: `${kind}:${value}`, detail: { reason: lock.reason, expiresAt: lock.expiresAt } };
      return reply.code(201).send(lock);
    },
  );

  app.delete(
    `${ADMIN_API_PREFIX}/locks/:kind/:value`,
    {
      config: soc,
      schema: { summary: 'Gỡ khóa / Lift a lock', tags: ['locks'], params: LockParams, body: LiftBody, response: { 200: LockReply } },
    },
    async (request: FastifyRequest<{ Params: Static<typeof LockParams>; Body: Static<typeof LiftBody> }>) => {
      const { kind } = request.params;
      const value = kind === 'address' ? normalizeAddress(request.params.value)! : request.params.value;
      try {
        checkLockValue(kind, value);
      } catch (err) {
        badInput(err);
      }
      if (await targetsCaller(request, registry, kind, value)) {
        request.zt.admin = { operation: 'locks.lift', target: `${kind}:${value}`, detail: { refused: 'self' } };
        throw new GatewayError('ZTG_ERR_LOCK_SELF_LIFT', 'lock-self-lift');
      }
      const lifted = await locks.lift(kind, value);
      if (!lifted) throw new GatewayError('ZTG_ERR_LOCK_NOT_FOUND', 'lock-not-found');
      request.zt.admin = { operation: 'locks.lift', target: `${kind}:${value}`, detail: { reason: request.body.reason, lockedBy: lifted.lockedBy, lockReason: lifted.reason } };
      return lifted;
    },
  );
};
