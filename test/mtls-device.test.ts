import { execFileSync } from 'node:child_process';
import { createPrivateKey, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importPKCS8, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../gateway/config.js';
import { DeviceRegistry } from '../identity/devices.js';
import { createDpopProof, demoPosture, signPostureReport } from '../demo/device-cli.js';
import { ROOT, startHarness, type Harness } from './helpers/harness.js';
import { deleteKeysWithPrefix, redisUrl } from './helpers/redis.js';

/**
 * mTLS as a device credential, through real TLS sockets: certificates are made here with the
 * openssl CLI (synthetic CAs, nothing outside the test's temporary folder). The data plane asks
 * for client certificates (optional); the management plane requires them and a registered device.
 */

const OWNER = '056085000001'; // Nguyễn Văn An, ho-tich-reader
const ADMIN = '056179000006'; // Vũ Thị Giang, security-admin
const EDR = 'urn:test:edr-signer';

let dir: string;
let h: Harness;
let prefix: string;
let signer: { privateKey: CryptoKey; kid: string; issuer: string };
let serverCa: string;
let serial = 0;

interface CertDevice {
  readonly cert: string;
  readonly key: string;
  readonly id: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });

function makeCa(name: string): void {
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
  openssl('req', '-x509', '-new', '-key', `${name}.key`, '-subj', `/CN=${name} (synthetic test CA)`, '-days', '2', '-out', `${name}.crt`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
}

function makeLeaf(ca: string, name: string, extensions: string): { cert: string; key: string } {
  serial += 1;
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
  openssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name} (synthetic)`, '-out', `${name}.csr`);
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-set_serial', String(serial), '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`);
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

/** A device key with a client certificate from `ca`; its id computed here, independently of the gateway. */
async function certDevice(ca = 'device-ca'): Promise<CertDevice> {
  const { cert, key } = makeLeaf(ca, `device-${randomUUID().slice(0, 8)}`, 'extendedKeyUsage=clientAuth\n');
  const pem = readFileSync(key, 'utf8');
  const publicJwk = createPrivateKey(pem).export({ format: 'jwk' }) as JWK;
  delete publicJwk.d;
  return { cert, key, id: await calculateJwkThumbprint(publicJwk, 'sha256'), privateKey: await importPKCS8(pem, 'ES256'), publicJwk };
}

interface TlsCall {
  base?: string;
  device?: { cert: string; key: string } | null;
  token?: string;
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/** One request over a fresh TLS connection (no connection reuse: each call is its own handshake). */
function tlsRequest(path: string, opts: TlsCall = {}): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const url = new URL(`${opts.base ?? h.gateway.url}${path}`);
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  if (body) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method: opts.method ?? 'GET',
        headers,
        ca: serverCa,
        agent: false,
        ...(opts.device ? { cert: readFileSync(opts.device.cert), key: readFileSync(opts.device.key) } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function call(path: string, opts: TlsCall = {}) {
  const res = await tlsRequest(path, opts);
  const event = await h.sink.forRequest(res.headers['x-request-id'] as string);
  let body: any = res.text;
  try {
    body = JSON.parse(res.text);
  } catch {}
  return { status: res.status, body, event };
}

let adminDevice: CertDevice;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ztgate-mtls-'));
  makeCa('server-ca');
  makeCa('device-ca');
  makeCa('foreign-ca');
  const server = makeLeaf('server-ca', 'gateway', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  serverCa = readFileSync(join(dir, 'server-ca.crt'), 'utf8');
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  signer = { privateKey, kid: 'edr-1', issuer: EDR };
  const signerJwk = { ...(await exportJWK(publicKey)), kid: 'edr-1', alg: 'ES256', use: 'sig' };
  prefix = `ztgate-test:${randomUUID()}:`;
  const url = await redisUrl();
  const tls = (requestClientCertificate: string) => ({ certFile: server.cert, keyFile: server.key, clientCaFile: join(dir, 'device-ca.crt'), requestClientCertificate });
  h = await startHarness({
    configure(doc) {
      doc.state = { backend: 'redis', redisUrl: url, keyPrefix: prefix };
      doc.policy.policy = 'test/fixtures/device-policy.csv';
      doc.listen.tls = tls('optional');
      doc.publicUrl = doc.publicUrl.replace('http:', 'https:');
      doc.admin.listen.tls = tls('required');
      doc.admin.minDeviceTier = 'registered';
      doc.devices = { clockSkewSeconds: 5, proofMaxAgeSeconds: 60, postureSigners: [{ issuer: EDR, jwks: { keys: [signerJwk] } }] };
      doc.routes[1].minDeviceTier = 'high-assurance'; // echo
      doc.routes.push({ ...doc.routes[1], id: 'open', name: 'Dịch vụ cấp độ 1 (kiểm thử)', pathPrefix: '/open', securityLevel: 1 });
      delete doc.routes.at(-1).minDeviceTier;
    },
  });
  // Bootstrap, as an operator would with the registry: the first admin's own device.
  adminDevice = await certDevice();
  const registry = new DeviceRegistry(h.gateway.runtime.store);
  await registry.enrol({ jwk: adminDevice.publicJwk, name: 'Máy quản trị (giả lập)', ownerNationalId: ADMIN });
  await registry.approve(adminDevice.id, ADMIN, { reason: 'khởi tạo (kiểm thử)' });
}, 60_000);

afterAll(async () => {
  await h?.close();
  await deleteKeysWithPrefix(prefix);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function adminOp(id: string, op: 'approve' | 'quarantine', body: Record<string, unknown> = {}) {
  return call(`/api/v1/devices/${id}/${op}`, { base: h.gateway.adminUrl!, device: adminDevice, token: await h.token(ADMIN), method: 'POST', body });
}

/** Enrolled by its owner over mTLS (no DPoP proof), approved by the admin over mTLS. */
async function approvedCertDevice(): Promise<CertDevice> {
  const device = await certDevice();
  const enrolled = await call('/.ztgate/devices', { device, token: await h.token(OWNER), method: 'POST', body: { name: 'Máy trạm có chứng thư (giả lập)' } });
  expect(enrolled.status).toBe(201);
  expect((await adminOp(device.id, 'approve')).status).toBe(200);
  return device;
}

const posture = (device: CertDevice, compliant = true) => signPostureReport(signer, device.id, demoPosture(compliant));

describe('mTLS device identity on the data plane', () => {
  it('enrolment over mTLS registers the certificate key (RFC 7638 thumbprint), pending, without a DPoP proof', async () => {
    const device = await certDevice();
    const { status, body, event } = await call('/.ztgate/devices', { device, token: await h.token(OWNER), method: 'POST', body: { name: 'Máy trạm (giả lập)' } });
    expect(status).toBe(201);
    expect(body.device).toMatchObject({ id: device.id, ownerNationalId: OWNER, status: 'pending' });
    expect(event.ztgate.device).toMatchObject({ id: device.id, status: 'pending', via: 'mtls' });
  });

  it('a valid client certificate of an approved, compliant device is high-assurance and reaches a route that asks for it', async () => {
    const device = await approvedCertDevice();
    const { status, event } = await call('/echo/things', { device, token: await h.token(OWNER), headers: { 'x-device-posture': await posture(device) } });
    expect(status).toBe(200);
    expect(event.ztgate.decision).toBe('allow');
    expect(event.ztgate.device).toEqual({ id: device.id, tier: 'high-assurance', status: 'approved', via: 'mtls', posture_failures: [] });
    expect(event.host).toEqual({ id: device.id });
  });

  it('the same approved key proven by DPoP alone (no certificate) stays compliant, below high-assurance', async () => {
    const device = await approvedCertDevice();
    const token = await h.token(OWNER);
    const dpop = await createDpopProof(device, 'GET', `${h.config.publicUrl}/echo/things`, token);
    const { status, body, event } = await call('/echo/things', { token, headers: { dpop, 'x-device-posture': await posture(device) } });
    expect(status).toBe(403);
    expect(body.error.reason).toBe('device-tier-insufficient');
    expect(event.ztgate.device).toMatchObject({ id: device.id, tier: 'compliant', via: 'dpop' });
  });

  it('a certificate with a DPoP proof of the same key is accepted; of another key is refused, device-certificate-mismatch', async () => {
    const device = await approvedCertDevice();
    const token = await h.token(OWNER);
    const same = await call('/echo/things', { device, token, headers: { dpop: await createDpopProof(device, 'GET', `${h.config.publicUrl}/echo/things`, token), 'x-device-posture': await posture(device) } });
    expect(same.status).toBe(200);
    expect(same.event.ztgate.device).toMatchObject({ tier: 'high-assurance', via: 'mtls' });

    const other = await generateKeyPair('ES256', { extractable: true });
    const otherDevice = { privateKey: other.privateKey, publicJwk: await exportJWK(other.publicKey) };
    const mixed = await call('/open/things', { device, token, headers: { dpop: await createDpopProof(otherDevice, 'GET', `${h.config.publicUrl}/open/things`, token) } });
    expect(mixed.status).toBe(403);
    expect(mixed.body.error.reason).toBe('device-certificate-mismatch');
    expect(mixed.event.ztgate.decision).toBe('deny');
    expect(mixed.event.ztgate.reasons).toContain('device-certificate-mismatch');
  });

  it('attack: a certificate from another CA on the optional listener is treated as no device', async () => {
    const foreign = await certDevice('foreign-ca');
    const token = await h.token(OWNER);
    const open = await call('/open/things', { device: foreign, token });
    expect(open.status).toBe(200);
    expect(open.event.ztgate.device).toMatchObject({ id: null, tier: 'unknown' });
    const guarded = await call('/echo/things', { device: foreign, token });
    expect(guarded.status).toBe(401);
    expect(guarded.body.error.reason).toBe('device-proof-missing');
    expect(guarded.event.ztgate.decision).toBe('deny');
  });

  it('attack: a certificate from another CA cannot enrol its key', async () => {
    const foreign = await certDevice('foreign-ca');
    const { status, body } = await call('/.ztgate/devices', { device: foreign, token: await h.token(OWNER), method: 'POST', body: { name: 'Máy lạ (giả lập)' } });
    expect(status).toBe(401);
    expect(body.error.reason).toBe('device-proof-missing');
  });

  it('a quarantined certificate device is refused, 403 device-quarantined, even where no device is required', async () => {
    const device = await approvedCertDevice();
    expect((await adminOp(device.id, 'quarantine', { reason: 'EDR phát hiện mã độc (kiểm thử)' })).status).toBe(200);
    const { status, body, event } = await call('/open/things', { device, token: await h.token(OWNER) });
    expect(status).toBe(403);
    expect(body.error.reason).toBe('device-quarantined');
    expect(event.ztgate.reasons).toContain('device-quarantined');
    expect(event.ztgate.device).toMatchObject({ id: device.id, status: 'quarantined', via: 'mtls' });
  });

  it("attack: another official's certificate device is refused, device-owner-mismatch", async () => {
    const { status, body } = await call('/open/things', { device: adminDevice, token: await h.token(OWNER) });
    expect(status).toBe(403);
    expect(body.error.reason).toBe('device-owner-mismatch');
  });
});

describe('the management plane: TLS with required client certificates, and a registered device', () => {
  it("the admin's approved certificate device reaches the admin API; the event shows the tier", async () => {
    const { status, body, event } = await call('/api/v1/whoami', { base: h.gateway.adminUrl!, device: adminDevice, token: await h.token(ADMIN) });
    expect(status).toBe(200);
    expect(body.nationalId).toBe(ADMIN);
    expect(event.event.action).toBe('admin-request');
    expect(event.ztgate.device).toMatchObject({ id: adminDevice.id, tier: 'registered', via: 'mtls' });
  });

  it('attack: a certificate from another CA, or none, is refused in the TLS handshake', async () => {
    const foreign = await certDevice('foreign-ca');
    await expect(tlsRequest('/api/v1/whoami', { base: h.gateway.adminUrl!, device: foreign, token: await h.token(ADMIN) })).rejects.toThrow();
    await expect(tlsRequest('/api/v1/whoami', { base: h.gateway.adminUrl!, token: await h.token(ADMIN) })).rejects.toThrow();
  });

  it('a certificate of a device not yet approved is below the minimum: 403 device-tier-insufficient with an event', async () => {
    const pending = await certDevice();
    await new DeviceRegistry(h.gateway.runtime.store).enrol({ jwk: pending.publicJwk, name: 'Máy quản trị mới (giả lập)', ownerNationalId: ADMIN });
    const { status, body, event } = await call('/api/v1/whoami', { base: h.gateway.adminUrl!, device: pending, token: await h.token(ADMIN) });
    expect(status).toBe(403);
    expect(body.error.reason).toBe('device-tier-insufficient');
    expect(event.ztgate.decision).toBe('deny');
    expect(event.ztgate.reasons).toContain('device-tier-insufficient');
    expect(event.ztgate.device).toMatchObject({ id: pending.id, tier: 'unknown', status: 'pending', via: 'mtls' });
  });
});

describe('TLS configuration', () => {
  const base = () => ({
    publicUrl: 'https://127.0.0.1:8443',
    identity: { issuers: [{ issuer: 'http://127.0.0.1:9000', audience: 'urn:x', algorithms: ['ES256'] }] },
    policy: { model: 'policies/model.conf', policy: 'test/fixtures/gateway-policy.csv' },
    routes: [],
  });
  const problems = (doc: Record<string, any>): string => {
    try {
      parseConfig(doc, 'test', ROOT);
      return '';
    } catch (err) {
      return String((err as Error & { problems?: string[] }).problems ?? (err as Error).message);
    }
  };

  it('accepts a readable certificate with its key and a client CA', () => {
    const doc = { ...base(), listen: { tls: { certFile: join(dir, 'gateway.crt'), keyFile: join(dir, 'gateway.key'), clientCaFile: join(dir, 'device-ca.crt'), requestClientCertificate: 'required' } } };
    expect(problems(doc)).toBe('');
  });

  it('refuses an unreadable file, a key of another certificate, a missing or non-CA client CA, and an http publicUrl, naming each key', () => {
    expect(problems({ ...base(), listen: { tls: { certFile: join(dir, 'missing.crt'), keyFile: join(dir, 'gateway.key') } } })).toMatch(/listen\.tls\.certFile: cannot read/);
    expect(problems({ ...base(), listen: { tls: { certFile: join(dir, 'gateway.crt'), keyFile: join(dir, 'device-ca.key') } } })).toMatch(/listen\.tls\.keyFile: does not match the certificate/);
    expect(problems({ ...base(), listen: { tls: { certFile: join(dir, 'gateway.crt'), keyFile: join(dir, 'gateway.key'), requestClientCertificate: 'optional' } } })).toMatch(/listen\.tls\.clientCaFile: required/);
    expect(problems({ ...base(), listen: { tls: { certFile: join(dir, 'gateway.crt'), keyFile: join(dir, 'gateway.key'), clientCaFile: join(dir, 'gateway.crt'), requestClientCertificate: 'required' } } })).toMatch(/clientCaFile: a certificate in the file is not a CA certificate/);
    expect(problems({ ...base(), publicUrl: 'http://127.0.0.1:8443', listen: { tls: { certFile: join(dir, 'gateway.crt'), keyFile: join(dir, 'gateway.key') } } })).toMatch(/publicUrl: must be an https URL when listen\.tls is set/);
    expect(problems({ ...base(), admin: { publicUrl: 'http://127.0.0.1:8444', listen: { tls: { certFile: join(dir, 'gateway.crt'), keyFile: join(dir, 'gateway.key') } } } })).toMatch(/admin\.publicUrl: must be an https URL/);
    expect(problems({ ...base(), admin: { minDeviceTier: 'trusted' } })).toMatch(/admin\.minDeviceTier/);
  });

  it('admin.minDeviceTier defaults to registered', () => {
    expect(parseConfig({ ...base(), admin: {} }, 'test', ROOT).admin!.minDeviceTier).toBe('registered');
  });
});
