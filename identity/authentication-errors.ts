import { CodedError } from '../core/errors.js';

/**
 * Why authentication did not produce a principal, as identity's own typed errors: a stable `code`
 * (never reused once published) and the data a caller needs to answer, never HTTP. The gateway's
 * authenticate step (gateway/steps/authenticate.ts) maps each code to a decision reason and a
 * response; the database plane reuses the same mapping through it.
 */

/** An access token that proves nothing (RFC 6750 §3.1 invalid_token), or none at all. */
export type TokenErrorCode =
  | 'ERR_TOKEN_MISSING'
  | 'ERR_TOKEN_MALFORMED'
  | 'ERR_TOKEN_EXPIRED'
  | 'ERR_TOKEN_NOT_YET_VALID'
  | 'ERR_TOKEN_AUDIENCE_INVALID'
  | 'ERR_TOKEN_ISSUER_UNTRUSTED'
  | 'ERR_TOKEN_CLAIM_INVALID'
  | 'ERR_TOKEN_ALGORITHM_NOT_ALLOWED'
  | 'ERR_TOKEN_SIGNATURE_INVALID'
  | 'ERR_TOKEN_KEY_UNKNOWN'
  | 'ERR_TOKEN_TYPE_INVALID'
  | 'ERR_TOKEN_ID_TOKEN_PRESENTED'
  | 'ERR_TOKEN_INACTIVE';

/** A verified token whose subject is not accepted as an official. */
export type IdentityRefusalCode = 'ERR_NATIONAL_ID_MISSING' | 'ERR_NATIONAL_ID_INVALID' | 'ERR_CLAIM_INVALID' | 'ERR_NOT_ON_ROSTER' | 'ERR_OFFICIAL_SUSPENDED';

/** A browser session that no longer stands for anyone: the browser must sign in again. */
export type SessionErrorCode = 'ERR_SESSION_UNKNOWN' | 'ERR_SESSION_EXPIRED' | 'ERR_SESSION_IDLE_TIMEOUT' | 'ERR_SESSION_REVOKED' | 'ERR_SESSION_REFRESH_FAILED';

/** Something authentication depends on cannot answer now: refuse, never trust what was not checked. */
export type IdentityUnavailableCode = 'ERR_IDP_UNAVAILABLE' | 'ERR_ROSTER_UNAVAILABLE' | 'ERR_SESSION_STORE_UNAVAILABLE' | 'ERR_STATE_LOST';

export type AuthenticationErrorCode = TokenErrorCode | IdentityRefusalCode | SessionErrorCode | IdentityUnavailableCode;

/** An identity a valid token presented that was not accepted as an official. */
export interface PresentedIdentity {
  readonly issuer: string;
  readonly sub: string | null;
  /** The national ID claim when it is a well-formed one, else null. */
  readonly nationalId: string | null;
}

export abstract class AuthenticationError extends CodedError {
  abstract override readonly code: AuthenticationErrorCode;
}

export class TokenError extends AuthenticationError {
  /** For the RFC 6750 error_description; null when no credentials were sent at all (§3: no error attribute then). */
  readonly description: string | null;

  constructor(
    readonly code: TokenErrorCode,
    description: string | null,
    options: { cause?: unknown } = {},
  ) {
    super(description ?? 'no access token', options);
    this.name = 'TokenError';
    this.description = description;
  }
}

export class IdentityRefusedError extends AuthenticationError {
  constructor(
    readonly code: IdentityRefusalCode,
    message: string,
    /** Who tried: the event names them, marked unverified. */
    readonly presented: PresentedIdentity,
    options: { cause?: unknown } = {},
  ) {
    super(message, options);
    this.name = 'IdentityRefusedError';
  }
}

export class SessionError extends AuthenticationError {
  constructor(
    readonly code: SessionErrorCode,
    message = 'session is not valid',
    options: { cause?: unknown } = {},
  ) {
    super(message, options);
    this.name = 'SessionError';
  }
}

export class IdentityUnavailableError extends AuthenticationError {
  constructor(
    readonly code: IdentityUnavailableCode,
    cause: unknown,
  ) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = 'IdentityUnavailableError';
  }
}
