import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startHarness, type Harness } from './helpers/harness.js';

const ALLOWED = '056085000001'; // ho-tich-reader, Sở Tư pháp

let h: Harness;
const tmp = mkdtempSync(join(tmpdir(), 'ztgate-host-'));

beforeAll(async () => {
  // Two services on one prefix: one bound to a host, one for any host. Only the host-bound one is allowed.
  const policy = join(tmp, 'policy.csv');
  const base = readFileSync(join(ROOT, 'test/fixtures/gateway-policy.csv'), 'utf8').replace(/^p, ho-tich-reader, \*, echo, .*$/m, '');
  writeFileSync(policy, `${base}\np, ho-tich-reader, *, hostb, /*, GET, allow\n`);
  h = await startHarness({
    configure: (doc) => {
      doc.policy.policy = policy;
      const echo = doc.routes.find((r: { id: string }) => r.id === 'echo');
      doc.routes.push({ ...echo, id: 'hostb', name: 'Dịch vụ theo tên miền (kiểm thử)', host: 'b.example' });
    },
  });
});
afterAll(async () => {
  await h?.close();
  rmSync(tmp, { recursive: true, force: true });
});

function get(path: string, host: string, token: string) {
  const url = new URL(h.gateway.url);
  return new Promise<{ status: number; requestId: string }>((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, headers: { host, authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, requestId: String(res.headers['x-request-id']) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('host-bound routes', () => {
  it('the host-bound service is served for its host', async () => {
    const { status, requestId } = await get('/echo/x', 'b.example', await h.token(ALLOWED));
    expect(status).toBe(200);
    expect((await h.sink.forRequest(requestId)).ztgate).toMatchObject({ decision: 'allow', route: { id: 'hostb' } });
  });

  it('another host gets the host-less service, which this official may not use', async () => {
    const { status, requestId } = await get('/echo/x', `127.0.0.1:${new URL(h.gateway.url).port}`, await h.token(ALLOWED));
    expect(status).toBe(403);
    expect((await h.sink.forRequest(requestId)).ztgate).toMatchObject({ decision: 'deny', route: { id: 'echo' } });
  });

  it('attack: a Host header in upper case cannot get a decision for one service and be forwarded to another', async () => {
    const before = h.upstreams.recording.received.length;
    const { status, requestId } = await get('/echo/x', 'B.EXAMPLE', await h.token(ALLOWED));
    const event = await h.sink.forRequest(requestId);
    // The router matches hosts case-sensitively, the pipeline does not: they disagree, so nothing is forwarded.
    expect(status).toBe(421);
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['policy-allowed', 'route-mismatch'], route: { id: 'hostb' } });
    expect(h.upstreams.recording.received.length).toBe(before);
  });
});
