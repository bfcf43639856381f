import { createHash, randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../gateway/config.js';
import { startGateway, type RunningGateway } from '../gateway/server.js';
import { createDpopProof, demoPosture, signPostureReport, type PostureClaims } from '../demo/device-cli.js';
import { EventSink, ROOT, startHarness, type Harness } from './helpers/harness.js';
import { deleteKeysWithPrefix, redisUrl } from './helpers/redis.js';

const OWNER = '056085000001'; // Nguyễn Văn An, ho-tich-reader
const OTHER = '056088000003'; // Lê Văn Cường, ho-tich-reader, another official
const ADMIN = '056179000006'; // Vũ Thị Giang, security-admin
const EDR = 'urn:test:edr-signer';

interface Device {
  privateKey: CryptoKey;
  publicJwk: JWK;
  id: string;
  alg: string;
}

let h: Harness;
let prefix: string;
let parsedDoc: Record<string, any>;
let signer: { privateKey: CryptoKey; kid: string; issuer: string };
let second: RunningGateway | null = null;
const secondSink = new EventSink();

async function newDevice(alg = 'ES256'): Promise<Device> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  return { privateKey, publicJwk, id: await calculateJwkThumbprint(publicJwk, 'sha256'), alg };
}

beforeAll(async () => {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  signer = { privateKey, kid: 'edr-1', issuer: EDR };
  const signerJwk = { ...(await exportJWK(publicKey)), kid: 'edr-1', alg: 'ES256', use: 'sig' };
  prefix = `ztgate-test:${randomUUID()}:`;
  const url = await redisUrl();
  h = await startHarness({
    configure(doc) {
      doc.state = { backend: 'redis', redisUrl: url, keyPrefix: prefix };
      doc.policy.policy = 'test/fixtures/device-policy.csv';
      doc.devices = { clockSkewSeconds: 5, proofMaxAgeSeconds: 60, postureSigners: [{ issuer: EDR, jwks: { keys: [signerJwk] } }] };
      doc.routes[0].minDeviceTier = 'registered'; // ho-tich
      doc.routes[1].minDeviceTier = 'compliant'; // echo
      doc.routes.push({ ...doc.routes[1], id: 'open', name: 'Dịch vụ cấp độ 1 (kiểm thử)', pathPrefix: '/open', securityLevel: 1, minDeviceTier: undefined });
      delete doc.routes.at(-1).minDeviceTier;
      parsedDoc = structuredClone(doc);
    },
  });
});

afterAll(async () => {
  await second?.close();
  await h?.close();
  // Only the keys of this suite: everything under its own random prefix.
  await deleteKeysWithPrefix(prefix);
});

interface CallOptions {
  token?: string;
  device?: Device;
  /** A ready proof; null sends none even with a device. */
  proof?: string | null;
  posture?: string;
  method?: string;
  base?: string;
  sink?: EventSink;
  body?: unknown;
}

async function call(path: string, opts: CallOptions = {}) {
  const method = opts.method ?? 'GET';
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const proof = opts.proof !== undefined ? opts.proof : opts.device ? await createDpopProof(opts.device, method, `${h.config.publicUrl}${path}`, opts.token) : null;
  if (proof) headers.dpop = proof;
  if (opts.posture) headers['x-device-posture'] = opts.posture;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${opts.base ?? h.gateway.url}${path}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const text = await res.text();
  const event = await (opts.sink ?? h.sink).forRequest(res.headers.get('x-request-id'));
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { res, body, event };
}

async function adminOp(id: string, op: 'approve' | 'quarantine' | 'retire', body: Record<string, unknown> = {}) {
  const res = await fetch(`${h.gateway.adminUrl}/api/v1/devices/${id}/${op}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await h.token(ADMIN)}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as any;
  const event = await h.sink.forRequest(res.headers.get('x-request-id'));
  return { res, body: json, event };
}

async function enrol(device: Device, owner = OWNER, name = 'Máy trạm phòng hộ tịch (giả lập)') {
  return call('/.ztgate/devices', { token: await h.token(owner), device, method: 'POST', body: { name } });
}

async function approvedDevice(owner = OWNER, approval: Record<string, unknown> = {}): Promise<Device> {
  const device = await newDevice();
  expect((await enrol(device, owner)).res.status).toBe(201);
  expect((await adminOp(device.id, 'approve', approval)).res.status).toBe(200);
  return device;
}

const posture = (device: Device, claims: PostureClaims = demoPosture(true), opts: { iat?: number; lifetimeSeconds?: number } = {}) => signPostureReport(signer, device.id, claims, opts);
const now = () => Math.floor(Date.now() / 1000);
const ath = (token: string) => createHash('sha256').update(token).digest('base64url');

/** A DPoP proof with chosen claims and header, for the attacks. */
async function rawProof(device: Device, claims: Record<string, unknown>, header: Record<string, unknown> = {}, key: CryptoKey = device.privateKey) {
  return new SignJWT({ jti: randomUUID(), iat: now(), ...claims }).setProtectedHeader({ alg: device.alg, typ: 'dpop+jwt', jwk: device.publicJwk, ...header } as never).sign(key);
}

describe('a registered device', () => {
  it('an approved device of its owner reaches a route that asks for a registered device; the event names device and tier', async () => {
    const device = await approvedDevice();
    const { res, body, event } = await call('/ho-tich/records?limit=1', { token: await h.token(OWNER), device });
    expect(res.status).toBe(200);
    expect(body.synthetic).toBe(true);
    expect(event.ztgate.decision).toBe('allow');
    expect(event.ztgate.device).toEqual({ id: device.id, tier: 'registered', status: 'approved', via: 'dpop' });
    expect(event.host).toEqual({ id: device.id });
  });

  it('without a proof, a route asking for a registered device answers 401 device-proof-missing with a DPoP challenge', async () => {
    const { res, body, event } = await call('/ho-tich/records', { token: await h.token(OWNER) });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^DPoP algs="ES256 EdDSA"$/);
    expect(body.error).toMatchObject({ code: 'ZTG_ERR_DEVICE_PROOF_INVALID', reason: 'device-proof-missing' });
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['device-proof-missing'], device: { id: null, tier: 'unknown', status: null } });
  });

  it('a route whose level asks nothing of the device allows without a proof, at tier unknown', async () => {
    const { res, event } = await call('/open/x', { token: await h.token(OWNER) });
    expect(res.status).toBe(200);
    expect(event.ztgate.device).toMatchObject({ id: null, tier: 'unknown' });
  });

  it('an EdDSA device key works too', async () => {
    const device = await newDevice('EdDSA');
    expect((await enrol(device)).res.status).toBe(201);
    await adminOp(device.id, 'approve');
    const { res, event } = await call('/ho-tich/records', { token: await h.token(OWNER), device });
    expect(res.status).toBe(200);
    expect(event.ztgate.device.tier).toBe('registered');
  });
});

describe('refused devices, each with its own reason', () => {
  it('unregistered device: 403 device-unregistered', async () => {
    const device = await newDevice();
    const { res, body, event } = await call('/ho-tich/records', { token: await h.token(OWNER), device });
    expect(res.status).toBe(403);
    expect(body.error).toMatchObject({ code: 'ZTG_ERR_DEVICE_UNTRUSTED', reason: 'device-unregistered' });
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['device-unregistered'], device: { id: device.id, tier: 'unknown', status: 'unregistered' } });
  });

  it('pending device: 403 device-pending until an admin approves it', async () => {
    const device = await newDevice();
    await enrol(device);
    const pending = await call('/ho-tich/records', { token: await h.token(OWNER), device });
    expect(pending.res.status).toBe(403);
    expect(pending.event.ztgate).toMatchObject({ reasons: ['device-pending'], device: { id: device.id, status: 'pending', tier: 'unknown' } });
    await adminOp(device.id, 'approve');
    expect((await call('/ho-tich/records', { token: await h.token(OWNER), device })).res.status).toBe(200);
  });

  it('attack: a token of one official with the device of another is refused, device-owner-mismatch, even where no device is required', async () => {
    const device = await approvedDevice(OWNER);
    for (const path of ['/ho-tich/records', '/open/x']) {
      const { res, event } = await call(path, { token: await h.token(OTHER), device });
      expect(res.status).toBe(403);
      expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['device-owner-mismatch'], device: { id: device.id } });
      expect(event.user.id).toBe(OTHER);
    }
  });

  it('attack: a replayed proof is refused, device-proof-replayed', async () => {
    const device = await approvedDevice();
    const token = await h.token(OWNER);
    const proof = await createDpopProof(device, 'GET', `${h.config.publicUrl}/ho-tich/records`, token);
    expect((await call('/ho-tich/records', { token, proof })).res.status).toBe(200);
    const { res, body, event } = await call('/ho-tich/records', { token, proof });
    expect(res.status).toBe(401);
    expect(body.error.reason).toBe('device-proof-replayed');
    expect(event.ztgate.reasons).toEqual(['device-proof-replayed']);
  });

  it('attack: a proof made for another URL or another method is refused, device-proof-mismatch', async () => {
    const device = await approvedDevice();
    const token = await h.token(OWNER);
    const otherUrl = await createDpopProof(device, 'GET', `${h.config.publicUrl}/ho-tich/records/HT-2024-000001`, token);
    const a = await call('/ho-tich/records', { token, proof: otherUrl });
    expect(a.res.status).toBe(401);
    expect(a.event.ztgate.reasons).toEqual(['device-proof-mismatch']);
    const otherMethod = await createDpopProof(device, 'POST', `${h.config.publicUrl}/ho-tich/records`, token);
    const b = await call('/ho-tich/records', { token, proof: otherMethod });
    expect(b.event.ztgate.reasons).toEqual(['device-proof-mismatch']);
    const otherHost = await createDpopProof(device, 'GET', `https://gateway.elsewhere.example/ho-tich/records`, token);
    expect((await call('/ho-tich/records', { token, proof: otherHost })).event.ztgate.reasons).toEqual(['device-proof-mismatch']);
  });

  it('a proof URL with a query string matches: htu is compared without query (RFC 9449 §4.3)', async () => {
    const device = await approvedDevice();
    const token = await h.token(OWNER);
    const proof = await createDpopProof(device, 'GET', `${h.config.publicUrl}/ho-tich/records?limit=1`, token);
    expect((await call('/ho-tich/records?limit=1', { token, proof })).res.status).toBe(200);
  });

  it('attack: proofs dated beyond the accepted window, past or future, are refused, device-clock-skew', async () => {
    const device = await approvedDevice();
    const token = await h.token(OWNER);
    const htu = `${h.config.publicUrl}/ho-tich/records`;
    for (const iat of [now() - 600, now() + 120]) {
      const proof = await rawProof(device, { htm: 'GET', htu, ath: ath(token), iat });
      const { res, event } = await call('/ho-tich/records', { token, proof });
      expect(res.status).toBe(401);
      expect(event.ztgate.reasons).toEqual(['device-clock-skew']);
    }
  });

  it('attack: a proof bound to another access token (ath) is refused, device-proof-invalid', async () => {
    const device = await approvedDevice();
    const proof = await rawProof(device, { htm: 'GET', htu: `${h.config.publicUrl}/ho-tich/records`, ath: ath('another-token') });
    const { res, event } = await call('/ho-tich/records', { token: await h.token(OWNER), proof });
    expect(res.status).toBe(401);
    expect(event.ztgate.reasons).toEqual(['device-proof-invalid']);
  });

  it('attack: forged proofs (signed by another key, symmetric alg, wrong typ, private key in jwk, two DPoP headers) are refused, device-proof-invalid', async () => {
    const device = await approvedDevice();
    const token = await h.token(OWNER);
    const claims = { htm: 'GET', htu: `${h.config.publicUrl}/ho-tich/records`, ath: ath(token) };
    const thief = await newDevice();
    const forged = [
      await rawProof(device, claims, {}, thief.privateKey),
      await new SignJWT({ ...claims, jti: randomUUID(), iat: now() }).setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: device.publicJwk } as never).sign(new Uint8Array(32)),
      await rawProof(device, claims, { typ: 'JWT' }),
      await rawProof(thief, claims, { jwk: await exportJWK(thief.privateKey) }),
    ];
    for (const proof of forged) {
      const { res, event } = await call('/ho-tich/records', { token, proof });
      expect(res.status).toBe(401);
      expect(event.ztgate.reasons).toEqual(['device-proof-invalid']);
    }
    const good = await createDpopProof(device, 'GET', claims.htu, token);
    const res = await fetch(`${h.gateway.url}/ho-tich/records`, {
      headers: [
        ['authorization', `Bearer ${token}`],
        ['dpop', good],
        ['dpop', good],
      ],
    });
    expect(res.status).toBe(401);
    expect((await h.sink.forRequest(res.headers.get('x-request-id'))).ztgate.reasons).toEqual(['device-proof-invalid']);
  });

  it('attack: proofs of the common shape, checked with node:crypto, are refused when tampered (payload changed after signing, signature cut short or from another proof, another Ed25519 key, alg none, a key off the curve), device-proof-invalid', async () => {
    const device = await approvedDevice();
    const ed = await newDevice('EdDSA');
    const token = await h.token(OWNER);
    const claims = { htm: 'GET', htu: `${h.config.publicUrl}/ho-tich/records`, ath: ath(token) };
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const [head, , sig] = (await rawProof(device, claims)).split('.');
    const other = (await rawProof(device, claims)).split('.');
    const edThief = await newDevice('EdDSA');
    const offCurve = { ...device.publicJwk, y: device.publicJwk.x };
    const forged = [
      // The claims of a new jti and iat under the signature of the first proof.
      `${head}.${b64({ ...claims, jti: randomUUID(), iat: now() })}.${sig}`,
      `${head}.${other[1]}.${sig}`,
      `${head}.${other[1]}.${other[2]!.slice(0, 40)}`,
      await rawProof(ed, claims, {}, edThief.privateKey),
      `${b64({ alg: 'none', typ: 'dpop+jwt', jwk: device.publicJwk })}.${b64({ ...claims, jti: randomUUID(), iat: now() })}.`,
      `${b64({ alg: 'ES256', typ: 'dpop+jwt', jwk: offCurve })}.${other[1]}.${other[2]}`,
    ];
    for (const proof of forged) {
      const { res, event } = await call('/ho-tich/records', { token, proof });
      expect(res.status, proof).toBe(401);
      expect(event.ztgate.reasons).toEqual(['device-proof-invalid']);
    }
    // The untampered ones of both kinds still verify.
    expect((await call('/ho-tich/records', { token, proof: other.join('.') })).res.status).toBe(200);
  });

  it('attack: a token bound to a device key (cnf.jkt) is useless without that device, even where no device is required', async () => {
    const device = await approvedDevice();
    const other = await approvedDevice();
    const t = Math.floor(Date.now() / 1000);
    const token = await h.testIssuer.sign({ iss: h.testIssuer.issuer, aud: 'urn:ztgate:data', sub: OWNER, national_id: OWNER, agency: 'so-tu-phap', roles: ['ho-tich-reader'], iat: t, exp: t + 300, cnf: { jkt: device.id } });
    const none = await call('/open/x', { token });
    expect(none.res.status).toBe(401);
    expect(none.event.ztgate.reasons).toEqual(['device-proof-missing']);
    const wrong = await call('/open/x', { token, device: other });
    expect(wrong.event.ztgate.reasons).toEqual(['device-proof-invalid']);
    expect((await call('/open/x', { token, device })).res.status).toBe(200);
  });

  it('quarantined mid-session: the next request is refused, device-quarantined, also on a route that asks nothing of the device', async () => {
    const device = await approvedDevice();
    const token = await h.token(OWNER);
    expect((await call('/ho-tich/records', { token, device })).res.status).toBe(200);
    const q = await adminOp(device.id, 'quarantine', { reason: 'SOC: phát hiện mã độc (giả lập)' });
    expect(q.res.status).toBe(200);
    expect(q.event.ztgate.admin).toMatchObject({ operation: 'device.quarantine', target: device.id, detail: { owner: OWNER, status: 'quarantined', reason: 'SOC: phát hiện mã độc (giả lập)' } });
    for (const path of ['/ho-tich/records', '/open/x']) {
      const { res, body, event } = await call(path, { token, device });
      expect(res.status).toBe(403);
      expect(body.error.reason).toBe('device-quarantined');
      expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['device-quarantined'], device: { id: device.id, status: 'quarantined' } });
    }
  });

  it('quarantine takes effect at once on another gateway instance sharing the registry', async () => {
    second ??= await startGateway(parseConfig({ ...structuredClone(parsedDoc), listen: { host: '127.0.0.1', port: 0 } }, 'second-instance', ROOT), { decisionLog: secondSink });
    const device = await approvedDevice();
    const token = await h.token(OWNER);
    // Instances with their own assertion keys: the level-1 route's upstream does not verify them.
    expect((await call('/open/x', { token, device, base: second.url, sink: secondSink })).res.status).toBe(200);
    await adminOp(device.id, 'quarantine', { reason: 'kiểm tra chéo phiên bản (giả lập)' });
    const { res, event } = await call('/open/x', { token, device, base: second.url, sink: secondSink });
    expect(res.status).toBe(403);
    expect(event.ztgate.reasons).toEqual(['device-quarantined']);
  });

  it('a proof replayed against another instance is refused too: the jti cache is shared', async () => {
    second ??= await startGateway(parseConfig({ ...structuredClone(parsedDoc), listen: { host: '127.0.0.1', port: 0 } }, 'second-instance', ROOT), { decisionLog: secondSink });
    const device = await approvedDevice();
    const token = await h.token(OWNER);
    const proof = await createDpopProof(device, 'GET', `${h.config.publicUrl}/ho-tich/records`, token);
    expect((await call('/ho-tich/records', { token, proof })).res.status).toBe(200);
    const { event } = await call('/ho-tich/records', { token, proof, base: second.url, sink: secondSink });
    expect(event.ztgate.reasons).toEqual(['device-proof-replayed']);
  });

  it('retired device: refused, device-retired; its key can never be enrolled again', async () => {
    const device = await approvedDevice();
    expect((await adminOp(device.id, 'retire', { reason: 'máy thanh lý (giả lập)' })).res.status).toBe(200);
    const { res, event } = await call('/ho-tich/records', { token: await h.token(OWNER), device });
    expect(res.status).toBe(403);
    expect(event.ztgate.reasons).toEqual(['device-retired']);
    const again = await enrol(device);
    expect(again.res.status).toBe(409);
    expect(again.event.ztgate.reasons).toEqual(['device-already-enrolled']);
    expect((await adminOp(device.id, 'approve')).body.error.reason).toBe('device-state-conflict');
  });
});

describe('posture reports', () => {
  it('a compliant device with a fresh report reaches a route that asks for a compliant device', async () => {
    const device = await approvedDevice();
    const { res, event } = await call('/echo/things', { token: await h.token(OWNER), device, posture: await posture(device) });
    expect(res.status).toBe(200);
    expect(event.ztgate.decision).toBe('allow');
    expect(event.ztgate.device).toEqual({ id: device.id, tier: 'compliant', status: 'approved', via: 'dpop', posture_failures: [] });
  });

  it('the same report may be presented again by its own device until it expires', async () => {
    const device = await approvedDevice();
    const report = await posture(device);
    for (let i = 0; i < 2; i++) expect((await call('/echo/things', { token: await h.token(OWNER), device, posture: report })).res.status).toBe(200);
  });

  it('a non-compliant device is refused, device-tier-insufficient, and the event lists what failed', async () => {
    const device = await approvedDevice();
    const { res, body, event } = await call('/echo/things', { token: await h.token(OWNER), device, posture: await posture(device, demoPosture(false)) });
    expect(res.status).toBe(403);
    expect(body.error).toMatchObject({ code: 'ZTG_ERR_DEVICE_UNTRUSTED', reason: 'device-tier-insufficient' });
    expect(event.ztgate.reasons).toEqual(['device-tier-insufficient']);
    expect(event.ztgate.device).toMatchObject({ tier: 'registered', posture_failures: ['patch_age_days', 'disk_encrypted', 'edr_running', 'last_malware_scan', 'risk_score'] });
    // The same device still reaches a route that asks only for a registered device.
    expect((await call('/ho-tich/records', { token: await h.token(OWNER), device, posture: await posture(device, demoPosture(false)) })).res.status).toBe(200);
  });

  it('no report: 403 posture-missing', async () => {
    const device = await approvedDevice();
    const { res, event } = await call('/echo/things', { token: await h.token(OWNER), device });
    expect(res.status).toBe(403);
    expect(event.ztgate).toMatchObject({ reasons: ['posture-missing'], device: { tier: 'registered' } });
  });

  it('stale reports, past exp or older than the maximum age, are refused: posture-stale', async () => {
    const device = await approvedDevice();
    const expired = await posture(device, demoPosture(true), { iat: now() - 7200, lifetimeSeconds: 3600 });
    const tooOld = await posture(device, demoPosture(true), { iat: now() - 5 * 3600, lifetimeSeconds: 24 * 3600 });
    for (const report of [expired, tooOld]) {
      const { res, event } = await call('/echo/things', { token: await h.token(OWNER), device, posture: report });
      expect(res.status).toBe(403);
      expect(event.ztgate.reasons).toEqual(['posture-stale']);
    }
  });

  it('attack: a forged report (configured signer, another key) is refused, posture-signature-invalid, even where posture is not required', async () => {
    const device = await approvedDevice();
    const { privateKey } = await generateKeyPair('ES256');
    const forged = await signPostureReport({ ...signer, privateKey }, device.id, demoPosture(true));
    for (const path of ['/echo/things', '/ho-tich/records']) {
      const { res, event } = await call(path, { token: await h.token(OWNER), device, posture: forged });
      expect(res.status).toBe(403);
      expect(event.ztgate.reasons).toEqual(['posture-signature-invalid']);
    }
  });

  it('attack: a report from an unknown signer, or with a key the signer never published, is refused, posture-signer-unknown', async () => {
    const device = await approvedDevice();
    const { privateKey } = await generateKeyPair('ES256');
    const reports = [await signPostureReport({ issuer: 'urn:test:rogue-edr', kid: 'edr-1', privateKey }, device.id, demoPosture(true)), await signPostureReport({ ...signer, kid: 'edr-unpublished', privateKey }, device.id, demoPosture(true))];
    for (const report of reports) {
      const { res, event } = await call('/echo/things', { token: await h.token(OWNER), device, posture: report });
      expect(res.status).toBe(403);
      expect(event.ztgate.reasons).toEqual(['posture-signer-unknown']);
    }
  });

  it("attack: another device's report is refused, posture-device-mismatch", async () => {
    const device = await approvedDevice();
    const healthy = await newDevice();
    const { res, event } = await call('/echo/things', { token: await h.token(OWNER), device, posture: await posture(healthy) });
    expect(res.status).toBe(403);
    expect(event.ztgate.reasons).toEqual(['posture-device-mismatch']);
  });

  it('attack: an older clean report replayed after a newer one is refused, posture-replayed', async () => {
    const device = await approvedDevice();
    const older = await posture(device, demoPosture(true), { iat: now() - 1800 });
    const newer = await posture(device, demoPosture(false), { iat: now() - 60 });
    expect((await call('/echo/things', { token: await h.token(OWNER), device, posture: older })).res.status).toBe(200);
    expect((await call('/echo/things', { token: await h.token(OWNER), device, posture: newer })).res.status).toBe(403);
    const { res, event } = await call('/echo/things', { token: await h.token(OWNER), device, posture: older });
    expect(res.status).toBe(403);
    expect(event.ztgate.reasons).toEqual(['posture-replayed']);
  });

  it('malformed reports (wrong typ, missing claim, out-of-range risk) are refused, posture-invalid', async () => {
    const device = await approvedDevice();
    const t = now();
    const base = { iss: EDR, sub: device.id, iat: t, exp: t + 600, jti: randomUUID(), ...demoPosture(true) };
    const sign = (claims: Record<string, unknown>, typ = 'posture+jwt') => new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'edr-1', typ }).sign(signer.privateKey);
    const { disk_encrypted: _omit, ...withoutDisk } = base;
    for (const report of [await sign(base, 'JWT'), await sign(withoutDisk), await sign({ ...base, risk_score: 101 }), 'not-a-jwt']) {
      const { res, event } = await call('/echo/things', { token: await h.token(OWNER), device, posture: report });
      expect(res.status).toBe(403);
      expect(event.ztgate.reasons).toEqual(['posture-invalid']);
    }
  });

  it('high-assurance: a compliant device whose hardware-bound key the admin attested', async () => {
    const device = await approvedDevice(OWNER, { hardwareKey: true, reason: 'khóa trong TPM (giả lập)' });
    const { res, event } = await call('/echo/things', { token: await h.token(OWNER), device, posture: await posture(device) });
    expect(res.status).toBe(200);
    expect(event.ztgate.device.tier).toBe('high-assurance');
  });
});

describe('enrolment and registry operations', () => {
  it('enrolment binds the key that signed the proof to the caller, pending', async () => {
    const device = await newDevice();
    const { res, body, event } = await enrol(device, OTHER, 'Laptop phường (giả lập)');
    expect(res.status).toBe(201);
    expect(body.device).toMatchObject({ id: device.id, ownerNationalId: OTHER, status: 'pending', name: 'Laptop phường (giả lập)', publicJwk: { kty: 'EC', crv: 'P-256' } });
    expect(body.device.publicJwk.d).toBeUndefined();
    expect(event.ztgate).toMatchObject({ decision: 'allow', reasons: ['device-enrolment'], device: { id: device.id, status: 'pending' } });
    const mine = await call('/.ztgate/devices', { token: await h.token(OTHER) });
    expect(mine.body.devices.map((d: any) => d.id)).toContain(device.id);
    expect(mine.body.devices.every((d: any) => d.ownerNationalId === OTHER)).toBe(true);
  });

  it('attack: enrolling a public key without holding its private key is refused', async () => {
    const victim = await newDevice();
    const attacker = await newDevice();
    const noProof = await call('/.ztgate/devices', { token: await h.token(OTHER), method: 'POST', body: { name: 'x', jwk: victim.publicJwk } });
    expect(noProof.res.status).toBe(401);
    expect(noProof.event.ztgate.reasons).toEqual(['device-proof-missing']);
    const otherKey = await call('/.ztgate/devices', { token: await h.token(OTHER), device: attacker, method: 'POST', body: { name: 'x', jwk: victim.publicJwk } });
    expect(otherKey.res.status).toBe(400);
    expect(otherKey.event.ztgate.reasons).toEqual(['request-malformed']);
  });

  it('one device per key: a second enrolment of the same key is refused, device-already-enrolled', async () => {
    const device = await newDevice();
    expect((await enrol(device, OWNER)).res.status).toBe(201);
    const { res, event } = await enrol(device, OTHER);
    expect(res.status).toBe(409);
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['device-already-enrolled'] });
  });

  it('a bad name is refused with the field named, and nothing is enrolled', async () => {
    const device = await newDevice();
    const { res, body } = await enrol(device, OWNER, '');
    expect(res.status).toBe(400);
    expect(body.error.message).toMatch(/name/);
    expect((await call('/ho-tich/records', { token: await h.token(OWNER), device })).event.ztgate.reasons).toEqual(['device-unregistered']);
  });

  it('admins list devices by status; approve is audited; quarantine needs a reason; unknown devices are 404', async () => {
    const device = await newDevice();
    await enrol(device);
    const list = await fetch(`${h.gateway.adminUrl}/api/v1/devices?status=pending`, { headers: { authorization: `Bearer ${await h.token(ADMIN)}` } });
    const listed = (await list.json()) as any;
    expect(listed.devices.map((d: any) => d.id)).toContain(device.id);
    expect(listed.devices.every((d: any) => d.status === 'pending')).toBe(true);
    const approved = await adminOp(device.id, 'approve');
    expect(approved.body.device).toMatchObject({ status: 'approved', approved: { by: ADMIN } });
    expect(approved.event.ztgate.admin).toMatchObject({ operation: 'device.approve', target: device.id });
    const noReason = await adminOp(device.id, 'quarantine', {});
    expect(noReason.res.status).toBe(400);
    expect(noReason.body.error.message).toMatch(/reason/);
    const missing = await adminOp('A'.repeat(43), 'approve');
    expect(missing.res.status).toBe(404);
    expect(missing.event.ztgate.reasons).toEqual(['device-not-found']);
  });

  it('an official without the security-admin role cannot approve their own device', async () => {
    const device = await newDevice();
    await enrol(device);
    const res = await fetch(`${h.gateway.adminUrl}/api/v1/devices/${device.id}/approve`, { method: 'POST', headers: { authorization: `Bearer ${await h.token(OWNER)}`, 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(403);
    expect((await h.sink.forRequest(res.headers.get('x-request-id'))).ztgate.reasons).toEqual(['admin-role-required']);
  });
});

describe('when the registry cannot be read', () => {
  it('refuses with 503 device-registry-unavailable, never allows', async () => {
    const device = await approvedDevice();
    const third = await startGateway(parseConfig({ ...structuredClone(parsedDoc), listen: { host: '127.0.0.1', port: 0 } }, 'third-instance', ROOT), { decisionLog: secondSink });
    await third.runtime.store.close();
    try {
      const { res, event } = await call('/ho-tich/records', { token: await h.token(OWNER), device, base: third.url, sink: secondSink });
      expect(res.status).toBe(503);
      expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['device-registry-unavailable'] });
    } finally {
      await third.close();
    }
  });
});
