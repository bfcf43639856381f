import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { Redis } from 'ioredis';
import { parseConfig, type GatewayConfig } from '../../gateway/config.js';
import { startGateway, type RunningGateway } from '../../gateway/server.js';
import { DEMO_GATEWAY_CLIENT_ID, DEMO_GATEWAY_CLIENT_SECRET, readDemoOfficials, startDemoIdp, type DemoIdp } from '../../demo/idp.js';
import { startDemoUpstream, type DemoUpstream } from '../../demo/upstreams.js';
import { EventSink, freePort, ROOT, startRecordingUpstream, startTestIssuer, TEST_AUDIENCE, type RecordingUpstream, type TestIssuer } from './harness.js';
import { deleteKeysWithPrefix, redisUrl } from './redis.js';

/**
 * A scripted browser: one cookie jar per host name (as browsers do — cookies ignore the port, so
 * the gateway and the IdP on 127.0.0.1 see each other's cookies, as they would for real), manual
 * redirects, and the IdP's login form filled in like a person would.
 */
export interface Hop {
  readonly url: string;
  readonly status: number;
  readonly location: string | null;
  readonly requestId: string | null;
  readonly setCookie: string[];
}

export class Browser {
  readonly jar = new Map<string, Map<string, string>>();
  readonly hops: Hop[] = [];

  cookie(host: string, name: string): string | undefined {
    return this.jar.get(host)?.get(name);
  }

  setCookie(host: string, name: string, value: string | null): void {
    const cookies = this.jar.get(host) ?? new Map<string, string>();
    this.jar.set(host, cookies);
    if (value === null) cookies.delete(name);
    else cookies.set(name, value);
  }

  async request(url: string | URL, init: { method?: string; body?: URLSearchParams; headers?: Record<string, string> } = {}): Promise<Response> {
    const u = new URL(url);
    // What a browser sends for a page load (Fetch Metadata): fetch() would otherwise say "cors".
    const headers: Record<string, string> = { accept: 'text/html,application/xhtml+xml', 'sec-fetch-mode': 'navigate', ...init.headers };
    const cookies = this.jar.get(u.hostname);
    if (cookies?.size) headers.cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await httpRequest(u, init.method ?? 'GET', headers, init.body?.toString());
    const setCookie = res.headers.getSetCookie();
    for (const line of setCookie) this.store(u.hostname, line);
    this.hops.push({ url: u.href, status: res.status, location: res.headers.get('location'), requestId: res.headers.get('x-request-id'), setCookie });
    return res;
  }

  /** Follows redirects until a page that is not one; returns it with its URL. */
  async follow(res: Response, from: string, max = 15): Promise<{ res: Response; url: string }> {
    let url = from;
    for (let i = 0; i < max && [301, 302, 303, 307, 308].includes(res.status); i++) {
      const location = res.headers.get('location')!;
      await res.body?.cancel();
      url = new URL(location, url).href;
      res = await this.request(url);
    }
    return { res, url };
  }

  async open(url: string): Promise<{ res: Response; url: string }> {
    return this.follow(await this.request(url), url);
  }

  /** On the IdP login page: post the form, then follow redirects back. */
  async submitLogin(page: { res: Response; url: string }, nationalId: string, password?: string): Promise<{ res: Response; url: string }> {
    const html = await page.res.text();
    const tag = /<form\b[^>]*\bid="login-form"[^>]*>/.exec(html)?.[0];
    const action = tag && /\baction="([^"]+)"/.exec(tag)?.[1];
    if (!action) throw new Error(`no login form at ${page.url} (status ${page.res.status}): ${html.slice(0, 200)}`);
    const loginUrl = new URL(action.replace(/&amp;/g, '&'), page.url).href;
    const pw = password ?? (await readDemoOfficials()).password;
    const posted = await this.request(loginUrl, { method: 'POST', body: new URLSearchParams({ username: nationalId, password: pw }) });
    return this.follow(posted, loginUrl);
  }

  /** Opens `url` on the gateway, signs in at the IdP as `nationalId`, and comes back. */
  async signIn(url: string, nationalId: string): Promise<{ res: Response; url: string }> {
    const page = await this.open(url);
    if (!page.url.includes('/interaction/')) return page; // already signed in at the IdP
    return this.submitLogin(page, nationalId);
  }

  private store(host: string, line: string): void {
    const [pair = '', ...attributes] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq <= 0) return;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const expired = attributes.some((a) => {
      const [k = '', v = ''] = a.split('=').map((s) => s.trim());
      return (k.toLowerCase() === 'max-age' && Number(v) <= 0) || (k.toLowerCase() === 'expires' && Date.parse(v) <= Date.now());
    });
    this.setCookie(host, name, expired || value === '' ? null : value);
  }
}

/** node:http, because fetch() always sends Sec-Fetch-Mode: cors and so never looks like a page load. */
function httpRequest(url: URL, method: string, headers: Record<string, string>, body?: string): Promise<Response> {
  if (body !== undefined) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const h = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          for (const v of [value ?? []].flat()) h.append(name, v);
        }
        const status = res.statusCode!;
        const nullBody = status === 204 || status === 304 || method === 'HEAD';
        resolve(new Response(nullBody ? null : Buffer.concat(chunks), { status, headers: h }));
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export const SESSION_COOKIE = 'ztgate-session';
export const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

export interface IdentityHarness {
  readonly idp: DemoIdp;
  readonly gateways: RunningGateway[];
  readonly configs: GatewayConfig[];
  readonly sink: EventSink;
  readonly testIssuer: TestIssuer;
  readonly recording: RecordingUpstream;
  readonly hoTich: DemoUpstream;
  /** Namespaces every key of this harness in Redis. */
  readonly keyPrefix: string;
  /** A direct Redis connection for inspecting and ageing records, as an operator (or time) would. */
  readonly redis: Redis;
  close(): Promise<void>;
}

export interface IdentityHarnessOptions {
  readonly instances?: number;
  readonly opaqueAccessTokens?: boolean;
  readonly configure?: (doc: Record<string, any>, index: number) => void;
}

/**
 * The real IdP with the gateway registered as its confidential client, and `instances` gateways
 * sharing one Redis under a random key prefix; the IdP's back-channel logout goes to the first.
 */
export async function startIdentityHarness(opts: IdentityHarnessOptions = {}): Promise<IdentityHarness> {
  const count = opts.instances ?? 1;
  const ports = await Promise.all(Array.from({ length: count }, () => freePort()));
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  const idp = await startDemoIdp({
    port: 0,
    audience: TEST_AUDIENCE,
    gatewayRedirectUris: urls.map((u) => `${u}/.ztgate/auth/callback`),
    postLogoutRedirectUris: urls.map((u) => `${u}/.ztgate/auth/signed-out`),
    gatewayBackchannelLogoutUri: `${urls[0]}/.ztgate/auth/backchannel-logout`,
    opaqueAccessTokens: opts.opaqueAccessTokens,
  });
  const testIssuer = await startTestIssuer();
  const recording = await startRecordingUpstream(() => urls[0]!, 'echo');
  const hoTich = await startDemoUpstream({ dataset: 'ho-tich', port: 0, gatewayIssuer: urls[0]!, gatewayJwksUrl: `${urls[0]}/.well-known/jwks.json` });
  const url = await redisUrl();
  const keyPrefix = `ztgate-test-${randomBytes(6).toString('hex')}:`;
  const redis = new Redis(url, { keyPrefix });
  const sink = new EventSink();
  const approval = { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-01' };
  const gateways: RunningGateway[] = [];
  const configs: GatewayConfig[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const echo = (id: string, extra: Record<string, unknown> = {}) => ({ id, name: `Kiểm thử ${id}`, pathPrefix: `/${id}`, upstream: `${recording.url}/api`, ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'internal', approval, ...extra });
      const doc: Record<string, any> = {
        listen: { host: '127.0.0.1', port: ports[i] },
        publicUrl: urls[i],
        // Browsers over plain http present neither DPoP nor a client certificate (test/mtls-*.test.ts cover admin.minDeviceTier).
        admin: { listen: { host: '127.0.0.1', port: 0 }, minDeviceTier: 'unknown' },
        state: { backend: 'redis', redisUrl: url, keyPrefix },
        identity: {
          clockSkewSeconds: 30,
          jwksCooldownMs: 1000,
          issuers: [
            { issuer: idp.issuer, audience: TEST_AUDIENCE, algorithms: ['ES256'], claimsPreset: 'ztgate-demo', introspection: { endpoint: `${idp.issuer}/token/introspection`, clientId: DEMO_GATEWAY_CLIENT_ID, clientSecret: DEMO_GATEWAY_CLIENT_SECRET } },
            { issuer: testIssuer.issuer, audience: TEST_AUDIENCE, algorithms: ['ES256'] },
          ],
          browser: { issuer: idp.issuer, clientId: DEMO_GATEWAY_CLIENT_ID, clientSecret: DEMO_GATEWAY_CLIENT_SECRET },
          session: { absoluteLifetimeSeconds: 3600, idleTimeoutSeconds: 600 },
          roster: { source: 'file', file: 'demo/roster.csv' },
        },
        policy: { model: 'policies/model.conf', policy: 'test/fixtures/identity-policy.csv' },
        devices: { defaultMinTierBySecurityLevel: { '3': 'unknown' } },
        routes: [{ id: 'ho-tich', name: 'Hộ tịch', pathPrefix: '/ho-tich', upstream: hoTich.url, ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'personal-data', approval }, echo('echo'), echo('strong', { minAssuranceLevel: 2 }), echo('fresh', { maxAuthAgeSeconds: 300 })],
      };
      opts.configure?.(doc, i);
      const config = parseConfig(doc, `identity-harness[${i}]`, ROOT);
      configs.push(config);
      gateways.push(await startGateway(config, { decisionLog: sink }));
    }
  } catch (err) {
    for (const g of gateways) await g.close();
    await Promise.all([idp.close(), testIssuer.close(), recording.close(), hoTich.close()]);
    redis.disconnect();
    throw err;
  }
  return {
    idp,
    gateways,
    configs,
    sink,
    testIssuer,
    recording,
    hoTich,
    keyPrefix,
    redis,
    async close() {
      for (const g of gateways) await g.close();
      await Promise.all([idp.close(), testIssuer.close(), recording.close(), hoTich.close()]);
      try {
        await deleteKeysWithPrefix(keyPrefix);
      } finally {
        redis.disconnect();
      }
    },
  };
}
