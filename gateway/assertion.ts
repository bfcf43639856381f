import { readFileSync } from 'node:fs';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importPKCS8, SignJWT, type JWK, type CryptoKey } from 'jose';
import type { Principal } from '../identity/principal.js';
import type { Decision } from '../policies/engine.js';
import { ConfigError } from './errors.js';

/**
 * The signed assertion the gateway adds to every forwarded request, so an upstream can
 * check for itself that the gateway allowed this official (defence in depth: an upstream
 * that only trusts the network trusts anyone who reaches it).
 */
export const ASSERTION_HEADER = 'x-ztgate-assertion';
export const ASSERTION_TYP = 'ztgate-assertion+jwt';
const ALG = 'ES256';

export interface AssertionSigner {
  readonly jwks: { readonly keys: readonly JWK[] };
  sign(input: { principal: Principal; routeId: string; decisionId: string; decision: Decision }): Promise<string>;
}

export async function createAssertionSigner(opts: { issuer: string; ttlSeconds: number; keyFile?: string }): Promise<AssertionSigner> {
  let privateKey: CryptoKey;
  let publicJwk: JWK;
  if (opts.keyFile) {
    try {
      privateKey = await importPKCS8(readFileSync(opts.keyFile, 'utf8'), ALG, { extractable: true });
    } catch (err) {
      throw new ConfigError(opts.keyFile, [`assertion.keyFile: not a readable PKCS#8 PEM P-256 private key (${(err as Error).message})`]);
    }
    const { d: _d, ...pub } = await exportJWK(privateKey);
    publicJwk = pub;
  } else {
    const pair = await generateKeyPair(ALG);
    privateKey = pair.privateKey;
    publicJwk = await exportJWK(pair.publicKey);
  }
  const kid = await calculateJwkThumbprint(publicJwk);
  const published = Object.freeze({ ...publicJwk, kid, alg: ALG, use: 'sig' });
  const jwks = Object.freeze({ keys: Object.freeze([published]) });

  return {
    jwks,
    async sign({ principal, routeId, decisionId, decision }) {
      return new SignJWT({
        agency: principal.agency,
        roles: principal.roles,
        acr: principal.acr,
        route: routeId,
        rule: decision.rule,
        policy_version: decision.policyVersion,
      })
        .setProtectedHeader({ alg: ALG, kid, typ: ASSERTION_TYP })
        .setIssuer(opts.issuer)
        .setAudience(routeId)
        .setSubject(principal.nationalId)
        .setJti(decisionId)
        .setIssuedAt()
        .setExpirationTime(`${opts.ttlSeconds}s`)
        .sign(privateKey);
    },
  };
}
