import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './helpers/harness.js';

const OFFICIAL = '056085000001'; // Nguyễn Văn An, ho-tich-reader

/** An upstream that answers at once and then sends its body one byte at a time, for ever. */
let trickle: Server;
let h: Harness;
const MAX_CONNECTIONS = 40;

beforeAll(async () => {
  trickle = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    const timer = setInterval(() => res.write('.'), 100);
    res.on('close', () => clearInterval(timer));
    req.resume();
  });
  await new Promise<void>((r) => trickle.listen(0, '127.0.0.1', r));
  h = await startHarness({
    configure(doc) {
      doc.admin = undefined;
      doc.limits = { requestTimeoutMs: 30_000, headersTimeoutMs: 1000, idleTimeoutMs: 1000, maxConnections: MAX_CONNECTIONS };
      const echo = doc.routes.find((r: any) => r.id === 'echo');
      echo.upstream = `http://127.0.0.1:${(trickle.address() as AddressInfo).port}/api`;
      echo.upstreamTimeoutMs = 1000;
    },
  });
});
afterAll(async () => {
  await h?.close();
  trickle?.closeAllConnections();
  await new Promise((r) => trickle?.close(r));
});

function open(): Promise<Socket> {
  const { port } = new URL(h.gateway.url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), '127.0.0.1', () => resolve(s));
    s.resume(); // read what the gateway sends, so its closing is seen
    s.on('error', reject);
  });
}

const closed = (s: Socket) => new Promise<void>((r) => (s.destroyed || s.closed ? r() : s.once('close', () => r())));

describe('time bounds on the whole exchange', () => {
  it('a trickling upstream body is cut off at upstreamTimeoutMs, and the event says upstream-timeout', async () => {
    const started = Date.now();
    const res = await fetch(`${h.gateway.url}/echo/trickle`, { headers: { authorization: `Bearer ${await h.token(OFFICIAL)}` } });
    expect(res.status).toBe(200); // the upstream had already answered
    await expect(res.text()).rejects.toThrow();
    const elapsed = Date.now() - started;
    expect(elapsed).toBeLessThan(5000);
    const event = await h.sink.forRequest(res.headers.get('x-request-id'));
    expect(event.ztgate).toMatchObject({ decision: 'allow', error_code: 'ZTG_ERR_UPSTREAM_TIMEOUT' });
    expect(event.ztgate.reasons).toContain('upstream-timeout');
    expect(event.ztgate.reasons).not.toContain('client-aborted');
    expect(event.event.outcome).toBe('failure');
  });

  it('slowloris: a connection sending its headers a byte at a time is closed at headersTimeoutMs, with a 408', async () => {
    const s = await open();
    let answer = '';
    s.on('data', (c) => (answer += c));
    s.write('GET /ho-tich/records HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => !s.destroyed && s.write('X-a: b\r\n'), 200);
    const started = Date.now();
    await closed(s);
    clearInterval(drip);
    expect(Date.now() - started).toBeLessThan(4000);
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });

  it('idle connections — never sending a request, or kept alive after one — are closed within the header and idle timeouts', async () => {
    const idle = await Promise.all(Array.from({ length: 20 }, open));
    const kept = await open();
    kept.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const started = Date.now();
    await Promise.all([...idle, kept].map(closed));
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it(`connection cap: past ${MAX_CONNECTIONS} open connections new ones are closed at once, the SOC is told, and service resumes when they go`, async () => {
    const held = await Promise.all(Array.from({ length: MAX_CONNECTIONS }, open));
    const extra = await open();
    await closed(extra);
    expect(held.every((s) => !s.destroyed)).toBe(true);
    const alert = h.sink.events.find((e) => e.rule?.id === 'connection-limit-reached');
    expect(alert?.ztgate.alert.detail.max_connections).toBe(MAX_CONNECTIONS);
    for (const s of held) s.destroy();
    await new Promise((r) => setTimeout(r, 100));
    const res = await fetch(`${h.gateway.url}/healthz`);
    expect(res.status).toBe(200);
  });
});
