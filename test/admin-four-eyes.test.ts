import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceRegistry, type DeviceRecord } from '../identity/devices.js';
import { ROOT, startHarness, type Harness } from './helpers/harness.js';
import { deleteKeysWithPrefix, redisUrl } from './helpers/redis.js';

/**
 * Four-eyes on the management plane: what one security admin cannot do alone. Each attack goes
 * through the real management API, with demo IdP tokens of the two synthetic security admins,
 * on real Redis; the audit event (ztgate.admin) is asserted, not only the status.
 */

const ADMIN_A = '056179000006'; // Vũ Thị Giang, security-admin (synthetic)
const ADMIN_B = '056083000007'; // Đặng Văn Hùng, security-admin (synthetic)
const OFFICIAL = '056085000001'; // Nguyễn Văn An, ho-tich-reader (synthetic)
const DEMO_ROSTER = readFileSync(join(ROOT, 'demo', 'roster.csv'), 'utf8');
const CLEARANCE_AND_STATUS = ',security-admin,Tối mật,active';

let h: Harness;
let prefix: string;
let registry: DeviceRegistry;

beforeAll(async () => {
  prefix = `ztgate-test:${randomUUID()}:`;
  const url = await redisUrl();
  h = await startHarness({
    configure(doc) {
      doc.state = { backend: 'redis', redisUrl: url, keyPrefix: prefix };
      doc.identity.roster = { source: 'file', file: join(ROOT, 'demo', 'roster.csv') };
      doc.policy = { model: 'policies/model.conf', policy: 'test/fixtures/four-eyes-policy.csv' };
      doc.routes.push({
        id: 'mat',
        name: 'Dịch vụ mật (giả lập)',
        pathPrefix: '/mat',
        upstream: 'http://127.0.0.1:9',
        ownerAgency: 'cong-an-tinh',
        securityLevel: 4,
        classification: 'toi-mat',
        approval: { status: 'approved', approvedBy: ADMIN_A, approvedAt: '2026-01-01' },
      });
      doc.devices.defaultMinTierBySecurityLevel = { '3': 'unknown', '4': 'unknown' };
    },
  });
  registry = new DeviceRegistry(h.gateway.runtime.store);
});

afterAll(async () => {
  await h?.close();
  await deleteKeysWithPrefix(prefix);
});

async function call(who: string, method: string, path: string, body?: unknown, contentType = 'application/json') {
  const base = path.startsWith('/api/') ? h.gateway.adminUrl! : h.gateway.url;
  const headers: Record<string, string> = { authorization: `Bearer ${await h.token(who)}` };
  if (body !== undefined) headers['content-type'] = contentType;
  const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  const event = await h.sink.forRequest(res.headers.get('x-request-id'));
  return { status: res.status, body: text ? (JSON.parse(text) as any) : null, event };
}

/** The demo roster with one line of one official changed. */
function rosterWith(nationalId: string, replacement: string): string {
  const lines = DEMO_ROSTER.split('\n');
  const i = lines.findIndex((l) => l.startsWith(`${nationalId},`));
  expect(lines[i]).toContain(CLEARANCE_AND_STATUS);
  lines[i] = lines[i]!.replace(CLEARANCE_AND_STATUS, replacement);
  return lines.join('\n');
}

describe('roster: nobody changes their own entry', () => {
  it('attack: an admin imports a roster granting themselves a role and Tuyệt mật → 403 roster-self-change, nothing changes, the event names the change', async () => {
    const csv = rosterWith(ADMIN_A, ',security-admin|ho-tich-reader,Tuyệt mật,active');
    const refused = await call(ADMIN_A, 'PUT', '/api/v1/roster', csv, 'text/csv');
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject({ code: 'ZTG_ERR_ROSTER_SELF_CHANGE', reason: 'roster-self-change' });
    expect(refused.event.event.action).toBe('admin-request');
    expect(refused.event.ztgate).toMatchObject({
      decision: 'deny',
      reasons: ['roster-self-change'],
      admin: { operation: 'roster.import', detail: { refused: 'self-change', own: { nationalId: ADMIN_A, change: 'changed', roles: { added: ['ho-tich-reader'], removed: [] }, clearance: { from: 'toi-mat', to: 'tuyet-mat' } } } },
    });
    const entry = await call(ADMIN_B, 'GET', `/api/v1/roster/${ADMIN_A}`);
    expect(entry.body).toMatchObject({ roles: ['security-admin'], clearance: 'toi-mat' });
  });

  it('another admin can make the same import; the event lists every official it changed, field by field, without names', async () => {
    const csv = rosterWith(ADMIN_A, ',security-admin|ho-tich-reader,Tuyệt mật,active');
    const done = await call(ADMIN_B, 'PUT', '/api/v1/roster', csv, 'text/csv');
    expect(done.status).toBe(200);
    expect(done.event.ztgate.admin).toMatchObject({
      operation: 'roster.import',
      detail: { added: 0, removed: 0, changed: 1, truncated: false, changes: [{ nationalId: ADMIN_A, change: 'changed', roles: { added: ['ho-tich-reader'], removed: [] }, clearance: { from: 'toi-mat', to: 'tuyet-mat' } }] },
    });
    expect(JSON.stringify(done.event.ztgate.admin)).not.toContain('Vũ Thị Giang');
    // Back to the demo roster: the change is A's, so A may not undo it either.
    expect((await call(ADMIN_A, 'PUT', '/api/v1/roster', DEMO_ROSTER, 'text/csv')).status).toBe(403);
    const back = await call(ADMIN_B, 'PUT', '/api/v1/roster', DEMO_ROSTER, 'text/csv');
    expect(back.status).toBe(200);
    expect(back.event.ztgate.admin.detail).toMatchObject({ changed: 1, changes: [{ nationalId: ADMIN_A, clearance: { from: 'tuyet-mat', to: 'toi-mat' }, roles: { added: [], removed: ['ho-tich-reader'] } }] });
  });

  it('an import that adds and removes officials says who, with the roles and clearance granted', async () => {
    const csv = `${DEMO_ROSTER.trimEnd()}\n056094000008,Bùi Văn Khoa (giả lập),so-tu-phap,U,P,ho-tich-reader,mat,active\n`;
    const added = await call(ADMIN_B, 'PUT', '/api/v1/roster', csv, 'text/csv');
    expect(added.event.ztgate.admin.detail).toMatchObject({ added: 1, removed: 0, changed: 0, changes: [{ nationalId: '056094000008', change: 'added', roles: ['ho-tich-reader'], clearance: 'mat', agency: 'so-tu-phap', status: 'active' }] });
    const removed = await call(ADMIN_B, 'PUT', '/api/v1/roster', DEMO_ROSTER, 'text/csv');
    expect(removed.event.ztgate.admin.detail).toMatchObject({ added: 0, removed: 1, changes: [{ nationalId: '056094000008', change: 'removed' }] });
  });

  it('attack: an admin removes themselves from the roster or reactivates their own status → 403 roster-self-change', async () => {
    const without = DEMO_ROSTER.split('\n')
      .filter((l) => !l.startsWith(`${ADMIN_A},`))
      .join('\n');
    const gone = await call(ADMIN_A, 'PUT', '/api/v1/roster', without, 'text/csv');
    expect(gone.status).toBe(403);
    expect(gone.event.ztgate.admin.detail.own).toEqual({ nationalId: ADMIN_A, change: 'removed' });
    const status = await call(ADMIN_A, 'PATCH', `/api/v1/roster/${ADMIN_A}`, { status: 'active', reason: 'tự kích hoạt (kiểm thử)' });
    expect(status.status).toBe(403);
    expect(status.event.ztgate).toMatchObject({ reasons: ['roster-self-change'], admin: { operation: 'roster.status', target: ADMIN_A } });
  });
});

describe('services: a change that weakens protection needs a second security admin', () => {
  const refusedOnMat = async () => (await call(OFFICIAL, 'GET', '/mat/x')).event.ztgate.reasons;

  it('attack: one admin declassifies a state-secret service → pending (202), nothing applies, and confirming it themselves → 403 four-eyes-required', async () => {
    expect(await refusedOnMat()).toContain('clearance-insufficient');
    const proposed = await call(ADMIN_A, 'PATCH', '/api/v1/services/mat', { classification: 'internal' });
    expect(proposed.status).toBe(202);
    expect(proposed.body.pending).toMatchObject({ serviceId: 'mat', patch: { classification: 'internal' }, proposedBy: ADMIN_A });
    expect(proposed.event.ztgate.admin).toMatchObject({ operation: 'services.change.propose', target: 'mat', detail: { changeId: proposed.body.pending.id, before: { classification: 'toi-mat' }, patch: { classification: 'internal' } } });
    expect((await call(ADMIN_A, 'GET', '/api/v1/services/mat')).body).toMatchObject({ classification: 'toi-mat', pendingChanges: [{ id: proposed.body.pending.id }] });
    expect(await refusedOnMat()).toContain('clearance-insufficient');

    const self = await call(ADMIN_A, 'POST', `/api/v1/services/mat/changes/${proposed.body.pending.id}/confirm`, { comment: 'tự xác nhận (kiểm thử)' });
    expect(self.status).toBe(403);
    expect(self.body.error).toMatchObject({ code: 'ZTG_ERR_FOUR_EYES_REQUIRED', reason: 'four-eyes-required' });
    expect(self.event.ztgate).toMatchObject({ decision: 'deny', reasons: ['four-eyes-required'], admin: { operation: 'services.change.confirm', target: 'mat', detail: { changeId: proposed.body.pending.id } } });
    expect(await refusedOnMat()).toContain('clearance-insufficient');

    // The second admin refuses it; it is gone, and cannot be confirmed afterwards.
    const rejected = await call(ADMIN_B, 'POST', `/api/v1/services/mat/changes/${proposed.body.pending.id}/reject`, { comment: 'Không có căn cứ giải mật (kiểm thử)' });
    expect(rejected.status).toBe(200);
    expect(rejected.event.ztgate.admin).toMatchObject({ operation: 'services.change.reject', detail: { proposedBy: ADMIN_A, comment: 'Không có căn cứ giải mật (kiểm thử)' } });
    const late = await call(ADMIN_B, 'POST', `/api/v1/services/mat/changes/${proposed.body.pending.id}/confirm`, { comment: 'muộn' });
    expect(late.status).toBe(404);
    expect(late.body.error.reason).toBe('service-change-not-found');
    expect((await call(ADMIN_A, 'GET', '/api/v1/services/mat')).body).toMatchObject({ classification: 'toi-mat', pendingChanges: [] });
  });

  it('attack: one admin lowers the security level or approves a service alone → pending; another admin confirms and it applies, audited with both names', async () => {
    const lower = await call(ADMIN_A, 'PATCH', '/api/v1/services/mat', { securityLevel: 2 });
    expect(lower.status).toBe(202);
    const approve = await call(ADMIN_A, 'PATCH', '/api/v1/services/cong-thuong', { approval: { status: 'approved', reason: 'Đã đánh giá (kiểm thử)' } });
    expect(approve.status).toBe(202);
    expect((await call(OFFICIAL, 'GET', '/cong-thuong/x')).event.ztgate.reasons).toEqual(['route-not-approved']);

    const confirmed = await call(ADMIN_B, 'POST', `/api/v1/services/cong-thuong/changes/${approve.body.pending.id}/confirm`, { comment: 'Đồng ý (kiểm thử)' });
    expect(confirmed.status).toBe(200);
    expect(confirmed.body).toMatchObject({ approval: { status: 'approved', approvedBy: ADMIN_B, proposedBy: ADMIN_A, reason: 'Đã đánh giá (kiểm thử)' } });
    expect(confirmed.event.ztgate.admin).toMatchObject({
      operation: 'services.change.confirm',
      target: 'cong-thuong',
      detail: { proposedBy: ADMIN_A, before: { approvalStatus: 'pending' }, after: { approvalStatus: 'approved' }, comment: 'Đồng ý (kiểm thử)' },
    });
    expect((await call(OFFICIAL, 'GET', '/cong-thuong/x')).event.ztgate.reasons).not.toContain('route-not-approved');
    // A change id belongs to its service: confirming it under another service is not found.
    expect((await call(ADMIN_B, 'POST', `/api/v1/services/echo/changes/${lower.body.pending.id}/confirm`, { comment: 'x' })).status).toBe(404);
    expect((await call(ADMIN_B, 'POST', `/api/v1/services/mat/changes/${lower.body.pending.id}/reject`, { comment: 'Giữ cấp độ 4' })).status).toBe(200);
  });

  it('a change that strengthens protection applies at once (200), by one admin', async () => {
    const raised = await call(ADMIN_A, 'PATCH', '/api/v1/services/cong-thuong', { securityLevel: 4, classification: 'mat' });
    expect(raised.status).toBe(200);
    expect(raised.body).toMatchObject({ securityLevel: 4, classification: 'mat' });
    const suspended = await call(ADMIN_A, 'PATCH', '/api/v1/services/cong-thuong', { approval: { status: 'suspended', reason: 'Sự cố (kiểm thử)' } });
    expect(suspended.status).toBe(200);
    expect(suspended.event.ztgate.admin).toMatchObject({ operation: 'services.approval', detail: { after: { approvalStatus: 'suspended' } } });
  });
});

describe('devices: nobody approves their own device, and a quarantine is never lost', () => {
  async function enrol(owner: string): Promise<string> {
    const { publicKey } = await generateKeyPair('ES256', { extractable: true });
    return (await registry.enrol({ jwk: await exportJWK(publicKey), name: 'Máy trạm (giả lập)', ownerNationalId: owner })).id;
  }

  it('attack: an admin approves their own device, attesting a hardware key → 403 device-self-approval; another admin may', async () => {
    const id = await enrol(ADMIN_A);
    const self = await call(ADMIN_A, 'POST', `/api/v1/devices/${id}/approve`, { hardwareKey: true });
    expect(self.status).toBe(403);
    expect(self.body.error).toMatchObject({ code: 'ZTG_ERR_DEVICE_SELF_APPROVAL', reason: 'device-self-approval' });
    expect(self.event.ztgate).toMatchObject({ decision: 'deny', reasons: ['device-self-approval'], admin: { operation: 'device.approve', target: id, detail: { hardwareKey: true } } });
    expect(await registry.get(id)).toMatchObject({ status: 'pending', hardwareKey: false });
    const other = await call(ADMIN_B, 'POST', `/api/v1/devices/${id}/approve`, { hardwareKey: true });
    expect(other.status).toBe(200);
    expect(other.body.device).toMatchObject({ status: 'approved', hardwareKey: true, approved: { by: ADMIN_B } });
  });

  it("attack: the SOC quarantines an admin's device; the admin cannot re-approve it themselves", async () => {
    const id = await enrol(ADMIN_A);
    expect((await call(ADMIN_B, 'POST', `/api/v1/devices/${id}/approve`, {})).status).toBe(200);
    expect((await call(ADMIN_B, 'POST', `/api/v1/devices/${id}/quarantine`, { reason: 'Phát hiện mã độc (kiểm thử)' })).status).toBe(200);
    const again = await call(ADMIN_A, 'POST', `/api/v1/devices/${id}/approve`, { reason: 'của tôi' });
    expect(again.status).toBe(403);
    expect(again.event.ztgate.reasons).toEqual(['device-self-approval']);
    expect((await registry.get(id))!.status).toBe('quarantined');
  });

  it('attack: a quarantine racing an approve is never overwritten (transitions are serialised)', async () => {
    for (let i = 0; i < 25; i++) {
      const id = await enrol(OFFICIAL);
      const [approved, quarantined] = await Promise.all([call(ADMIN_A, 'POST', `/api/v1/devices/${id}/approve`, {}), call(ADMIN_B, 'POST', `/api/v1/devices/${id}/quarantine`, { reason: 'Cảnh báo SOC (kiểm thử)' })]);
      expect([approved.status, quarantined.status]).toEqual([200, 200]);
      const final = (await registry.get(id)) as DeviceRecord;
      // Whichever ran last saw the other's write: nothing either of them wrote is lost.
      if (final.status === 'approved') {
        expect(final.quarantined, `run ${i}: an approve overwrote a quarantine it never saw`).toBeDefined();
        expect(quarantined.body.device.approved).toBeUndefined();
      } else {
        expect(final.status).toBe('quarantined');
        expect(final.approved, `run ${i}: a quarantine overwrote an approval it never saw`).toBeDefined();
        expect(final).toEqual(quarantined.body.device);
      }
    }
  });
});

describe('the policy decide tool normalises the path like the data plane', () => {
  it('attack: /Admin is denied on the data plane, and the decide tool answers the same (not allow by /*)', async () => {
    const data = await call(OFFICIAL, 'GET', '/echo/Admin');
    expect(data.status).toBe(403);
    expect(data.event.ztgate.reasons).toEqual(['policy-denied']);
    const tool = await call(ADMIN_A, 'POST', '/api/v1/policies/decide', { nationalId: OFFICIAL, routeId: 'echo', method: 'GET', path: '/Admin' });
    expect(tool.status).toBe(200);
    expect(tool.body).toMatchObject({ effect: 'deny', reasons: ['policy-denied'] });
    expect(tool.event.ztgate.admin).toMatchObject({ operation: 'policy.decide', detail: { path: '/Admin', effect: 'deny' } });
  });
});
