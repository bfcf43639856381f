import { generateKeyPairSync, KeyObject, sign as cryptoSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importPKCS8, type JWK, type CryptoKey } from 'jose';
import type { Principal, Decision } from '../core/principal.js';
import { ConfigError } from '../core/errors.js';
import { GatewayError } from './errors.js';
import Type from 'typebox';
import { NonEmpty, Section, type DeepReadonly, type Static } from '../core/schema.js';

/**
 * The signed assertion the gateway adds to every forwarded request, so an upstream can
 * check for itself that the gateway allowed this official (defence in depth: an upstream
 * that only trusts the network trusts anyone who reaches it).
 *
 * Two signature algorithms, each in a header of its own so that an upstream pins one header and
 * one algorithm and nothing can downgrade it: ES256 (ECDSA P-256, RFC 7518 §3.4) and ML-DSA-65
 * (FIPS 204, the JOSE AKP key type of draft-ietf-cose-dilithium), which stays unforgeable by a
 * quantum computer. Both carry the same claims. During a migration the gateway sends both.
 *
 * Keys rotate with overlap, per algorithm: the JWKS always publishes the key in use, the next one
 * (so an upstream that cached the JWKS already knows it when it comes into use), and every
 * retired key until the last assertion it signed has expired.
 */
export const ASSERTION_ALGORITHMS = ['ES256', 'ML-DSA-65'] as const;
export type AssertionAlgorithm = (typeof ASSERTION_ALGORITHMS)[number];
export const ASSERTION_HEADERS: Readonly<Record<AssertionAlgorithm, string>> = Object.freeze({ ES256: 'x-ztgate-assertion', 'ML-DSA-65': 'x-ztgate-assertion-pq' });
export const ASSERTION_HEADER = ASSERTION_HEADERS.ES256;
export const ASSERTION_TYP = 'ztgate-assertion+jwt';
/** A retired key stays published this long beyond the assertion lifetime, for clock skew at upstreams. */
const RETIRED_KEY_GRACE_MS = 60_000;

export const ASSERTION_SCHEMA = Section(
  {
    ttlSeconds: Type.Integer({ minimum: 5, maximum: 300, default: 60 }),
    rotationIntervalSeconds: Type.Integer({ minimum: 0, maximum: 90 * 86_400, default: 0 }), // 0: never rotate on a timer
    /** Which signatures every forwarded request carries; both during a migration. */
    algorithms: Type.Array(Type.Enum(ASSERTION_ALGORITHMS), { minItems: 1, maxItems: ASSERTION_ALGORITHMS.length, uniqueItems: true, default: ['ES256'] }),
    /** PKCS#8 PEM P-256 private key for ES256; generated at start when absent. */
    keyFile: Type.Optional(NonEmpty()),
    /** PKCS#8 PEM ML-DSA-65 private key; generated at start when absent. */
    mlDsaKeyFile: Type.Optional(NonEmpty()),
  },
  { default: {} },
);

export type AssertionConfig = DeepReadonly<Static<typeof ASSERTION_SCHEMA>>;

/** The key files, absolute. */
export function resolveAssertionPaths(assertion: AssertionConfig, abs: (path: string) => string): AssertionConfig {
  return {
    ...assertion,
    ...(assertion.keyFile ? { keyFile: abs(assertion.keyFile) } : {}),
    ...(assertion.mlDsaKeyFile ? { mlDsaKeyFile: abs(assertion.mlDsaKeyFile) } : {}),
  };
}

const KEY_FILE_OPTION: Readonly<Record<AssertionAlgorithm, 'keyFile' | 'mlDsaKeyFile'>> = { ES256: 'keyFile', 'ML-DSA-65': 'mlDsaKeyFile' };

let mlDsaAvailable: boolean | undefined;
/** ML-DSA needs OpenSSL 3.5 (Node.js 24). */
function runtimeHasMlDsa(): boolean {
  if (mlDsaAvailable === undefined) {
    try {
      generateKeyPairSync('ml-dsa-65' as never);
      mlDsaAvailable = true;
    } catch {
      mlDsaAvailable = false;
    }
  }
  return mlDsaAvailable;
}

/** Problems with the `assertion` section (after the schema): keys that would go unused, timers on file keys, the runtime. */
export function checkAssertionConfig(a: AssertionConfig): string[] {
  const problems: string[] = [];
  const algorithms = a.algorithms;
  for (const alg of ASSERTION_ALGORITHMS) {
    const option = KEY_FILE_OPTION[alg];
    if (a[option] && !algorithms.includes(alg)) problems.push(`assertion.${option}: set, but assertion.algorithms does not include ${alg}; add it or remove the key`);
  }
  if (algorithms.includes('ML-DSA-65') && !runtimeHasMlDsa()) problems.push(`assertion.algorithms: ML-DSA-65 needs Node.js 24 (OpenSSL 3.5); this runtime has OpenSSL ${process.versions.openssl}`);
  const rotation = a.rotationIntervalSeconds;
  const fileKeys = ASSERTION_ALGORITHMS.map((alg) => KEY_FILE_OPTION[alg]).filter((o) => a[o]);
  if (rotation > 0 && fileKeys.length > 0) problems.push(`assertion.rotationIntervalSeconds: a key from assertion.${fileKeys[0]} is not rotated on a timer; replace the file instead`);
  if (rotation > 0 && rotation < 300) problems.push('assertion.rotationIntervalSeconds: must be 0 (never) or at least 300');
  return problems;
}

/** Header name → compact JWS, one per configured algorithm. */
export type AssertionHeaders = Readonly<Record<string, string>>;

export interface RotatedKey {
  readonly alg: AssertionAlgorithm;
  readonly kid: string;
  readonly retiredKid: string;
}

export interface AssertionSigner {
  /** Published at /.well-known/jwks.json: every key of every configured algorithm. */
  readonly jwks: { readonly keys: readonly JWK[] };
  /** The kid that signs now with the first configured algorithm. */
  readonly currentKid: string;
  sign(input: { principal: Principal; routeId: string; decisionId: string; decision: Decision; http: { method: string; path: string } }): Promise<AssertionHeaders>;
  /**
   * Starts signing with the next key of every algorithm; the old ones stay published until their
   * assertions expire. kid and retiredKid are those of the first configured algorithm.
   */
  rotate(): Promise<{ kid: string; retiredKid: string; rotated: readonly RotatedKey[] }>;
  close(): void;
}

interface SigningKey {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  /** The same key for node:crypto: signing is synchronous, with no WebCrypto round trip per request. */
  readonly keyObject: KeyObject;
  /** base64url of the protected header, which never changes for a key. */
  readonly encodedHeader: string;
  readonly publicJwk: JWK;
  retiredAt: number | null;
}

interface KeyRing {
  readonly alg: AssertionAlgorithm;
  readonly header: string;
  current: SigningKey;
  next: SigningKey;
  retired: SigningKey[];
}

async function keyFrom(alg: AssertionAlgorithm, privateKey: CryptoKey, publicJwk: JWK): Promise<SigningKey> {
  const withAlg = { ...publicJwk, alg };
  // RFC 7638 for EC; for AKP the thumbprint members are alg, kty and pub (draft-ietf-cose-dilithium).
  const kid = await calculateJwkThumbprint(withAlg);
  const encodedHeader = Buffer.from(JSON.stringify({ alg, kid, typ: ASSERTION_TYP })).toString('base64url');
  return { kid, privateKey, keyObject: KeyObject.from(privateKey as never), encodedHeader, publicJwk: Object.freeze({ ...withAlg, kid, use: 'sig' }), retiredAt: null };
}

async function generatedKey(alg: AssertionAlgorithm): Promise<SigningKey> {
  const pair = await generateKeyPair(alg, { extractable: true });
  return keyFrom(alg, pair.privateKey, await exportJWK(pair.publicKey));
}

async function fileKey(alg: AssertionAlgorithm, file: string, pem?: string): Promise<SigningKey> {
  let privateKey: CryptoKey;
  try {
    privateKey = await importPKCS8(pem ?? readFileSync(file, 'utf8'), alg, { extractable: true });
  } catch (err) {
    const what = alg === 'ES256' ? 'P-256' : alg;
    throw new ConfigError(file, [`assertion.${KEY_FILE_OPTION[alg]}: not a readable PKCS#8 PEM ${what} private key (${(err as Error).message})`]);
  }
  const { d: _d, priv: _priv, ...pub } = (await exportJWK(privateKey)) as JWK & { priv?: string };
  return keyFrom(alg, privateKey, pub);
}

/** PKCS#8 PEM private keys every worker of one instance signs with (gateway/cluster.ts). */
export type SharedAssertionKeys = Partial<Record<AssertionAlgorithm, string>>;

/** Keys for the workers of one instance, when the config names no key file: generated once, by the primary. */
export function generateSharedAssertionKeys(algorithms: readonly AssertionAlgorithm[]): SharedAssertionKeys {
  const keys: SharedAssertionKeys = {};
  for (const alg of algorithms) {
    const pair = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ml-dsa-65' as never);
    keys[alg] = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  }
  return keys;
}

export async function createAssertionSigner(opts: {
  issuer: string;
  ttlSeconds: number;
  algorithms?: readonly AssertionAlgorithm[];
  keyFile?: string;
  mlDsaKeyFile?: string;
  sharedKeys?: SharedAssertionKeys;
  /** One of several workers: a rotation here alone would split the instance's keys. */ oneOfWorkers?: boolean;
  rotationIntervalSeconds?: number;
  now?: () => number;
  log?: Pick<Logger, 'info' | 'warn'>;
}): Promise<AssertionSigner> {
  const now = opts.now ?? Date.now;
  const algorithms = opts.algorithms ?? ['ES256'];
  const rings: KeyRing[] = await Promise.all(
    algorithms.map(async (alg) => {
      const file = opts[KEY_FILE_OPTION[alg]];
      const shared = opts.sharedKeys?.[alg];
      const current = file ? await fileKey(alg, file) : shared ? await fileKey(alg, '(generated by the primary process)', shared) : await generatedKey(alg);
      return { alg, header: ASSERTION_HEADERS[alg], current, next: await generatedKey(alg), retired: [] };
    }),
  );
  const keepMs = opts.ttlSeconds * 1000 + RETIRED_KEY_GRACE_MS;

  const prune = () => {
    for (const ring of rings) ring.retired = ring.retired.filter((k) => now() - k.retiredAt! < keepMs);
  };

  const timer = opts.rotationIntervalSeconds && opts.rotationIntervalSeconds > 0 ? setInterval(() => void signer.rotate().catch((err: unknown) => opts.log?.warn({ err }, 'assertion signing key rotation failed; the current key stays in use')), opts.rotationIntervalSeconds * 1000) : null;
  timer?.unref();

  const signer: AssertionSigner = {
    get jwks() {
      prune();
      return Object.freeze({ keys: Object.freeze(rings.flatMap((r) => [r.current.publicJwk, r.next.publicJwk, ...r.retired.map((k) => k.publicJwk)])) });
    },
    get currentKid() {
      return rings[0]!.current.kid;
    },
    async sign({ principal, routeId, decisionId, decision, http }) {
      const claims = {
        agency: principal.agency,
        unit: principal.unit ?? null,
        roles: principal.roles,
        clearance: principal.clearance,
        acr: principal.acr,
        assurance_level: principal.assuranceLevel,
        auth_time: principal.authTime ?? undefined,
        // The gateway session (the hash of the cookie, never the cookie), null for bearer-token calls.
        sid: principal.sessionId,
        route: routeId,
        rule: decision.rule,
        policy_version: decision.policyVersion,
        // Commune scope obligation: the upstream returns only this commune's records (README "Policy").
        scope: communeScopeOf(decision),
        // The method and (decoded) path the upstream receives: the assertion is good for this request only.
        http,
      };
      const iat = Math.floor(now() / 1000);
      const payload = Buffer.from(JSON.stringify({ ...claims, iss: opts.issuer, aud: routeId, sub: principal.nationalId, jti: decisionId, iat, exp: iat + opts.ttlSeconds })).toString('base64url');
      const signed = rings.map((ring) => [ring.header, signCompact(ring.alg, ring.current, payload)] as const);
      return Object.fromEntries(signed);
    },
    async rotate() {
      if (opts.oneOfWorkers) throw new GatewayError('ZTG_ERR_KEY_ROTATION_REFUSED', 'key-rotation-multi-worker');
      const upcoming = await Promise.all(rings.map((r) => generatedKey(r.alg)));
      const rotated = rings.map((ring, i) => {
        const old = ring.current;
        old.retiredAt = now();
        ring.retired.push(old);
        ring.current = ring.next;
        ring.next = upcoming[i]!;
        return { alg: ring.alg, kid: ring.current.kid, retiredKid: old.kid };
      });
      prune();
      for (const r of rotated) opts.log?.info(r, 'assertion signing key rotated');
      return { kid: rotated[0]!.kid, retiredKid: rotated[0]!.retiredKid, rotated };
    },
    close() {
      if (timer) clearInterval(timer);
    },
  };
  return signer;
}

/** A compact JWS (RFC 7515 §7.1); ES256 signatures in the JOSE form r‖s (RFC 7518 §3.4), not DER. */
function signCompact(alg: AssertionAlgorithm, key: SigningKey, encodedPayload: string): string {
  const input = `${key.encodedHeader}.${encodedPayload}`;
  const signature = alg === 'ES256' ? cryptoSign('sha256', Buffer.from(input), { key: key.keyObject, dsaEncoding: 'ieee-p1363' }) : cryptoSign(null, Buffer.from(input), key.keyObject);
  return `${input}.${signature.toString('base64url')}`;
}

function communeScopeOf(decision: Decision): { commune: string } | undefined {
  const o = decision.obligations.find((x) => x.type === 'commune-scope');
  return o && o.type === 'commune-scope' ? { commune: o.commune } : undefined;
}
