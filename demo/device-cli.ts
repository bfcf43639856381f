/**
 * `ztgate-demo device …`: a demo device (thiết bị giả lập) for the embedded demo. It creates a device
 * key, enrols it, has the demo security admin approve it, signs posture reports as the DEMO
 * endpoint-management signer, and calls the gateway with an RFC 9449 DPoP proof per request.
 *
 * DỮ LIỆU GIẢ LẬP — everything here is synthetic demo material. The demo signer's private key is
 * written by `ztgate-demo` to .data/demo/ so that this CLI can play the endpoint-management
 * vendor; a real deployment configures only the vendor's PUBLIC keys and never holds theirs.
 */
import { createHash, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseCommandLine } from '../gateway/cli-args.js';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK } from 'jose';
import { findRepoRoot } from './paths.js';
import { UsageError } from '../core/errors.js';
import { didYouMean } from '../core/suggest.js';

export const DEMO_POSTURE_ISSUER = 'urn:ztgate:demo:endpoint-management';
const DEMO_MARK = 'DỮ LIỆU GIẢ LẬP — DEMO ONLY: synthetic key material for the embedded demo; never use in production.';

export const demoDataDir = (...segments: string[]) => join(findRepoRoot(), '.data', ...segments);

// ---------------------------------------------------------------------------------------------
// What a device (or its endpoint agent) sends: usable by any client, and by the tests.

/** RFC 9449 §4.2 DPoP proof: signed by the device key over method, URL (no query) and time, bound to the access token. */
export async function createDpopProof(key: { privateKey: CryptoKey; publicJwk: JWK; alg?: string }, method: string, url: string, accessToken?: string): Promise<string> {
  const htu = new URL(url);
  htu.search = '';
  htu.hash = '';
  const claims: Record<string, unknown> = { htm: method, htu: htu.href, jti: randomUUID() };
  if (accessToken) claims.ath = createHash('sha256').update(accessToken, 'ascii').digest('base64url');
  return new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg ?? 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk })
    .setIssuedAt()
    .sign(key.privateKey);
}

export interface PostureClaims {
  os: { name: string; version: string };
  patch_age_days: number;
  disk_encrypted: boolean;
  screen_lock: boolean;
  edr_running: boolean;
  last_malware_scan: number;
  risk_score: number;
}

export function demoPosture(compliant: boolean, nowSeconds = Math.floor(Date.now() / 1000)): PostureClaims {
  return compliant
    ? { os: { name: 'Windows', version: '11 23H2' }, patch_age_days: 3, disk_encrypted: true, screen_lock: true, edr_running: true, last_malware_scan: nowSeconds - 3600, risk_score: 10 }
    : { os: { name: 'Windows', version: '10 21H2' }, patch_age_days: 94, disk_encrypted: false, screen_lock: true, edr_running: false, last_malware_scan: nowSeconds - 40 * 86_400, risk_score: 78 };
}

/** A posture report (typ posture+jwt), as an endpoint-management signer issues it. */
export async function signPostureReport(signer: { privateKey: CryptoKey; kid: string; issuer: string; alg?: string }, deviceId: string, claims: PostureClaims, opts: { lifetimeSeconds?: number; iat?: number } = {}): Promise<string> {
  const iat = opts.iat ?? Math.floor(Date.now() / 1000);
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg: signer.alg ?? 'ES256', kid: signer.kid, typ: 'posture+jwt' })
    .setIssuer(signer.issuer)
    .setSubject(deviceId)
    .setIssuedAt(iat)
    .setExpirationTime(iat + (opts.lifetimeSeconds ?? 3600))
    .setJti(randomUUID())
    .sign(signer.privateKey);
}

// ---------------------------------------------------------------------------------------------
// The demo endpoint-management signer, started by `ztgate-demo`.

export interface DemoPostureSigner {
  readonly jwksUri: string;
  readonly privateKeyFile: string;
  close(): Promise<void>;
}

/** Generates the demo signer key, writes the private half to .data/demo/ (demo only), serves the public JWKS. */
export async function startDemoPostureSigner(opts: { host: string; port: number; dir?: string }): Promise<DemoPostureSigner> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = `demo-edr-${new Date().toISOString().slice(0, 10)}`;
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  const dir = opts.dir ?? demoDataDir('demo');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const privateKeyFile = join(dir, 'posture-signer.private.json');
  writeFileSync(privateKeyFile, JSON.stringify({ _note: DEMO_MARK, issuer: DEMO_POSTURE_ISSUER, kid, privateJwk: await exportJWK(privateKey) }, null, 2), { mode: 0o600 });
  chmodSync(privateKeyFile, 0o600);
  const body = JSON.stringify({ keys: [publicJwk] });
  const server: Server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/jwks.json') res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=300' }).end(body);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    jwksUri: `http://${opts.host}:${port}/jwks.json`,
    privateKeyFile,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// Local demo device keys.

interface DeviceFile {
  _note: string;
  id: string;
  name: string;
  privateJwk: JWK;
  publicJwk: JWK;
}

export interface DemoDevice {
  readonly id: string;
  readonly name: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export async function createDemoDevice(name: string, dir = demoDataDir('devices')): Promise<DemoDevice> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const id = await calculateJwkThumbprint(publicJwk, 'sha256');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file: DeviceFile = { _note: DEMO_MARK, id, name, privateJwk: await exportJWK(privateKey), publicJwk };
  writeFileSync(join(dir, `${id}.json`), JSON.stringify(file, null, 2), { mode: 0o600 });
  return { id, name, privateKey, publicJwk };
}

export async function loadDemoDevice(id: string | undefined, dir = demoDataDir('devices')): Promise<DemoDevice> {
  const known = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.json'))
        .map((f) => f.slice(0, -5))
    : [];
  const chosen = id ?? (known.length === 1 ? known[0] : undefined);
  if (!chosen) {
    throw new UsageError(known.length === 0 ? 'chưa có thiết bị / no demo device yet: run `ztgate-demo device init --name NAME`' : `có nhiều thiết bị / several demo devices, choose one with --device: ${known.join(', ')}`);
  }
  if (!/^[A-Za-z0-9_-]{43}$/.test(chosen) || !known.includes(chosen)) throw new UsageError(`không có thiết bị / no demo device ${chosen} in ${dir}`);
  const file = JSON.parse(readFileSync(join(dir, `${chosen}.json`), 'utf8')) as DeviceFile;
  return { id: file.id, name: file.name, privateKey: (await importJWK(file.privateJwk, 'ES256')) as CryptoKey, publicJwk: file.publicJwk };
}

async function loadDemoSigner(dir = demoDataDir('demo')) {
  const file = join(dir, 'posture-signer.private.json');
  if (!existsSync(file)) throw new UsageError(`không thấy khóa ký demo / demo signer key not found at ${file}: start \`ztgate demo\` first`);
  const { issuer, kid, privateJwk } = JSON.parse(readFileSync(file, 'utf8')) as { issuer: string; kid: string; privateJwk: JWK };
  return { issuer, kid, privateKey: (await importJWK(privateJwk, 'ES256')) as CryptoKey };
}

// ---------------------------------------------------------------------------------------------
// The command.

export const DEVICE_USAGE = `ztgate-demo device — thiết bị giả lập cho bản trình diễn / demo device

  ztgate-demo device init --name NAME                        tạo khóa thiết bị / create a device key (.data/devices/)
  ztgate-demo device enrol --user NATIONAL_ID [--device ID]  đăng ký thiết bị (chờ phê duyệt) / enrol it (pending)
  ztgate-demo device approve --admin NATIONAL_ID [--device ID] [--hardware-key]
                                                             quản trị viên phê duyệt / the security admin approves it
  ztgate-demo device quarantine --admin NATIONAL_ID --reason TEXT [--device ID]
                                                             cách ly thiết bị / quarantine it
  ztgate-demo device posture [--device ID] [--non-compliant] ký báo cáo tình trạng (bộ ký demo) / sign a posture report
  ztgate-demo device curl --user NATIONAL_ID [--device ID] [--method M] [--purpose CODE --case-ref REF] URL
                                                             gọi cổng với token + DPoP + báo cáo / call with token, proof, posture
Tùy chọn / options: --gateway URL (http://127.0.0.1:8080), --admin-url URL (http://127.0.0.1:8081), --issuer URL (http://127.0.0.1:8090)
`;

export interface DeviceCliIo {
  out(text: string): void;
}

const DEVICE_COMMANDS = ['init', 'enrol', 'approve', 'quarantine', 'posture', 'curl', 'help'];

export async function runDeviceCommand(args: string[], io: DeviceCliIo = { out: (t) => process.stdout.write(t) }): Promise<number> {
  const [sub, ...rest] = args;
  // `ztgate-demo device --help`, `ztgate-demo device enrol -h`: the usage, not an error.
  if (sub === '--help' || sub === '-h' || rest.includes('--help') || rest.includes('-h')) {
    io.out(DEVICE_USAGE);
    return 0;
  }
  if (sub !== undefined && !DEVICE_COMMANDS.includes(sub)) throw new UsageError(`unknown device command "${sub}"${didYouMean(sub, DEVICE_COMMANDS)}\n\n${DEVICE_USAGE}`);
  const { values, positionals } = parseCommandLine({
    args: rest,
    strict: true,
    allowPositionals: sub === 'curl',
    options: {
      name: { type: 'string' },
      user: { type: 'string' },
      admin: { type: 'string' },
      device: { type: 'string' },
      reason: { type: 'string' },
      method: { type: 'string' },
      purpose: { type: 'string' },
      'case-ref': { type: 'string' },
      'non-compliant': { type: 'boolean' },
      'hardware-key': { type: 'boolean' },
      gateway: { type: 'string' },
      'admin-url': { type: 'string' },
      issuer: { type: 'string' },
    },
  });
  const gateway = (values.gateway ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const adminUrl = (values['admin-url'] ?? 'http://127.0.0.1:8081').replace(/\/+$/, '');
  const issuer = values.issuer ?? 'http://127.0.0.1:8090';
  const token = async (nationalId: string) => {
    const { obtainDemoToken } = await import('./token.js');
    return (await obtainDemoToken({ issuer, nationalId })).access_token;
  };
  const print = async (res: Response) => {
    io.out(`${res.status} ${await res.text()}\n`);
    return res.ok ? 0 : 1;
  };

  switch (sub) {
    case 'init': {
      if (!values.name) throw new UsageError('init needs --name NAME');
      const device = await createDemoDevice(values.name);
      io.out(`${device.id}\n`);
      return 0;
    }
    case 'enrol': {
      if (!values.user) throw new UsageError('enrol needs --user NATIONAL_ID');
      const device = await loadDemoDevice(values.device);
      const accessToken = await token(values.user);
      const url = `${gateway}/.ztgate/devices`;
      const res = await fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${accessToken}`, dpop: await createDpopProof(device, 'POST', url, accessToken), 'content-type': 'application/json' },
        body: JSON.stringify({ name: device.name, jwk: device.publicJwk }),
      });
      return print(res);
    }
    case 'approve':
    case 'quarantine': {
      if (!values.admin) throw new UsageError(`${sub} needs --admin NATIONAL_ID`);
      if (sub === 'quarantine' && !values.reason) throw new UsageError('quarantine needs --reason TEXT');
      const device = await loadDemoDevice(values.device);
      const body = sub === 'approve' ? { hardwareKey: values['hardware-key'] ?? false, ...(values.reason ? { reason: values.reason } : {}) } : { reason: values.reason };
      const res = await fetch(`${adminUrl}/api/v1/devices/${device.id}/${sub}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await token(values.admin)}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return print(res);
    }
    case 'posture': {
      const device = await loadDemoDevice(values.device);
      const report = await signPostureReport(await loadDemoSigner(), device.id, demoPosture(!values['non-compliant']));
      writeFileSync(join(demoDataDir('devices'), `${device.id}.posture.jwt`), `${report}\n`, { mode: 0o600 });
      io.out(`${report}\n`);
      return 0;
    }
    case 'curl': {
      if (!values.user) throw new UsageError('curl needs --user NATIONAL_ID');
      const target = positionals[0];
      if (!target || positionals.length > 1) throw new UsageError('curl needs exactly one URL');
      const device = await loadDemoDevice(values.device);
      const method = (values.method ?? 'GET').toUpperCase();
      const accessToken = await token(values.user);
      const headers: Record<string, string> = { authorization: `Bearer ${accessToken}`, dpop: await createDpopProof(device, method, target, accessToken) };
      const postureFile = join(demoDataDir('devices'), `${device.id}.posture.jwt`);
      if (existsSync(postureFile)) headers['x-device-posture'] = readFileSync(postureFile, 'utf8').trim();
      // Purpose of access (mục đích khai thác), which services of personal data require.
      if (values.purpose) headers['x-purpose'] = values.purpose;
      if (values['case-ref']) headers['x-case-ref'] = values['case-ref'];
      return print(await fetch(target, { method, headers }));
    }
    case undefined:
    case 'help':
      io.out(DEVICE_USAGE);
      return sub ? 0 : 2;
    default:
      throw new UsageError(`unknown device command "${sub}"\n\n${DEVICE_USAGE}`);
  }
}
