import { readFileSync } from 'node:fs';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importPKCS8, SignJWT, type JWK, type CryptoKey } from 'jose';
import type { Principal } from '../identity/principal.js';
import type { Decision } from '../policies/engine.js';
import { ConfigError } from './errors.js';

/**
 * The signed assertion the gateway adds to every forwarded request, so an upstream can
 * check for itself that the gateway allowed this official (defence in depth: an upstream
 * that only trusts the network trusts anyone who reaches it).
 *
 * Keys rotate with overlap: the JWKS always publishes the key in use, the next one (so an
 * upstream that cached the JWKS already knows it when it comes into use), and every retired
 * key until the last assertion it signed has expired.
 */
export const ASSERTION_HEADER = 'x-ztgate-assertion';
export const ASSERTION_TYP = 'ztgate-assertion+jwt';
const ALG = 'ES256';
/** A retired key stays published this long beyond the assertion lifetime, for clock skew at upstreams. */
const RETIRED_KEY_GRACE_MS = 60_000;

export interface AssertionSigner {
  /** Published at /.well-known/jwks.json. */
  readonly jwks: { readonly keys: readonly JWK[] };
  /** The kid that signs now. */
  readonly currentKid: string;
  sign(input: { principal: Principal; routeId: string; decisionId: string; decision: Decision; http: { method: string; path: string } }): Promise<string>;
  /** Starts signing with the next key; the old one stays published until its assertions expire. */
  rotate(): Promise<{ kid: string; retiredKid: string }>;
  close(): void;
}

interface SigningKey {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
  retiredAt: number | null;
}

async function keyFrom(privateKey: CryptoKey, publicJwk: JWK): Promise<SigningKey> {
  const kid = await calculateJwkThumbprint(publicJwk);
  return { kid, privateKey, publicJwk: Object.freeze({ ...publicJwk, kid, alg: ALG, use: 'sig' }), retiredAt: null };
}

async function generatedKey(): Promise<SigningKey> {
  const pair = await generateKeyPair(ALG);
  return keyFrom(pair.privateKey, await exportJWK(pair.publicKey));
}

export async function createAssertionSigner(opts: { issuer: string; ttlSeconds: number; keyFile?: string; rotationIntervalSeconds?: number; now?: () => number }): Promise<AssertionSigner> {
  const now = opts.now ?? Date.now;
  let current: SigningKey;
  if (opts.keyFile) {
    let privateKey: CryptoKey;
    try {
      privateKey = await importPKCS8(readFileSync(opts.keyFile, 'utf8'), ALG, { extractable: true });
    } catch (err) {
      throw new ConfigError(opts.keyFile, [`assertion.keyFile: not a readable PKCS#8 PEM P-256 private key (${(err as Error).message})`]);
    }
    const { d: _d, ...pub } = await exportJWK(privateKey);
    current = await keyFrom(privateKey, pub);
  } else {
    current = await generatedKey();
  }
  let next = await generatedKey();
  let retired: SigningKey[] = [];
  const keepMs = opts.ttlSeconds * 1000 + RETIRED_KEY_GRACE_MS;

  const prune = () => {
    retired = retired.filter((k) => now() - k.retiredAt! < keepMs);
  };

  const timer =
    opts.rotationIntervalSeconds && opts.rotationIntervalSeconds > 0
      ? setInterval(() => void signer.rotate().catch(() => undefined), opts.rotationIntervalSeconds * 1000)
      : null;
  timer?.unref();

  const signer: AssertionSigner = {
    get jwks() {
      prune();
      return Object.freeze({ keys: Object.freeze([current.publicJwk, next.publicJwk, ...retired.map((k) => k.publicJwk)]) });
    },
    get currentKid() {
      return current.kid;
    },
    async sign({ principal, routeId, decisionId, decision, http }) {
      return new SignJWT({
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
      })
        .setProtectedHeader({ alg: ALG, kid: current.kid, typ: ASSERTION_TYP })
        .setIssuer(opts.issuer)
        .setAudience(routeId)
        .setSubject(principal.nationalId)
        .setJti(decisionId)
        .setIssuedAt(Math.floor(now() / 1000))
        .setExpirationTime(Math.floor(now() / 1000) + opts.ttlSeconds)
        .sign(current.privateKey);
    },
    async rotate() {
      const upcoming = await generatedKey();
      const old = current;
      old.retiredAt = now();
      retired.push(old);
      current = next;
      next = upcoming;
      prune();
      return { kid: current.kid, retiredKid: old.kid };
    },
    close() {
      if (timer) clearInterval(timer);
    },
  };
  return signer;
}

function communeScopeOf(decision: Decision): { commune: string } | undefined {
  const o = decision.obligations.find((x) => x.type === 'commune-scope');
  return o && o.type === 'commune-scope' ? { commune: o.commune } : undefined;
}
