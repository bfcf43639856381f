import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair } from 'jose';
import { freePort, startHarness, type Harness } from './helpers/harness.js';
import { eventually, LogLines, OwnRedis } from './helpers/ops.js';

const ALLOWED = '056085000001'; // synthetic official, ho-tich-reader, Sở Tư pháp
const CHECK_NAMES = ['policy-loaded', 'state-store', 'issuer-keys', 'audit-sinks'];

function claims(h: Harness) {
  const now = Math.floor(Date.now() / 1000);
  return { iss: h.testIssuer.issuer, aud: 'urn:ztgate:data', sub: ALLOWED, national_id: ALLOWED, agency: 'so-tu-phap', roles: ['ho-tich-reader'], iat: now, exp: now + 300 };
}

async function getJson(url: string): Promise<{ status: number; body: any; requestId: string | null }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json(), requestId: res.headers.get('x-request-id') };
}

describe('health probes on the data and ops listeners', () => {
  let h: Harness;
  const log = new LogLines();

  beforeAll(async () => {
    h = await startHarness({
      logDestination: log,
      configure: (doc) => {
        doc.ops = { listen: { host: '127.0.0.1', port: 0 } };
        doc.probes = { checkIntervalMs: 200, checkTimeoutMs: 1000, drainDelayMs: 600 };
      },
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('answers /livez, /startupz and /readyz on the data listener, each request one decision event', async () => {
    for (const path of ['/livez', '/startupz', '/readyz']) {
      const { status, body, requestId } = await getJson(`${h.gateway.url}${path}`);
      expect(status, path).toBe(200);
      const event = await h.sink.forRequest(requestId);
      expect(event.ztgate.reasons).toEqual(['public-endpoint']);
      if (path === '/readyz') {
        expect(body.status).toBe('ready');
        expect(Object.keys(body.checks)).toEqual(CHECK_NAMES);
        // The public listener says which check fails, never why (internal addresses stay in the ops answer).
        for (const name of CHECK_NAMES) expect(body.checks[name]).toEqual({ ok: true });
      }
    }
  });

  it('answers the same probes on the ops listener, /readyz with the detail of each check', async () => {
    expect(h.gateway.opsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await getJson(`${h.gateway.opsUrl}/livez`)).body).toEqual({ status: 'ok' });
    expect((await getJson(`${h.gateway.opsUrl}/startupz`)).status).toBe(200);
    const { status, body } = await getJson(`${h.gateway.opsUrl}/readyz`);
    expect(status).toBe(200);
    expect(body.checks['policy-loaded']).toMatchObject({ ok: true, version: h.gateway.runtime.policy().version });
    expect(body.checks['state-store']).toMatchObject({ ok: true, backend: 'memory' });
    expect(body.checks['issuer-keys'].issuers.map((i: any) => [i.issuer, i.up])).toEqual(h.config.identity.issuers.map((i) => [i.issuer, true]));
    expect(body.checks['audit-sinks']).toMatchObject({ ok: true, problems: [] });
  });

  it('logs one line per lifecycle change and none per request at the default level', async () => {
    await eventually(() => log.withMessage('ready').length > 0, 5000, 'the ready line');
    const before = log.lines.length;
    const token = await h.testIssuer.sign(claims(h));
    for (let i = 0; i < 15; i++) {
      const allowed = await fetch(`${h.gateway.url}/echo/x${i}`, { headers: { authorization: `Bearer ${token}` } });
      expect(allowed.status).toBe(200);
      const denied = await fetch(`${h.gateway.url}/echo/x${i}`, { headers: { authorization: 'Bearer nope' } });
      expect(denied.status).toBe(401);
      await fetch(`${h.gateway.url}/readyz`);
      await fetch(`${h.gateway.opsUrl}/readyz`);
    }
    // 60 requests, background readiness checks every 200 ms: not one more line.
    await new Promise((r) => setTimeout(r, 500));
    expect(log.lines.slice(before)).toEqual([]);
    expect(log.withMessage('started')).toHaveLength(1);
    expect(log.withMessage('ready')).toHaveLength(1);
    expect(log.lines.filter((l) => l.reqId !== undefined)).toEqual([]);

    const { kid, retiredKid } = await h.gateway.runtime.signer.rotate();
    expect(log.lines.slice(before)).toEqual([expect.objectContaining({ level: 30, msg: 'assertion signing key rotated', kid, retiredKid })]);
  });

  it('graceful shutdown turns /readyz to 503 first, keeps serving during the drain delay, then closes', async () => {
    const token = await h.testIssuer.sign(claims(h));
    const shutdown = h.gateway.shutdown();
    const data = await getJson(`${h.gateway.url}/readyz`);
    expect(data.status).toBe(503);
    expect(data.body.status).toBe('draining');
    const ops = await getJson(`${h.gateway.opsUrl}/readyz`);
    expect(ops.status).toBe(503);
    // Still serving: the load balancer needs a few probes to take the instance out.
    const served = await fetch(`${h.gateway.url}/echo/during-drain`, { headers: { authorization: `Bearer ${token}` } });
    expect(served.status).toBe(200);
    expect((await getJson(`${h.gateway.url}/livez`)).status).toBe(200);
    await shutdown;
    await expect(fetch(`${h.gateway.url}/livez`)).rejects.toThrow();
    expect(log.withMessage('draining: /readyz answers 503; requests are still served until the listeners close')).toHaveLength(1);
    expect(log.withMessage('stopped')).toHaveLength(1);
  });
});

/** A JWKS the test serves and can take down: an issuer whose keys become unreachable. */
async function startJwksServer(): Promise<{ url: string; server: Server; stop(): Promise<void> }> {
  const { publicKey } = await generateKeyPair('ES256');
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] });
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(jwks));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('readiness when Redis or an issuer stops answering', () => {
  let h: Harness;
  let redis: OwnRedis;
  let jwks: Awaited<ReturnType<typeof startJwksServer>>;
  const log = new LogLines();

  beforeAll(async () => {
    redis = new OwnRedis(await freePort());
    await redis.start();
    jwks = await startJwksServer();
    h = await startHarness({
      logDestination: log,
      configure: (doc) => {
        doc.state = { backend: 'redis', redisUrl: redis.url, keyPrefix: 'ztg-probes:', commandTimeoutMs: 300 };
        doc.identity.issuers.push({ issuer: 'https://idp.khanhhoa.invalid', audience: 'urn:ztgate:data', algorithms: ['ES256'], jwksUri: `${jwks.url}/jwks.json` });
        doc.ops = { listen: { host: '127.0.0.1', port: 0 } };
        doc.probes = { checkIntervalMs: 200, checkTimeoutMs: 500, drainDelayMs: 0, issuerKeysMaxAgeMs: 0 };
      },
    });
  });
  afterAll(async () => {
    await h?.close();
    await redis?.stop();
    await jwks?.stop();
  });

  it('Redis down → /readyz 503 naming state-store; one "lost" line, one "restored" line when it is back', async () => {
    expect((await getJson(`${h.gateway.opsUrl}/readyz`)).status).toBe(200);
    await redis.stop();
    await eventually(async () => (await getJson(`${h.gateway.opsUrl}/readyz`)).status === 503, 5000, '/readyz 503');
    const down = await getJson(`${h.gateway.url}/readyz`);
    expect(down.status).toBe(503);
    expect(down.body.status).toBe('not-ready');
    expect(down.body.checks['state-store']).toEqual({ ok: false });
    expect(down.body.checks['policy-loaded']).toEqual({ ok: true });
    // Several background checks and probes later, still one line.
    await new Promise((r) => setTimeout(r, 600));
    expect(log.withMessage('shared state lost: the state store does not answer; requests that need it are refused')).toHaveLength(1);
    expect(log.withMessage('not ready')).toHaveLength(1);
    expect(log.withMessage('not ready')[0]!.failing).toEqual(['state-store']);

    await redis.start();
    await eventually(async () => (await getJson(`${h.gateway.opsUrl}/readyz`)).status === 200, 8000, '/readyz 200 again');
    expect(log.withMessage('shared state restored: the state store answers again')).toHaveLength(1);
    expect(log.withMessage('ready')).toHaveLength(2);
  });

  it('an issuer whose JWKS cannot be fetched → /readyz 503 naming issuer-keys, the ops answer names the issuer', async () => {
    await jwks.stop();
    await eventually(async () => (await getJson(`${h.gateway.opsUrl}/readyz`)).status === 503, 5000, '/readyz 503');
    const { body } = await getJson(`${h.gateway.opsUrl}/readyz`);
    expect(body.checks['issuer-keys'].ok).toBe(false);
    const failing = body.checks['issuer-keys'].issuers.filter((i: any) => !i.up).map((i: any) => i.issuer);
    expect(failing).toEqual(['https://idp.khanhhoa.invalid']);
    expect(body.checks['state-store'].ok).toBe(true);
    await new Promise((r) => setTimeout(r, 500));
    expect(log.withMessage('issuer keys unavailable')).toHaveLength(1);
  });
});
