import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './helpers/harness.js';

const OFFICIAL = '056085000001'; // Nguyễn Văn An, ho-tich-reader

let h: Harness;
beforeAll(async () => {
  // /dev/full: every write fails with ENOSPC, like a full or failed audit disk.
  h = await startHarness({
    configure(doc) {
      doc.audit = { chain: { file: '/dev/full' } };
      doc.routes.find((r: any) => r.id === 'echo').auditRequired = true;
    },
  });
});
afterAll(async () => {
  await h?.close();
});

async function call(path: string) {
  const res = await fetch(`${h.gateway.url}${path}`, { headers: { authorization: `Bearer ${await h.token(OFFICIAL)}` } });
  const body = (await res.json()) as any;
  return { status: res.status, body, event: await h.sink.forRequest(res.headers.get('x-request-id')) };
}

describe('audit-required routes', () => {
  it('attack on the audit trail: when the local audit log cannot be written, an audit-required route is refused 503 audit-unavailable before forwarding', async () => {
    const before = h.upstreams.recording.received.length;
    const { status, body, event } = await call('/echo/things/1');
    expect(status).toBe(503);
    expect(body.error).toMatchObject({ code: 'ZTG_ERR_AUDIT_UNAVAILABLE', reason: 'audit-unavailable' });
    expect(h.upstreams.recording.received.length).toBe(before);
    // The refusal itself still reaches the other sinks.
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['policy-allowed', 'audit-unavailable'] });
  });

  it('a route that is not audit-required keeps being served', async () => {
    expect((await call('/ho-tich/records?limit=1')).status).toBe(200);
  });
});
