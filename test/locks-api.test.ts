import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, TEST_AUDIENCE, type Harness } from './helpers/harness.js';

const SECURITY_ADMIN = '056179000006'; // Vũ Thị Giang, security-admin
const OFFICIAL = '056085000001'; // Nguyễn Văn An, ho-tich-reader

let h: Harness;
beforeAll(async () => {
  // The SOC analyst's token comes from the test issuer, without acr: this suite is about locks, not assurance.
  h = await startHarness({
    configure: (doc) => {
      doc.admin.minAssuranceLevel = 0;
    },
  });
});
afterAll(async () => {
  await h?.close();
});

/** A SOC analyst: the test issuer mints the role no demo official has. */
async function analystToken(): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return h.testIssuer.sign({ iss: h.testIssuer.issuer, aud: TEST_AUDIENCE, sub: '056179000006', national_id: '056179000006', agency: 'cong-an-tinh', roles: ['soc-analyst'], iat: now, exp: now + 300 });
}

async function admin(method: string, path: string, token: string, body?: unknown) {
  const res = await fetch(`${h.gateway.adminUrl}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
  const json = (await res.json()) as any;
  return { status: res.status, body: json, event: await h.sink.forRequest(res.headers.get('x-request-id')) };
}

async function data(path: string, token: string) {
  const res = await fetch(`${h.gateway.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return { status: res.status, event: await h.sink.forRequest(res.headers.get('x-request-id')) };
}

describe('locks API', () => {
  it('a security admin locks an official with a reason and an expiry; the next request is refused 403 locked-user; lifting restores access', async () => {
    const token = await h.token(OFFICIAL);
    expect((await data('/echo/things/1', token)).status).toBe(200);
    const set = await admin('POST', '/api/v1/locks', await h.token(SECURITY_ADMIN), { kind: 'user', value: OFFICIAL, reason: 'Nghi lộ tài khoản (kiểm thử)', expiresInSeconds: 600 });
    expect(set.status).toBe(201);
    expect(set.body).toMatchObject({ kind: 'user', value: OFFICIAL, lockedBy: SECURITY_ADMIN });
    expect(set.event.ztgate.admin).toMatchObject({ operation: 'locks.set', target: `user:${OFFICIAL}` });

    const refused = await data('/echo/things/1', token);
    expect(refused.status).toBe(403);
    expect(refused.event.ztgate).toMatchObject({ decision: 'deny', reasons: ['locked-user'], error_code: 'ZTG_ERR_LOCKED' });

    const list = await admin('GET', '/api/v1/locks', await h.token(SECURITY_ADMIN));
    expect(list.body.items.map((l: any) => `${l.kind}:${l.value}`)).toContain(`user:${OFFICIAL}`);

    const lifted = await admin('DELETE', `/api/v1/locks/user/${OFFICIAL}`, await h.token(SECURITY_ADMIN), { reason: 'Đã xác minh (kiểm thử)' });
    expect(lifted.status).toBe(200);
    expect(lifted.event.ztgate.admin).toMatchObject({ operation: 'locks.lift', detail: { reason: 'Đã xác minh (kiểm thử)' } });
    expect((await data('/echo/things/1', token)).status).toBe(200);
  });

  it('a lock on the source address refuses everyone from it (::ffff: form normalised)', async () => {
    const lock = await admin('POST', '/api/v1/locks', await analystToken(), { kind: 'address', value: '::ffff:127.0.0.1', reason: 'Quét dò (kiểm thử)', expiresInSeconds: 60 });
    expect(lock.body.value).toBe('127.0.0.1');
    const refused = await data('/echo/things/1', await h.token(OFFICIAL));
    expect(refused.event.ztgate.reasons).toEqual(['locked-address']);
    // The lock holds on the management plane too, and nobody lifts a lock on the address they call from.
    const selfLift = await admin('DELETE', '/api/v1/locks/address/127.0.0.1', await analystToken(), { reason: 'Hết nghi vấn' });
    expect(selfLift.status).toBe(403);
    expect(selfLift.event.ztgate.reasons).toEqual(['locked-address']);
    // In production another analyst lifts it from the management network; here every plane shares 127.0.0.1.
    expect(await h.gateway.runtime.locks.lift('address', '127.0.0.1')).not.toBeNull();
  });

  it('a SOC analyst may set, list and lift locks, and nothing else on the management plane', async () => {
    const token = await analystToken();
    expect((await admin('GET', '/api/v1/locks', token)).status).toBe(200);
    const whoami = await admin('GET', '/api/v1/whoami', token);
    expect(whoami.status).toBe(403);
    expect(whoami.body.error.reason).toBe('admin-role-required');
  });

  it('attack: an official cannot lift their own lock', async () => {
    await admin('POST', '/api/v1/locks', await h.token(SECURITY_ADMIN), { kind: 'user', value: '056080000005', reason: 'Kiểm thử', expiresInSeconds: 60 });
    const r = await admin('DELETE', '/api/v1/locks/user/056080000005', await h.token('056080000005'), { reason: 'tự gỡ' });
    expect(r.status).toBe(403);
    // Locks hold on the management plane before its role check: the locked official gets no further.
    expect(r.event.ztgate.reasons).toEqual(['locked-user']);
  });

  it('refuses bad input with the field named, and lifting an absent lock is 404 lock-not-found', async () => {
    const token = await h.token(SECURITY_ADMIN);
    const bad = await admin('POST', '/api/v1/locks', token, { kind: 'user', value: '12345', reason: 'x y z', expiresInSeconds: 60 });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('value');
    const noReason = await admin('POST', '/api/v1/locks', token, { kind: 'user', value: OFFICIAL, expiresInSeconds: 60 });
    expect(noReason.status).toBe(400);
    const missing = await admin('DELETE', '/api/v1/locks/user/056190000002', token, { reason: 'không có' });
    expect(missing.status).toBe(404);
    expect(missing.body.error).toMatchObject({ code: 'ZTG_ERR_LOCK_NOT_FOUND', reason: 'lock-not-found' });
  });
});
