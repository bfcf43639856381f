import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, TEST_AUDIENCE, type Harness } from './helpers/harness.js';

const OFFICIAL = '056085000001'; // Nguyễn Văn An, ho-tich-reader

/** The issuer's JWKS endpoint, whose keys the test rotates, counting fetches. */
let jwksServer: Server;
let published: JWK[] = [];
let fetches = 0;
let h: Harness;
const keys: Record<string, { privateKey: CryptoKey; jwk: JWK }> = {};

async function newKey(kid: string) {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  keys[kid] = { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

beforeAll(async () => {
  await newKey('2026-01');
  await newKey('2026-02');
  published = [keys['2026-01']!.jwk];
  jwksServer = createServer((_req, res) => {
    fetches++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: published }));
  });
  await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
  h = await startHarness({
    configure(doc) {
      doc.admin = undefined;
      delete doc.identity.jwksCooldownMs; // the default
      doc.identity.issuers[1].jwksUri = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks`;
    },
  });
});
afterAll(async () => {
  await h?.close();
  jwksServer?.closeAllConnections();
  await new Promise((r) => jwksServer?.close(r));
});

function sign(kid: string, key = keys[kid]!.privateKey) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: h.testIssuer.issuer, aud: TEST_AUDIENCE, sub: OFFICIAL, national_id: OFFICIAL, agency: 'so-tu-phap', roles: ['ho-tich-reader'], iat: now, exp: now + 300 }).setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' }).sign(key);
}

async function call(token: string) {
  const res = await fetch(`${h.gateway.url}/echo/x`, { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return { status: res.status, event: await h.sink.forRequest(res.headers.get('x-request-id')) };
}

describe('issuer key rotation', () => {
  it('a token signed with a key the IdP has just rotated in is accepted on the first try, within a second', async () => {
    expect((await call(await sign('2026-01'))).status).toBe(200);
    // Rotated right after the gateway fetched the keys: the new kid is unknown to its cache.
    published = [keys['2026-01']!.jwk, keys['2026-02']!.jwk];
    const started = Date.now();
    const r = await call(await sign('2026-02'));
    expect(r.status, JSON.stringify(r.event.ztgate.reasons)).toBe(200);
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('attack: a flood of forged kids costs the IdP at most one JWKS fetch per second, and every forged token is refused', async () => {
    const before = fetches;
    const started = Date.now();
    const waves = [];
    for (let wave = 0; wave < 5; wave++) {
      waves.push(Promise.all(Array.from({ length: 20 }, async (_, i) => call(await sign(`forged-${wave}-${i}`, keys['2026-01']!.privateKey)))));
      await new Promise((r) => setTimeout(r, 500));
    }
    const results = (await Promise.all(waves)).flat();
    const seconds = (Date.now() - started) / 1000;
    expect(results.every((r) => r.status === 401 && r.event.ztgate.reasons[0] === 'token-key-unknown')).toBe(true);
    expect(fetches - before).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
  });
});
