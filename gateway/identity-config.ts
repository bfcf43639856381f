import { readFileSync } from 'node:fs';

/**
 * Settings that make the gateway work with IdPs other than the demo one (docs/identity-providers.md):
 * how the relying party authenticates at the token endpoint, how an IdP's front-channel logout is
 * matched to sessions, and where assurance comes from when a token says nothing about it.
 * gateway/config.ts composes these into its one schema.
 */

/** OAuth 2.0 client authentication at the token endpoint (OIDC Core §9). */
export const TOKEN_ENDPOINT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'] as const;
export type TokenEndpointAuthMethod = (typeof TOKEN_ENDPOINT_AUTH_METHODS)[number];

/** Asymmetric only: the IdP verifies the client assertion against the public key registered for the gateway. */
export const CLIENT_ASSERTION_ALGORITHMS = ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA'] as const;

/**
 * OIDC Front-Channel Logout 1.0: what the `sid` parameter the IdP sends names.
 * - `sid`: the IdP session (the `sid` claim of the ID token); only sessions signed in with that sid end.
 * - `sub`: the IdP sends the subject instead (LemonLDAP::NG sends the RP's user id); every session of
 *   that `iss` + `sub` ends. Anyone who knows an official's subject can then sign them out; see the docs.
 * - `off`: the endpoint answers 404.
 */
export const FRONTCHANNEL_LOGOUT_MODES = ['sid', 'sub', 'off'] as const;
export type FrontchannelLogoutMode = (typeof FRONTCHANNEL_LOGOUT_MODES)[number];

export interface BrowserClientAuthConfig {
  readonly tokenEndpointAuthMethod: TokenEndpointAuthMethod;
  /** PKCS#8 PEM private key for private_key_jwt; its public key is registered at the IdP. */
  readonly clientAssertionKeyFile?: string;
  readonly clientAssertionAlgorithm: (typeof CLIENT_ASSERTION_ALGORITHMS)[number];
  /** `kid` of the client assertion header, as registered at the IdP; absent: none sent. */
  readonly clientAssertionKeyId?: string;
  readonly frontchannelLogout: FrontchannelLogoutMode;
}

export const BROWSER_CLIENT_AUTH_PROPERTIES = {
  // RFC 6749 §2.3.1 Basic form-encodes the secret; some IdPs (LemonLDAP::NG) compare it raw, so secrets with - _ . ! ~ * ' ( ) fail there: use client_secret_post.
  tokenEndpointAuthMethod: { enum: TOKEN_ENDPOINT_AUTH_METHODS, default: 'client_secret_basic' },
  clientAssertionKeyFile: { type: 'string', minLength: 1, maxLength: 2048 },
  clientAssertionAlgorithm: { enum: CLIENT_ASSERTION_ALGORITHMS, default: 'ES256' },
  clientAssertionKeyId: { type: 'string', minLength: 1, maxLength: 256 },
  frontchannelLogout: { enum: FRONTCHANNEL_LOGOUT_MODES, default: 'sid' },
} as const;

/** Per issuer: assurance of a token that carries no acr, amr or level claim, and what a step-up asks for. */
export interface IssuerAssuranceConfig {
  /**
   * The level of an access token that carries none of acr, amr or the level claim (LemonLDAP::NG's
   * JWT access tokens carry none). 0, the default, is "unknown"; a higher value is the operator
   * stating that this IdP authenticates no one below it.
   */
  readonly defaultAssuranceLevel: 0 | 1 | 2;
  /** acr_values sent to reach level 1 or 2 (step-up); absent: every acr value the mapping gives that level or above. */
  readonly stepUpAcrValues?: Readonly<Partial<Record<'1' | '2', readonly string[]>>>;
}

export const ISSUER_ASSURANCE_PROPERTIES = {
  defaultAssuranceLevel: { enum: [0, 1, 2], default: 0 },
  stepUpAcrValues: {
    type: 'object',
    additionalProperties: false,
    properties: {
      '1': { type: 'array', minItems: 1, maxItems: 16, items: { type: 'string', pattern: '^[\\x21-\\x7e]{1,256}$' } },
      '2': { type: 'array', minItems: 1, maxItems: 16, items: { type: 'string', pattern: '^[\\x21-\\x7e]{1,256}$' } },
    },
  },
} as const;

/** Cross-field checks of the browser client authentication; `at` names the section in messages. */
export function checkBrowserClientAuth(problems: string[], at: string, browser: Record<string, any>, readKey: (path: string) => string = (p) => readFileSync(p, 'utf8')): void {
  if (browser.tokenEndpointAuthMethod === 'private_key_jwt') {
    if (!browser.clientAssertionKeyFile) {
      problems.push(`${at}.clientAssertionKeyFile: required when tokenEndpointAuthMethod is private_key_jwt`);
      return;
    }
    let pem: string;
    try {
      pem = readKey(browser.clientAssertionKeyFile);
    } catch (err) {
      problems.push(`${at}.clientAssertionKeyFile: cannot read ${browser.clientAssertionKeyFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      return;
    }
    if (!pem.includes('-----BEGIN PRIVATE KEY-----')) problems.push(`${at}.clientAssertionKeyFile: must be a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)`);
  } else if (browser.clientAssertionKeyFile) {
    problems.push(`${at}.clientAssertionKeyFile: set, but tokenEndpointAuthMethod is ${browser.tokenEndpointAuthMethod}; set private_key_jwt to use it`);
  }
}
