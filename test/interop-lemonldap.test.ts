import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { randomBytes, createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { Redis } from 'ioredis';
import type { Browser as Chromium, BrowserContext, Page } from 'playwright-core';
import { parseConfig } from '../gateway/config.js';
import { startGateway, type RunningGateway } from '../gateway/server.js';
import { chromiumAvailable, launchChromium } from './helpers/chromium.js';
import { EventSink, freePort, ROOT, startRecordingUpstream, TEST_AUDIENCE, type RecordingUpstream } from './helpers/harness.js';
import { lemonLdapMissing, startLemonLdap, type LemonLdap, type LlngUser } from './helpers/lemonldap.js';
import { deleteKeysWithPrefix, redisUrl } from './helpers/redis.js';

/**
 * Interoperability with a real third-party OpenID provider: LemonLDAP::NG 2.16 from Debian,
 * started once for the suite (File configuration, Demo users, FastCGI behind an nginx of its own),
 * the gateway its confidential client (client_secret_post, PKCE, JWT access tokens with
 * `national_id` and `agency`, refresh tokens, front-channel logout), officials in Chromium.
 */

// Synthetic officials (DỮ LIỆU GIẢ LẬP): LemonLDAP::NG's Demo users with made-up national IDs.
const NATIONAL_IDS: Record<LlngUser, string> = { dwho: '056085009001', rtyler: '056190009002', msmith: '056088009003' };
const AGENCIES: Record<LlngUser, string> = { dwho: 'so-tu-phap', rtyler: 'so-tu-phap', msmith: 'so-y-te' };
// Every character RFC 6749 §2.3.1 form-encoding changes in a Basic credential.
const CLIENT_SECRET = `ztgate-interop_secret.!~*'()-${randomBytes(8).toString('hex')}`;
const CLIENT_ID = 'ztgate-gateway';

const missing = lemonLdapMissing();
const inCi = process.env.CI === 'true';
if (missing.length && inCi) throw new Error(`LemonLDAP::NG interop suite: ${missing.join(', ')} missing in CI; .ci/run installs lemonldap-ng, lemonldap-ng-fastcgi-server and nginx`);
if (missing.length) console.warn(`\n*** LemonLDAP::NG interop suite SKIPPED: ${missing.join(', ')} not installed (apt-get install lemonldap-ng lemonldap-ng-fastcgi-server nginx libimage-magick-perl). In CI (CI=true) this fails. ***\n`);
if (!missing.length && !chromiumAvailable()) throw new Error('chromium is not installed at /usr/bin/chromium: apt-get install -y chromium (.ci/run does it)');

/** Operator log lines (pino JSON), to check what an operator is told. */
class LogSink extends Writable {
  readonly lines: Record<string, any>[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) this.lines.push(JSON.parse(line));
    done();
  }
}

interface Gw {
  readonly url: string;
  readonly gateway: RunningGateway;
  readonly sink: EventSink;
  readonly log: LogSink;
}

describe.skipIf(missing.length > 0)('LemonLDAP::NG 2.16 as the OpenID provider', () => {
  let llng: LemonLdap;
  let chromium: Chromium;
  let recording: RecordingUpstream;
  let gw: Gw;
  let gwPorts: number[];
  let rosterDir: string;
  let keyPrefix: string;
  let redis: Redis;
  const extra: Gw[] = [];

  async function startGw(port: number, change: (doc: Record<string, any>) => void = () => undefined): Promise<Gw> {
    const url = `http://127.0.0.1:${port}`;
    const doc: Record<string, any> = {
      listen: { host: '127.0.0.1', port },
      publicUrl: url,
      state: { backend: 'redis', redisUrl: await redisUrl(), keyPrefix },
      identity: {
        jwksCooldownMs: 1000,
        issuers: [
          {
            issuer: llng.issuer,
            audience: TEST_AUDIENCE,
            algorithms: ['RS256'],
            // LemonLDAP::NG's access tokens say typ JWT, never at+jwt.
            tokenTypes: ['JWT'],
            claimsPreset: 'lemonldap',
            // This deployment counts the Demo form (loa-1) as level 1; level 2 needs loa-3 and up.
            assurance: { 'loa-1': 1, 'loa-2': 1, 'loa-3': 2, 'loa-4': 2, 'loa-5': 2 },
            defaultAssuranceLevel: 1,
            stepUpAcrValues: { '2': ['loa-3'] },
          },
        ],
        browser: {
          issuer: llng.issuer,
          clientId: CLIENT_ID,
          clientSecret: CLIENT_SECRET,
          scopes: ['openid', 'profile', 'email', 'ztgate'],
          tokenEndpointAuthMethod: 'client_secret_post',
          frontchannelLogout: 'sub',
        },
        session: { absoluteLifetimeSeconds: 3600, idleTimeoutSeconds: 600 },
        roster: { source: 'file', file: join(rosterDir, 'roster.csv') },
      },
      policy: { model: 'policies/model.conf', policy: 'test/fixtures/interop-policy.csv' },
      devices: { defaultMinTierBySecurityLevel: { '3': 'unknown' } },
      routes: ['echo', 'strong', 'fresh'].map((id, i) => ({
        id,
        name: `Kiểm thử ${id}`,
        pathPrefix: `/${id}`,
        upstream: `${recording.url}/api`,
        ownerAgency: 'so-tu-phap',
        securityLevel: 3,
        classification: 'internal',
        approval: { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-01' },
        minAssuranceLevel: i, // echo 0, strong 1, fresh 2
      })),
    };
    change(doc);
    const sink = new EventSink();
    const log = new LogSink();
    const gateway = await startGateway(parseConfig(doc, 'interop-lemonldap', ROOT), { decisionLog: sink, logger: pino({ level: 'info' }, log) });
    return { url, gateway, sink, log };
  }

  beforeAll(async () => {
    gwPorts = await Promise.all([freePort(), freePort(), freePort()]);
    const urls = gwPorts.map((p) => `http://127.0.0.1:${p}`);
    [llng, chromium, recording] = await Promise.all([
      startLemonLdap({
        clientId: CLIENT_ID,
        clientSecret: CLIENT_SECRET,
        redirectUris: urls.map((u) => `${u}/.ztgate/auth/callback`),
        postLogoutRedirectUris: urls.map((u) => `${u}/.ztgate/auth/signed-out`),
        frontchannelLogoutUri: `${urls[0]}/.ztgate/auth/frontchannel-logout`,
        audience: TEST_AUDIENCE,
        nationalIds: NATIONAL_IDS,
        agencies: AGENCIES,
        // "Force claims in ID token": the ID token then carries national_id and the API audience too.
        idTokenForceClaims: true,
      }),
      launchChromium(),
      startRecordingUpstream(() => gw.url, 'echo'),
    ]);
    rosterDir = mkdtempSync(join(tmpdir(), 'ztgate-llng-roster-'));
    // msmith is not on the roster.
    writeFileSync(
      join(rosterDir, 'roster.csv'),
      `# DỮ LIỆU GIẢ LẬP — SYNTHETIC DEMO DATA\nnationalId,name,agency,unit,position,roles,clearance,status\n${NATIONAL_IDS.dwho},Đỗ Văn Hòa (giả lập),so-tu-phap,Phòng Hộ tịch,Chuyên viên,ho-tich-reader,none,active\n${NATIONAL_IDS.rtyler},Trần Thị Yến (giả lập),so-tu-phap,Phòng Hộ tịch,Chuyên viên,ho-tich-reader,none,active\n`,
    );
    keyPrefix = `ztgate-test-llng-${randomBytes(6).toString('hex')}:`;
    redis = new Redis(await redisUrl(), { keyPrefix });
    gw = await startGw(gwPorts[0]!);
  }, 90_000);

  afterAll(async () => {
    for (const g of [gw, ...extra]) await g?.gateway.close();
    await chromium?.close();
    await recording?.close();
    await llng?.close();
    if (rosterDir) rmSync(rosterDir, { recursive: true, force: true });
    if (keyPrefix) await deleteKeysWithPrefix(keyPrefix);
    redis?.disconnect();
  });

  const eventOf = (g: Gw, res: Response | { headers: { get(n: string): string | null } }) => g.sink.forRequest(res.headers.get('x-request-id'));
  async function eventWhere(g: Gw, match: (e: Record<string, any>) => boolean): Promise<Record<string, any>> {
    for (let i = 0; i < 150; i++) {
      const found = g.sink.events.find(match);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no such event; have: ${JSON.stringify(g.sink.events.map((e) => [e.url.path, e.ztgate.reasons]))}`);
  }

  /** A fresh browser profile that opens `path` on gateway `g` and signs in at LemonLDAP::NG's form. */
  async function signIn(g: Gw, user: LlngUser, path = '/echo/x'): Promise<{ context: BrowserContext; page: Page; authorize: URL }> {
    const context = await chromium.newContext();
    const page = await context.newPage();
    let authorize: URL | null = null;
    page.on('request', (r) => {
      if (r.url().startsWith(`${llng.issuer}/oauth2/authorize`)) authorize ??= new URL(r.url());
    });
    await page.goto(`${g.url}${path}`);
    await page.waitForSelector('input[name=user]');
    await page.fill('input[name=user]', user);
    await page.fill('input[name=password]', user);
    await Promise.all([page.waitForURL((u) => u.href.startsWith(g.url), { timeout: 15_000 }), page.click('button[type=submit]')]);
    return { context, page, authorize: authorize! };
  }
  const cookieHeader = async (context: BrowserContext, url: string) => (await context.cookies(url)).map((c) => `${c.name}=${c.value}`).join('; ');

  it('a LemonLDAP::NG access token (typ JWT, RFC 9068 claims) is accepted as a bearer token', async () => {
    const { access_token } = await llng.passwordGrant('dwho');
    const header = JSON.parse(Buffer.from(access_token.split('.')[0]!, 'base64url').toString());
    expect(header.typ).toBe('JWT');
    const res = await fetch(`${gw.url}/echo/x`, { headers: { authorization: `Bearer ${access_token}` } });
    expect(res.status).toBe(200);
    const e = await eventOf(gw, res);
    expect(e.ztgate).toMatchObject({ decision: 'allow', reasons: ['policy-allowed'] });
    expect(e.user).toEqual({ id: NATIONAL_IDS.dwho, roles: ['ho-tich-reader'] });
    // No acr in LemonLDAP::NG access tokens: the level is the issuer's configured default.
    expect(e.ztgate.assurance).toEqual({ level: 1, acr: null });
  });

  it('attack: a LemonLDAP::NG ID token carrying the API audience and the claims is refused as a bearer token', async () => {
    const { id_token } = await llng.passwordGrant('dwho');
    const payload = JSON.parse(Buffer.from(id_token.split('.')[1]!, 'base64url').toString());
    // What made it pass before: same key, typ JWT, the API audience, the national ID.
    expect(payload).toMatchObject({ aud: expect.arrayContaining([TEST_AUDIENCE]), national_id: NATIONAL_IDS.dwho, azp: CLIENT_ID });
    expect(payload.at_hash).toBeTruthy();
    const res = await fetch(`${gw.url}/echo/x`, { headers: { authorization: `Bearer ${id_token}` } });
    expect(res.status).toBe(401);
    const e = await eventOf(gw, res);
    expect(e.ztgate).toMatchObject({ decision: 'deny', reasons: ['token-id-token-presented'] });
    expect(e.user).toBeUndefined();
  });

  it('an official not on the roster is refused, and the event says who tried (unverified)', async () => {
    const { access_token } = await llng.passwordGrant('msmith');
    const res = await fetch(`${gw.url}/echo/x`, { headers: { authorization: `Bearer ${access_token}` } });
    expect(res.status).toBe(403);
    const e = await eventOf(gw, res);
    expect(e.ztgate).toMatchObject({ decision: 'deny', reasons: ['official-not-on-roster'] });
    expect(e.user).toEqual({ id: NATIONAL_IDS.msmith, verified: false, id_type: 'national-id', issuer: llng.issuer });
  });

  it('browser sign-in through the gateway in Chromium: code flow with PKCE, client_secret_post with a secret full of special characters', async () => {
    const { context, page, authorize } = await signIn(gw, 'dwho');
    expect(Object.fromEntries(authorize.searchParams)).toMatchObject({ client_id: CLIENT_ID, response_type: 'code', code_challenge_method: 'S256', redirect_uri: `${gw.url}/.ztgate/auth/callback` });
    const body = JSON.parse((await page.locator('body').textContent())!);
    expect(body.path).toBe('/api/x');
    const created = await eventWhere(gw, (e) => e.ztgate.reasons.includes('session-created') && e.user?.id === NATIONAL_IDS.dwho);
    expect(created.ztgate.assurance).toEqual({ level: 1, acr: 'loa-1' });
    await context.close();
  });

  it('acr mapping: loa-1 maps to the configured level; a level-2 service sends the browser to step up with the configured acr_values', async () => {
    const { context, page } = await signIn(gw, 'rtyler', '/strong/x');
    expect(page.url()).toBe(`${gw.url}/strong/x`);
    const strong = await eventWhere(gw, (e) => e.url.path === '/strong/x' && e.user?.id === NATIONAL_IDS.rtyler && e.ztgate.decision === 'allow');
    expect(strong.ztgate.assurance).toEqual({ level: 1, acr: 'loa-1' });
    let stepUp: URL | null = null;
    page.on('request', (r) => {
      if (r.url().startsWith(`${llng.issuer}/oauth2/authorize`)) stepUp ??= new URL(r.url());
    });
    const from = gw.sink.events.length;
    await page.goto(`${gw.url}/fresh/x`);
    expect(stepUp!.searchParams.get('acr_values')).toBe('loa-3');
    expect(stepUp!.searchParams.get('prompt')).toBe('login');
    // LemonLDAP::NG ignores acr_values and answers loa-1 again: the gateway refuses instead of looping.
    await eventWhere(gw, (e) => gw.sink.events.indexOf(e) >= from && e.url.path === '/.ztgate/auth/login' && e.ztgate.decision === 'deny');
    const events = gw.sink.events
      .slice(from)
      .filter((e) => e.url.path !== '/favicon.ico')
      .map((e) => [e.url.path, e.ztgate.reasons]);
    expect(events).toEqual([
      ['/fresh/x', ['assurance-insufficient']],
      ['/.ztgate/auth/login', ['sign-in-started']],
      ['/.ztgate/auth/callback', ['session-created']],
      ['/fresh/x', ['assurance-insufficient']],
      ['/.ztgate/auth/login', ['assurance-insufficient']],
    ]);
    expect(page.url()).toMatch(/\/\.ztgate\/auth\/login\?return=%2Ffresh%2Fx&level=2$/);
    expect(await page.locator('body').textContent()).toContain('assurance-insufficient');
    await context.close();
    // A program is told the same acr_values (RFC 9470 step-up challenge).
    const { access_token } = await llng.passwordGrant('rtyler');
    const api = await fetch(`${gw.url}/fresh/x`, { headers: { authorization: `Bearer ${access_token}` } });
    expect(api.status).toBe(401);
    expect(api.headers.get('www-authenticate')).toContain('error="insufficient_user_authentication"');
    expect(api.headers.get('www-authenticate')).toContain('acr_values="loa-3"');
  });

  it('refresh: an expiring access token is refreshed at LemonLDAP::NG with its refresh token', async () => {
    const { context } = await signIn(gw, 'dwho');
    const cookie = await cookieHeader(context, gw.url);
    const id = /ztgate-session=([^;]+)/.exec(cookie)![1]!;
    const key = `session:${createHash('sha256').update(id).digest('hex')}`;
    const record = JSON.parse((await redis.get(key))!);
    record.accessTokenExpiresAt = Date.now() - 1000;
    await redis.set(key, JSON.stringify(record), 'PX', 3_600_000);
    const res = await fetch(`${gw.url}/echo/x`, { headers: { cookie } });
    expect(res.status).toBe(200);
    expect((await eventOf(gw, res)).ztgate.reasons).toEqual(expect.arrayContaining(['session-refreshed', 'policy-allowed']));
    expect(JSON.parse((await redis.get(key))!).accessTokenExpiresAt).toBeGreaterThan(Date.now());
    await context.close();
  });

  it('sign-out from the gateway ends the LemonLDAP::NG session too: reopening shows its login form', async () => {
    const { context, page } = await signIn(gw, 'dwho');
    await page.goto(`${gw.url}/.ztgate/auth/logout`);
    // The 303 to end_session_endpoint must get past the page's CSP form-action.
    await Promise.all([page.waitForURL((u) => u.href.startsWith(`${llng.issuer}/oauth2/logout`), { timeout: 15_000 }), page.click('button[type=submit]')]);
    // LemonLDAP::NG ends its session, shows its front-channel iframes, then sends the browser back.
    await Promise.all([page.waitForURL((u) => u.href.startsWith(`${gw.url}/.ztgate/auth/signed-out`), { timeout: 15_000 }), page.click('#form button[type=submit]')]);
    expect(await page.locator('h1').textContent()).toContain('Đã đăng xuất');
    const out = await eventWhere(gw, (e) => e.url.path === '/.ztgate/auth/logout' && e.http.request.method === 'POST');
    expect(out.ztgate).toMatchObject({ decision: 'allow', reasons: ['signed-out'] });
    await page.goto(`${gw.url}/echo/x`);
    // Not a silent sign-in: the IdP asks for the password again.
    await page.waitForSelector('input[name=user]');
    expect(page.url().startsWith(llng.issuer)).toBe(true);
    await context.close();
  });

  it('sign-out at LemonLDAP::NG ends the gateway session (front-channel logout; the IdP sends no sid, so by iss + sub)', async () => {
    const { context } = await signIn(gw, 'dwho');
    const cookie = await cookieHeader(context, gw.url);
    expect((await fetch(`${gw.url}/echo/x`, { headers: { cookie } })).status).toBe(200);
    const from = gw.sink.events.length;
    const portal = await context.newPage();
    await portal.goto(`${llng.issuer}/?logout=1`);
    const fc = await eventWhere(gw, (e) => gw.sink.events.indexOf(e) >= from && e.url.path === '/.ztgate/auth/frontchannel-logout');
    expect(fc.ztgate).toMatchObject({ decision: 'allow', reasons: ['frontchannel-logout'] });
    const after = await fetch(`${gw.url}/echo/x`, { headers: { cookie, accept: 'application/json' } });
    expect(after.status).toBe(401);
    expect((await eventOf(gw, after)).ztgate.reasons).toEqual(['session-revoked']);
    await context.close();
  });

  it('attack: a front-channel logout naming another issuer, or not loaded in an iframe, ends nothing', async () => {
    const { context } = await signIn(gw, 'rtyler');
    const cookie = await cookieHeader(context, gw.url);
    const other = await fetch(`${gw.url}/.ztgate/auth/frontchannel-logout?iss=${encodeURIComponent('https://evil.example')}&sid=rtyler`, { headers: { 'sec-fetch-dest': 'iframe' } });
    expect(other.status).toBe(400);
    expect((await eventOf(gw, other)).ztgate).toMatchObject({ decision: 'deny', reasons: ['frontchannel-logout-invalid'] });
    const img = await fetch(`${gw.url}/.ztgate/auth/frontchannel-logout?iss=${encodeURIComponent(llng.issuer)}&sid=rtyler`, { headers: { 'sec-fetch-dest': 'image' } });
    expect(img.status).toBe(400);
    const noSid = await fetch(`${gw.url}/.ztgate/auth/frontchannel-logout?iss=${encodeURIComponent(llng.issuer)}`);
    expect(noSid.status).toBe(400);
    expect((await fetch(`${gw.url}/echo/x`, { headers: { cookie } })).status).toBe(200);
    // The answer may be framed by the IdP only.
    const ok = await fetch(`${gw.url}/.ztgate/auth/frontchannel-logout?iss=${encodeURIComponent(llng.issuer)}&sid=nobody`, { headers: { 'sec-fetch-dest': 'iframe' } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-security-policy')).toBe(`default-src 'none'; frame-ancestors ${llng.issuer}`);
    expect(ok.headers.get('cache-control')).toContain('no-store');
    await context.close();
  });

  it('the cause of a failed sign-in reaches the event and the operator log: client authentication at the token endpoint, then clock skew', async () => {
    // client_secret_basic form-encodes the secret (RFC 6749 §2.3.1); LemonLDAP::NG compares it raw.
    const basic = await startGw(gwPorts[1]!, (doc) => (doc.identity.browser.tokenEndpointAuthMethod = 'client_secret_basic'));
    extra.push(basic);
    const { context } = await signIn(basic, 'dwho');
    const failed = await eventWhere(basic, (e) => e.url.path === '/.ztgate/auth/callback');
    expect(failed.ztgate).toMatchObject({ decision: 'deny', reasons: ['auth-client-authentication-failed'], error_code: 'ZTG_ERR_SIGN_IN_FAILED' });
    const line = basic.log.lines.find((l) => l.reason === 'auth-client-authentication-failed')!;
    expect(line.msg).toMatch(/token endpoint refused the gateway's client authentication \(client_secret_basic\): 40[01]/);
    expect(JSON.stringify(basic.log.lines)).not.toContain(CLIENT_SECRET);
    await context.close();

    const skewed = await startGw(gwPorts[2]!);
    extra.push(skewed);
    // The gateway's clock two hours ahead of the IdP's: the fresh ID token looks expired.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 2 * 3600_000 });
    try {
      const late = await signIn(skewed, 'dwho');
      const e = await eventWhere(skewed, (x) => x.url.path === '/.ztgate/auth/callback');
      expect(e.ztgate).toMatchObject({ decision: 'deny', reasons: ['auth-clock-skew'] });
      expect(skewed.log.lines.find((l) => l.reason === 'auth-clock-skew')!.msg).toMatch(/ID token exp is outside the 30 s clock tolerance/);
      await late.context.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('key rotation at LemonLDAP::NG: the new kid is fetched once and accepted; a token signed with the retired key is refused', async () => {
    const old = await llng.passwordGrant('dwho');
    expect((await fetch(`${gw.url}/echo/x`, { headers: { authorization: `Bearer ${old.access_token}` } })).status).toBe(200);
    const oldKid = llng.kid;
    await llng.reconfigure({ rotateKey: true });
    expect(llng.kid).not.toBe(oldKid);
    await new Promise((r) => setTimeout(r, 1100)); // the gateway's JWKS cooldown (jwksCooldownMs) in this suite
    const fresh = await llng.passwordGrant('dwho');
    const res = await fetch(`${gw.url}/echo/x`, { headers: { authorization: `Bearer ${fresh.access_token}` } });
    expect(res.status).toBe(200);
    const stale = await fetch(`${gw.url}/echo/x`, { headers: { authorization: `Bearer ${old.access_token}` } });
    expect(stale.status).toBe(401);
    expect((await eventOf(gw, stale)).ztgate.reasons).toEqual(['token-key-unknown']);
  });
});
