import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { DEMO_GATEWAY_CLIENT_ID, DEMO_GATEWAY_CLIENT_SECRET } from '../demo/idp.js';
import { freePort, ROOT, startHarness, type Harness } from './helpers/harness.js';
import { chromiumAvailable, launchChromium } from './helpers/chromium.js';

/**
 * The admin UI end to end, in a real headless browser (Debian's chromium via playwright-core):
 * real OIDC sign-in at the demo IdP, the session cookie, CSRF, both languages, and the effect of
 * what admins do on the data plane, proven by decision events. Screenshots of each screen go to
 * test-artifacts/screenshots/ (kept by CI); with UPDATE_DOCS=1 the main ones also replace docs/screenshots/.
 */

const ADMIN_A = '056179000006'; // Vũ Thị Giang, security-admin
const ADMIN_B = '056083000007'; // Đặng Văn Hùng, security-admin
const VAN_THU = '056080000005'; // Hoàng Văn Em, van-thu: no rule lets the role read the echo service
const OFFICIAL = '056085000001'; // Nguyễn Văn An, ho-tich-reader

const SHOTS = join(ROOT, 'test-artifacts', 'screenshots');
const DOC_SHOTS = join(ROOT, 'docs', 'screenshots');
// A test run leaves the tracked README screenshots alone unless asked to refresh them.
const UPDATE_DOCS = process.env.UPDATE_DOCS === '1';
/** Screens the README shows. */
const FOR_README = new Set(['services', 'services-edit', 'live', 'policies', 'whatif', 'devices', 'sessions', 'officials', 'english', 'error-page']);

if (!chromiumAvailable()) throw new Error('chromium is not installed at /usr/bin/chromium: apt-get install -y chromium (.ci/run does it)');

let h: Harness;
let browser: Browser;
let adminUrl: string;

beforeAll(async () => {
  const adminPort = await freePort();
  adminUrl = `http://127.0.0.1:${adminPort}`;
  // The synthetic officials as the roster (HR's list), so that the roster screen has something to show.
  const rosterFile = join(mkdtempSync(join(tmpdir(), 'ztgate-roster-')), 'roster.json');
  const officials = JSON.parse(readFileSync(join(ROOT, 'demo', 'officials.json'), 'utf8')).officials.map(({ assuranceLevel: _a, ...o }: Record<string, unknown>) => o);
  writeFileSync(rosterFile, JSON.stringify({ officials }));
  h = await startHarness({
    idp: { gatewayRedirectUris: [`${adminUrl}/.ztgate/auth/callback`] },
    configure(doc) {
      doc.admin = { ...doc.admin, listen: { host: '127.0.0.1', port: adminPort }, publicUrl: adminUrl };
      doc.identity.roster = { source: 'file', file: rosterFile };
      doc.identity.browser = { issuer: doc.identity.issuers[0].issuer, clientId: DEMO_GATEWAY_CLIENT_ID, clientSecret: DEMO_GATEWAY_CLIENT_SECRET };
    },
  });
  browser = await launchChromium();
  mkdirSync(SHOTS, { recursive: true });
  if (UPDATE_DOCS) mkdirSync(DOC_SHOTS, { recursive: true });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await h?.close();
});

async function shot(page: Page, name: string) {
  const file = join(SHOTS, `${name}.png`);
  // The viewport (1280x800), not the full page: the pictures stay small for the README.
  await page.screenshot({ path: file });
  if (UPDATE_DOCS && FOR_README.has(name)) copyFileSync(file, join(DOC_SHOTS, `${name}.png`));
}

/** A fresh browser profile (its own cookie jar) signed in at the demo IdP as `nationalId`. */
async function signIn(nationalId: string): Promise<{ context: BrowserContext; page: Page }> {
  // The PC's own clock is in another zone: the UI must still show Vietnam time.
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'vi-VN', timezoneId: 'America/New_York' });
  const page = await context.newPage();
  await page.goto(`${adminUrl}/`);
  // Not signed in: the admin listener sent the browser to the IdP.
  expect(page.url()).toContain(h.idp.issuer);
  await page.fill('#username', nationalId);
  await page.fill('#password', 'demo');
  await Promise.all([page.waitForURL(`${adminUrl}/**`), page.click('#login-form button[type=submit]')]);
  return { context, page };
}

describe('admin UI in a browser', () => {
  let a: { context: BrowserContext; page: Page };

  it('signs an admin in through the IdP and shows the services screen in Vietnamese', async () => {
    a = await signIn(ADMIN_A);
    const { page } = a;
    await page.getByTestId('services-table').waitFor();
    expect(await page.getAttribute('html', 'lang')).toBe('vi');
    expect(await page.locator('h1').textContent()).toBe('Dịch vụ cơ sở dữ liệu dùng chung');
    expect(await page.getByTestId('who').textContent()).toContain(ADMIN_A);
    await shot(page, 'services');
  });

  it('four-eyes service approval: A proposes it with a reason, B confirms it; the data plane serves it at once', async () => {
    const { page } = a;
    const before = await fetch(`${h.gateway.url}/cong-thuong/x`, { headers: { authorization: `Bearer ${await h.token(OFFICIAL)}` } });
    expect((await h.sink.forRequest(before.headers.get('x-request-id'))).ztgate.reasons).toEqual(['route-not-approved']);

    await page.getByTestId('edit-cong-thuong').click();
    const dialog = page.locator('dialog');
    await dialog.locator('select[name=status]').selectOption('approved');
    await shot(page, 'services-edit');
    // No reason: the browser refuses to send it (and the gateway would refuse it too).
    await dialog.locator('button[type=submit]').click();
    expect(await dialog.isVisible()).toBe(true);
    await dialog.locator('textarea[name=reason]').fill('Đã đánh giá an toàn cấp độ 3 (kiểm thử)');
    await dialog.locator('button[type=submit]').click();
    await dialog.waitFor({ state: 'detached' });
    // Approving a service weakens protection: it waits for a second admin.
    await page.getByTestId('pending-cong-thuong').getByText('Chờ người thứ hai xác nhận').waitFor();
    const proposed = h.sink.events.find((e) => e.ztgate?.admin?.operation === 'services.change.propose' && e.ztgate.admin.target === 'cong-thuong');
    expect(proposed).toMatchObject({ user: { id: ADMIN_A }, ztgate: { decision: 'allow', admin: { detail: { reason: 'Đã đánh giá an toàn cấp độ 3 (kiểm thử)' } } } });
    const pending = await fetch(`${h.gateway.url}/cong-thuong/x`, { headers: { authorization: `Bearer ${await h.token(OFFICIAL)}` } });
    expect((await h.sink.forRequest(pending.headers.get('x-request-id'))).ztgate.reasons).toEqual(['route-not-approved']);

    const b = await signIn(ADMIN_B);
    try {
      await b.page.getByTestId('services-table').waitFor();
      await b.page.getByTestId('confirm-cong-thuong').click();
      const bDialog = b.page.locator('dialog');
      await bDialog.locator('textarea[name=comment]').fill('Đồng ý đưa vào sử dụng (kiểm thử)');
      await bDialog.locator('button[type=submit]').click();
      await bDialog.waitFor({ state: 'detached' });
      await b.page.locator('[data-testid=services-table] tr', { hasText: 'cong-thuong' }).getByText('Đã phê duyệt').waitFor();
    } finally {
      await b.context.close();
    }
    const audit = h.sink.events.find((e) => e.ztgate?.admin?.operation === 'services.change.confirm' && e.ztgate.admin.target === 'cong-thuong');
    expect(audit).toMatchObject({ user: { id: ADMIN_B }, ztgate: { decision: 'allow', admin: { detail: { proposedBy: ADMIN_A, reason: 'Đã đánh giá an toàn cấp độ 3 (kiểm thử)', comment: 'Đồng ý đưa vào sử dụng (kiểm thử)' } } } });
    const after = await fetch(`${h.gateway.url}/cong-thuong/x`, { headers: { authorization: `Bearer ${await h.token(OFFICIAL)}` } });
    expect((await h.sink.forRequest(after.headers.get('x-request-id'))).ztgate.reasons).not.toContain('route-not-approved');
  });

  it('shows data-plane decisions live, with filters, and per-agency counts', async () => {
    const { page } = a;
    await page.getByTestId('nav-live').click();
    await page.getByTestId('live-status').getByText('Đang nhận trực tiếp').waitFor();
    const res = await fetch(`${h.gateway.url}/ho-tich/records?limit=1`, { headers: { authorization: `Bearer ${await h.token(OFFICIAL)}` } });
    const id = res.headers.get('x-request-id')!;
    await page.locator(`[data-testid=live-rows] tr[data-id="${id}"]`).waitFor();
    const row = page.locator(`[data-testid=live-rows] tr[data-id="${id}"]`);
    expect(await row.textContent()).toContain(OFFICIAL);
    await page.getByTestId('counts-table').getByText('so-tu-phap').first().waitFor();

    // Regression: outcome and reasons by their Vietnamese names, each code kept on hover.
    expect(await row.locator('[data-code=allow]').textContent()).toBe('Cho phép');
    expect(await row.locator('[data-code=allow]').getAttribute('title')).toBe('allow');
    expect(await row.locator('[data-code=policy-allowed]').textContent()).toBe('Được chính sách cho phép');
    expect(await row.locator('[data-code=policy-allowed]').getAttribute('title')).toBe('policy-allowed');
    // Regression: Vietnam time with the zone said, though this browser's clock is in New York.
    const at = new Date((await h.sink.forRequest(id))['@timestamp']);
    const vn = new Date(at.getTime() + 7 * 3600_000);
    const hms = [vn.getUTCHours(), vn.getUTCMinutes(), vn.getUTCSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
    const shown = (await row.locator('td').first().textContent())!;
    expect(shown).toContain(hms);
    expect(shown).toMatch(/\(giờ Việt Nam, UTC\+7\)$/);
    await shot(page, 'live');
  });

  it('four-eyes policy change: A drafts and submits, cannot approve, B approves, the data plane follows', async () => {
    const { page } = a;
    const read = async () => {
      const res = await fetch(`${h.gateway.url}/echo/records`, { headers: { authorization: `Bearer ${await h.token(VAN_THU)}` } });
      return h.sink.forRequest(res.headers.get('x-request-id'));
    };
    const before = await read();
    expect(before.ztgate).toMatchObject({ decision: 'deny', reasons: ['policy-no-match'] });

    await page.getByTestId('nav-policies').click();
    await page.getByTestId('active-rules').waitFor();
    const activeBefore = await page.getByTestId('active-version').textContent();
    const editor = page.getByTestId('draft-editor');
    const original = await editor.inputValue();
    // Validation as you type: a broken rule is named by its line, before anything is saved.
    await editor.fill(`${original}p, van-thu, *, echo, /records\n`);
    await page.getByTestId('draft-invalid').waitFor();
    expect(await page.getByTestId('draft-status').textContent()).toMatch(/policy\.csv:\d+/);
    await editor.fill(`${original}p, van-thu, *, echo, /records, GET, allow\n`);
    await page.getByTestId('draft-valid').waitFor();
    await page.getByTestId('draft-comment').fill('Cho văn thư đọc dịch vụ ghi nhận (kiểm thử)');
    await page.getByTestId('draft-save').click();
    const draft = page.locator('[data-testid^=version-v]', { has: page.getByTestId('submit') });
    await draft.waitFor();
    const id = (await draft.getAttribute('data-testid'))!.replace('version-', '');
    expect(await draft.getByTestId('policy-diff').textContent()).toContain('+ p, van-thu, *, echo, /records, GET, allow');
    await draft.getByTestId('submit').click();
    const pending = page.getByTestId(`version-${id}`);
    await pending.getByText('Bạn là người soạn: một quản trị viên an ninh khác phải phê duyệt.').waitFor();

    // Regression: its author is not offered the approval the gateway would refuse (four eyes);
    // the state is named in Vietnamese, its code on hover.
    expect(await pending.getByTestId('approve').count()).toBe(0);
    expect(await pending.locator('[data-code=submitted]').textContent()).toBe('chờ duyệt');
    expect(await pending.locator('[data-code=submitted]').getAttribute('title')).toBe('submitted');
    await shot(page, 'policies-four-eyes');
    expect(await page.getByTestId('active-version').textContent()).toBe(activeBefore);
    await shot(page, 'policies');

    // What-if on the submitted draft: the single decision, then the recent traffic it flips.
    await page.getByTestId('nav-whatif').click();
    const form = page.getByTestId('whatif-form');
    await form.waitFor();
    await page.getByTestId('whatif-version').selectOption(id);
    await form.locator('input[name=nationalId]').fill(VAN_THU);
    await form.locator('select[name=routeId]').selectOption('echo');
    await form.locator('button[type=submit]').click();
    await page.getByTestId('whatif-rule').getByText('p, van-thu, *, echo, /records, GET, allow').waitFor();
    // Reasons by their Vietnamese name, the code on hover.
    expect(await page.getByTestId('whatif-reasons').textContent()).toBe('Được chính sách cho phép');
    expect(await page.getByTestId('whatif-reasons').locator('[title=policy-allowed]').count()).toBe(1);
    await page.getByTestId('whatif-replay').click();
    await page.getByTestId('flips-table').getByText(VAN_THU).first().waitFor();
    await shot(page, 'whatif');

    // B, another security admin, approves it with a comment.
    const b = await signIn(ADMIN_B);
    try {
      await b.page.getByTestId('nav-policies').click();
      await b.page.getByTestId(`version-${id}`).getByTestId('approve').click();
      const bDialog = b.page.locator('dialog');
      await bDialog.locator('textarea[name=comment]').fill('Đã rà soát, đồng ý (kiểm thử)');
      await bDialog.locator('button[type=submit]').click();
      await bDialog.waitFor({ state: 'detached' });
      await b.page.getByTestId('active-version').getByText(id).waitFor();
      const approved = h.sink.events.find((e) => e.ztgate?.admin?.operation === 'policy.approve' && e.ztgate.admin.target === id);
      expect(approved).toMatchObject({ user: { id: ADMIN_B }, ztgate: { decision: 'allow', admin: { detail: { author: ADMIN_A, comment: 'Đã rà soát, đồng ý (kiểm thử)' } } } });

      // The request denied before is allowed now, under the new version; the live feed shows it.
      await b.page.getByTestId('nav-live').click();
      await b.page.getByTestId('live-status').getByText('Đang nhận trực tiếp').waitFor();
      const after = await read();
      expect(after.ztgate).toMatchObject({ decision: 'allow', reasons: ['policy-allowed'], rule: 'p, van-thu, *, echo, /records, GET, allow' });
      expect(after.ztgate.policy_version).not.toBe(before.ztgate.policy_version);
      expect(after.ztgate.policy_version).toBe(approved!.ztgate.admin.detail.hash);
      const row = b.page.locator(`[data-testid=live-rows] tr[data-id="${after.http.request.id}"]`);
      await row.waitFor();
      expect(await row.textContent()).toContain(VAN_THU);
    } finally {
      await b.context.close();
    }
  });

  it('attack: a change without the CSRF token is refused (403 csrf-token-invalid), even with the session cookie', async () => {
    const { page } = a;
    const result = await page.evaluate(async () => {
      const res = await fetch('/api/v1/services/ho-tich', { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ securityLevel: 5 }) });
      return { status: res.status, body: (await res.json()) as any, id: res.headers.get('x-request-id') };
    });
    expect(result.status).toBe(403);
    expect(result.body.error.reason).toBe('csrf-token-invalid');
    const event = await h.sink.forRequest(result.id);
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['csrf-token-invalid'] });
    expect(event.user.id).toBe(ADMIN_A);

    const wrong = await page.evaluate(async () => {
      const res = await fetch('/api/v1/services/ho-tich', { method: 'PATCH', headers: { 'content-type': 'application/json', 'x-csrf-token': 'AAAA' }, body: JSON.stringify({ securityLevel: 5 }) });
      return res.status;
    });
    expect(wrong).toBe(403);
    expect(((await (await fetch(`${adminUrl}/api/v1/services/ho-tich`, { headers: { authorization: `Bearer ${await h.token(ADMIN_A)}` } })).json()) as any).securityLevel).toBe(3);
  });

  it('attack: a form on another site posting to the admin API with the session cookie is refused', async () => {
    const { page } = a;
    // Another origin on the same host: same-site, so the browser does send the SameSite=Lax cookie.
    const target = `${adminUrl}/api/v1/devices/forged-device/approve`;
    const evil = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<form method="post" action="${target}"><input name="reason" value="forged"></form><script>document.forms[0].submit()</script>`);
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    try {
      await Promise.all([page.waitForURL(target), page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`)]);
      const event = h.sink.events.find((e) => e.url?.path === '/api/v1/devices/forged-device/approve');
      expect(event).toBeDefined();
      // The cookie came along (the admin is known), and the change was refused all the same.
      expect(event!.user.id).toBe(ADMIN_A);
      expect(event!.ztgate).toMatchObject({ decision: 'deny', reasons: ['csrf-token-invalid'] });
      expect(event!.http.response.status_code).toBe(403);
    } finally {
      evil.closeAllConnections();
      await new Promise((resolve) => evil.close(resolve));
      await page.goto(`${adminUrl}/#/services`);
    }
  });

  it('switches to English and back, and remembers the choice', async () => {
    const { page } = a;
    await page.getByTestId('nav-services').click();
    await page.getByTestId('lang-toggle').click();
    await page.locator('h1', { hasText: 'Shared database services' }).waitFor();
    expect(await page.getAttribute('html', 'lang')).toBe('en');
    await shot(page, 'english');
    await page.reload();
    await page.locator('h1', { hasText: 'Shared database services' }).waitFor();
    await page.getByTestId('lang-toggle').click();
    await page.locator('h1', { hasText: 'Dịch vụ cơ sở dữ liệu dùng chung' }).waitFor();
  });

  it('is keyboard accessible: a skip link first, then the navigation', async () => {
    const { page } = a;
    await page.goto(`${adminUrl}/#/services`);
    await page.reload();
    await page.getByTestId('services-table').waitFor();
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (globalThis as any).document.activeElement?.id)).toBe('skip');
    await page.keyboard.press('Enter');
    expect(await page.evaluate(() => (globalThis as any).document.activeElement?.id)).toBe('main');
  });

  it('shows the devices and roster screens without an error', async () => {
    const { page } = a;
    const expected: Record<string, string> = {
      devices: '[data-testid=devices-table]',
      officials: '[data-testid=roster-table]',
    };
    for (const [screen, selector] of Object.entries(expected)) {
      await page.getByTestId(`nav-${screen}`).click();
      await page.locator(selector).first().waitFor();
      await page.waitForLoadState('networkidle');
      expect(await page.locator('main [role=alert]').count(), `${screen}: no error shown`).toBe(0);
      await shot(page, screen);
    }
    expect(await page.getByTestId('roster-table').textContent()).toContain('056083000007');
  });

  it('ends sessions and sets and lifts locks with a reason; the data plane follows the lock', async () => {
    const { page } = a;
    await page.getByTestId('nav-devices').click();
    const dialog = page.locator('dialog');

    // Sessions: the revocation asks why, and the audit event keeps it.
    await page.locator('section[aria-labelledby=h-sessions] input[name=nationalId]').fill(VAN_THU);
    await page.locator('section[aria-labelledby=h-sessions] button[type=submit]').click();
    await dialog.locator('textarea[name=reason]').fill('Nghi lộ mật khẩu (kiểm thử)');
    await dialog.locator('button[type=submit]').click();
    await page.getByTestId('sessions-ended').waitFor();
    const revoked = h.sink.events.find((e) => e.ztgate?.admin?.operation === 'sessions.revoke' && e.ztgate.admin.target === VAN_THU);
    expect(revoked).toMatchObject({ user: { id: ADMIN_A }, ztgate: { decision: 'allow', admin: { detail: { reason: 'Nghi lộ mật khẩu (kiểm thử)' } } } });

    // Locks: who, when and why are shown; the official is refused while it holds.
    const locks = page.locator('section[aria-labelledby=h-locks]');
    await locks.locator('select[name=kind]').selectOption('user');
    await locks.locator('input[name=value]').fill(VAN_THU);
    await locks.locator('button[type=submit]').click();
    await dialog.locator('textarea[name=reason]').fill('Truy cập bất thường (kiểm thử)');
    await dialog.locator('button[type=submit]').click();
    const row = page.getByTestId('locks-table').locator('tr', { hasText: VAN_THU });
    await row.waitFor();
    expect(await row.textContent()).toContain('Truy cập bất thường (kiểm thử)');
    expect(await row.textContent()).toContain(ADMIN_A);
    const locked = await fetch(`${h.gateway.url}/echo/records`, { headers: { authorization: `Bearer ${await h.token(VAN_THU)}` } });
    expect((await h.sink.forRequest(locked.headers.get('x-request-id'))).ztgate).toMatchObject({ decision: 'deny', reasons: ['locked-user'] });
    await shot(page, 'devices');

    await row.getByRole('button').click();
    await dialog.locator('textarea[name=reason]').fill('Đã xác minh (kiểm thử)');
    await dialog.locator('button[type=submit]').click();
    await row.waitFor({ state: 'detached' });
    const lifted = h.sink.events.find((e) => e.ztgate?.admin?.operation === 'locks.lift' && e.ztgate.admin.target === `user:${VAN_THU}`);
    expect(lifted?.ztgate.admin.detail).toMatchObject({ reason: 'Đã xác minh (kiểm thử)', lockedBy: ADMIN_A });
  });

  it('imports a roster CSV: a bad row is named and nothing changes; a status change takes a reason', async () => {
    const { page } = a;
    await page.getByTestId('nav-officials').click();
    await page.getByTestId('roster-table').waitFor();
    const header = 'nationalId,name,agency,unit,position,roles,clearance,status';
    await page.getByTestId('roster-file').setInputFiles({
      name: 'roster.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from(`${header}\n056085000001,Nguyễn Văn An (giả lập),so-tu-phap,,,ho-tich-reader,bi-mat,active\n`),
    });
    await page.locator('main form button[type=submit]').first().click();
    const refusal = page.locator('main [role=alert]');
    await refusal.waitFor();
    expect(await refusal.locator('li', { hasText: 'row 2, column clearance' }).count()).toBe(1);
    expect(await refusal.textContent()).toMatch(/roster-invalid/);
    expect(await page.getByTestId('roster-table').textContent()).toContain('056083000007');

    const KHOA = '056094000008';
    await page.getByTestId('roster-table').locator('tr', { hasText: KHOA }).getByRole('button').click();
    const dialog = page.locator('dialog');
    await dialog.locator('select[name=status]').selectOption('suspended');
    await dialog.locator('textarea[name=reason]').fill('Tạm đình chỉ công tác (kiểm thử)');
    await dialog.locator('button[type=submit]').click();
    await dialog.waitFor({ state: 'detached' });
    await page.getByTestId('roster-table').locator('tr', { hasText: KHOA }).locator('[data-code=suspended]', { hasText: 'Tạm dừng' }).waitFor();
    const changed = h.sink.events.find((e) => e.ztgate?.admin?.operation === 'roster.status' && e.ztgate.admin.target === KHOA);
    expect(changed?.ztgate.admin.detail).toMatchObject({ before: 'active', after: 'suspended', reason: 'Tạm đình chỉ công tác (kiểm thử)' });
    await shot(page, 'officials');
  });

  it('refuses an official without the security-admin role', async () => {
    const { context, page } = await signIn(OFFICIAL);
    try {
      const cookie = (await context.cookies()).find((c) => c.name === 'ztgate-session')!;
      const res = await fetch(`${adminUrl}/api/v1/whoami`, { headers: { cookie: `ztgate-session=${cookie.value}` } });
      expect(res.status).toBe(403);
      expect(((await res.json()) as any).error.reason).toBe('admin-role-required');
      // Regression: the page they land on is a readable Vietnamese page, not bare JSON.
      expect(await page.getByTestId('error-title').textContent()).toBe('403 — Không được phép');
      expect(await page.getByTestId('error-reason').textContent()).toBe('admin-role-required');
      // Every admin request of theirs past sign-in itself.
      const denied = h.sink.events.filter((e) => e.event.action === 'admin-request' && e.user?.id === OFFICIAL && !e.url.path.startsWith('/.ztgate/auth/'));
      expect(denied.length).toBeGreaterThan(0);
      expect(denied.every((e) => e.ztgate.decision === 'deny' && e.ztgate.reasons.includes('admin-role-required'))).toBe(true);
    } finally {
      await context.close();
    }
  });

  it('serves the UI with a strict Content-Security-Policy and nothing from other origins', async () => {
    const res = await fetch(`${adminUrl}/`, { headers: { authorization: `Bearer ${await h.token(ADMIN_A)}` } });
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\//);
  });

  it('regression: a refused page load shows a readable Vietnamese page with the error code and reason, not bare JSON', async () => {
    const { page } = a;
    const res = await page.goto(`${adminUrl}/khong-co-trang-nay`);
    expect(res!.status()).toBe(404);
    expect(res!.headers()['content-type']).toContain('text/html');
    expect(await page.getByTestId('error-title').textContent()).toBe('404 — Không tìm thấy trang');
    expect(await page.getByTestId('error-code').textContent()).toBe('ZTG_ERR_ROUTE_NOT_FOUND');
    expect(await page.getByTestId('error-reason').textContent()).toBe('route-not-found');
    expect(await page.getByTestId('error-request-id').textContent()).toBe(res!.headers()['x-request-id']);
    await shot(page, 'error-page');
    await page.goto(`${adminUrl}/#/services`);
    await page.getByTestId('services-table').waitFor();
  });

  it('regression: Vietnamese in policy text is drawn with one monospace font that has every letter', async () => {
    const { page } = a;
    await page.getByTestId('nav-policies').click();
    const editor = page.getByTestId('draft-editor');
    await editor.waitFor();
    const text = '# Sở Tư pháp tỉnh Khánh Hòa: đọc hộ tịch — ặ ẫ ỹ ờ ử ệ (kiểm thử phông chữ)';
    await editor.fill(`${await editor.inputValue()}${text}\n`);
    await page.getByTestId('draft-comment').fill('Ghi chú tiếng Việt trong chính sách (kiểm thử)');
    await page.getByTestId('draft-save').click();
    const line = page.locator('[data-testid=policy-diff] span', { hasText: 'Khánh Hòa' }).first();
    await line.waitFor();
    // The fonts Chromium actually drew the line with (DevTools protocol): one, and a Vietnamese one.
    const cdp = await a.context.newCDPSession(page);
    await cdp.send('DOM.enable');
    await cdp.send('CSS.enable');
    const { root } = await cdp.send('DOM.getDocument', { depth: -1 });
    const { nodeIds } = await cdp.send('DOM.querySelectorAll', { nodeId: root.nodeId, selector: '[data-testid=policy-diff] span' });
    let fonts: { familyName: string; glyphCount: number }[] = [];
    for (const nodeId of nodeIds) {
      const { outerHTML } = await cdp.send('DOM.getOuterHTML', { nodeId });
      if (outerHTML.includes('Khánh Hòa')) fonts = (await cdp.send('CSS.getPlatformFontsForNode', { nodeId })).fonts;
    }
    await cdp.detach();
    // One font for the whole line (no per-letter fallback), and one fontconfig says covers
    // Vietnamese: DejaVu Sans Mono and Liberation Mono do not, and misplace stacked marks (ẫ, ặ).
    expect(fonts).toHaveLength(1);
    const vietnameseMono = execFileSync('fc-list', [':lang=vi', 'family'], { encoding: 'utf8' })
      .split('\n')
      .flatMap((l) => l.split(','))
      .map((f) => f.trim())
      .filter(Boolean);
    expect(vietnameseMono).toContain(fonts[0]!.familyName);
    expect(fonts[0]!.familyName).toBe('Noto Sans Mono');
    await line.scrollIntoViewIfNeeded();
    await line.screenshot({ path: join(SHOTS, 'mono-vietnamese.png') });
    if (UPDATE_DOCS) copyFileSync(join(SHOTS, 'mono-vietnamese.png'), join(DOC_SHOTS, 'mono-vietnamese.png'));
  });

  it('lists active sessions (who, since when, from where) and ends one with a reason; that browser must sign in again', async () => {
    const b = await signIn(ADMIN_B);
    try {
      await b.page.getByTestId('services-table').waitFor();
      const { page } = a;
      await page.getByTestId('nav-devices').click();
      const sessions = page.getByTestId('sessions-table');
      // Newest first: B's browser of this test is the first of B's rows.
      const row = sessions.locator('tr', { hasText: ADMIN_B }).first();
      await row.waitFor();
      const countB = await sessions.locator('tr', { hasText: ADMIN_B }).count();
      expect(await row.textContent()).toContain('127.0.0.1');
      expect(await row.textContent()).toMatch(/Chrom(e|ium) \d+/);
      expect(await row.textContent()).toContain('(giờ Việt Nam, UTC+7)');
      expect(await sessions.locator('tr', { hasText: ADMIN_A }).first().textContent()).toContain('phiên của bạn');
      await shot(page, 'sessions');
      await row.getByRole('button', { name: 'Kết thúc phiên' }).click();
      const dialog = page.locator('dialog');
      await dialog.locator('textarea[name=reason]').fill('Máy dùng chung, quên đăng xuất (kiểm thử)');
      await dialog.locator('button[type=submit]').click();
      await dialog.waitFor({ state: 'detached' });
      await expect.poll(() => sessions.locator('tr', { hasText: ADMIN_B }).count()).toBe(countB - 1);
      const ended = h.sink.events.find((e) => e.ztgate?.admin?.operation === 'sessions.end' && e.ztgate.admin.detail?.nationalId === ADMIN_B);
      expect(ended).toMatchObject({ user: { id: ADMIN_A }, ztgate: { decision: 'allow', admin: { detail: { reason: 'Máy dùng chung, quên đăng xuất (kiểm thử)' } } } });
      const status = await b.page.evaluate(async () => (await fetch('/api/v1/whoami')).status);
      expect(status).toBe(401);
    } finally {
      await b.context.close();
    }
  });

  it('signs out with the button in the header: the session ends at the gateway', async () => {
    const b = await signIn(ADMIN_B);
    try {
      await b.page.getByTestId('services-table').waitFor();
      expect(await b.page.getByTestId('sign-out').textContent()).toBe('Đăng xuất');
      const cookie = (await b.context.cookies()).find((c) => c.name === 'ztgate-session')!;
      const blocked: string[] = [];
      b.page.on('console', (m) => blocked.push(m.text()));
      await b.page.getByTestId('sign-out').click();
      // The browser leaves the admin UI for the IdP's end-session page (no CSP refusal on the way).
      await b.page.waitForURL((url) => url.href.startsWith(h.idp.issuer));
      expect(blocked.filter((m) => m.includes('Content Security Policy'))).toEqual([]);
      const signedOut = h.sink.events.find((e) => e.ztgate?.reasons?.includes('signed-out') && e.user?.id === ADMIN_B);
      expect(signedOut).toBeDefined();
      // The old cookie names a session that has ended.
      const res = await fetch(`${adminUrl}/api/v1/whoami`, { headers: { cookie: `ztgate-session=${cookie.value}` } });
      expect(res.status).toBe(401);
      expect((await h.sink.forRequest(res.headers.get('x-request-id'))).ztgate.reasons).toContain('session-revoked');
    } finally {
      await b.context.close();
    }
  });
});
