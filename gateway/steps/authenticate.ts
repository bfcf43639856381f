import type { IncomingHttpHeaders } from 'node:http';
import { createRemoteJWKSet, decodeJwt, errors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { GatewayConfig, IssuerConfig } from '../config.js';
import { GatewayError } from '../errors.js';
import type { Reason } from '../reasons.js';
import { principalFromClaims, PrincipalError, type Principal } from '../../identity/principal.js';

/**
 * Step 3, authenticate: a bearer access token (RFC 6750) that is a JWT from a configured
 * issuer, verified against that issuer's JWKS: signature, alg allow-list, iss, aud, exp, nbf
 * within the clock-skew bound, and typ (RFC 9068 §2.1 at+jwt by default, so an ID token
 * cannot stand in for an access token).
 */

export interface Authenticator {
  authenticate(headers: IncomingHttpHeaders): Promise<Principal>;
}

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const realm = 'Bearer realm="ztgate"';

function unauthenticated(reason: Reason, description?: string, cause?: unknown): GatewayError {
  // RFC 6750 §3: no error attribute when no credentials were sent at all.
  const challenge = description ? `${realm}, error="invalid_token", error_description="${description}"` : realm;
  return new GatewayError('ZTG_ERR_UNAUTHENTICATED', reason, { headers: { 'www-authenticate': challenge }, cause });
}

function reasonForJoseError(err: unknown): GatewayError {
  if (err instanceof errors.JWTExpired) return unauthenticated('token-expired', 'token expired', err);
  if (err instanceof errors.JWTClaimValidationFailed) {
    const byClaim: Record<string, Reason> = { nbf: 'token-not-yet-valid', aud: 'token-audience-invalid', iss: 'token-issuer-untrusted' };
    return unauthenticated(byClaim[err.claim] ?? 'token-claim-invalid', `claim ${err.claim} is invalid`, err);
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return unauthenticated('token-algorithm-not-allowed', 'algorithm not allowed', err);
  if (err instanceof errors.JWSSignatureVerificationFailed) return unauthenticated('token-signature-invalid', 'signature invalid', err);
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return unauthenticated('token-key-unknown', 'unknown signing key', err);
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) {
    return new GatewayError('ZTG_ERR_IDP_UNAVAILABLE', 'identity-provider-unavailable', { cause: err });
  }
  if (err instanceof errors.JOSEError) return unauthenticated('token-malformed', 'malformed token', err);
  // Anything else is the JWKS fetch failing: refuse, never trust an unverified token.
  return new GatewayError('ZTG_ERR_IDP_UNAVAILABLE', 'identity-provider-unavailable', { cause: err });
}

function normaliseTyp(typ: string | undefined): string {
  const t = (typ ?? '').toLowerCase();
  return t.startsWith('application/') ? t.slice('application/'.length) : t;
}

interface TrustedIssuer {
  readonly config: IssuerConfig;
  readonly tokenTypes: ReadonlySet<string>;
  keys: JWTVerifyGetKey | null;
  discovering: Promise<JWTVerifyGetKey> | null;
}

export function createAuthenticator(identity: GatewayConfig['identity'], fetchImpl: typeof fetch = fetch): Authenticator {
  const issuers = new Map<string, TrustedIssuer>(identity.issuers.map((c) => [c.issuer, { config: c, tokenTypes: new Set(c.tokenTypes.map(normaliseTyp)), keys: null, discovering: null }]));
  const jwksOptions = {
    cacheMaxAge: identity.jwksCacheMaxAgeMs,
    // Bounds refetching when tokens arrive with kids the issuer never published.
    cooldownDuration: identity.jwksCooldownMs,
    timeoutDuration: identity.jwksTimeoutMs,
  };

  async function discoverJwksUri(config: IssuerConfig): Promise<URL> {
    // OpenID Connect Discovery 1.0 §4: the document must name the same issuer.
    const res = await fetchImpl(`${config.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, {
      signal: AbortSignal.timeout(identity.jwksTimeoutMs),
      redirect: 'error',
    });
    if (!res.ok) throw new Error(`discovery answered ${res.status}`);
    const doc = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown };
    if (doc.issuer !== config.issuer) throw new Error(`discovery names issuer ${String(doc.issuer)}`);
    if (typeof doc.jwks_uri !== 'string') throw new Error('discovery has no jwks_uri');
    return new URL(doc.jwks_uri);
  }

  function keysFor(trusted: TrustedIssuer): Promise<JWTVerifyGetKey> {
    if (trusted.keys) return Promise.resolve(trusted.keys);
    if (trusted.config.jwksUri) {
      trusted.keys = createRemoteJWKSet(new URL(trusted.config.jwksUri), jwksOptions);
      return Promise.resolve(trusted.keys);
    }
    trusted.discovering ??= discoverJwksUri(trusted.config).then(
      (uri) => (trusted.keys = createRemoteJWKSet(uri, jwksOptions)),
      (err) => {
        trusted.discovering = null; // the next request tries again
        throw new GatewayError('ZTG_ERR_IDP_UNAVAILABLE', 'identity-provider-unavailable', { cause: err });
      },
    );
    return trusted.discovering;
  }

  return {
    async authenticate(headers) {
      const authorization = headers.authorization;
      if (authorization === undefined || authorization === '') throw unauthenticated('token-missing');
      const match = BEARER.exec(authorization);
      if (!match) throw unauthenticated('token-malformed', 'expected a Bearer token');
      const token = match[1]!;

      let iss: unknown;
      try {
        iss = decodeJwt(token).iss;
      } catch (err) {
        throw unauthenticated('token-malformed', 'not a JWT', err);
      }
      const trusted = typeof iss === 'string' ? issuers.get(iss) : undefined;
      if (!trusted) throw unauthenticated('token-issuer-untrusted', 'untrusted issuer');

      const getKey = await keysFor(trusted);
      let verified;
      try {
        verified = await jwtVerify(token, getKey, {
          issuer: trusted.config.issuer,
          audience: [...trusted.config.audience],
          algorithms: [...trusted.config.algorithms],
          clockTolerance: identity.clockSkewSeconds,
          requiredClaims: ['exp', 'sub'],
        });
      } catch (err) {
        throw reasonForJoseError(err);
      }
      if (!trusted.tokenTypes.has(normaliseTyp(verified.protectedHeader.typ))) {
        throw unauthenticated('token-type-invalid', 'not an access token');
      }
      try {
        return principalFromClaims(verified.payload, trusted.config);
      } catch (err) {
        if (!(err instanceof PrincipalError)) throw err;
        const reason: Reason =
          err.code === 'ERR_NATIONAL_ID_MISSING' ? 'identity-national-id-missing' : err.code === 'ERR_NATIONAL_ID_INVALID' ? 'identity-national-id-invalid' : 'token-claim-invalid';
        throw new GatewayError('ZTG_ERR_IDENTITY_REFUSED', reason, { detail: err.message, cause: err });
      }
    },
  };
}
