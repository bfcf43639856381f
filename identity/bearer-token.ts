import { decodeJwt, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { IdentityConfig, IssuerConfig } from './config.js';
import { StateLostError, type Store } from '../core/store.js';
import { IdentityRefusedError, IdentityUnavailableError, TokenError, type IdentityRefusalCode } from './authentication-errors.js';
import { assuranceLevelOf } from './assurance.js';
import { remoteKeySet } from './jwks.js';
import type { Principal } from '../core/principal.js';
import { principalFromClaims, PrincipalError } from './principal-from-claims.js';
import { RosterUnavailableError, withRosterEntry, type Roster } from './roster.js';
import { introspectToken } from './token-introspection.js';
import { createTokenCache } from './token-cache.js';

/**
 * Bearer-token authentication (RFC 6750): the principal an access token stands for.
 *
 * A JWT from a configured issuer is verified against that issuer's JWKS — signature, alg
 * allow-list, iss, aud, exp, nbf within the clock-skew bound, and typ (RFC 9068 §2.1 at+jwt by
 * default, so an ID token cannot stand in for an access token); an opaque token, for an issuer
 * that has it, is checked by RFC 7662 introspection (identity/token-introspection.ts). Then, when
 * a roster is configured, the official must be on it and active; the roster supplies agency,
 * unit, roles and clearance. Refusals are identity's typed errors (identity/authentication-errors.ts).
 */
export interface BearerTokenVerifier {
  /** The principal `token` stands for, roster applied. */
  verify(token: string): Promise<Principal>;
}

export interface BearerTokenDeps {
  readonly fetch?: typeof fetch;
  /** Caches introspection answers; without it every opaque token is asked about. */
  readonly store?: Store;
  readonly roster?: Roster | null;
}

interface TrustedIssuer {
  readonly config: IssuerConfig;
  readonly tokenTypes: ReadonlySet<string>;
  keys: JWTVerifyGetKey | null;
  discovering: Promise<JWTVerifyGetKey> | null;
}

function tokenErrorOf(err: unknown): TokenError | IdentityUnavailableError {
  if (err instanceof errors.JWTExpired) return new TokenError('ERR_TOKEN_EXPIRED', 'token expired', { cause: err });
  if (err instanceof errors.JWTClaimValidationFailed) {
    const byClaim: Record<string, TokenError['code']> = { nbf: 'ERR_TOKEN_NOT_YET_VALID', aud: 'ERR_TOKEN_AUDIENCE_INVALID', iss: 'ERR_TOKEN_ISSUER_UNTRUSTED' };
    return new TokenError(byClaim[err.claim] ?? 'ERR_TOKEN_CLAIM_INVALID', `claim ${err.claim} is invalid`, { cause: err });
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return new TokenError('ERR_TOKEN_ALGORITHM_NOT_ALLOWED', 'algorithm not allowed', { cause: err });
  if (err instanceof errors.JWSSignatureVerificationFailed) return new TokenError('ERR_TOKEN_SIGNATURE_INVALID', 'signature invalid', { cause: err });
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return new TokenError('ERR_TOKEN_KEY_UNKNOWN', 'unknown signing key', { cause: err });
  if (err instanceof IdentityUnavailableError) return err;
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return new IdentityUnavailableError('ERR_IDP_UNAVAILABLE', err);
  if (err instanceof errors.JOSEError) return new TokenError('ERR_TOKEN_MALFORMED', 'malformed token', { cause: err });
  // Anything else is the JWKS fetch failing: refuse, never trust an unverified token.
  return new IdentityUnavailableError('ERR_IDP_UNAVAILABLE', err);
}

/**
 * The issuer's key set, where a key set that cannot be fetched or read is the IdP being
 * unavailable: jose reports a JWKS endpoint answering other than 200 as a bare JOSEError, which
 * would otherwise read as a malformed token. Only "no such key" is about the token.
 */
function keyOrUnavailable(getKey: JWTVerifyGetKey): JWTVerifyGetKey {
  return async (header, token) => {
    try {
      return await getKey(header, token);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys || err instanceof IdentityUnavailableError) throw err;
      throw new IdentityUnavailableError('ERR_IDP_UNAVAILABLE', err);
    }
  };
}

function normaliseTyp(typ: string | undefined): string {
  const t = (typ ?? '').toLowerCase();
  return t.startsWith('application/') ? t.slice('application/'.length) : t;
}

/**
 * Why a verified JWT looks like an ID token rather than an access token, or null. An IdP that
 * signs both with one key and puts the API audience in both (LemonLDAP::NG's additional
 * audiences) makes an ID token verify as an access token; once `typ` is a plain `JWT`, only the
 * claims tell them apart (RFC 9068 §4). Claims only ID tokens carry (OIDC Core §2, §3.3.2.11)
 * refuse a token whatever its type. A plain `JWT` must then show it is an access token: RFC 9068
 * §2.2's `client_id`, or Keycloak's own `typ: Bearer` claim (its ID tokens say `typ: ID`).
 */
export function idTokenShape(payload: JWTPayload, typ: string): string | null {
  for (const claim of ['nonce', 'at_hash', 'c_hash', 's_hash']) {
    if (payload[claim] !== undefined) return `carries ${claim}, an ID token claim`;
  }
  if (payload.typ === 'ID') return 'its typ claim says ID';
  if (typ === 'at+jwt') return null;
  if (typeof payload.client_id === 'string' || payload.typ === 'Bearer') return null;
  return payload.azp !== undefined ? 'carries azp without client_id' : `typ ${typ || '(none)'} without client_id (RFC 9068 §2.2)`;
}

const PRINCIPAL_REFUSALS: Record<PrincipalError['code'], IdentityRefusalCode> = {
  ERR_NATIONAL_ID_MISSING: 'ERR_NATIONAL_ID_MISSING',
  ERR_NATIONAL_ID_INVALID: 'ERR_NATIONAL_ID_INVALID',
  ERR_CLAIM_INVALID: 'ERR_CLAIM_INVALID',
};

export function createBearerTokenVerifier(identity: IdentityConfig, deps: BearerTokenDeps = {}): BearerTokenVerifier {
  const fetchImpl = deps.fetch ?? fetch;
  const { roster = null, store } = deps;
  const issuers = new Map<string, TrustedIssuer>(identity.issuers.map((c) => [c.issuer, { config: c, tokenTypes: new Set(c.tokenTypes.map(normaliseTyp)), keys: null, discovering: null }]));
  const introspecting = identity.issuers.find((c) => c.introspection);
  // Signature checks already done (identity/token-cache.ts); roster, locks and policy are not cached.
  const verifiedTokens = createTokenCache();
  const jwksOptions = {
    cacheMaxAge: identity.jwksCacheMaxAgeMs,
    // Least time between refetches for unknown kids: bounds a flood of forged kids, and how long a rotated key waits.
    cooldownDuration: identity.jwksCooldownMs,
    timeoutDuration: identity.jwksTimeoutMs,
    fetch: deps.fetch,
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
      trusted.keys = remoteKeySet(new URL(trusted.config.jwksUri), jwksOptions);
      return Promise.resolve(trusted.keys);
    }
    trusted.discovering ??= discoverJwksUri(trusted.config).then(
      (uri) => (trusted.keys = remoteKeySet(uri, jwksOptions)),
      (err) => {
        trusted.discovering = null; // the next request tries again
        throw new IdentityUnavailableError('ERR_IDP_UNAVAILABLE', err);
      },
    );
    return trusted.discovering;
  }

  const subOf = (payload: JWTPayload) => (typeof payload.sub === 'string' && payload.sub.length > 0 && payload.sub.length <= 256 ? payload.sub : null);
  /** The subject each principal was built from, for the event of a roster refusal. */
  const subjects = new WeakMap<Principal, string | null>();

  function principalOf(payload: JWTPayload, config: IssuerConfig): Principal {
    let principal: Principal;
    try {
      principal = principalFromClaims(payload, config);
    } catch (err) {
      if (!(err instanceof PrincipalError)) throw err;
      throw new IdentityRefusedError(PRINCIPAL_REFUSALS[err.code], err.message, { issuer: config.issuer, sub: subOf(payload), nationalId: null }, { cause: err });
    }
    const levelClaim = config.claims.assuranceLevel;
    const evidence = { acr: payload[config.claims.acr], amr: payload.amr, level: levelClaim ? payload[levelClaim] : undefined };
    // A token that says nothing about assurance (LemonLDAP::NG access tokens) gets what the operator configured for its issuer, 0 unless set.
    const silent = evidence.acr == null && evidence.level == null && !(Array.isArray(evidence.amr) && evidence.amr.length > 0);
    const built: Principal = silent ? { ...principal, assuranceLevel: config.defaultAssuranceLevel ?? 0, assuranceFrom: 'issuer-default' } : { ...principal, assuranceLevel: assuranceLevelOf(evidence, config.assurance ?? {}), assuranceFrom: 'token' };
    subjects.set(built, subOf(payload));
    return built;
  }

  async function verifyJwt(token: string, digest: string): Promise<Principal> {
    let iss: unknown;
    try {
      iss = decodeJwt(token).iss;
    } catch (err) {
      throw new TokenError('ERR_TOKEN_MALFORMED', 'not a JWT', { cause: err });
    }
    const trusted = typeof iss === 'string' ? issuers.get(iss) : undefined;
    if (!trusted) throw new TokenError('ERR_TOKEN_ISSUER_UNTRUSTED', 'untrusted issuer');

    const getKey = await keysFor(trusted);
    let verified;
    try {
      verified = await jwtVerify(token, keyOrUnavailable(getKey), {
        issuer: trusted.config.issuer,
        audience: [...trusted.config.audience],
        algorithms: [...trusted.config.algorithms],
        clockTolerance: identity.clockSkewSeconds,
        requiredClaims: ['exp', 'sub'],
      });
    } catch (err) {
      throw tokenErrorOf(err);
    }
    const typ = normaliseTyp(verified.protectedHeader.typ);
    if (!trusted.tokenTypes.has(typ)) throw new TokenError('ERR_TOKEN_TYPE_INVALID', 'not an access token');
    const idTokenLike = idTokenShape(verified.payload, typ);
    if (idTokenLike) throw new TokenError('ERR_TOKEN_ID_TOKEN_PRESENTED', `not an access token: ${idTokenLike}`);
    const principal = principalOf(verified.payload, trusted.config);
    verifiedTokens.set(digest, { principal, expiresAt: verified.payload.exp! * 1000, header: verified.protectedHeader, key: verified.key, keySet: getKey });
    return principal;
  }

  async function fromRoster(principal: Principal): Promise<Principal> {
    if (!roster) return principal;
    let entry;
    try {
      entry = await roster.lookup(principal.nationalId);
    } catch (err) {
      if (err instanceof RosterUnavailableError && err.cause instanceof StateLostError) throw new IdentityUnavailableError('ERR_STATE_LOST', err);
      if (err instanceof RosterUnavailableError) throw new IdentityUnavailableError('ERR_ROSTER_UNAVAILABLE', err);
      throw err;
    }
    // Refused, but the SOC must see who tried: the national ID the token presented, marked unverified.
    const presented = { issuer: principal.issuer, sub: subjects.get(principal) ?? null, nationalId: principal.nationalId };
    if (!entry) throw new IdentityRefusedError('ERR_NOT_ON_ROSTER', 'Cán bộ không có trong danh sách cán bộ của tỉnh / The official is not on the roster', presented);
    if (entry.status !== 'active') throw new IdentityRefusedError('ERR_OFFICIAL_SUSPENDED', `Cán bộ đang ở trạng thái "${entry.status}" / The official is ${entry.status}`, presented);
    return withRosterEntry(principal, entry);
  }

  return {
    async verify(token) {
      const digest = verifiedTokens.digest(token);
      const cached = await verifiedTokens.get(digest);
      if (cached) return fromRoster(cached);
      let isJwt = true;
      try {
        decodeJwt(token);
      } catch {
        isJwt = false;
      }
      const principal = !isJwt && introspecting ? principalOf(await introspectToken(token, introspecting, { fetch: fetchImpl, store, timeoutMs: identity.jwksTimeoutMs, clockSkewSeconds: identity.clockSkewSeconds }), introspecting) : await verifyJwt(token, digest);
      return fromRoster(principal);
    },
  };
}
