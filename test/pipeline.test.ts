import type { FastifyInstance, FastifyRequest } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../gateway/app.js';
import { newDecisionContext } from '../gateway/events.js';
import { createPipeline, type PipelineDeps } from '../gateway/pipeline.js';
import { createRuntime, type Runtime } from '../gateway/runtime.js';
import { createRouteTable } from '../gateway/steps/route.js';
import { createDeviceAssessor, type DeviceAssessor } from '../gateway/steps/device.js';
import type { RequestState } from '../gateway/request-state.js';
import { EventSink } from './helpers/harness.js';
import { inProcessConfig, inProcessIssuer, refusalOf, type InProcessIssuer } from './helpers/in-process.js';

/**
 * The pipeline alone (gateway/pipeline.ts), on the memory store with in-process keys: its steps run
 * in the order of the Zero Trust list, a step that refuses stops every later one, and whichever way
 * a request ends the listener writes exactly one decision event.
 */

const OFFICIAL = '056080000011';
const LOCKED = '056080000012';

let issuer: InProcessIssuer;
let runtime: Runtime;
let sink: EventSink;
let app: FastifyInstance;

beforeAll(async () => {
  issuer = await inProcessIssuer();
  sink = new EventSink();
  const config = inProcessConfig(issuer);
  runtime = await createRuntime(config, { decisionLog: sink, fetch: issuer.fetch });
  await runtime.locks.set({ kind: 'user', value: LOCKED, reason: 'kiểm thử khóa', lockedBy: 'soc', seconds: 600 });
  app = await buildApp(runtime);
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await runtime?.close();
});

/** The real pipeline, each dependency wrapped to note when its step asks it. */
function recordingPipeline(calls: string[], overrides: Partial<PipelineDeps> = {}) {
  const { config } = runtime;
  const authenticator = runtime.authenticator;
  const devices = createDeviceAssessor(config, runtime.store);
  const locks = runtime.locks;
  const signer = runtime.signer;
  return createPipeline({
    config,
    routes: createRouteTable(config.routes),
    authenticator: { ...authenticator, authenticate: (headers, request) => (calls.push('identity'), authenticator.authenticate(headers, request)) },
    devices: { ...devices, assess: (...args: Parameters<DeviceAssessor['assess']>) => (calls.push('device'), devices.assess(...args)) },
    locks: { ...locks, firstActive: (subjects) => (calls.push('locks'), locks.firstActive(subjects)) },
    policy: runtime.policy,
    signer: { ...signer, sign: (input) => (calls.push('assertion'), signer.sign(input)) },
    decisionLog: runtime.decisionLog,
    store: runtime.store,
    state: runtime.state,
    ...overrides,
  });
}

type PipelineRequest = FastifyRequest & RequestState;

function request(method: string, url: string, headers: Record<string, string> = {}): PipelineRequest {
  const socket = { remoteAddress: '127.0.0.1', remotePort: 50000 };
  const fields = { id: `req-${Math.random()}`, method, url, headers: { host: 'gw.test', ...headers }, socket, raw: { socket }, zt: newDecisionContext(socket), assertion: null };
  return fields as unknown as PipelineRequest;
}

const bearer = async (nationalId: string) => ({ authorization: `Bearer ${await issuer.token(nationalId)}` });

describe('the order of the steps', () => {
  it('allows in order: identity, device, locks, decision, then the assertion', async () => {
    const calls: string[] = [];
    const req = request('GET', '/echo/records', await bearer(OFFICIAL));
    await recordingPipeline(calls)(req, {} as never);
    expect(calls).toEqual(['identity', 'device', 'locks', 'assertion']);
    expect(req.zt.principal?.nationalId).toBe(OFFICIAL);
    expect(req.zt.decision?.effect).toBe('allow');
    expect(req.assertion).not.toBeNull();
  });

  it('an ambiguous path is refused at the edge: nothing after it runs', async () => {
    const calls: string[] = [];
    const req = request('GET', '/echo/%2e%2e/admin', await bearer(OFFICIAL));
    const err = await refusalOf(() => recordingPipeline(calls)(req, {} as never));
    expect(err.reason).toBe('path-ambiguous');
    expect(calls).toEqual([]);
  });

  it('an unknown or unapproved service is refused before anyone is authenticated', async () => {
    for (const [url, reason] of [
      ['/nowhere/x', 'route-not-found'],
      ['/cong-thuong/x', 'route-not-approved'],
    ] as const) {
      const calls: string[] = [];
      const req = request('GET', url, await bearer(OFFICIAL));
      expect((await refusalOf(() => recordingPipeline(calls)(req, {} as never))).reason).toBe(reason);
      expect(calls).toEqual([]);
      expect(req.zt.principal).toBeNull();
    }
  });

  it('lost shared state is refused before identity is asked', async () => {
    const calls: string[] = [];
    const req = request('GET', '/echo/records', await bearer(OFFICIAL));
    const err = await refusalOf(() => recordingPipeline(calls, { state: { healthy: () => false } })(req, {} as never));
    expect(err.reason).toBe('state-lost');
    expect(calls).toEqual([]);
  });

  it('an unauthenticated request stops at identity: no device, lock or policy is asked', async () => {
    const calls: string[] = [];
    const req = request('GET', '/echo/records');
    expect((await refusalOf(() => recordingPipeline(calls)(req, {} as never))).reason).toBe('token-missing');
    expect(calls).toEqual(['identity']);
    expect(req.zt.device).toBeNull();
  });

  it('a locked official stops at locks: no decision, no assertion', async () => {
    const calls: string[] = [];
    const req = request('GET', '/echo/records', await bearer(LOCKED));
    expect((await refusalOf(() => recordingPipeline(calls)(req, {} as never))).reason).toBe('locked-user');
    expect(calls).toEqual(['identity', 'device', 'locks']);
    expect(req.zt.decision).toBeNull();
    expect(req.assertion).toBeNull();
  });

  it('a policy denial is decided after locks and signs nothing', async () => {
    const calls: string[] = [];
    const req = request('DELETE', '/echo/records/1', await bearer(OFFICIAL));
    expect((await refusalOf(() => recordingPipeline(calls)(req, {} as never))).reason).toBe('policy-denied');
    expect(calls).toEqual(['identity', 'device', 'locks']);
    expect(req.zt.decision?.effect).toBe('deny');
    expect(req.assertion).toBeNull();
  });
});

describe('one decision event per request, whichever step ends it', () => {
  async function eventOf(method: 'GET' | 'DELETE', url: string, headers: Record<string, string> = {}) {
    const res = await app.inject({ method, url, headers });
    const requestId = res.headers['x-request-id'];
    // forRequest fails unless exactly one event carries this request id.
    const event = await sink.forRequest(typeof requestId === 'string' ? requestId : null);
    return { status: res.statusCode, event };
  }

  it('a public endpoint: one allow event', async () => {
    const { status, event } = await eventOf('GET', '/healthz');
    expect(status).toBe(200);
    expect([event.event.outcome, event.ztgate.decision]).toEqual(['success', 'allow']);
    expect(event.ztgate.reasons).toContain('public-endpoint');
  });

  it('refusals at the edge, the route, identity, locks and the policy: one deny event each, with its reason', async () => {
    const cases: [string, 'GET' | 'DELETE', string, Record<string, string>, number][] = [
      ['path-ambiguous', 'GET', '/echo/a%2fb', await bearer(OFFICIAL), 400],
      ['route-not-found', 'GET', '/nowhere/x', await bearer(OFFICIAL), 404],
      ['route-not-approved', 'GET', '/cong-thuong/x', await bearer(OFFICIAL), 403],
      ['token-missing', 'GET', '/echo/records', {}, 401],
      ['locked-user', 'GET', '/echo/records', await bearer(LOCKED), 403],
      ['policy-denied', 'DELETE', '/echo/records/1', await bearer(OFFICIAL), 403],
    ];
    for (const [reason, method, url, headers, status] of cases) {
      const seen = await eventOf(method, url, headers);
      expect([seen.status, seen.event.ztgate.decision, seen.event.ztgate.reasons]).toEqual([status, 'deny', expect.arrayContaining([reason])]);
    }
  });

  it('an allowed request whose upstream does not answer: one event, the policy allowed and the upstream unavailable', async () => {
    const { status, event } = await eventOf('GET', '/echo/records', await bearer(OFFICIAL));
    expect(status).toBe(502);
    // An upstream fault after an allow stays an allow that failed (gateway/events.ts).
    expect([event.ztgate.decision, event.event.outcome]).toEqual(['allow', 'failure']);
    expect(event.ztgate.reasons).toEqual(expect.arrayContaining(['policy-allowed', 'upstream-unavailable']));
  });
});
