import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type TextMapGetter, type Tracer } from '@opentelemetry/api';
import type { NodeTracerProvider, SpanExporter } from '@opentelemetry/sdk-trace-node';
import type { Logger } from 'pino';
import { trustedProxyList, type TracingConfig } from './config.js';
import { STEPS, type StepTimes } from './steps.js';

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) for every request, and OpenTelemetry
 * spans when `tracing.otlpEndpoint` is set. A `traceparent` is continued only from a trusted proxy
 * (anyone else could pin requests to a trace of their choosing); every forwarded request carries
 * one, and the trace id is in the decision event (ECS trace.id) so an analyst can go from a SOC
 * event to the trace. The step spans are built when the request ends, from the step timings:
 * the request path only starts the request span and, when forwarding, the upstream span.
 */

export interface RequestTrace {
  /** 32 lowercase hex digits (W3C trace-id). */
  readonly traceId: string;
  /** The request span (recording or not); null when tracing is off. */
  readonly span: Span | null;
  readonly context: Context | null;
  /** The gateway's span id when tracing is off (the parent the upstream sees), made when first needed. */
  spanId: string | null;
  readonly flags: string;
  readonly tracestate: string | null;
  upstream: Span | null;
}

export interface Tracing {
  readonly enabled: boolean;
  /** A trace for an arriving request; `requestId` (a UUID) gives the trace id of a new trace when tracing is off. */
  begin(headers: IncomingHttpHeaders, remoteAddress: string | undefined, requestId: string): RequestTrace;
  /** The `traceparent` (and `tracestate`) to send upstream; starts the upstream span. */
  upstreamHeaders(t: RequestTrace): { traceparent: string; tracestate?: string };
  /** Ends the spans of a finished request. */
  end(t: RequestTrace, outcome: RequestOutcome): void;
  close(): Promise<void>;
}

export interface RequestOutcome {
  readonly method: string;
  readonly requestId: string;
  readonly service: string | null;
  readonly decision: string;
  readonly reasons: readonly string[];
  readonly statusCode: number;
  readonly steps: StepTimes | null;
  readonly upstreamStatus: number;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

const headerGetter: TextMapGetter<IncomingHttpHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

/** A valid version-00 traceparent from a trusted caller, else null (RFC-like strictness: all-zero ids are invalid). */
function parentOf(headers: IncomingHttpHeaders): { traceId: string; flags: string; tracestate: string | null } | null {
  const value = headers.traceparent;
  if (typeof value !== 'string') return null;
  const m = TRACEPARENT.exec(value.trim());
  if (!m || m[1] === ZERO_TRACE || m[2] === ZERO_SPAN) return null;
  const state = headers.tracestate;
  return { traceId: m[1]!, flags: m[3]!, tracestate: typeof state === 'string' && state.length <= 512 ? state : null };
}

/** The SDK and exporter are loaded only when spans are exported: a gateway without a collector never loads them. */
export async function createTracing(config: TracingConfig, log?: Pick<Logger, 'info' | 'warn'>): Promise<Tracing> {
  const trusted = trustedProxyList(config.trustedProxies);
  const isTrusted = (address: string | undefined): boolean => {
    if (!address || config.trustedProxies.length === 0) return false;
    const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
    return trusted.check(v4, v4.includes(':') ? 'ipv6' : 'ipv4');
  };

  let provider: NodeTracerProvider | null = null;
  let tracer: Tracer | null = null;
  let extract: ((headers: IncomingHttpHeaders) => Context) | null = null;
  if (config.otlpEndpoint) {
    const [{ W3CTraceContextPropagator }, { OTLPTraceExporter }, { resourceFromAttributes }, { BatchSpanProcessor, NodeTracerProvider, ParentBasedSampler, TraceIdRatioBasedSampler }] = await Promise.all([
      import('@opentelemetry/core'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
      import('@opentelemetry/sdk-trace-node'),
    ]);
    const propagator = new W3CTraceContextPropagator();
    extract = (headers) => propagator.extract(ROOT_CONTEXT, headers, headerGetter);
    provider = new NodeTracerProvider({
      resource: resourceFromAttributes({ 'service.name': config.serviceName }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sampleRatio) }),
      spanProcessors: [new BatchSpanProcessor(reportingExporter(new OTLPTraceExporter({ url: config.otlpEndpoint, timeoutMillis: config.exportTimeoutMs }), config.otlpEndpoint, log), { scheduledDelayMillis: 1000, exportTimeoutMillis: config.exportTimeoutMs })],
    });
    tracer = provider.getTracer('ztgate');
  }

  return {
    enabled: tracer !== null,
    begin(headers, remoteAddress, requestId) {
      const parent = isTrusted(remoteAddress) ? parentOf(headers) : null;
      if (tracer) {
        const parentContext = parent && extract ? extract(headers) : ROOT_CONTEXT;
        const span = tracer.startSpan('ztgate request', { kind: SpanKind.SERVER }, parentContext);
        const sc = span.spanContext();
        return { traceId: sc.traceId, span, context: trace.setSpan(parentContext, span), spanId: sc.spanId, flags: sc.traceFlags & 1 ? '01' : '00', tracestate: parent?.tracestate ?? null, upstream: null };
      }
      // Tracing off: the trace id still links the event, the upstream and the operator log.
      const traceId = parent?.traceId ?? requestId.replaceAll('-', '');
      return { traceId, span: null, context: null, spanId: null, flags: parent?.flags ?? '00', tracestate: parent?.tracestate ?? null, upstream: null };
    },
    upstreamHeaders(t) {
      let spanId = (t.spanId ??= randomBytes(8).toString('hex'));
      let flags = t.flags;
      if (tracer && t.context) {
        t.upstream = tracer.startSpan('upstream', { kind: SpanKind.CLIENT }, t.context);
        const sc = t.upstream.spanContext();
        spanId = sc.spanId;
        flags = sc.traceFlags & 1 ? '01' : '00';
      }
      const traceparent = `00-${t.traceId}-${spanId}-${flags}`;
      return t.tracestate ? { traceparent, tracestate: t.tracestate } : { traceparent };
    },
    end(t, outcome) {
      const span = t.span;
      if (!span || !tracer || !t.context) return;
      const now = performance.now();
      const steps = outcome.steps;
      if (span.isRecording() && steps) {
        for (let i = 0; i < STEPS.length; i++) {
          const start = steps[i * 2]!;
          if (start === 0 || STEPS[i] === 'upstream') continue;
          tracer.startSpan(STEPS[i]!, { kind: SpanKind.INTERNAL, startTime: start }, t.context).end(steps[i * 2 + 1] || now);
        }
      }
      if (t.upstream) {
        if (outcome.upstreamStatus > 0) t.upstream.setAttribute('http.response.status_code', outcome.upstreamStatus);
        if (outcome.upstreamStatus === 0 || outcome.upstreamStatus >= 500) t.upstream.setStatus({ code: SpanStatusCode.ERROR });
        t.upstream.end((steps && steps[7]) || now);
      }
      span.updateName(`${outcome.method} ${outcome.service ?? 'gateway'}`);
      // No path, user or address: a trace backend is not where citizens' or officials' data goes.
      span.setAttributes({
        'http.request.method': outcome.method,
        'http.response.status_code': outcome.statusCode,
        'ztgate.request_id': outcome.requestId,
        'ztgate.service': outcome.service ?? '',
        'ztgate.decision': outcome.decision,
        'ztgate.reasons': [...outcome.reasons],
      });
      if (outcome.statusCode === 0 || outcome.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end(now);
    },
    async close() {
      await provider?.shutdown().catch(() => undefined);
    },
  };
}

/** The exporter, with each change between failing and succeeding exports in the operator log (once, not per batch). */
function reportingExporter(inner: SpanExporter, endpoint: string, log?: Pick<Logger, 'info' | 'warn'>): SpanExporter {
  let failing = false;
  return {
    export(spans, done) {
      inner.export(spans, (result) => {
        // ExportResultCode.SUCCESS is 0.
        if (result.code !== 0 && !failing) log?.warn({ endpoint, error: result.error?.message }, 'trace export failing; spans are dropped until the collector answers');
        else if (result.code === 0 && failing) log?.info({ endpoint }, 'trace export restored');
        failing = result.code !== 0;
        done(result);
      });
    },
    shutdown: () => inner.shutdown(),
    forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
  };
}
