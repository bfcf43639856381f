import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startHarness, type Harness } from './helpers/harness.js';
import { eventually, LogLines } from './helpers/ops.js';

const ALLOWED = '056085000001'; // synthetic official, ho-tich-reader, Sở Tư pháp
const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_TRACEPARENT = `00-${CALLER_TRACE}-00f067aa0ba902b7-01`;

interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: { key: string; value: Record<string, any> }[];
}

/** A small OTLP/HTTP receiver (JSON encoding, POST /v1/traces), as an OpenTelemetry collector would be. */
async function startOtlpReceiver(): Promise<{ url: string; spans: ReceivedSpan[]; resources: Record<string, unknown>[]; close(): Promise<void> }> {
  const spans: ReceivedSpan[] = [];
  const resources: Record<string, unknown>[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !String(req.headers['content-type']).startsWith('application/json')) {
        res.writeHead(415).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      for (const rs of body.resourceSpans ?? []) {
        resources.push(rs.resource);
        for (const ss of rs.scopeSpans ?? []) spans.push(...ss.spans);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`,
    spans,
    resources,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const attr = (span: ReceivedSpan, key: string) => {
  const v = span.attributes.find((a) => a.key === key)?.value;
  return v?.stringValue ?? v?.intValue ?? v?.arrayValue?.values?.map((x: any) => x.stringValue);
};

function claims(h: Harness) {
  const now = Math.floor(Date.now() / 1000);
  return { iss: h.testIssuer.issuer, aud: 'urn:ztgate:data', sub: ALLOWED, national_id: ALLOWED, agency: 'so-tu-phap', roles: ['ho-tich-reader'], iat: now, exp: now + 300 };
}

describe('OpenTelemetry tracing to an OTLP/HTTP receiver', () => {
  let h: Harness;
  let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
  const log = new LogLines();
  let deadIssuer = '';

  beforeAll(async () => {
    otlp = await startOtlpReceiver();
    deadIssuer = `http://127.0.0.1:${await freePort()}`;
    h = await startHarness({
      logDestination: log,
      configure: (doc) => {
        doc.tracing = { otlpEndpoint: otlp.url, serviceName: 'ztgate-test', trustedProxies: ['127.0.0.1'] };
        doc.identity.issuers.push({ issuer: deadIssuer, audience: 'urn:ztgate:data', algorithms: ['ES256'] });
      },
    });
  });
  afterAll(async () => {
    await h?.close();
    await otlp?.close();
  });

  it('exports a span per request with a child span per step; the event, the upstream and the spans share one trace id', async () => {
    const token = await h.testIssuer.sign(claims(h));
    const res = await fetch(`${h.gateway.url}/echo/traced`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const event = await h.sink.forRequest(res.headers.get('x-request-id'));
    const traceId = event.trace.id;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);

    await eventually(() => otlp.spans.filter((s) => s.traceId === traceId).length >= 5, 8000, 'the spans at the receiver');
    const spans = otlp.spans.filter((s) => s.traceId === traceId);
    const root = spans.find((s) => !s.parentSpanId)!;
    expect(root.name).toBe('GET echo');
    expect(root.kind).toBe(2); // SERVER
    expect(attr(root, 'ztgate.request_id')).toBe(event.event.id);
    expect(attr(root, 'ztgate.decision')).toBe('allow');
    expect(attr(root, 'ztgate.reasons')).toEqual(['policy-allowed']);
    const children = spans.filter((s) => s.parentSpanId === root.spanId);
    expect(children.map((s) => s.name).sort()).toEqual(['decision', 'device', 'identity', 'upstream']);
    for (const child of children) {
      expect(BigInt(child.startTimeUnixNano) >= BigInt(root.startTimeUnixNano)).toBe(true);
      expect(BigInt(child.endTimeUnixNano) <= BigInt(root.endTimeUnixNano)).toBe(true);
    }
    expect(otlp.resources[0]).toMatchObject({ attributes: expect.arrayContaining([{ key: 'service.name', value: { stringValue: 'ztgate-test' } }]) });

    // The upstream continues the trace under the gateway's upstream span.
    const upstreamSpan = children.find((s) => s.name === 'upstream')!;
    const received = h.upstreams.recording.received.find((r) => r.url.endsWith('/traced'))!;
    expect(received.headers.traceparent).toBe(`00-${traceId}-${upstreamSpan.spanId}-01`);
    // Neither the national ID nor the path goes to the trace backend.
    expect(JSON.stringify(spans)).not.toContain(ALLOWED);
    expect(JSON.stringify(spans)).not.toContain('/traced');
  });

  it('continues the traceparent of a trusted proxy', async () => {
    const token = await h.testIssuer.sign(claims(h));
    const res = await fetch(`${h.gateway.url}/echo/continued`, { headers: { authorization: `Bearer ${token}`, traceparent: CALLER_TRACEPARENT, tracestate: 'lb=khanhhoa' } });
    expect(res.status).toBe(200);
    const event = await h.sink.forRequest(res.headers.get('x-request-id'));
    expect(event.trace.id).toBe(CALLER_TRACE);
    await eventually(() => otlp.spans.some((s) => s.traceId === CALLER_TRACE && s.parentSpanId === '00f067aa0ba902b7'), 8000, 'the continued span');
    const received = h.upstreams.recording.received.find((r) => r.url.endsWith('/continued'))!;
    expect(received.headers.traceparent).toMatch(new RegExp(`^00-${CALLER_TRACE}-[0-9a-f]{16}-01$`));
    expect(received.headers.traceparent).not.toContain('00f067aa0ba902b7');
    expect(received.headers.tracestate).toBe('lb=khanhhoa');
  });

  it('puts the trace id in the operator log line of a fault, so the analyst finds its trace', async () => {
    // An issuer whose discovery cannot be reached: the request is refused and the fault logged.
    const res = await fetch(`${h.gateway.url}/echo/x`, { headers: { authorization: `Bearer ${await h.testIssuer.sign({ ...claims(h), iss: deadIssuer })}` } });
    expect(res.status).toBe(503);
    const event = await h.sink.forRequest(res.headers.get('x-request-id'));
    expect(event.ztgate.reasons).toContain('identity-provider-unavailable');
    await eventually(() => log.withMessage('request refused').length > 0, 2000, 'the log line');
    const line = log.withMessage('request refused').at(-1)!;
    expect(line.trace_id).toBe(event.trace.id);
    expect(line.reqId).toBe(event.event.id);
  });
});

describe('W3C trace context without an exporter, from an untrusted caller', () => {
  let h: Harness;

  beforeAll(async () => {
    // Tracing off, and no trusted proxy: 127.0.0.1 is just a client here.
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('attack: a client cannot pin its request to a trace of its choosing; a new trace id is sent upstream and recorded', async () => {
    const token = await h.testIssuer.sign(claims(h));
    const res = await fetch(`${h.gateway.url}/echo/untrusted`, { headers: { authorization: `Bearer ${token}`, traceparent: CALLER_TRACEPARENT, tracestate: 'evil=1' } });
    expect(res.status).toBe(200);
    const event = await h.sink.forRequest(res.headers.get('x-request-id'));
    expect(event.trace.id).toMatch(/^[0-9a-f]{32}$/);
    expect(event.trace.id).not.toBe(CALLER_TRACE);
    const received = h.upstreams.recording.received.find((r) => r.url.endsWith('/untrusted'))!;
    expect(received.headers.traceparent).toMatch(new RegExp(`^00-${event.trace.id}-[0-9a-f]{16}-00$`));
    expect(received.headers.tracestate).toBeUndefined();
  });

  it('every decision event carries a trace id, denials included', async () => {
    const res = await fetch(`${h.gateway.url}/echo/x`);
    expect(res.status).toBe(401);
    const event = await h.sink.forRequest(res.headers.get('x-request-id'));
    expect(event.trace.id).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe('a collector that refuses spans', () => {
  let h: Harness;
  let collector: Server;
  let refusing = true;
  let accepted = 0;
  const log = new LogLines();

  beforeAll(async () => {
    collector = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (refusing) res.writeHead(400, { 'content-type': 'application/json' }).end('{"message":"refused (test)"}');
        else {
          accepted++;
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        }
      });
    });
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(collector.address() as AddressInfo).port}/v1/traces`;
    h = await startHarness({ logDestination: log, configure: (doc) => (doc.tracing = { otlpEndpoint: url, exportTimeoutMs: 1000 }) });
  });
  afterAll(async () => {
    await h?.close();
    await new Promise<void>((r) => {
      collector.closeAllConnections();
      collector.close(() => r());
    });
  });

  it('is one operator log line while it refuses, and one when it accepts again', async () => {
    const failing = 'trace export failing; spans are dropped until the collector answers';
    for (let round = 0; round < 3; round++) {
      expect((await fetch(`${h.gateway.url}/livez`)).status).toBe(200);
      await eventually(() => log.withMessage(failing).length > 0, 5000, 'the failing line');
    }
    // Batches keep failing: still one line.
    await new Promise((r) => setTimeout(r, 1500));
    expect(log.withMessage(failing)).toHaveLength(1);
    refusing = false;
    await fetch(`${h.gateway.url}/livez`);
    await eventually(() => accepted > 0 && log.withMessage('trace export restored').length === 1, 5000, 'the restored line');
    expect(log.withMessage(failing)).toHaveLength(1);
  });
});
