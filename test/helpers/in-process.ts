import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { parseConfig, type GatewayConfig } from '../../gateway/config.js';
import { GatewayError } from '../../gateway/errors.js';
import { ROOT } from './harness.js';

/**
 * What the per-module tests need without a network or Redis: an OIDC issuer whose keys live in
 * this process (its discovery document and JWKS served by an injected fetch), and a gateway
 * configuration around it with the memory store.
 */

export const AUDIENCE = 'urn:ztgate:test';

export interface InProcessIssuer {
  readonly issuer: string;
  /** Serves discovery and the JWKS; anything else is a 404. */
  readonly fetch: typeof fetch;
  /** How the JWKS endpoint answers now: its keys, a status, or a network failure. */
  jwks: 'up' | 'down' | 503;
  jwksFetches: number;
  sign(claims: JWTPayload, header?: Record<string, unknown>): Promise<string>;
  /** A token for `nationalId` valid for ten minutes, with `extra` claims over the defaults. */
  token(nationalId: string, extra?: JWTPayload): Promise<string>;
}

export async function inProcessIssuer(issuer = 'https://idp.test.invalid'): Promise<InProcessIssuer> {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const self: InProcessIssuer = {
    issuer,
    jwks: 'up',
    jwksFetches: 0,
    fetch: async (input) => {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      if (url === `${issuer}/.well-known/openid-configuration`) return Response.json({ issuer, jwks_uri: `${issuer}/jwks` });
      if (url === `${issuer}/jwks`) {
        self.jwksFetches++;
        if (self.jwks === 'down') throw new TypeError('fetch failed');
        if (self.jwks === 503) return new Response('unavailable', { status: 503 });
        return Response.json({ keys: [jwk] });
      }
      return new Response('not found', { status: 404 });
    },
    sign: (claims, header = {}) => new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'at+jwt', ...header }).sign(privateKey),
    token(nationalId, extra = {}) {
      const now = Math.floor(Date.now() / 1000);
      return self.sign({ iss: issuer, aud: AUDIENCE, sub: `sub-${nationalId}`, national_id: nationalId, agency: 'so-tu-phap', roles: ['ho-tich-reader'], iat: now, exp: now + 600, ...extra });
    },
  };
  return self;
}

const approval = { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-01' };

/** A gateway configuration trusting `issuer`, memory state, the end-to-end tests' policy, and no upstream listening. */
export function inProcessConfig(issuer: InProcessIssuer, configure?: (doc: Record<string, unknown> & { routes: Record<string, unknown>[] }) => void): GatewayConfig {
  const doc = {
    listen: { host: '127.0.0.1', port: 0 },
    publicUrl: 'http://127.0.0.1:1',
    identity: { clockSkewSeconds: 30, issuers: [{ issuer: issuer.issuer, audience: AUDIENCE, algorithms: ['ES256'] }] },
    policy: { model: 'policies/model.conf', policy: 'test/fixtures/gateway-policy.csv' },
    devices: { defaultMinTierBySecurityLevel: { '3': 'unknown' } },
    routes: [
      // Port 9 (discard): nothing answers, so nothing is ever forwarded anywhere.
      { id: 'ho-tich', name: 'Hộ tịch', pathPrefix: '/ho-tich', upstream: 'http://127.0.0.1:9', ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'personal-data', approval },
      { id: 'echo', name: 'Dịch vụ ghi nhận (kiểm thử)', pathPrefix: '/echo', upstream: 'http://127.0.0.1:9/api', ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'internal', approval },
      { id: 'cong-thuong', name: 'Công thương', pathPrefix: '/cong-thuong', upstream: 'http://127.0.0.1:9', ownerAgency: 'so-cong-thuong', securityLevel: 3, classification: 'internal', approval: { status: 'pending' } },
    ],
  };
  configure?.(doc);
  return parseConfig(doc, 'in-process-test', ROOT);
}

/** What a step threw, as the gateway answers it: code, status and the reason the decision event records. */
export async function refusalOf(run: () => unknown): Promise<GatewayError> {
  try {
    await run();
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
  throw new Error('expected a refusal, but the step let the request through');
}
