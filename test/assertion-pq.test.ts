import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, generateKeyPair, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ASSERTION_HEADERS, createAssertionSigner } from '../gateway/assertion.js';
import { parseConfig } from '../gateway/config.js';
import { ConfigError } from '../core/errors.js';
import { ROOT, startHarness, type Harness } from './helpers/harness.js';

/**
 * The assertion signed with ML-DSA-65 (FIPS 204) next to ES256, as during a migration; verified
 * by upstreams with nothing but the published JWKS — the demo data service, and the example
 * docs/upstream-assertion.md gives upstream developers (docs/examples/verify-assertion.mjs).
 */

const ALLOWED = '056085000001'; // Nguyễn Văn An, Sở Tư pháp, ho-tich-reader
const ADMIN = '056179000006'; // Vũ Thị Giang, security-admin
const PQ = ASSERTION_HEADERS['ML-DSA-65'];
const CLASSICAL = ASSERTION_HEADERS.ES256;

type Verify = (req: Pick<IncomingMessage, 'headers' | 'method' | 'url'>) => Promise<JWTPayload>;
let assertionVerifier: (o: { gatewayUrl: string; audience: string; algorithm?: string }) => Verify;
let h: Harness;
let doc: Record<string, any>;
let dir: string;

beforeAll(async () => {
  const example = join(ROOT, 'docs/examples/verify-assertion.mjs');
  ({ assertionVerifier } = await import(example));
  dir = mkdtempSync(join(tmpdir(), 'ztgate-mldsa-'));
  h = await startHarness({
    hoTichAssertionAlgorithm: 'ML-DSA-65',
    configure(d) {
      d.assertion = { algorithms: ['ES256', 'ML-DSA-65'] };
      doc = structuredClone(d);
    },
  });
}, 60_000);

afterAll(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function get(path: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${h.gateway.url}${path}`, { headers: { authorization: `Bearer ${await h.token(ALLOWED)}`, ...headers } });
  return { res, body: (await res.json()) as any, event: await h.sink.forRequest(res.headers.get('x-request-id')) };
}

/** What the recording upstream received for the last request, as an IncomingMessage-like value. */
function lastReceived() {
  const r = h.upstreams.recording.received.at(-1)!;
  return { headers: r.headers, method: r.method, url: r.url };
}

describe('ML-DSA-65 assertion, published in the JWKS', () => {
  it('the JWKS publishes current and next keys of both algorithms; the ML-DSA-65 ones as AKP keys', async () => {
    const jwks = (await (await fetch(`${h.gateway.url}/.well-known/jwks.json`)).json()) as { keys: any[] };
    const pq = jwks.keys.filter((k) => k.alg === 'ML-DSA-65');
    const ec = jwks.keys.filter((k) => k.alg === 'ES256');
    expect(pq).toHaveLength(2);
    expect(ec).toHaveLength(2);
    for (const k of pq) {
      expect(Object.keys(k).sort()).toEqual(['alg', 'kid', 'kty', 'pub', 'use']);
      expect(k).toMatchObject({ kty: 'AKP', use: 'sig' });
      // 1952-byte ML-DSA-65 public key (FIPS 204 Table 2).
      expect(Buffer.from(k.pub, 'base64url')).toHaveLength(1952);
    }
  });

  it('the demo data service, which accepts only ML-DSA-65, serves the request the gateway allowed', async () => {
    const { res, body, event } = await get('/ho-tich/records?limit=1');
    expect(res.status).toBe(200);
    expect(body.requestedBy).toEqual({ nationalId: ALLOWED, agency: 'so-tu-phap' });
    expect(event.ztgate.decision).toBe('allow');
  });

  it('an upstream verifies the ML-DSA-65 assertion with the published JWKS (the docs example), and it says what the ES256 one says', async () => {
    const { res, event } = await get('/echo/things/1?x=1');
    expect(res.status).toBe(200);
    const req = lastReceived();
    expect(decodeProtectedHeader(String(req.headers[PQ]))).toMatchObject({ alg: 'ML-DSA-65', typ: 'ztgate-assertion+jwt' });
    const pq = await assertionVerifier({ gatewayUrl: h.gateway.url, audience: 'echo', algorithm: 'ML-DSA-65' })(req);
    const classical = await assertionVerifier({ gatewayUrl: h.gateway.url, audience: 'echo', algorithm: 'ES256' })(req);
    expect(pq).toEqual(classical);
    expect(pq).toMatchObject({ sub: ALLOWED, aud: 'echo', jti: event.event.id, http: { method: 'GET', path: '/api/things/1' } });
  });

  it('attack: the ES256 assertion put in the ML-DSA-65 header is refused (no downgrade)', async () => {
    await get('/echo/things/2');
    const req = lastReceived();
    const swapped = { ...req, headers: { ...req.headers, [PQ]: req.headers[CLASSICAL] } };
    await expect(assertionVerifier({ gatewayUrl: h.gateway.url, audience: 'echo', algorithm: 'ML-DSA-65' })(swapped)).rejects.toThrow(/alg/);
  });

  it('attack: an ML-DSA-65 assertion signed with a key the gateway does not publish is refused', async () => {
    await get('/echo/things/3');
    const req = lastReceived();
    const { payload } = await jwtVerify(String(req.headers[PQ]), createRemoteJWKSet(new URL(`${h.gateway.url}/.well-known/jwks.json`)), { algorithms: ['ML-DSA-65'] });
    const forger = await generateKeyPair('ML-DSA-65');
    const forged = await new SignJWT({ ...payload, sub: ADMIN }).setProtectedHeader({ alg: 'ML-DSA-65', kid: decodeProtectedHeader(String(req.headers[PQ])).kid!, typ: 'ztgate-assertion+jwt' }).sign(forger.privateKey);
    await expect(assertionVerifier({ gatewayUrl: h.gateway.url, audience: 'echo' })({ ...req, headers: { ...req.headers, [PQ]: forged } })).rejects.toThrow(/signature verification failed/);
  });

  it('attack: an X-Ztgate-Assertion-Pq header sent by the client never reaches the upstream', async () => {
    const { res } = await get('/echo/things/4', { [PQ]: 'eyJhbGciOiJub25lIn0.e30.', 'x-ztgate-assertion-pq-extra': 'x' });
    expect(res.status).toBe(200);
    const req = lastReceived();
    expect(req.headers[PQ]).not.toBe('eyJhbGciOiJub25lIn0.e30.');
    expect(req.headers['x-ztgate-assertion-pq-extra']).toBeUndefined();
    await expect(assertionVerifier({ gatewayUrl: h.gateway.url, audience: 'echo' })(req)).resolves.toMatchObject({ sub: ALLOWED });
  });

  it('rotation rotates both algorithms; assertions signed before and after verify', async () => {
    await get('/echo/things/5');
    const before = lastReceived();
    const res = await fetch(`${h.gateway.adminUrl}/api/v1/assertion-keys/rotate`, { method: 'POST', headers: { authorization: `Bearer ${await h.token(ADMIN)}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { kid: string; retiredKid: string; rotated: { alg: string; kid: string; retiredKid: string }[] };
    expect(body.rotated.map((r) => r.alg)).toEqual(['ES256', 'ML-DSA-65']);
    const event = await h.sink.forRequest(res.headers.get('x-request-id'));
    expect(event.ztgate.admin).toMatchObject({ operation: 'assertion-keys.rotate', detail: { rotated: body.rotated } });
    await get('/echo/things/6');
    const after = lastReceived();
    expect(decodeProtectedHeader(String(after.headers[PQ])).kid).toBe(body.rotated[1]!.kid);
    expect(decodeProtectedHeader(String(before.headers[PQ])).kid).toBe(body.rotated[1]!.retiredKid);
    for (const req of [before, after]) {
      await expect(assertionVerifier({ gatewayUrl: h.gateway.url, audience: 'echo', algorithm: 'ML-DSA-65' })(req)).resolves.toMatchObject({ sub: ALLOWED });
    }
  });
});

describe('choosing the algorithms', () => {
  const principal = { nationalId: ALLOWED, agency: 'so-tu-phap', unit: null, roles: ['ho-tich-reader'], clearance: 'mat', acr: null, assuranceLevel: 2, authTime: null, sessionId: null } as any;
  const decision = { effect: 'allow', reasons: [], rule: 'p', policyVersion: 'v1', obligations: [] } as any;
  const signWith = async (opts: Parameters<typeof createAssertionSigner>[0]) => {
    const signer = await createAssertionSigner(opts);
    const headers = await signer.sign({ principal, routeId: 'echo', decisionId: 'd1', decision, http: { method: 'GET', path: '/' } });
    signer.close();
    return { signer, headers };
  };

  it('ES256 only (the default) sends only x-ztgate-assertion; ML-DSA-65 only sends only x-ztgate-assertion-pq', async () => {
    expect(Object.keys((await signWith({ issuer: 'https://gw', ttlSeconds: 60 })).headers)).toEqual([CLASSICAL]);
    const pqOnly = await signWith({ issuer: 'https://gw', ttlSeconds: 60, algorithms: ['ML-DSA-65'] });
    expect(Object.keys(pqOnly.headers)).toEqual([PQ]);
    expect(pqOnly.signer.jwks.keys.every((k) => k.alg === 'ML-DSA-65')).toBe(true);
    expect(parseConfig({ ...structuredClone(doc), assertion: {} }, 't', ROOT).assertion.algorithms).toEqual(['ES256']);
  });

  it('a rotation is one operator log line per algorithm', async () => {
    const lines: { obj: unknown; msg: string }[] = [];
    const log = { info: (obj: unknown, msg: string) => void lines.push({ obj, msg }), warn: () => undefined } as any;
    const signer = await createAssertionSigner({ issuer: 'https://gw', ttlSeconds: 60, algorithms: ['ES256', 'ML-DSA-65'], log });
    const { rotated } = await signer.rotate();
    signer.close();
    expect(lines).toEqual(rotated.map((r) => ({ obj: r, msg: 'assertion signing key rotated' })));
    expect(lines.map((l) => (l.obj as { alg: string }).alg)).toEqual(['ES256', 'ML-DSA-65']);
  });

  it('a PKCS#8 ML-DSA-65 key file signs, and its kid is its JWK thumbprint', async () => {
    const file = join(dir, 'assertion-mldsa.pem');
    const { privateKey, publicKey } = generateKeyPairSync('ml-dsa-65');
    writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const config = parseConfig({ ...structuredClone(doc), assertion: { algorithms: ['ML-DSA-65'], mlDsaKeyFile: file } }, 't', ROOT);
    const { signer, headers } = await signWith({ issuer: 'https://gw', ...config.assertion });
    const published = signer.jwks.keys[0]!;
    expect(published.pub).toBe((publicKey.export({ format: 'jwk' }) as { pub: string }).pub);
    expect(decodeProtectedHeader(headers[PQ]!).kid).toBe(published.kid);
  });

  it('configuration mistakes are named', async () => {
    const bad = (assertion: Record<string, unknown>) => () => parseConfig({ ...structuredClone(doc), assertion }, 't', ROOT);
    expect(bad({ algorithms: ['ES256'], mlDsaKeyFile: join(dir, 'k.pem') })).toThrow(/assertion\.mlDsaKeyFile: set, but assertion\.algorithms does not include ML-DSA-65/);
    expect(bad({ algorithms: ['ML-DSA-65'], keyFile: join(dir, 'k.pem') })).toThrow(/assertion\.keyFile: set, but assertion\.algorithms does not include ES256/);
    expect(bad({ algorithms: ['ML-DSA-44'] })).toThrow(ConfigError);
    expect(bad({ algorithms: [] })).toThrow(/assertion\.algorithms/);
    expect(bad({ algorithms: ['ES256', 'ES256'] })).toThrow(/assertion\.algorithms/);
    const notMlDsa = join(dir, 'p256.pem');
    writeFileSync(notMlDsa, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await expect(createAssertionSigner({ issuer: 'https://gw', ttlSeconds: 60, algorithms: ['ML-DSA-65'], mlDsaKeyFile: notMlDsa })).rejects.toThrow(/assertion\.mlDsaKeyFile: not a readable PKCS#8 PEM ML-DSA-65 private key/);
  });
});
