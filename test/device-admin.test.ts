import { randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceRegistry } from '../identity/devices.js';
import { createDpopProof } from '../demo/device-cli.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { deleteKeysWithPrefix, redisUrl } from './helpers/redis.js';

/**
 * The management plane behind the device step and the locks, like the data plane, and locks on
 * device enrolment. Scripted admin calls prove their device with DPoP here (plain http);
 * test/mtls-device.test.ts covers client certificates.
 */

const OWNER = '056085000001'; // Nguyễn Văn An, ho-tich-reader
const ADMIN_A = '056179000006'; // Vũ Thị Giang, security-admin
const ADMIN_B = '056083000007'; // Đặng Văn Hùng, security-admin

interface Device {
  privateKey: CryptoKey;
  publicJwk: JWK;
  id: string;
}

let h: Harness;
let prefix: string;
let registry: DeviceRegistry;
const own: Record<string, Device> = {};

async function newDevice(): Promise<Device> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  return { privateKey, publicJwk, id: await calculateJwkThumbprint(publicJwk, 'sha256') };
}

/** An approved device of `owner`, put in the registry directly (the bootstrap an operator does). */
async function approved(owner: string): Promise<Device> {
  const device = await newDevice();
  await registry.enrol({ jwk: device.publicJwk, name: 'Máy trạm (giả lập)', ownerNationalId: owner });
  await registry.approve(device.id, ADMIN_A, { reason: 'khởi tạo (kiểm thử)' });
  return device;
}

beforeAll(async () => {
  prefix = `ztgate-test:${randomUUID()}:`;
  const url = await redisUrl();
  h = await startHarness({
    configure(doc) {
      doc.state = { backend: 'redis', redisUrl: url, keyPrefix: prefix };
      doc.admin.minDeviceTier = 'registered';
    },
  });
  registry = new DeviceRegistry(h.gateway.runtime.store);
  own[ADMIN_A] = await approved(ADMIN_A);
  own[ADMIN_B] = await approved(ADMIN_B);
});

afterAll(async () => {
  await h?.close();
  await deleteKeysWithPrefix(prefix);
});

async function send(base: string, path: string, opts: { who: string; device?: Device | null; method?: string; body?: unknown }) {
  const method = opts.method ?? 'GET';
  const token = await h.token(opts.who);
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  const device = opts.device === undefined ? own[opts.who] : opts.device;
  if (device) headers.dpop = await createDpopProof(device, method, `${base}${path}`, token);
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const body = (await res.json()) as any;
  const event = await h.sink.forRequest(res.headers.get('x-request-id'));
  return { status: res.status, body, event };
}

const admin = (path: string, opts: { who: string; device?: Device | null; method?: string; body?: unknown }) => send(h.gateway.adminUrl!, path, opts);
const lock = (kind: string, value: string, by = ADMIN_B) => admin('/api/v1/locks', { who: by, method: 'POST', body: { kind, value, reason: 'Kiểm thử khóa (giả lập)', expiresInSeconds: 600 } });
const unlock = (kind: string, value: string, by = ADMIN_B) => admin(`/api/v1/locks/${kind}/${value}`, { who: by, method: 'DELETE', body: { reason: 'Đã xác minh (kiểm thử)' } });

describe('the management plane asks for a trusted device (admin.minDeviceTier)', () => {
  it("an admin's approved device, proven by DPoP, reaches the admin API; the event shows it", async () => {
    const { status, body, event } = await admin('/api/v1/whoami', { who: ADMIN_A });
    expect(status).toBe(200);
    expect(body.nationalId).toBe(ADMIN_A);
    expect(event.event.action).toBe('admin-request');
    expect(event.ztgate.device).toMatchObject({ id: own[ADMIN_A]!.id, tier: 'registered', via: 'dpop' });
  });

  it('without a device proof: 403 device-tier-insufficient, with an event', async () => {
    const { status, body, event } = await admin('/api/v1/whoami', { who: ADMIN_A, device: null });
    expect(status).toBe(403);
    expect(body.error.reason).toBe('device-tier-insufficient');
    expect(event.ztgate.decision).toBe('deny');
    expect(event.ztgate.device).toMatchObject({ id: null, tier: 'unknown' });
  });

  it('an enrolled device not yet approved is below the minimum: 403 device-tier-insufficient', async () => {
    const device = await newDevice();
    await registry.enrol({ jwk: device.publicJwk, name: 'Máy mới (giả lập)', ownerNationalId: ADMIN_A });
    const { status, body } = await admin('/api/v1/whoami', { who: ADMIN_A, device });
    expect(status).toBe(403);
    expect(body.error.reason).toBe('device-tier-insufficient');
  });

  it("attack: an admin token with another admin's device is refused, device-owner-mismatch", async () => {
    const { status, body, event } = await admin('/api/v1/whoami', { who: ADMIN_A, device: own[ADMIN_B]! });
    expect(status).toBe(403);
    expect(body.error.reason).toBe('device-owner-mismatch');
    expect(event.ztgate.decision).toBe('deny');
  });

  it('attack: a proof made for the data plane is refused on the management plane, device-proof-mismatch', async () => {
    const token = await h.token(ADMIN_A);
    const dpop = await createDpopProof(own[ADMIN_A]!, 'GET', `${h.gateway.url}/api/v1/whoami`, token);
    const res = await fetch(`${h.gateway.adminUrl}/api/v1/whoami`, { headers: { authorization: `Bearer ${token}`, dpop } });
    expect(res.status).toBe(401);
    expect(((await res.json()) as any).error.reason).toBe('device-proof-mismatch');
  });
});

describe('locks hold on the management plane', () => {
  it('a locked admin is refused there, 403 locked-user with an event, until another admin lifts the lock', async () => {
    expect((await lock('user', ADMIN_A)).status).toBe(201);
    const refused = await admin('/api/v1/whoami', { who: ADMIN_A });
    expect(refused.status).toBe(403);
    expect(refused.body.error.reason).toBe('locked-user');
    expect(refused.event.ztgate.decision).toBe('deny');
    // The locked admin cannot lift it: the lock already keeps them out.
    const selfLift = await unlock('user', ADMIN_A, ADMIN_A);
    expect(selfLift.status).toBe(403);
    expect(selfLift.body.error.reason).toBe('locked-user');
    expect((await unlock('user', ADMIN_A)).status).toBe(200);
    expect((await admin('/api/v1/whoami', { who: ADMIN_A })).status).toBe(200);
  });

  it('a locked device is refused there, locked-device; its owner cannot lift that lock from another device (lock-self-lift), another admin can', async () => {
    const first = await approved(ADMIN_A);
    expect((await lock('device', first.id)).status).toBe(201);
    const refused = await admin('/api/v1/whoami', { who: ADMIN_A, device: first });
    expect(refused.status).toBe(403);
    expect(refused.body.error.reason).toBe('locked-device');

    const selfLift = await unlock('device', first.id, ADMIN_A);
    expect(selfLift.status).toBe(403);
    expect(selfLift.body.error).toMatchObject({ code: 'ZTG_ERR_LOCK_SELF_LIFT', reason: 'lock-self-lift' });
    expect(selfLift.event.ztgate.decision).toBe('deny');
    expect(selfLift.event.ztgate.admin).toMatchObject({ operation: 'locks.lift', target: `device:${first.id}` });
    expect((await admin('/api/v1/whoami', { who: ADMIN_A, device: first })).status).toBe(403);

    const lifted = await unlock('device', first.id, ADMIN_B);
    expect(lifted.status).toBe(200);
    expect(lifted.event.ztgate.admin).toMatchObject({ operation: 'locks.lift', detail: { lockedBy: ADMIN_B } });
    expect((await admin('/api/v1/whoami', { who: ADMIN_A, device: first })).status).toBe(200);
  });

  it('an admin may lift a lock on an official they are not', async () => {
    expect((await lock('user', OWNER, ADMIN_A)).status).toBe(201);
    expect((await unlock('user', OWNER, ADMIN_A)).status).toBe(200);
  });
});

describe('locks hold on device enrolment', () => {
  const enrol = async (device: Device) => {
    const token = await h.token(OWNER);
    const url = `${h.gateway.url}/.ztgate/devices`;
    const res = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, dpop: await createDpopProof(device, 'POST', url, token), 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Máy trạm (giả lập)' }),
    });
    const body = (await res.json()) as any;
    return { status: res.status, body, event: await h.sink.forRequest(res.headers.get('x-request-id')) };
  };

  it('a locked official enrols nothing: 403 locked-user, with an event', async () => {
    const device = await newDevice();
    expect((await lock('user', OWNER)).status).toBe(201);
    try {
      const { status, body, event } = await enrol(device);
      expect(status).toBe(403);
      expect(body.error.reason).toBe('locked-user');
      expect(event.ztgate.decision).toBe('deny');
      expect(await registry.get(device.id)).toBeNull();
    } finally {
      await unlock('user', OWNER);
    }
  });

  it('attack: a locked device key cannot be enrolled (again) under another name: 403 locked-device', async () => {
    const device = await newDevice();
    expect((await lock('device', device.id)).status).toBe(201);
    const { status, body, event } = await enrol(device);
    expect(status).toBe(403);
    expect(body.error.reason).toBe('locked-device');
    expect(event.ztgate.device).toMatchObject({ id: device.id });
    expect(await registry.get(device.id)).toBeNull();
    expect((await unlock('device', device.id)).status).toBe(200);
    expect((await enrol(device)).status).toBe(201);
  });
});
