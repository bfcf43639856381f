import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { DEMO_GATEWAY_CLIENT_ID, DEMO_GATEWAY_CLIENT_SECRET } from '../demo/idp.js';
import { freePort, ROOT, startHarness, type Harness } from './helpers/harness.js';
import { chromiumAvailable, launchChromium } from './helpers/chromium.js';

/**
 * Just-in-time access as people use it, in a real browser: the official's page on the gateway
 * (no script, forms only), the owner agency's approver on the same page, and the admin UI's badge,
 * list and revocation, each proven on the data plane.
 */

const OFFICIAL = '056085000001'; // Nguyễn Văn An, ho-tich-reader, Sở Tư pháp
const APPROVER = '056080000005'; // Hoàng Văn Em, Sở Tư pháp, access-approver (demo roster)
const ADMIN = '056179000006'; // Vũ Thị Giang, security-admin

const SHOTS = join(ROOT, 'test-artifacts', 'screenshots');
// The README's pictures are replaced only when asked (UPDATE_DOCS=1).
const UPDATE_DOCS = process.env.UPDATE_DOCS === '1';

async function shot(page: Page, name: string) {
  mkdirSync(SHOTS, { recursive: true });
  const file = join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file });
  if (UPDATE_DOCS) copyFileSync(file, join(ROOT, 'docs', 'screenshots', `${name}.png`));
}

if (!chromiumAvailable()) throw new Error('chromium is not installed at /usr/bin/chromium: apt-get install -y chromium (.ci/run does it)');

let h: Harness;
let browser: Browser;
let dataUrl: string;
let adminUrl: string;

beforeAll(async () => {
  const [dataPort, adminPort] = [await freePort(), await freePort()];
  dataUrl = `http://127.0.0.1:${dataPort}`;
  adminUrl = `http://127.0.0.1:${adminPort}`;
  h = await startHarness({
    idp: { gatewayRedirectUris: [`${dataUrl}/.ztgate/auth/callback`, `${adminUrl}/.ztgate/auth/callback`] },
    configure(doc) {
      doc.listen = { host: '127.0.0.1', port: dataPort };
      doc.publicUrl = dataUrl;
      doc.admin = { ...doc.admin, listen: { host: '127.0.0.1', port: adminPort }, publicUrl: adminUrl };
      doc.identity.roster = { source: 'file', file: 'demo/roster.csv' };
      doc.identity.browser = { issuer: doc.identity.issuers[0].issuer, clientId: DEMO_GATEWAY_CLIENT_ID, clientSecret: DEMO_GATEWAY_CLIENT_SECRET };
      doc.policy = { model: 'policies/model.conf', policy: 'test/fixtures/access-policy.csv', conditions: 'test/fixtures/access-ui-conditions.yaml' };
      doc.routes = doc.routes.filter((r: { id: string }) => r.id !== 'cong-thuong');
      const echo = doc.routes.find((r: { id: string }) => r.id === 'echo');
      doc.routes.push({ ...echo, id: 'suc-khoe', pathPrefix: '/suc-khoe' }, { ...echo, id: 'kho-mat', pathPrefix: '/kho-mat' });
    },
  });
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await h?.close();
});

async function signIn(start: string, nationalId: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'vi-VN' });
  const page = await context.newPage();
  await page.goto(start);
  expect(page.url()).toContain(h.idp.issuer);
  await page.fill('#username', nationalId);
  await page.fill('#password', 'demo');
  await Promise.all([page.waitForURL(`${start}**`), page.click('#login-form button[type=submit]')]);
  return { context, page };
}

const stateOf = (page: Page, section: string) => page.locator(`h2:has-text("${section}") + table td[data-state]`).first().getAttribute('data-state');

describe('just-in-time access in a browser', () => {
  it('an official asks on the gateway page, the approver approves there, the admin sees the badge and revokes; each step holds on the data plane', async () => {
    const an = await signIn(`${dataUrl}/.ztgate/access`, OFFICIAL);
    expect(await an.page.locator('h1').textContent()).toContain('Truy cập theo yêu cầu');
    await an.page.selectOption('form[action="/.ztgate/access/requests"] select[name=route]', 'echo');
    await an.page.fill('form[action="/.ztgate/access/requests"] input[name=role]', 'ho-so-reader');
    await an.page.fill('form[action="/.ztgate/access/requests"] input[name=durationMinutes]', '30');
    await an.page.fill('form[action="/.ztgate/access/requests"] input[name=purpose]', 'Xác minh hồ sơ khai sinh (kiểm thử)');
    await an.page.fill('form[action="/.ztgate/access/requests"] input[name=caseRef]', 'HS-2026/0117');
    await Promise.all([an.page.waitForURL(`${dataUrl}/.ztgate/access`), an.page.click('form[action="/.ztgate/access/requests"] button[type=submit]')]);
    expect(await stateOf(an.page, 'Yêu cầu của tôi')).toBe('pending');
    const before = await an.page.goto(`${dataUrl}/echo/ho-so/1`);
    expect(before?.status()).toBe(403);

    // The admin UI shows a badge: one request waiting.
    const admin = await signIn(`${adminUrl}/`, ADMIN);
    await admin.page.getByTestId('access-badge').waitFor();
    expect(await admin.page.getByTestId('access-badge').textContent()).toBe('1');

    const em = await signIn(`${dataUrl}/.ztgate/access`, APPROVER);
    expect(await stateOf(em.page, 'Chờ tôi duyệt')).toBe('pending');
    await shot(em.page, 'access-page');
    await Promise.all([em.page.waitForURL(`${dataUrl}/.ztgate/access`), em.page.click('button:has-text("Phê duyệt")')]);

    await an.page.goto(`${dataUrl}/.ztgate/access`);
    expect(await stateOf(an.page, 'Yêu cầu của tôi')).toBe('active');
    const granted = await an.page.goto(`${dataUrl}/echo/ho-so/1`);
    expect(granted?.status()).toBe(200);

    await admin.page.goto(`${adminUrl}/#/access`);
    await admin.page.getByTestId('access-table').waitFor();
    await admin.page.selectOption('[data-testid=access-filter]', 'active');
    await admin.page.click('form.filters button[type=submit]');
    await admin.page.locator('[data-testid=access-table] td[data-state], [data-testid=access-table] span[data-state="active"]').first().waitFor();
    // The state in the admin's language, the code on hover.
    const state = admin.page.locator('[data-testid=access-table] span[data-state="active"] .code-label').first();
    expect(await state.textContent()).toBe('đang có hiệu lực');
    expect(await state.getAttribute('title')).toBe('active');
    await shot(admin.page, 'access');
    await admin.page.click('button[data-testid^="revoke-"]');
    await admin.page.fill('dialog textarea[name=reason]', 'Hồ sơ đã xử lý xong (kiểm thử)');
    await admin.page.click('dialog button[type=submit]');
    await admin.page.locator('dialog').waitFor({ state: 'hidden' });
    const revoked = await an.page.goto(`${dataUrl}/echo/ho-so/1`);
    expect(revoked?.status()).toBe(403);
    await an.page.goto(`${dataUrl}/.ztgate/access`);
    expect(await stateOf(an.page, 'Yêu cầu của tôi')).toBe('revoked');
    await Promise.all([an.context.close(), em.context.close(), admin.context.close()]);
  });
});
