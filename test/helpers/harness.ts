import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWK, type JWTPayload, type JWTVerifyResult } from 'jose';
import { parseConfig, type GatewayConfig } from '../../gateway/config.js';
import { startGateway, type RunningGateway } from '../../gateway/server.js';
import { startDemoIdp, type DemoIdp, type DemoIdpOptions } from '../../demo/idp.js';
import { obtainDemoToken } from '../../demo/token.js';
import { startDemoUpstream, type DemoUpstream } from '../../demo/upstreams.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const validateEvent = new Ajv2020({ allErrors: true, strict: false }).compile(JSON.parse(readFileSync(new URL('../../gateway/audit/decision-event.schema.json', import.meta.url), 'utf8')));

/** Every event a test looks at must match the published schema (gateway/audit/decision-event.schema.json). */
export function assertEventMatchesSchema(event: Record<string, unknown>): void {
  if (!validateEvent(event)) {
    throw new Error(`decision event does not match its schema: ${JSON.stringify(validateEvent.errors)}\n${JSON.stringify(event)}`);
  }
}

/** Collects decision events (one JSON line each) as the gateway writes them. */
export class EventSink extends Writable {
  readonly events: Record<string, any>[] = [];
  private waiters: (() => void)[] = [];

  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) this.events.push(JSON.parse(line));
    this.waiters.splice(0).forEach((w) => w());
    done();
  }

  /** The decision event for a response, by its x-request-id. Events are written after the response is sent. */
  async forRequest(requestId: string | null, timeoutMs = 2000): Promise<Record<string, any>> {
    if (!requestId) throw new Error('response has no x-request-id');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.filter((e) => e.http?.request?.id === requestId);
      if (found.length > 0) {
        // Exactly one event per request: wait a moment for a duplicate to show itself.
        await new Promise((r) => setTimeout(r, 20));
        const all = this.events.filter((e) => e.http?.request?.id === requestId);
        if (all.length !== 1) throw new Error(`expected one decision event for ${requestId}, got ${all.length}`);
        assertEventMatchesSchema(all[0]!);
        return all[0]!;
      }
      if (Date.now() > deadline) throw new Error(`no decision event for ${requestId}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }
}

/** An upstream that records what reached it and verifies the gateway assertion itself. */
export interface RecordingUpstream {
  readonly url: string;
  readonly received: { method: string; url: string; headers: IncomingHttpHeaders; body: string; assertion: JWTVerifyResult | null; assertionError: string | null }[];
  close(): Promise<void>;
}

export async function startRecordingUpstream(gatewayUrl: () => string, audience: string): Promise<RecordingUpstream> {
  const received: RecordingUpstream['received'] = [];
  let jwks: ReturnType<typeof createRemoteJWKSet> | null = null;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const entry: RecordingUpstream['received'][number] = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), assertion: null, assertionError: null };
      try {
        jwks ??= createRemoteJWKSet(new URL(`${gatewayUrl()}/.well-known/jwks.json`));
        entry.assertion = await jwtVerify(String(req.headers['x-ztgate-assertion']), jwks, { issuer: gatewayUrl(), audience, algorithms: ['ES256'], typ: 'ztgate-assertion+jwt' });
      } catch (err) {
        entry.assertionError = (err as Error).message;
      }
      received.push(entry);
      // /slow/… answers after a while, for tests of clients that give up first.
      if (req.url!.includes('/slow/')) await new Promise((r) => setTimeout(r, 800));
      if (res.destroyed) return;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ upstream: 'recording', path: req.url }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A second issuer the tests hold the keys of, to craft tokens no real IdP would issue. */
export interface TestIssuer {
  readonly issuer: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
  readonly kid: string;
  sign(claims: JWTPayload, header?: Record<string, unknown>, key?: CryptoKey): Promise<string>;
  close(): Promise<void>;
}

export async function startTestIssuer(): Promise<TestIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = 'test-key-1';
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  let issuer = '';
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/.well-known/openid-configuration') res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    else if (req.url === '/jwks') res.end(JSON.stringify({ keys: [publicJwk] }));
    else res.writeHead(404).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer,
    privateKey,
    publicJwk,
    kid,
    sign: (claims, header = {}, key = privateKey) => new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt', ...header } as never).sign(key),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const TEST_AUDIENCE = 'urn:ztgate:data';

export interface Harness {
  readonly gateway: RunningGateway;
  readonly config: GatewayConfig;
  readonly idp: DemoIdp;
  readonly testIssuer: TestIssuer;
  readonly upstreams: { readonly hoTich: DemoUpstream; readonly recording: RecordingUpstream };
  readonly sink: EventSink;
  token(nationalId: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * The whole demo topology on free ports: the real OIDC provider, a test issuer, a demo data
 * service that verifies assertions, a recording upstream, and the gateway between them.
 */
export interface HarnessOptions {
  /** Adjusts the configuration document before it is parsed (e.g. state, devices). */
  readonly configure?: (doc: Record<string, any>) => void;
  /** Extra options for the demo IdP, e.g. the redirect URIs of browser sign-in. */
  readonly idp?: Partial<DemoIdpOptions>;
  /** The signature the ho-tich demo service verifies (default ES256). */
  readonly hoTichAssertionAlgorithm?: 'ES256' | 'ML-DSA-65';
  /** Where the gateway's operator log goes (stderr by default). */
  readonly logDestination?: Writable;
}

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const idp = await startDemoIdp({ port: 0, audience: TEST_AUDIENCE, ...opts.idp });
  const testIssuer = await startTestIssuer();
  const port = await freePort();
  const gatewayUrl = `http://127.0.0.1:${port}`;
  const hoTich = await startDemoUpstream({ dataset: 'ho-tich', port: 0, gatewayIssuer: gatewayUrl, gatewayJwksUrl: `${gatewayUrl}/.well-known/jwks.json`, assertionAlgorithm: opts.hoTichAssertionAlgorithm });
  const recording = await startRecordingUpstream(() => gatewayUrl, 'echo');
  const approval = { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-01' };
  const doc = {
    listen: { host: '127.0.0.1', port },
    publicUrl: gatewayUrl,
    // The suites of the management API send no device proofs; test/mtls-*.test.ts cover admin.minDeviceTier.
    admin: { listen: { host: '127.0.0.1', port: 0 }, minDeviceTier: 'unknown' },
    identity: {
      clockSkewSeconds: 30,
      jwksCooldownMs: 1000,
      issuers: [
        { issuer: idp.issuer, audience: TEST_AUDIENCE, algorithms: ['ES256'] },
        { issuer: testIssuer.issuer, audience: TEST_AUDIENCE, algorithms: ['ES256'] },
      ],
    },
    policy: { model: 'policies/model.conf', policy: 'test/fixtures/gateway-policy.csv' },
    // The suites of the other steps send no device proofs; test/device-*.test.ts cover device trust.
    devices: { defaultMinTierBySecurityLevel: { '3': 'unknown' } },
    routes: [
      { id: 'ho-tich', name: 'Hộ tịch', pathPrefix: '/ho-tich', upstream: hoTich.url, ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'personal-data', approval },
      { id: 'echo', name: 'Dịch vụ ghi nhận (kiểm thử)', pathPrefix: '/echo', upstream: `${recording.url}/api`, ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'internal', approval, forwardRequestHeaders: ['x-purpose'] },
      { id: 'cong-thuong', name: 'Công thương', pathPrefix: '/cong-thuong', upstream: recording.url, ownerAgency: 'so-cong-thuong', securityLevel: 3, classification: 'internal', approval: { status: 'pending' } },
    ],
  };
  opts.configure?.(doc);
  const config = parseConfig(doc, 'test-harness', ROOT);
  const sink = new EventSink();
  const gateway = await startGateway(config, { decisionLog: sink, logDestination: opts.logDestination });
  const tokens = new Map<string, string>();
  return {
    gateway,
    config,
    idp,
    testIssuer,
    upstreams: { hoTich, recording },
    sink,
    async token(nationalId) {
      let t = tokens.get(nationalId);
      if (!t) {
        t = (await obtainDemoToken({ issuer: idp.issuer, nationalId, resource: TEST_AUDIENCE })).access_token;
        tokens.set(nationalId, t);
      }
      return t;
    },
    async close() {
      await gateway.close();
      await Promise.all([idp.close(), testIssuer.close(), hoTich.close(), recording.close()]);
    },
  };
}
