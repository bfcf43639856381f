import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_GATEWAY_CLIENT_ID, DEMO_GATEWAY_CLIENT_SECRET } from '../demo/idp.js';
import { freePort, startHarness, type Harness } from './helpers/harness.js';
import { Browser, SESSION_COOKIE } from './helpers/browser.js';

/**
 * The management listener against what an attacker does next to a signed-in admin, through real
 * HTTP with a real session from the demo IdP: changes whose origin is not proven, a second session
 * cookie tossed in from a sibling host, and answers a cache or a content sniffer could reuse.
 */

const ADMIN = '056179000006'; // Vũ Thị Giang, security-admin

/** The operator log (pino JSON lines), kept to assert on what reaches it. */
class LogSink extends Writable {
  readonly lines: Record<string, any>[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void) {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) this.lines.push(JSON.parse(line));
    done();
  }
}

let h: Harness;
let adminUrl: string;
const log = new LogSink();
const browser = new Browser();
let session: string;
let csrfToken: string;

beforeAll(async () => {
  const adminPort = await freePort();
  adminUrl = `http://127.0.0.1:${adminPort}`;
  h = await startHarness({
    idp: { gatewayRedirectUris: [`${adminUrl}/.ztgate/auth/callback`] },
    logDestination: log,
    configure(doc) {
      doc.admin = { ...doc.admin, listen: { host: '127.0.0.1', port: adminPort }, publicUrl: adminUrl };
      doc.identity.browser = { issuer: doc.identity.issuers[0].issuer, clientId: DEMO_GATEWAY_CLIENT_ID, clientSecret: DEMO_GATEWAY_CLIENT_SECRET };
    },
  });
  const signedIn = await browser.signIn(`${adminUrl}/`, ADMIN);
  expect(signedIn.res.status).toBe(200);
  session = browser.cookie('127.0.0.1', SESSION_COOKIE)!;
  expect(session).toBeTruthy();
  const csrf = await browser.request(`${adminUrl}/api/v1/csrf`, { headers: { accept: 'application/json', 'sec-fetch-mode': 'cors' } });
  csrfToken = ((await csrf.json()) as { token: string }).token;
  expect(csrfToken).toBeTruthy();
}, 60_000);

afterAll(async () => {
  await h?.close();
});

/** A policy draft made with the admin's session cookie and CSRF token; `headers` add or override. */
async function createDraft(headers: Record<string, string>) {
  const body = JSON.stringify({ comment: 'bản nháp kiểm thử', policy: 'p, ho-tich-reader, *, ho-tich, /records, GET, allow\n' });
  const res = await fetch(`${adminUrl}/api/v1/policies/versions`, {
    method: 'POST',
    headers: { cookie: `${SESSION_COOKIE}=${session}`, 'content-type': 'application/json', 'x-csrf-token': csrfToken, ...headers },
    body,
  });
  const json = (await res.json()) as any;
  return { res, json, event: await h.sink.forRequest(res.headers.get('x-request-id')) };
}

async function drafts(): Promise<number> {
  const res = await fetch(`${adminUrl}/api/v1/policies/versions`, { headers: { authorization: `Bearer ${await h.token(ADMIN)}` } });
  return ((await res.json()) as { items: unknown[] }).items.length;
}

describe('CSRF: a change must prove it comes from a page of the admin listener', () => {
  it('attack: valid session and CSRF token, no Origin, a foreign Referer — refused (403 csrf-token-invalid), no draft created', async () => {
    const before = await drafts();
    const { res, json, event } = await createDraft({ referer: 'https://evil.example/page' });
    expect(res.status).toBe(403);
    expect(json.error.reason).toBe('csrf-token-invalid');
    expect(json.error.message).toContain('Referer');
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['csrf-token-invalid'] });
    expect(await drafts()).toBe(before);
  });

  it('attack: valid session and CSRF token, neither Origin nor Referer — refused, no draft created', async () => {
    const before = await drafts();
    const { res, json, event } = await createDraft({});
    expect(res.status).toBe(403);
    expect(json.error.reason).toBe('csrf-token-invalid');
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['csrf-token-invalid'] });
    expect(await drafts()).toBe(before);
  });

  it('attack: an Origin of another site with a same-origin Referer — refused', async () => {
    const { res, json } = await createDraft({ origin: 'https://evil.example', referer: `${adminUrl}/` });
    expect(res.status).toBe(403);
    expect(json.error.reason).toBe('csrf-token-invalid');
  });

  it('no Origin but a Referer of the admin listener itself: accepted (201), the draft exists', async () => {
    const before = await drafts();
    const { res, event } = await createDraft({ referer: `${adminUrl}/#/policies` });
    expect(res.status).toBe(201);
    expect(event.ztgate.decision).toBe('allow');
    expect(await drafts()).toBe(before + 1);
  });
});

describe('regression: admin pages and API answers are never cached nor sniffed', () => {
  const expectHeaders = (res: Response, what: string) => {
    expect(res.headers.get('cache-control'), what).toBe('no-store');
    expect(res.headers.get('x-content-type-options'), what).toBe('nosniff');
  };

  it('the UI page and its scripts', async () => {
    for (const path of ['/', '/ui/app.js', '/ui/style.css', '/ui/i18n.js']) {
      const res = await fetch(`${adminUrl}${path}`, { headers: { cookie: `${SESSION_COOKIE}=${session}` } });
      expect(res.status, path).toBe(200);
      await res.arrayBuffer();
      expectHeaders(res, path);
    }
  });

  it('API answers: success, refusal, not found, sign-in redirect', async () => {
    const cases: [string, RequestInit, number][] = [
      ['/api/v1/whoami', { headers: { cookie: `${SESSION_COOKIE}=${session}` } }, 200],
      ['/api/v1/services', { headers: { authorization: `Bearer ${await h.token(ADMIN)}` } }, 200],
      ['/api/v1/whoami', {}, 401],
      ['/api/v1/no-such-thing', { headers: { authorization: `Bearer ${await h.token(ADMIN)}` } }, 404],
      ['/api/v1/services', { headers: { authorization: `Bearer ${await h.token('056085000001')}` } }, 403],
    ];
    for (const [path, init, status] of cases) {
      const res = await fetch(`${adminUrl}${path}`, init);
      expect(res.status, path).toBe(status);
      await res.arrayBuffer();
      expectHeaders(res, `${status} ${path}`);
    }
    // A page load without a session: sent to sign in (node:http, as fetch() cannot say "navigate").
    const redirect = await new Browser().request(`${adminUrl}/`);
    expect(redirect.status).toBe(302);
    expectHeaders(redirect, 'sign-in redirect');
  });
});

describe('attack: two session cookies in one request (cookie tossing, session fixation)', () => {
  const tossed = 'A'.repeat(43);

  for (const [listener, url] of [
    ['admin', () => `${adminUrl}/api/v1/whoami`],
    ['data plane', () => `${h.gateway.url}/echo/records`],
  ] as const) {
    for (const order of ['valid first', 'tossed first'] as const) {
      it(`${listener}, ${order}: 400 cookie-duplicate, one decision event, and a warning in the operator log`, async () => {
        const pair = order === 'valid first' ? [session, tossed] : [tossed, session];
        const res = await fetch(url(), { headers: { cookie: `${SESSION_COOKIE}=${pair[0]}; lang=vi; ${SESSION_COOKIE}=${pair[1]}` } });
        const json = (await res.json()) as any;
        expect(res.status).toBe(400);
        expect(json.error).toMatchObject({ code: 'ZTG_ERR_BAD_REQUEST', reason: 'cookie-duplicate' });
        const requestId = res.headers.get('x-request-id');
        const event = await h.sink.forRequest(requestId);
        expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['cookie-duplicate'] });
        expect(event.user?.id).toBeUndefined();
        expect(log.lines.find((l) => l.requestId === requestId)).toMatchObject({ level: 40, reason: 'cookie-duplicate' });
      });
    }
  }

  it('one session cookie still works (the same admin, the same session)', async () => {
    const res = await fetch(`${adminUrl}/api/v1/whoami`, { headers: { cookie: `${SESSION_COOKIE}=${session}; lang=vi` } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).nationalId).toBe(ADMIN);
  });
});
