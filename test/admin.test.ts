import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './helpers/harness.js';

const SECURITY_ADMIN = '056179000006'; // Vũ Thị Giang, security-admin
const OFFICIAL = '056085000001'; // Nguyễn Văn An, ho-tich-reader

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

async function adminCall(path: string, token?: string) {
  const res = await fetch(`${h.gateway.adminUrl}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const body = (await res.json()) as any;
  const event = await h.sink.forRequest(res.headers.get('x-request-id'));
  return { res, body, event };
}

describe('management plane', () => {
  it('listens apart from the data plane', () => {
    expect(h.gateway.adminUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(h.gateway.adminUrl).not.toBe(h.gateway.url);
  });

  it('lets a security admin in, and audits the request', async () => {
    const { res, body, event } = await adminCall('/api/v1/whoami', await h.token(SECURITY_ADMIN));
    expect(res.status).toBe(200);
    expect(body).toMatchObject({ nationalId: SECURITY_ADMIN, roles: ['security-admin'] });
    expect(event.event.action).toBe('admin-request');
    expect(event.ztgate.decision).toBe('allow');
    expect(event.user.id).toBe(SECURITY_ADMIN);
  });

  it('refuses an official without the security-admin role: 403 admin-role-required', async () => {
    const { res, body, event } = await adminCall('/api/v1/whoami', await h.token(OFFICIAL));
    expect(res.status).toBe(403);
    expect(body.error.reason).toBe('admin-role-required');
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['admin-role-required'] });
  });

  it('refuses an anonymous request: 401 token-missing', async () => {
    const { res, event } = await adminCall('/api/v1/whoami');
    expect(res.status).toBe(401);
    expect(event.event.action).toBe('admin-request');
    expect(event.ztgate.reasons).toEqual(['token-missing']);
  });

  it('is not reachable through the data plane', async () => {
    const res = await fetch(`${h.gateway.url}/api/v1/whoami`, { headers: { authorization: `Bearer ${await h.token(SECURITY_ADMIN)}` } });
    expect(res.status).toBe(404);
  });
});
