import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, SESSION_COOKIE } from './helpers/browser.js';
import { EventSink, freePort, ROOT, startRecordingUpstream, TEST_AUDIENCE, type RecordingUpstream } from './helpers/harness.js';
import { startRedis, type OwnRedis } from './helpers/redis-server.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';
import { parseConfig } from '../gateway/config.js';
import { startGateway, type RunningGateway } from '../gateway/server.js';
import { DEMO_GATEWAY_CLIENT_ID, DEMO_GATEWAY_CLIENT_SECRET, startDemoIdp, type DemoIdp } from '../demo/idp.js';
import { obtainDemoToken } from '../demo/token.js';

/**
 * The production topology as plain processes: haproxy in front of two gateway instances (one in
 * this process, one a `ztgate start` child process), one Redis, one PostgreSQL, the IdP.
 */
const HAPROXY = process.env.HAPROXY ?? '/usr/sbin/haproxy';
const AN = '056085000001'; // synthetic, ho-tich-reader
const CUONG = '056088000003'; // synthetic, ho-tich-reader
const ADMIN_A = '056179000006';
const ADMIN_B = '056082000003';
const POLICY = '# Synthetic policy of the load-balancer test.\np, ho-tich-reader, *, echo, /*, GET|POST, allow\n';

let dir: string;
let redis: OwnRedis;
let db: TestDatabase;
let idp: DemoIdp;
let recording: RecordingUpstream;
let front: string;
let a: RunningGateway;
let b: ChildProcess;
let bUrl: string;
let haproxy: ChildProcess;
const sink = new EventSink();
/** Decision events of the child instance, read from its stdout. */
const childEvents: Record<string, any>[] = [];

async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function eventFor(id: string | null): Promise<Record<string, any>> {
  for (let i = 0; i < 100; i++) {
    const found = [...sink.events, ...childEvents].filter((e) => e.http?.request?.id === id);
    if (found.length === 1) return found[0]!;
    if (found.length > 1) throw new Error(`${found.length} events for ${id}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no decision event for ${id}`);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ztgate-lb-'));
  redis = await startRedis();
  db = await createTestDatabase('lb');
  const [frontPort, aPort, bPort] = [await freePort(), await freePort(), await freePort()];
  front = `http://127.0.0.1:${frontPort}`;
  bUrl = `http://127.0.0.1:${bPort}`;
  idp = await startDemoIdp({ port: 0, audience: TEST_AUDIENCE, gatewayRedirectUris: [`${front}/.ztgate/auth/callback`], postLogoutRedirectUris: [`${front}/.ztgate/auth/signed-out`] });
  recording = await startRecordingUpstream(() => front, 'echo');
  // One assertion key for every instance: the upstream verifies against the JWKS behind the load balancer.
  const keyFile = join(dir, 'assertion-key.pem');
  writeFileSync(keyFile, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const approval = { status: 'approved', approvedBy: ADMIN_A, approvedAt: '2026-01-01' };
  writeFileSync(join(dir, 'policy.csv'), POLICY);
  const keyPrefix = `ztgate-lb-${randomBytes(4).toString('hex')}:`;
  const doc = (port: number) => ({
    listen: { host: '127.0.0.1', port },
    publicUrl: front,
    state: { backend: 'redis', redisUrl: redis.url, keyPrefix, checkIntervalMs: 200, durable: { postgresUrl: db.url } },
    assertion: { keyFile },
    identity: {
      clockSkewSeconds: 30,
      issuers: [{ issuer: idp.issuer, audience: TEST_AUDIENCE, algorithms: ['ES256'], claimsPreset: 'ztgate-demo' }],
      browser: { issuer: idp.issuer, clientId: DEMO_GATEWAY_CLIENT_ID, clientSecret: DEMO_GATEWAY_CLIENT_SECRET },
      session: { absoluteLifetimeSeconds: 3600, idleTimeoutSeconds: 600 },
      roster: { source: 'file', file: join(ROOT, 'demo/roster.csv') },
    },
    policy: { model: join(ROOT, 'policies/model.conf'), policy: join(dir, 'policy.csv'), syncIntervalMs: 1000 },
    devices: { defaultMinTierBySecurityLevel: { '3': 'unknown' } },
    routes: [{ id: 'echo', name: 'Kiểm thử echo', pathPrefix: '/echo', upstream: `${recording.url}/api`, ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'internal', approval }],
  });
  a = await startGateway(parseConfig(doc(aPort), 'instance-a', ROOT), { decisionLog: sink });
  const bConfig = join(dir, 'instance-b.json');
  writeFileSync(bConfig, JSON.stringify(doc(bPort)));
  b = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'gateway/cli.ts'), 'start', '--config', bConfig], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  b.stdout!.on('data', (chunk) => {
    out += chunk;
    let nl;
    while ((nl = out.indexOf('\n')) !== -1) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      if (line.trim().startsWith('{')) childEvents.push(JSON.parse(line));
    }
  });
  let bErr = '';
  b.stderr!.on('data', (c) => (bErr += c));
  await waitFor(`instance b (${bErr})`, async () => (await fetch(`${bUrl}/healthz`)).ok);

  writeFileSync(
    join(dir, 'haproxy.cfg'),
    [
      'global',
      '  maxconn 2000',
      'defaults',
      '  mode http',
      '  timeout connect 500ms',
      '  timeout client 10s',
      '  timeout server 10s',
      // A request whose instance died (refused connection, connection reset before any answer) goes to
      // another instance; haproxy retries only idempotent methods after the request was sent.
      '  retries 3',
      '  option redispatch 1',
      '  retry-on conn-failure empty-response response-timeout',
      'backend gateways',
      '  balance roundrobin',
      '  option httpchk GET /readyz',
      '  default-server inter 300ms fall 2 rise 1',
      `  server a 127.0.0.1:${aPort} check`,
      `  server b 127.0.0.1:${bPort} check`,
      'frontend public',
      `  bind 127.0.0.1:${frontPort}`,
      '  default_backend gateways',
      '',
    ].join('\n'),
  );
  haproxy = spawn(HAPROXY, ['-f', join(dir, 'haproxy.cfg'), '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  await waitFor('haproxy', async () => (await fetch(`${front}/healthz`)).ok);
}, 60_000);

afterAll(async () => {
  haproxy?.kill('SIGKILL');
  b?.kill('SIGKILL');
  await a?.close();
  await Promise.all([idp?.close(), recording?.close()]);
  await redis?.stop();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

async function signedIn(nationalId: string): Promise<Browser> {
  const browser = new Browser();
  const page = await browser.signIn(`${front}/echo/x`, nationalId);
  expect(page.res.status).toBe(200);
  await page.res.body?.cancel();
  return browser;
}

const bearer = async (nationalId: string) => (await obtainDemoToken({ issuer: idp.issuer, nationalId, resource: TEST_AUDIENCE })).access_token;

/** Polls instance b until `check` holds; returns how long that took after `since`. */
async function enforcedOnB(since: number, check: () => Promise<boolean>): Promise<number> {
  await waitFor('enforcement on the other instance', check, 5000);
  return Date.now() - since;
}

describe('two instances behind haproxy', () => {
  it('a lock set on one instance is enforced by the other within one second', async () => {
    const token = await bearer(CUONG);
    expect((await fetch(`${bUrl}/echo/x`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    const t0 = Date.now();
    await a.runtime.locks.set({ kind: 'user', value: CUONG, reason: 'SOC: điều tra (giả lập)', lockedBy: ADMIN_A, seconds: 600 });
    const ms = await enforcedOnB(t0, async () => {
      const res = await fetch(`${bUrl}/echo/x`, { headers: { authorization: `Bearer ${token}` } });
      await res.arrayBuffer();
      return res.status === 403 && (await eventFor(res.headers.get('x-request-id'))).ztgate.reasons[0] === 'locked-user';
    });
    expect(ms).toBeLessThan(1000);
  });

  it('a sign-out on one instance ends the session on the other within one second', async () => {
    const browser = await signedIn(AN);
    expect((await browser.request(`${bUrl}/echo/x`)).status).toBe(200);
    const cookie = browser.cookie('127.0.0.1', SESSION_COOKIE)!;
    const t0 = Date.now();
    const out = await browser.request(`${a.url}/.ztgate/auth/logout`, { method: 'POST', body: new URLSearchParams(), headers: { origin: front, 'sec-fetch-site': 'same-origin' } });
    expect(out.status).toBe(303);
    // The browser drops its cookie on sign-out; a copy of it (stolen, another tab) must not work anywhere.
    const ms = await enforcedOnB(t0, async () => {
      const res = await fetch(`${bUrl}/echo/x`, { headers: { cookie: `${SESSION_COOKIE}=${cookie}` }, redirect: 'manual' });
      await res.arrayBuffer();
      return res.status !== 200 && ['session-revoked', 'session-unknown'].includes((await eventFor(res.headers.get('x-request-id'))).ztgate.reasons[0]);
    });
    expect(ms).toBeLessThan(1000);
  });

  it('a policy version approved on one instance is enforced by the other within one second', async () => {
    const token = await bearer(AN);
    expect((await fetch(`${bUrl}/echo/secret`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    const versions = a.runtime.policies.versions;
    const draft = await versions.createDraft({ author: ADMIN_A, comment: 'Chặn /secret', sources: { ...(await versions.get(a.runtime.policies.currentId())).sources, policy: `${POLICY}p, ho-tich-reader, *, echo, /secret, GET, deny\n` } });
    await versions.submit(draft.id, ADMIN_A);
    const t0 = Date.now();
    const v2 = await versions.approve(draft.id, ADMIN_B, 'Đồng ý');
    await a.runtime.policies.announce(v2);
    const ms = await enforcedOnB(t0, async () => {
      const res = await fetch(`${bUrl}/echo/secret`, { headers: { authorization: `Bearer ${token}` } });
      await res.arrayBuffer();
      return res.status === 403 && (await eventFor(res.headers.get('x-request-id'))).ztgate.reasons[0] === 'policy-denied';
    });
    expect(ms).toBeLessThan(1000);
  });

  it('one instance killed under traffic: no idempotent request fails, every session survives', async () => {
    const sessions = await Promise.all([signedIn(AN), signedIn(AN)]);
    const token = await bearer(AN);
    const statuses: number[] = [];
    const ids: string[] = [];
    let stop = false;
    const worker = async (i: number) => {
      while (!stop) {
        const res = i % 2 === 0 ? await sessions[i % sessions.length]!.request(`${front}/echo/x`) : await fetch(`${front}/echo/x`, { headers: { authorization: `Bearer ${token}` } });
        await res.arrayBuffer();
        statuses.push(res.status);
        ids.push(res.headers.get('x-request-id')!);
      }
    };
    const workers = [0, 1, 2, 3].map(worker);
    await new Promise((r) => setTimeout(r, 500));
    b.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 1500));
    stop = true;
    await Promise.all(workers);
    expect(statuses.length).toBeGreaterThan(20);
    // The killed instance had its share of the traffic before it died.
    expect(ids.some((id) => childEvents.some((e) => e.http?.request?.id === id))).toBe(true);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    // Instance a decided what it served after the kill: allowed, by policy.
    const last = await eventFor(ids.at(-1)!);
    expect(last.ztgate.reasons).toEqual(['policy-allowed']);
    for (const s of sessions) expect((await s.request(`${front}/echo/x`)).status).toBe(200);
  }, 30_000);
});
