import type { IncomingHttpHeaders } from 'node:http';
import { decodeJwt, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { GatewayConfig, IssuerConfig } from '../config.js';
import { GatewayError } from '../errors.js';
import type { Reason } from '../../core/reasons.js';
import { principalFromClaims, PrincipalError } from '../../identity/principal-from-claims.js';
import type { AssuranceLevel, Principal } from '../../core/principal.js';
import { assuranceLevelOf } from '../../identity/assurance.js';
import { RosterUnavailableError, withRosterEntry, type Roster } from '../../identity/roster.js';
import { StoreError, StateLostError, type Store } from '../../core/store.js';
import type { SessionManager, SessionProblem, SessionRecord } from '../../identity/sessions.js';
import { RpError, type RelyingParty } from '../../identity/oidc-rp.js';
import { sha256hex } from '../../identity/digest.js';
import { remoteKeySet } from './jwks.js';
import { createTokenCache } from './token-cache.js';

/**
 * Step 3, authenticate: who is asking, tied to a national ID.
 *
 * - An application presents a bearer access token (RFC 6750): a JWT from a configured issuer,
 *   verified against that issuer's JWKS — signature, alg allow-list, iss, aud, exp, nbf within the
 *   clock-skew bound, and typ (RFC 9068 §2.1 at+jwt by default, so an ID token cannot stand in for
 *   an access token) — or, for an issuer that has it, an opaque token checked by RFC 7662
 *   introspection.
 * - A browser presents the gateway's session cookie; the session (identity/sessions.ts) holds the
 *   tokens server-side and refreshes them, once, under a lock shared by every instance.
 *
 * Then, when a roster is configured, the official must be on it and active; the roster supplies
 * agency, unit, roles and clearance. Unauthenticated browser navigation is sent to sign in; an API
 * call gets 401 JSON, never a redirect.
 */

/** What the data plane knows about the request beyond its headers, to answer a browser with a sign-in redirect. */
export interface RequestInfo {
  readonly method: string;
  /** Path and query, as received. */
  readonly url: string;
  /** Adds a reason to the request's decision event (e.g. session-refreshed). */
  readonly note?: (reason: Reason) => void;
}

export interface Authenticator {
  authenticate(headers: IncomingHttpHeaders, request?: RequestInfo): Promise<Principal>;
  /** The principal an access token stands for (bearer rules, roster applied). */
  verifyAccessToken(token: string): Promise<Principal>;
  /** True when `request` is browser navigation that should be sent to sign in rather than refused with JSON. */
  isBrowserNavigation(headers: IncomingHttpHeaders, request?: RequestInfo): boolean;
}

export interface AuthenticatorDeps {
  readonly fetch?: typeof fetch;
  readonly store?: Store;
  readonly roster?: Roster | null;
  readonly sessions?: SessionManager | null;
  readonly rp?: RelyingParty | null;
}

export const AUTH_PATH_PREFIX = '/.ztgate/auth/';
export const LOGIN_PATH = `${AUTH_PATH_PREFIX}login`;

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const realm = 'Bearer realm="ztgate"';
/** Refresh this long before the access token expires, so a request never carries one that dies in flight. */
const REFRESH_MARGIN_MS = 30_000;

function unauthenticated(reason: Reason, description?: string, cause?: unknown, error = 'invalid_token'): GatewayError {
  // RFC 6750 §3: no error attribute when no credentials were sent at all.
  const challenge = description ? `${realm}, error="${error}", error_description="${description}"` : realm;
  return new GatewayError('ZTG_ERR_UNAUTHENTICATED', reason, { headers: { 'www-authenticate': challenge }, cause });
}

function idpUnavailable(cause: unknown): GatewayError {
  return new GatewayError('ZTG_ERR_IDP_UNAVAILABLE', 'identity-provider-unavailable', { cause });
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
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return idpUnavailable(err);
  if (err instanceof errors.JOSEError) return unauthenticated('token-malformed', 'malformed token', err);
  // Anything else is the JWKS fetch failing: refuse, never trust an unverified token.
  return idpUnavailable(err);
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

/**
 * The value of cookie `name` in a Cookie header (RFC 6265 §5.4), or null. The same name twice is
 * refused, not resolved: a sibling subdomain can toss a second cookie of ours into the browser, and
 * serving whichever comes first is how session fixation starts (RFC 6265 §8.6).
 */
export function cookieValue(header: string | undefined, name: string): string | null {
  if (!header) return null;
  let value: string | null = null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      if (value !== null) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'cookie-duplicate', { detail: `Cookie ${name} xuất hiện hơn một lần / cookie ${name} sent more than once` });
      value = part.slice(eq + 1).trim();
    }
  }
  return value;
}

/** Attributes of the gateway's own cookies (session, sign-in transaction): no Secure over plain http. */
export function cookieAttributes(secure: boolean): string {
  return `Path=/; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
}

/** A Set-Cookie value that removes cookie `name`. */
export function clearCookieHeader(name: string, secure: boolean): string {
  return `${name}=; ${cookieAttributes(secure)}; Max-Age=0`;
}

/** Only a path on this gateway: never `//host`, `/\host` or a scheme, which browsers would follow off-site. */
export function safeReturnPath(value: unknown): string | null {
  if (typeof value !== 'string' || value.length === 0 || value.length > 2048) return null;
  if (!value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\')) return null;
  if (/[\u0000-\u001f\u007f\\]/.test(value)) return null;
  try {
    const base = new URL('http://gateway.invalid');
    const url = new URL(value, base);
    if (url.origin !== base.origin) return null;
    if (url.pathname.startsWith(AUTH_PATH_PREFIX)) return null; // no sign-in loops
    // Normalising can turn /.//evil.example into //evil.example, which a browser reads as another host.
    if (url.pathname.startsWith('//') || url.pathname.startsWith('/\\')) return null;
    if (url.pathname !== value.split(/[?#]/)[0]) return null; // dot segments or re-encoding: refuse, don't guess
    return url.pathname + url.search;
  } catch {
    return null;
  }
}

interface TrustedIssuer {
  readonly config: IssuerConfig;
  readonly tokenTypes: ReadonlySet<string>;
  keys: JWTVerifyGetKey | null;
  discovering: Promise<JWTVerifyGetKey> | null;
}

export function createAuthenticator(identity: GatewayConfig['identity'], fetchOrDeps: typeof fetch | AuthenticatorDeps = {}): Authenticator {
  const deps: AuthenticatorDeps = typeof fetchOrDeps === 'function' ? { fetch: fetchOrDeps } : fetchOrDeps;
  const fetchImpl = deps.fetch ?? fetch;
  const { roster = null, sessions = null, rp = null, store } = deps;
  const issuers = new Map<string, TrustedIssuer>(identity.issuers.map((c) => [c.issuer, { config: c, tokenTypes: new Set(c.tokenTypes.map(normaliseTyp)), keys: null, discovering: null }]));
  const introspecting = identity.issuers.find((c) => c.introspection);
  // Signature checks already done (gateway/steps/token-cache.ts); roster, locks and policy are not cached.
  const verifiedTokens = createTokenCache();
  const jwksOptions = {
    cacheMaxAge: identity.jwksCacheMaxAgeMs,
    // Least time between refetches for unknown kids: bounds a flood of forged kids, and how long a rotated key waits.
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
      trusted.keys = remoteKeySet(new URL(trusted.config.jwksUri), jwksOptions);
      return Promise.resolve(trusted.keys);
    }
    trusted.discovering ??= discoverJwksUri(trusted.config).then(
      (uri) => (trusted.keys = remoteKeySet(uri, jwksOptions)),
      (err) => {
        trusted.discovering = null; // the next request tries again
        throw idpUnavailable(err);
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
      const reason: Reason =
        err.code === 'ERR_NATIONAL_ID_MISSING' ? 'identity-national-id-missing' : err.code === 'ERR_NATIONAL_ID_INVALID' ? 'identity-national-id-invalid' : 'token-claim-invalid';
      throw new GatewayError('ZTG_ERR_IDENTITY_REFUSED', reason, { detail: err.message, cause: err, presented: { issuer: config.issuer, sub: subOf(payload), nationalId: null } });
    }
    const levelClaim = config.claims.assuranceLevel;
    const evidence = { acr: payload[config.claims.acr], amr: payload.amr, level: levelClaim ? payload[levelClaim] : undefined };
    // A token that says nothing about assurance (LemonLDAP::NG access tokens) gets what the operator configured for its issuer, 0 unless set.
    const silent = evidence.acr == null && evidence.level == null && !(Array.isArray(evidence.amr) && evidence.amr.length > 0);
    const built: Principal = silent
      ? { ...principal, assuranceLevel: config.defaultAssuranceLevel ?? 0, assuranceFrom: 'issuer-default' }
      : { ...principal, assuranceLevel: assuranceLevelOf(evidence, config.assurance ?? {}), assuranceFrom: 'token' };
    subjects.set(built, subOf(payload));
    return built;
  }

  async function verifyJwt(token: string, digest: string): Promise<Principal> {
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
    const typ = normaliseTyp(verified.protectedHeader.typ);
    if (!trusted.tokenTypes.has(typ)) {
      throw unauthenticated('token-type-invalid', 'not an access token');
    }
    const idTokenLike = idTokenShape(verified.payload, typ);
    if (idTokenLike) throw unauthenticated('token-id-token-presented', `not an access token: ${idTokenLike}`);
    const principal = principalOf(verified.payload, trusted.config);
    verifiedTokens.set(digest, { principal, expiresAt: verified.payload.exp! * 1000, header: verified.protectedHeader, key: verified.key, keySet: getKey });
    return principal;
  }

  // RFC 7662: an opaque token is asked about; the answer is cached no longer than the token lives.
  async function introspect(token: string, config: IssuerConfig): Promise<Principal> {
    const { endpoint, clientId, clientSecret, cacheMaxAgeSeconds } = config.introspection!;
    const cacheKey = `introspection:${sha256hex(token)}`;
    let result: Record<string, unknown> | null = null;
    try {
      const cached = store ? await store.get(cacheKey) : null;
      if (cached) result = JSON.parse(cached) as Record<string, unknown>;
    } catch (err) {
      throw idpUnavailable(err);
    }
    if (!result) {
      try {
        const res = await fetchImpl(endpoint, {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            accept: 'application/json',
            // RFC 6749 §2.3.1: form-encode the credentials before Basic.
            authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`,
          },
          body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
          signal: AbortSignal.timeout(identity.jwksTimeoutMs),
          redirect: 'error',
        });
        if (!res.ok) throw new Error(`introspection answered ${res.status}`);
        result = (await res.json()) as Record<string, unknown>;
        if (!result || typeof result !== 'object' || typeof result.active !== 'boolean') throw new Error('introspection response has no boolean "active"');
      } catch (err) {
        throw idpUnavailable(err);
      }
      const exp = typeof result.exp === 'number' ? result.exp * 1000 : Infinity;
      const ttlMs = Math.min(cacheMaxAgeSeconds * 1000, exp - Date.now());
      if (store && ttlMs >= 1000) await store.set(cacheKey, JSON.stringify(result), { ttlMs }).catch(() => undefined);
    }
    if (result.active !== true) throw unauthenticated('token-inactive', 'token is not active');
    const now = Date.now() / 1000;
    if (typeof result.exp === 'number' && result.exp + identity.clockSkewSeconds < now) throw unauthenticated('token-expired', 'token expired');
    // A refresh token is "active" too; only an access token may be presented as one.
    const type = String(result.token_type ?? result.typ ?? '').toLowerCase();
    if (type !== 'bearer' && type !== 'dpop') throw unauthenticated('token-type-invalid', 'not an access token');
    if (result.iss !== undefined && result.iss !== config.issuer) throw unauthenticated('token-issuer-untrusted', 'untrusted issuer');
    // RFC 7662 makes aud optional, but a token whose audience is unknown may be meant for another service.
    const aud = result.aud === undefined ? [] : Array.isArray(result.aud) ? result.aud : [result.aud];
    if (!aud.some((a) => config.audience.includes(String(a)))) throw unauthenticated('token-audience-invalid', 'claim aud is missing or invalid');
    if (typeof result.sub !== 'string') throw unauthenticated('token-claim-invalid', 'claim sub is missing');
    return principalOf(result as JWTPayload, config);
  }

  async function fromRoster(principal: Principal): Promise<Principal> {
    if (!roster) return principal;
    let entry;
    try {
      entry = await roster.lookup(principal.nationalId);
    } catch (err) {
      if (err instanceof RosterUnavailableError && err.cause instanceof StateLostError) throw new GatewayError('ZTG_ERR_STATE_LOST', 'state-lost', { cause: err });
      if (err instanceof RosterUnavailableError) throw new GatewayError('ZTG_ERR_IDP_UNAVAILABLE', 'roster-unavailable', { cause: err });
      throw err;
    }
    // Refused, but the SOC must see who tried: the national ID the token presented, marked unverified.
    const presented = { issuer: principal.issuer, sub: subjects.get(principal) ?? null, nationalId: principal.nationalId };
    if (!entry) throw new GatewayError('ZTG_ERR_IDENTITY_REFUSED', 'official-not-on-roster', { detail: 'Cán bộ không có trong danh sách cán bộ của tỉnh / The official is not on the roster', presented });
    if (entry.status !== 'active') {
      throw new GatewayError('ZTG_ERR_IDENTITY_REFUSED', 'official-suspended', { detail: `Cán bộ đang ở trạng thái "${entry.status}" / The official is ${entry.status}`, presented });
    }
    return withRosterEntry(principal, entry);
  }

  async function verifyAccessToken(token: string): Promise<Principal> {
    const digest = verifiedTokens.digest(token);
    const cached = await verifiedTokens.get(digest);
    if (cached) return fromRoster(cached);
    let isJwt = true;
    try {
      decodeJwt(token);
    } catch {
      isJwt = false;
    }
    const principal = !isJwt && introspecting ? await introspect(token, introspecting) : await verifyJwt(token, digest);
    return fromRoster(principal);
  }

  function isBrowserNavigation(headers: IncomingHttpHeaders, request?: RequestInfo): boolean {
    if (!request || !rp || headers.authorization) return false;
    if (request.method !== 'GET' && request.method !== 'HEAD') return false;
    // Fetch Metadata, when sent, says for sure; otherwise the Accept header of a page load.
    const mode = headers['sec-fetch-mode'];
    if (typeof mode === 'string') return mode === 'navigate';
    return /\btext\/html\b/i.test(String(headers.accept ?? ''));
  }

  function clearCookie(): string {
    return clearCookieHeader(sessions!.cookieName, sessions!.secure);
  }

  /** A browser goes to sign in (302); anything else gets 401 with the reason. */
  function sessionRefused(reason: Reason, headers: IncomingHttpHeaders, request: RequestInfo | undefined, clear: boolean): GatewayError {
    const extra: Record<string, string> = clear ? { 'set-cookie': clearCookie() } : {};
    if (isBrowserNavigation(headers, request)) {
      const returnTo = safeReturnPath(request!.url) ?? '/';
      return new GatewayError('ZTG_ERR_SIGN_IN_REQUIRED', reason, { headers: { ...extra, location: `${LOGIN_PATH}?return=${encodeURIComponent(returnTo)}` } });
    }
    const error = unauthenticated(reason, reason === 'token-missing' ? undefined : 'session is not valid');
    return new GatewayError('ZTG_ERR_UNAUTHENTICATED', reason, { headers: { ...error.headers, ...extra } });
  }

  async function refreshed(handle: string, record: SessionRecord, note: RequestInfo['note']): Promise<SessionRecord> {
    const s = sessions!;
    const fresh = (r: SessionRecord) => r.accessTokenExpiresAt - Date.now() > REFRESH_MARGIN_MS;
    if (!record.refreshToken || !rp) {
      await s.end(handle);
      throw new GatewayError('ZTG_ERR_UNAUTHENTICATED', 'session-refresh-failed', { detail: 'Phiên đăng nhập cần đăng nhập lại / The session must sign in again' });
    }
    if (await s.lockRefresh(handle)) {
      try {
        const current = await s.read(handle);
        if (!current) throw new GatewayError('ZTG_ERR_UNAUTHENTICATED', 'session-revoked');
        if (fresh(current)) return current; // refreshed by another request just before the lock
        let grant;
        try {
          grant = await rp.refresh(current.refreshToken!);
        } catch (err) {
          if (err instanceof RpError && err.code === 'ERR_IDP_UNREACHABLE') throw idpUnavailable(err);
          // The IdP refused: the official was suspended there, or the IdP session ended.
          await s.end(handle);
          throw new GatewayError('ZTG_ERR_UNAUTHENTICATED', 'session-refresh-failed', { cause: err });
        }
        const next: SessionRecord = {
          ...current,
          accessToken: grant.accessToken,
          accessTokenExpiresAt: grant.accessTokenExpiresAt,
          refreshToken: grant.refreshToken ?? current.refreshToken,
          idToken: grant.idToken ?? current.idToken,
        };
        if (!(await s.replace(handle, next))) throw new GatewayError('ZTG_ERR_UNAUTHENTICATED', 'session-revoked');
        note?.('session-refreshed');
        return next;
      } finally {
        await s.unlockRefresh(handle).catch(() => undefined);
      }
    }
    // Another request, maybe on another instance, holds the lock: use what it gets.
    const deadline = Date.now() + identity.session.refreshLockTtlMs;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
      const current = await s.read(handle);
      if (!current) throw new GatewayError('ZTG_ERR_UNAUTHENTICATED', 'session-revoked');
      if (fresh(current)) return current;
    }
    throw idpUnavailable(new Error('token refresh by another request did not finish in time'));
  }

  async function fromSession(id: string, headers: IncomingHttpHeaders, request: RequestInfo | undefined): Promise<Principal> {
    const s = sessions!;
    try {
      const resolved = await s.resolve(id);
      if ('problem' in resolved) throw sessionRefused(resolved.problem satisfies SessionProblem, headers, request, true);
      let { record } = resolved;
      if (record.accessTokenExpiresAt - Date.now() <= REFRESH_MARGIN_MS) {
        try {
          record = await refreshed(resolved.handle, record, request?.note);
        } catch (err) {
          if (err instanceof GatewayError && err.code === 'ZTG_ERR_UNAUTHENTICATED') throw sessionRefused(err.reason, headers, request, true);
          throw err;
        }
      }
      const principal = await verifyAccessToken(record.accessToken);
      if (principal.nationalId !== record.nationalId) throw sessionRefused('session-unknown', headers, request, true);
      const sessionLevel: AssuranceLevel = assuranceLevelOf({ acr: record.acr, amr: record.amr }, issuers.get(record.issuer)?.config.assurance ?? {});
      // What the ID token said at sign-in outranks an issuer default that only stands in for silence.
      const sessionSaid = record.acr !== null || record.amr.length > 0;
      const tokenLevel = sessionSaid && principal.assuranceFrom === 'issuer-default' ? 0 : principal.assuranceLevel;
      return Object.freeze({
        ...principal,
        sessionId: resolved.handle,
        acr: record.acr ?? principal.acr,
        authTime: record.authTime ?? principal.authTime,
        assuranceLevel: Math.max(sessionLevel, tokenLevel) as AssuranceLevel,
        assuranceFrom: sessionSaid && sessionLevel >= tokenLevel ? 'session' : principal.assuranceFrom,
      });
    } catch (err) {
      if (err instanceof StoreError) throw new GatewayError('ZTG_ERR_IDP_UNAVAILABLE', 'session-store-unavailable', { cause: err });
      throw err;
    }
  }

  return {
    verifyAccessToken,
    isBrowserNavigation,
    async authenticate(headers, request) {
      const authorization = headers.authorization;
      if (authorization !== undefined && authorization !== '') {
        const match = BEARER.exec(authorization);
        if (!match) throw unauthenticated('token-malformed', 'expected a Bearer token');
        return verifyAccessToken(match[1]!);
      }
      const cookieHeader = Array.isArray(headers.cookie) ? headers.cookie.join('; ') : headers.cookie;
      const id = sessions ? cookieValue(cookieHeader, sessions.cookieName) : null;
      if (id) return fromSession(id, headers, request);
      if (isBrowserNavigation(headers, request)) throw sessionRefused('session-missing', headers, request, false);
      throw unauthenticated('token-missing');
    },
  };
}
