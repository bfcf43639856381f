import * as oidc from 'openid-client';
import { readFileSync } from 'node:fs';
import { createRemoteJWKSet, errors as joseErrors, importPKCS8, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { BrowserSignInConfig } from './config.js';
import { CodedError } from '../core/errors.js';

/**
 * The gateway as an OpenID Connect relying party (openid-client): authorization code flow with
 * PKCE (RFC 7636), `state` and `nonce`; the ID token checked in full — signature against the
 * issuer's JWKS (non-repudiation checks on), the one configured `alg`, `iss`, `aud`, `azp`,
 * `exp`, `iat`, `nonce`, and `auth_time` against `max_age` when one was asked for. Also refresh,
 * RP-Initiated Logout 1.0 and Back-Channel Logout 1.0 logout tokens.
 */

export type RpErrorCode =
  /** Discovery, JWKS or the token endpoint could not be reached. */
  | 'ERR_IDP_UNREACHABLE'
  /** The IdP put an error in the authorization response (e.g. the official cancelled). */
  | 'ERR_AUTHORIZATION_ERROR'
  /** The token endpoint refused the code (reused, expired, wrong PKCE verifier) or the refresh token. */
  | 'ERR_GRANT_REJECTED'
  /** The token endpoint refused the gateway's own credentials (invalid_client, 401): secret, method or key. */
  | 'ERR_CLIENT_AUTH_FAILED'
  /** The ID token or the token response failed validation. */
  | 'ERR_ID_TOKEN_INVALID'
  /** The ID token's exp, nbf or iat is outside the clock tolerance: the two clocks disagree. */
  | 'ERR_ID_TOKEN_CLOCK_SKEW'
  | 'ERR_LOGOUT_TOKEN_INVALID';

export class RpError extends CodedError {
  constructor(
    readonly code: RpErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RpError';
  }
}

export interface IdTokenClaims {
  readonly sub: string;
  readonly sid: string | null;
  readonly acr: string | null;
  readonly amr: readonly string[];
  readonly authTime: number | null;
  readonly raw: JWTPayload;
}

export interface GrantResult {
  readonly accessToken: string;
  /** Milliseconds since the epoch. */
  readonly accessTokenExpiresAt: number;
  readonly refreshToken: string | null;
  readonly idToken: string | null;
  readonly idClaims: IdTokenClaims | null;
}

export interface AuthorizationRequest {
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
  readonly acrValues?: readonly string[];
  readonly maxAgeSeconds?: number | null;
}

export interface LogoutToken {
  readonly sub: string | null;
  readonly sid: string | null;
  readonly jti: string;
  readonly exp: number;
}

export interface RelyingParty {
  readonly issuer: string;
  readonly clientId: string;
  readonly redirectUri: string;
  authorizationUrl(request: AuthorizationRequest): Promise<URL>;
  exchangeCode(callbackUrl: URL, checks: { state: string; nonce: string; codeVerifier: string; maxAgeSeconds: number | null }): Promise<GrantResult>;
  refresh(refreshToken: string): Promise<GrantResult>;
  /** The origin of the IdP's end_session_endpoint (where sign-out sends the browser), or null. */
  endSessionOrigin(): Promise<string | null>;
  /** Null when the IdP publishes no end_session_endpoint. */
  endSessionUrl(idTokenHint: string | null, postLogoutRedirectUri: string, state?: string): Promise<URL | null>;
  verifyLogoutToken(token: string): Promise<LogoutToken>;
}

export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

const DEFAULT_ACCESS_TOKEN_TTL_MS = 5 * 60_000; // when the IdP omits expires_in

function idClaimsOf(payload: JWTPayload | undefined): IdTokenClaims | null {
  if (!payload || typeof payload.sub !== 'string') return null;
  const str = (v: unknown) => (typeof v === 'string' && v.length > 0 && v.length <= 256 ? v : null);
  const amr = Array.isArray(payload.amr) ? payload.amr.filter((v): v is string => typeof v === 'string').slice(0, 16) : [];
  return {
    sub: payload.sub,
    sid: str(payload.sid),
    acr: str(payload.acr),
    amr,
    authTime: typeof payload.auth_time === 'number' && Number.isFinite(payload.auth_time) ? payload.auth_time : null,
    raw: payload,
  };
}

/** The client authentication the token endpoint gets (OIDC Core §9), from configuration. */
async function clientAuthentication(browser: BrowserSignInConfig): Promise<oidc.ClientAuth> {
  switch (browser.tokenEndpointAuthMethod) {
    case 'client_secret_post':
      return oidc.ClientSecretPost(browser.clientSecret);
    case 'private_key_jwt': {
      const key = await importPKCS8(readFileSync(browser.clientAssertionKeyFile!, 'utf8'), browser.clientAssertionAlgorithm);
      return oidc.PrivateKeyJwt(browser.clientAssertionKeyId ? { key, kid: browser.clientAssertionKeyId } : key);
    }
    default:
      return oidc.ClientSecretBasic(browser.clientSecret);
  }
}

export function createRelyingParty(opts: { browser: BrowserSignInConfig; publicUrl: string; clockSkewSeconds: number; timeoutMs: number; jwksCacheMaxAgeMs: number; jwksCooldownMs: number }): RelyingParty {
  const { browser } = opts;
  const redirectUri = `${opts.publicUrl}/.ztgate/auth/callback`;
  const issuerUrl = new URL(browser.issuer);
  let configuring: Promise<{ config: oidc.Configuration; jwks: JWTVerifyGetKey }> | null = null;

  const configure = () => {
    configuring ??= (async () => {
      const config = await oidc.discovery(issuerUrl, browser.clientId, { client_secret: browser.clientSecret, id_token_signed_response_alg: browser.idTokenSigningAlgorithm, [oidc.clockTolerance]: opts.clockSkewSeconds }, await clientAuthentication(browser), {
        timeout: Math.ceil(opts.timeoutMs / 1000),
        // Plain http only reaches this far on a loopback issuer (config.ts refuses it elsewhere).
        execute: [oidc.enableNonRepudiationChecks, ...(issuerUrl.protocol === 'http:' ? [oidc.allowInsecureRequests] : [])],
      });
      const jwksUri = config.serverMetadata().jwks_uri;
      if (!jwksUri) throw new Error('the IdP publishes no jwks_uri');
      const jwks = createRemoteJWKSet(new URL(jwksUri), { cacheMaxAge: opts.jwksCacheMaxAgeMs, cooldownDuration: opts.jwksCooldownMs, timeoutDuration: opts.timeoutMs });
      return { config, jwks };
    })().catch((err) => {
      configuring = null; // the next request tries again
      throw new RpError('ERR_IDP_UNREACHABLE', `OIDC discovery at ${issuerUrl.href} failed: ${(err as Error).message}`, { cause: err });
    });
    return configuring;
  };

  // Which step failed decides the reason: an operator must tell a bad client secret from a bad ID token or a clock skew.
  const translate = (err: unknown, grant: 'code' | 'refresh'): RpError => {
    if (err instanceof RpError) return err;
    if (err instanceof oidc.AuthorizationResponseError) return new RpError('ERR_AUTHORIZATION_ERROR', `the IdP answered ${err.error}`, { cause: err });
    // RFC 6749 §5.2: invalid_client (400 or 401), or a bare 401 with a WWW-Authenticate challenge.
    if ((err instanceof oidc.ResponseBodyError && (err.error === 'invalid_client' || err.status === 401)) || err instanceof oidc.WWWAuthenticateChallengeError) {
      const challenge = err instanceof oidc.WWWAuthenticateChallengeError ? err.cause[0] : undefined;
      const what =
        err instanceof oidc.ResponseBodyError
          ? `${err.status} ${err.error}${err.error_description ? ` (${err.error_description})` : ''}`
          : `${err.status} ${challenge?.parameters.error ?? 'unauthorized'}${challenge?.parameters.error_description ? ` (${challenge.parameters.error_description})` : ''}, ${challenge?.scheme ?? 'no'} challenge`;
      return new RpError('ERR_CLIENT_AUTH_FAILED', `the token endpoint refused the gateway's client authentication (${browser.tokenEndpointAuthMethod}): ${what}`, { cause: err });
    }
    if (err instanceof oidc.ResponseBodyError) return new RpError('ERR_GRANT_REJECTED', `the token endpoint answered ${err.status} ${err.error}${err.error_description ? ` (${err.error_description})` : ''}`, { cause: err });
    const code = (err as { code?: string }).code ?? '';
    // openid-client wraps oauth4webapi's error, whose cause names the claim.
    let claim: unknown;
    type Caused = { cause?: Caused & { claim?: unknown } } | undefined;
    for (let e = err as Caused, depth = 0; e && depth < 4 && claim === undefined; e = e.cause, depth++) claim = e.cause?.claim;
    if (code === 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED' && (claim === 'exp' || claim === 'nbf' || claim === 'iat')) {
      return new RpError('ERR_ID_TOKEN_CLOCK_SKEW', `ID token ${claim} is outside the ${opts.clockSkewSeconds} s clock tolerance (the gateway's and the IdP's clocks disagree): ${(err as Error).message}`, { cause: err });
    }
    if (code.startsWith('OAUTH_') || err instanceof joseErrors.JOSEError) {
      return new RpError(grant === 'code' ? 'ERR_ID_TOKEN_INVALID' : 'ERR_GRANT_REJECTED', `${code || 'invalid response'}: ${(err as Error).message}`, { cause: err });
    }
    return new RpError('ERR_IDP_UNREACHABLE', `the IdP could not be reached: ${(err as Error).message}`, { cause: err });
  };

  const resultOf = (tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers): GrantResult => {
    const expiresIn = tokens.expiresIn();
    return {
      accessToken: tokens.access_token,
      accessTokenExpiresAt: Date.now() + (expiresIn !== undefined ? expiresIn * 1000 : DEFAULT_ACCESS_TOKEN_TTL_MS),
      refreshToken: tokens.refresh_token ?? null,
      idToken: tokens.id_token ?? null,
      idClaims: idClaimsOf(tokens.claims()),
    };
  };

  return {
    issuer: browser.issuer,
    clientId: browser.clientId,
    redirectUri,

    async authorizationUrl(request) {
      const { config } = await configure();
      const params: Record<string, string> = {
        redirect_uri: redirectUri,
        scope: browser.scopes.join(' '),
        response_type: 'code',
        state: request.state,
        nonce: request.nonce,
        code_challenge: await oidc.calculatePKCECodeChallenge(request.codeVerifier),
        code_challenge_method: 'S256',
      };
      if (browser.resource) params.resource = browser.resource;
      if (request.acrValues?.length) params.acr_values = request.acrValues.join(' ');
      if (request.maxAgeSeconds !== undefined && request.maxAgeSeconds !== null) params.max_age = String(request.maxAgeSeconds);
      // A step-up must authenticate again, not reuse the IdP session as it is.
      if (request.acrValues?.length || (request.maxAgeSeconds !== undefined && request.maxAgeSeconds !== null)) params.prompt = 'login';
      return oidc.buildAuthorizationUrl(config, params);
    },

    async exchangeCode(callbackUrl, checks) {
      const { config } = await configure();
      try {
        const tokens = await oidc.authorizationCodeGrant(
          config,
          callbackUrl,
          {
            pkceCodeVerifier: checks.codeVerifier,
            expectedState: checks.state,
            expectedNonce: checks.nonce,
            idTokenExpected: true,
            ...(checks.maxAgeSeconds !== null ? { maxAge: checks.maxAgeSeconds } : {}),
          },
          browser.resource ? { resource: browser.resource } : undefined,
        );
        const result = resultOf(tokens);
        if (!result.idClaims || !result.idToken) throw new RpError('ERR_ID_TOKEN_INVALID', 'the token response carries no usable ID token');
        // OIDC Core §3.1.3.7 step 10: an ID token issued in the future means the clocks disagree.
        const iat = result.idClaims.raw.iat;
        if (typeof iat === 'number' && iat > Date.now() / 1000 + opts.clockSkewSeconds) {
          throw new RpError('ERR_ID_TOKEN_CLOCK_SKEW', `ID token iat is ${Math.round(iat - Date.now() / 1000)} s in the future, beyond the ${opts.clockSkewSeconds} s clock tolerance (the gateway's and the IdP's clocks disagree)`);
        }
        return result;
      } catch (err) {
        throw translate(err, 'code');
      }
    },

    async refresh(refreshToken) {
      const { config } = await configure();
      try {
        return resultOf(await oidc.refreshTokenGrant(config, refreshToken, browser.resource ? { resource: browser.resource } : undefined));
      } catch (err) {
        throw translate(err, 'refresh');
      }
    },

    async endSessionOrigin() {
      const { config } = await configure();
      const endpoint = config.serverMetadata().end_session_endpoint;
      return endpoint ? new URL(endpoint).origin : null;
    },

    async endSessionUrl(idTokenHint, postLogoutRedirectUri, state) {
      const { config } = await configure();
      if (!config.serverMetadata().end_session_endpoint) return null;
      const params: Record<string, string> = { post_logout_redirect_uri: postLogoutRedirectUri, client_id: browser.clientId };
      if (idTokenHint) params.id_token_hint = idTokenHint;
      if (state) params.state = state;
      return oidc.buildEndSessionUrl(config, params);
    },

    // OpenID Connect Back-Channel Logout 1.0 §2.6.
    async verifyLogoutToken(token) {
      const { jwks } = await configure();
      let payload: JWTPayload;
      let typ: string | undefined;
      try {
        ({
          payload,
          protectedHeader: { typ },
        } = await jwtVerify(token, jwks, {
          issuer: browser.issuer,
          audience: browser.clientId,
          algorithms: [browser.idTokenSigningAlgorithm],
          clockTolerance: opts.clockSkewSeconds,
          requiredClaims: ['iat', 'exp', 'jti', 'events'],
        }));
      } catch (err) {
        if (err instanceof joseErrors.JWKSTimeout || !(err instanceof joseErrors.JOSEError)) {
          throw new RpError('ERR_IDP_UNREACHABLE', `the IdP keys could not be fetched: ${(err as Error).message}`, { cause: err });
        }
        throw new RpError('ERR_LOGOUT_TOKEN_INVALID', `logout token: ${(err as Error).message}`, { cause: err });
      }
      const fail = (why: string) => new RpError('ERR_LOGOUT_TOKEN_INVALID', `logout token: ${why}`);
      if (typ !== undefined && typ.toLowerCase().replace(/^application\//, '') !== 'logout+jwt') throw fail(`typ ${typ} is not logout+jwt`);
      const events = payload.events as Record<string, unknown> | undefined;
      if (!events || typeof events !== 'object' || typeof events[BACKCHANNEL_LOGOUT_EVENT] !== 'object') throw fail('no back-channel logout event');
      // A logout token must never be mistaken for an ID token, and vice versa.
      if (payload.nonce !== undefined) throw fail('carries a nonce');
      const sub = typeof payload.sub === 'string' && payload.sub ? payload.sub : null;
      const sid = typeof payload.sid === 'string' && payload.sid ? payload.sid : null;
      if (!sub && !sid) throw fail('names neither sub nor sid');
      return { sub, sid, jti: String(payload.jti), exp: payload.exp! };
    },
  };
}
