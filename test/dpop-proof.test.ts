import { randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { DpopSignatureError, verifyDpopSignature } from '../identity/dpop-proof.js';

/** The node:crypto path of DPoP proofs (identity/dpop-proof.ts): what it takes, what it leaves to jose. */
const ALGS = ['ES256', 'EdDSA'];

async function proof(alg: string, header: Record<string, unknown> = {}, claims: Record<string, unknown> = {}) {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  const jws = await new SignJWT({ htm: 'GET', htu: 'https://gw.example/ho-tich/records', jti: randomUUID(), ...claims })
    .setProtectedHeader({ alg, typ: 'dpop+jwt', jwk, ...header } as never)
    .setIssuedAt()
    .sign(privateKey);
  return { jws, jwk, privateKey };
}

describe('DPoP proofs verified with node:crypto', () => {
  for (const alg of ALGS) {
    it(`${alg}: a proof of the common shape verifies, and its device id is the RFC 7638 thumbprint jose computes`, async () => {
      const { jws, jwk } = await proof(alg);
      const r = verifyDpopSignature(jws, 'dpop+jwt', ALGS);
      expect(r).not.toBeNull();
      expect(r!.thumbprint).toBe(await calculateJwkThumbprint(jwk, 'sha256'));
      expect(r!.payload.htm).toBe('GET');
      // The second time from the cached key.
      expect(verifyDpopSignature(jws, 'dpop+jwt', ALGS)!.thumbprint).toBe(r!.thumbprint);
    });
  }

  it('a changed payload under the signature is refused', async () => {
    const { jws } = await proof('ES256');
    const [h, , s] = jws.split('.');
    const payload = Buffer.from(JSON.stringify({ htm: 'POST', htu: 'https://gw.example/x', jti: randomUUID(), iat: 1 })).toString('base64url');
    expect(() => verifyDpopSignature(`${h}.${payload}.${s}`, 'dpop+jwt', ALGS)).toThrow(DpopSignatureError);
  });

  it('leaves anything unusual to the generic path: an alg outside the list, another typ, extra header or key members, exp/nbf, a key off the curve', async () => {
    const es = await proof('ES256');
    expect(verifyDpopSignature(es.jws, 'dpop+jwt', ['EdDSA'])).toBeNull();
    expect(verifyDpopSignature((await proof('ES256', { typ: 'application/dpop+jwt' })).jws, 'dpop+jwt', ALGS)).toBeNull();
    expect(verifyDpopSignature((await proof('ES256', { kid: 'k1' })).jws, 'dpop+jwt', ALGS)).toBeNull();
    expect(verifyDpopSignature((await proof('ES256', { jwk: { ...es.jwk, use: 'sig' } })).jws, 'dpop+jwt', ALGS)).toBeNull();
    expect(verifyDpopSignature((await proof('ES256', {}, { exp: Math.floor(Date.now() / 1000) + 60 })).jws, 'dpop+jwt', ALGS)).toBeNull();
    const [, p, s] = es.jws.split('.');
    const offCurve = Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'dpop+jwt', jwk: { ...es.jwk, y: es.jwk.x } })).toString('base64url');
    expect(verifyDpopSignature(`${offCurve}.${p}.${s}`, 'dpop+jwt', ALGS)).toBeNull();
    expect(verifyDpopSignature('not.a.jws!', 'dpop+jwt', ALGS)).toBeNull();
  });
});
