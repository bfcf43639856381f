import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser as Chromium } from 'playwright-core';
import { readDemoOfficials } from '../demo/idp.js';
import { startIdentityHarness, type IdentityHarness } from './helpers/browser.js';
import { chromiumAvailable, launchChromium } from './helpers/chromium.js';

/**
 * Sign-out as an official does it, in Debian's Chromium against the demo IdP: a browser enforces
 * the sign-out page's Content-Security-Policy on the redirects that follow its form (an HTTP
 * client does not), so only a real browser shows whether the IdP session really ends.
 */

const AN = '056085000001'; // Nguyễn Văn An (synthetic), ho-tich-reader

if (!chromiumAvailable()) throw new Error('chromium is not installed at /usr/bin/chromium: apt-get install -y chromium (.ci/run does it)');

let h: IdentityHarness;
let chromium: Chromium;
let g0: string;

beforeAll(async () => {
  [h, chromium] = await Promise.all([startIdentityHarness({ instances: 1 }), launchChromium()]);
  g0 = h.gateways[0]!.url;
}, 60_000);
afterAll(async () => {
  await chromium?.close();
  await h?.close();
});

describe('sign-out in a real browser (demo IdP)', () => {
  it('regression: the sign-out page lets its form reach the IdP end_session_endpoint, and re-opening shows the IdP login form, not a silent sign-in', async () => {
    const context = await chromium.newContext();
    const page = await context.newPage();
    await page.goto(`${g0}/echo/x`);
    expect(page.url().startsWith(h.idp.issuer)).toBe(true);
    await page.fill('#username', AN);
    await page.fill('#password', (await readDemoOfficials()).password);
    await Promise.all([page.waitForURL(`${g0}/echo/x`), page.click('#login-form button[type=submit]')]);

    const confirm = await page.goto(`${g0}/.ztgate/auth/logout`);
    // Strict still: forms to this gateway and to exactly the IdP's end-session origin, nothing else.
    expect(confirm!.headers()['content-security-policy']).toBe(`default-src 'none'; base-uri 'none'; form-action 'self' ${h.idp.issuer}; frame-ancestors 'none'`);
    await Promise.all([page.waitForURL((u) => u.href.startsWith(`${h.idp.issuer}/`), { timeout: 10_000 }), page.click('button[type=submit]')]);
    // The IdP asks to confirm its own sign-out, then sends the browser back.
    await Promise.all([page.waitForURL(`${g0}/.ztgate/auth/signed-out`, { timeout: 10_000 }), page.click('button[name=logout][value=yes]')]);
    expect(await page.locator('h1').textContent()).toBe('Đã đăng xuất khỏi ztgate');
    const out = h.sink.events.find((e) => e.url.path === '/.ztgate/auth/logout' && e.http.request.method === 'POST')!;
    expect(out.ztgate).toMatchObject({ decision: 'allow', reasons: ['signed-out'] });
    expect(out.user.id).toBe(AN);

    await page.goto(`${g0}/echo/x`);
    expect(page.url().startsWith(h.idp.issuer)).toBe(true);
    await page.locator('#login-form').waitFor();
    await context.close();
  });
});
