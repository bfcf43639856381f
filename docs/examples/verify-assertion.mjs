// Verifying the ztgate assertion in an upstream service — Node.js 24, jose 6 (`npm install jose`).
//
//   ZTGATE_URL=https://ztgate.tinh.gov.vn SERVICE_ID=ho-tich node verify-assertion.mjs
//
// The gateway signs every forwarded request. Pin ONE header and ONE algorithm:
//   x-ztgate-assertion     ES256     (ECDSA P-256)
//   x-ztgate-assertion-pq  ML-DSA-65 (FIPS 204, post-quantum)
// Reading whichever header happens to be present, or accepting either algorithm, would let an
// attacker pick the weaker one.
import { createServer } from 'node:http';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const HEADERS = { ES256: 'x-ztgate-assertion', 'ML-DSA-65': 'x-ztgate-assertion-pq' };

/**
 * @param {{ gatewayUrl: string, audience: string, algorithm?: 'ES256' | 'ML-DSA-65' }} options
 *   gatewayUrl: the gateway's publicUrl (the `iss` of its assertions); audience: this service's route id.
 * @returns {(req: import('node:http').IncomingMessage) => Promise<import('jose').JWTPayload>} rejects when not vouched for
 */
export function assertionVerifier({ gatewayUrl, audience, algorithm = 'ML-DSA-65' }) {
  const header = HEADERS[algorithm];
  if (!header) throw new TypeError(`unknown algorithm ${algorithm}`);
  // Fetched once, cached, refetched when a new kid appears (the gateway publishes the next key ahead of use).
  const jwks = createRemoteJWKSet(new URL(`${gatewayUrl}/.well-known/jwks.json`));
  return async function verify(req) {
    const token = req.headers[header];
    if (typeof token !== 'string') throw new Error(`missing or repeated ${header} header`);
    const { payload } = await jwtVerify(token, jwks, {
      issuer: gatewayUrl,
      audience,
      algorithms: [algorithm],
      typ: 'ztgate-assertion+jwt',
      maxTokenAge: '120s',
      requiredClaims: ['iss', 'aud', 'sub', 'iat', 'exp', 'jti'],
    });
    // Good for this request only: the method and (decoded) path the gateway decided on.
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://upstream.invalid').pathname);
    if (payload.http?.method !== req.method || payload.http?.path !== path) throw new Error('assertion was issued for another request');
    return payload;
  };
}

if (import.meta.main) {
  const verify = assertionVerifier({ gatewayUrl: process.env.ZTGATE_URL, audience: process.env.SERVICE_ID, algorithm: process.env.ZTGATE_ALG ?? 'ML-DSA-65' });
  createServer(async (req, res) => {
    try {
      const a = await verify(req);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ nationalId: a.sub, agency: a.agency, roles: a.roles }));
    } catch (err) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'assertion-invalid', message: err.message }));
    }
  }).listen(Number(process.env.PORT ?? 9000));
}
