import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import Type from 'typebox';
import { checkUrl, isLoopback } from '../core/config-checks.js';
import { ASSURANCE_LEVELS, NonEmpty, Section, StringMap, type DeepReadonly, type Static } from '../core/schema.js';
import { CLAIMS_PRESETS, CLAIMS_PRESET_NAMES, type ClaimsPresetName } from './claim-presets.js';
import { DEVICE_TIERS } from '../core/levels.js';
import { sessionKeyFileProblem } from './session-crypto.js';

/**
 * The `identity` and `devices` sections of the gateway configuration: token issuers, browser
 * sign-in, sessions, the official roster, device proofs and posture signers. gateway/config.ts
 * composes these schemas into its one schema and calls the checks below. The settings that make
 * the gateway work with IdPs other than the demo one are documented in docs/identity-providers.md.
 */

/** Only asymmetric algorithms: a JWKS is public, so HS* would let anyone with the key sign. */
export const ALLOWED_TOKEN_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512', 'EdDSA'] as const;

/** Algorithms a device key may sign DPoP proofs with: no RSA keys on devices, no symmetric keys. */
export const ALLOWED_DEVICE_PROOF_ALGORITHMS = ['ES256', 'EdDSA'] as const;

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

const AssuranceLevel = (options: { default?: 0 | 1 | 2 } = {}) => Type.Enum(ASSURANCE_LEVELS, options);
const AcrValues = () => Type.Array(Type.String({ pattern: '^[\\x21-\\x7e]{1,256}$' }), { minItems: 1, maxItems: 16 });

const ISSUER_SCHEMA = Section({
  issuer: NonEmpty(),
  audience: Type.Union([NonEmpty(), Type.Array(NonEmpty(), { minItems: 1 })]),
  algorithms: Type.Array(Type.String(), { minItems: 1, uniqueItems: true, default: ['ES256', 'RS256'] }),
  jwksUri: Type.Optional(NonEmpty()),
  tokenTypes: Type.Array(NonEmpty(), { minItems: 1, uniqueItems: true, default: ['at+jwt'] }),
  /** Claim-name preset (identity/claim-presets.ts); `claims` keys override it. */
  claimsPreset: Type.Enum(CLAIMS_PRESET_NAMES, { default: 'ztgate-demo' }),
  // No defaults here: what is not set comes from the preset (normalizeIssuers).
  claims: Section(
    {
      nationalId: Type.Optional(NonEmpty()),
      agency: Type.Optional(NonEmpty()),
      roles: Type.Optional(NonEmpty()),
      acr: Type.Optional(NonEmpty()),
      assuranceLevel: Type.Optional(Type.String({ maxLength: 256 })), // '' = the issuer has no level claim
    },
    { default: {} },
  ),
  /** acr / amr / level-claim values → assurance level 0–2; unknown values are 0. Absent: the preset's. */
  assurance: Type.Optional(StringMap(Type.String({ minLength: 1, maxLength: 256 }), AssuranceLevel())),
  /**
   * The level of an access token that carries none of acr, amr or the level claim (LemonLDAP::NG's
   * JWT access tokens carry none). 0, the default, is "unknown"; a higher value is the operator
   * stating that this IdP authenticates no one below it.
   */
  defaultAssuranceLevel: AssuranceLevel({ default: 0 }),
  /** acr_values sent to reach level 1 or 2 (step-up); absent: every acr value the mapping gives that level or above. */
  stepUpAcrValues: Type.Optional(Section({ '1': Type.Optional(AcrValues()), '2': Type.Optional(AcrValues()) })),
  /** RFC 7662 introspection for opaque (non-JWT) access tokens. */
  introspection: Type.Optional(
    Section({
      endpoint: NonEmpty(),
      clientId: NonEmpty(),
      clientSecret: NonEmpty(),
      cacheMaxAgeSeconds: Type.Integer({ minimum: 0, maximum: 3600, default: 60 }),
    }),
  ),
});

/** Browser sign-in (OIDC authorization code flow with PKCE); the redirect URI is `<publicUrl>/.ztgate/auth/callback`. */
const BROWSER_SCHEMA = Section({
  issuer: NonEmpty(),
  clientId: NonEmpty(),
  clientSecret: NonEmpty(),
  scopes: Type.Array(Type.String({ pattern: '^[A-Za-z0-9_.:/-]{1,128}$' }), { minItems: 1, uniqueItems: true, default: ['openid', 'profile'] }),
  resource: Type.Optional(NonEmpty()),
  loginTimeoutSeconds: Type.Integer({ minimum: 60, maximum: 3600, default: 600 }), // 10 min to complete sign-in
  /** The one algorithm accepted on ID tokens and logout tokens. */
  idTokenSigningAlgorithm: Type.Enum(ALLOWED_TOKEN_ALGORITHMS, { default: 'RS256' }), // the OIDC default
  // RFC 6749 §2.3.1 Basic form-encodes the secret; some IdPs (LemonLDAP::NG) compare it raw, so secrets with - _ . ! ~ * ' ( ) fail there: use client_secret_post.
  tokenEndpointAuthMethod: Type.Enum(TOKEN_ENDPOINT_AUTH_METHODS, { default: 'client_secret_basic' }),
  /** PKCS#8 PEM private key for private_key_jwt; its public key is registered at the IdP. */
  clientAssertionKeyFile: Type.Optional(NonEmpty()),
  clientAssertionAlgorithm: Type.Enum(CLIENT_ASSERTION_ALGORITHMS, { default: 'ES256' }),
  /** `kid` of the client assertion header, as registered at the IdP; absent: none sent. */
  clientAssertionKeyId: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  frontchannelLogout: Type.Enum(FRONTCHANNEL_LOGOUT_MODES, { default: 'sid' }),
});

const SESSION_SCHEMA = Section(
  {
    absoluteLifetimeSeconds: Type.Integer({ minimum: 300, maximum: 7 * 86_400, default: 8 * 3600 }), // one working day
    idleTimeoutSeconds: Type.Integer({ minimum: 60, maximum: 86_400, default: 30 * 60 }),
    refreshLockTtlMs: Type.Integer({ minimum: 1000, maximum: 60_000, default: 10_000 }),
    /** 32 random bytes (hex or base64) that encrypt the tokens in session records; absent: derived from identity.browser.clientSecret. */
    encryptionKeyFile: Type.Optional(NonEmpty()),
  },
  { default: {} },
);

const ROSTER_SCHEMA = Section(
  {
    source: Type.Enum(['none', 'file', 'store'], { default: 'none' }),
    file: Type.Optional(NonEmpty()),
  },
  { default: {} },
);

export const IDENTITY_SCHEMA = Section({
  clockSkewSeconds: Type.Integer({ minimum: 0, maximum: 300, default: 30 }),
  jwksCacheMaxAgeMs: Type.Integer({ minimum: 1000, default: 10 * 60_000 }),
  jwksCooldownMs: Type.Integer({ minimum: 100, maximum: 60_000, default: 1000 }),
  jwksTimeoutMs: Type.Integer({ minimum: 100, maximum: 60_000, default: 5_000 }),
  issuers: Type.Array(ISSUER_SCHEMA, { minItems: 1 }),
  browser: Type.Optional(BROWSER_SCHEMA),
  session: SESSION_SCHEMA,
  roster: ROSTER_SCHEMA,
});

const PostureSignerSchema = Section({
  /** Exact `iss` of the posture reports this endpoint-management / EDR signer issues. */
  issuer: NonEmpty(),
  jwks: Type.Optional(Section({ keys: Type.Array(Type.Object({ kty: Type.String() }), { minItems: 1 }) })),
  jwksUri: Type.Optional(NonEmpty()),
  algorithms: Type.Array(Type.String(), { minItems: 1, uniqueItems: true, default: ['ES256'] }),
});

export const DEVICES_SCHEMA = Section(
  {
    proofAlgorithms: Type.Array(Type.Enum(ALLOWED_DEVICE_PROOF_ALGORITHMS), { minItems: 1, uniqueItems: true, default: [...ALLOWED_DEVICE_PROOF_ALGORITHMS] }),
    proofMaxAgeSeconds: Type.Integer({ minimum: 5, maximum: 600, default: 60 }),
    clockSkewSeconds: Type.Integer({ minimum: 0, maximum: 300, default: 10 }),
    postureMaxAgeSeconds: Type.Integer({ minimum: 60, maximum: 7 * 86_400, default: 4 * 3600 }),
    postureSigners: Type.Array(PostureSignerSchema, { default: [] }),
    compliance: Section(
      {
        maxPatchAgeDays: Type.Integer({ minimum: 0, maximum: 365, default: 30 }),
        maxScanAgeDays: Type.Integer({ minimum: 0, maximum: 365, default: 7 }),
        maxRiskScore: Type.Integer({ minimum: 0, maximum: 100, default: 40 }),
        requireDiskEncryption: Type.Boolean({ default: true }),
        requireScreenLock: Type.Boolean({ default: true }),
        requireEdrRunning: Type.Boolean({ default: true }),
      },
      { default: {} },
    ),
    defaultMinTierBySecurityLevel: Section(
      {
        '1': Type.Enum(DEVICE_TIERS, { default: 'unknown' }),
        '2': Type.Enum(DEVICE_TIERS, { default: 'unknown' }),
        '3': Type.Enum(DEVICE_TIERS, { default: 'registered' }),
        '4': Type.Enum(DEVICE_TIERS, { default: 'compliant' }),
        '5': Type.Enum(DEVICE_TIERS, { default: 'compliant' }),
      },
      { default: {} },
    ),
  },
  { default: {} },
);

type IssuerDocument = Static<typeof ISSUER_SCHEMA>;
type ClaimNames = Required<IssuerDocument['claims']>;
/** An issuer as parsed: the audience always a list, claim names and the assurance mapping filled in from the preset. */
export type IssuerConfig = DeepReadonly<Omit<IssuerDocument, 'audience' | 'claims' | 'assurance'> & { audience: string[]; claims: ClaimNames; assurance: Record<string, 0 | 1 | 2> }>;
export type BrowserSignInConfig = DeepReadonly<Static<typeof BROWSER_SCHEMA>>;
export type BrowserClientAuthConfig = Pick<BrowserSignInConfig, 'tokenEndpointAuthMethod' | 'clientAssertionKeyFile' | 'clientAssertionAlgorithm' | 'clientAssertionKeyId' | 'frontchannelLogout'>;
export type IssuerAssuranceConfig = Pick<IssuerConfig, 'defaultAssuranceLevel' | 'stepUpAcrValues'>;
export type SessionConfig = DeepReadonly<Static<typeof SESSION_SCHEMA>>;
export type RosterConfig = DeepReadonly<Static<typeof ROSTER_SCHEMA>>;
export type IdentityConfig = DeepReadonly<Omit<Static<typeof IDENTITY_SCHEMA>, 'issuers'>> & { readonly issuers: readonly IssuerConfig[] };
export type PostureSignerConfig = DeepReadonly<Omit<Static<typeof PostureSignerSchema>, 'jwks'> & { jwks?: { keys: Record<string, unknown>[] } }>;
export type DevicesConfig = DeepReadonly<Omit<Static<typeof DEVICES_SCHEMA>, 'postureSigners'>> & { readonly postureSigners: readonly PostureSignerConfig[] };

/** The document as ajv leaves it (defaults filled in), before the checks below. */
type RawIdentity = Static<typeof IDENTITY_SCHEMA>;
type RawDevices = Static<typeof DEVICES_SCHEMA>;

function checkAlgorithms(problems: string[], at: string, algorithms: readonly string[]): void {
  algorithms.forEach((alg, j) => {
    if (!(ALLOWED_TOKEN_ALGORITHMS as readonly string[]).includes(alg)) {
      problems.push(`${at}.algorithms[${j}]: "${alg}" is not allowed; use asymmetric algorithms only (${ALLOWED_TOKEN_ALGORITHMS.join(', ')})`);
    }
  });
}

/** The issuers' URLs, duplicates and algorithms. */
export function checkIssuers(problems: string[], identity: RawIdentity): void {
  const issuers = new Set<string>();
  identity.issuers.forEach((iss, i) => {
    const at = `identity.issuers[${i}]`;
    checkUrl(problems, `${at}.issuer`, iss.issuer, { requireHttpsUnlessLoopback: true });
    if (iss.jwksUri) checkUrl(problems, `${at}.jwksUri`, iss.jwksUri, { requireHttpsUnlessLoopback: true });
    if (issuers.has(iss.issuer)) problems.push(`${at}.issuer: "${iss.issuer}" is configured twice`);
    issuers.add(iss.issuer);
    checkAlgorithms(problems, at, iss.algorithms);
  });
}

export function checkDevices(problems: string[], devices: RawDevices): void {
  const signers = new Set<string>();
  devices.postureSigners.forEach((signer, i) => {
    const at = `devices.postureSigners[${i}]`;
    if (signers.has(signer.issuer)) problems.push(`${at}.issuer: "${signer.issuer}" is configured twice`);
    signers.add(signer.issuer);
    if (!signer.jwks === !signer.jwksUri) problems.push(`${at}: set exactly one of jwks (the keys) or jwksUri (where to fetch them)`);
    if (signer.jwksUri) checkUrl(problems, `${at}.jwksUri`, signer.jwksUri, { requireHttpsUnlessLoopback: true });
    signer.jwks?.keys.forEach((key: Record<string, unknown>, j) => {
      if (key.d !== undefined || key.k !== undefined) problems.push(`${at}.jwks.keys[${j}]: is a private or symmetric key; configure the signer's public keys only`);
    });
    checkAlgorithms(problems, at, signer.algorithms);
  });
}

/** Introspection, browser sign-in, session and roster rules; `publicUrl` is where browsers reach the gateway. */
export function checkIdentity(problems: string[], identity: RawIdentity, publicUrl: string): void {
  const introspecting = identity.issuers.filter((iss) => iss.introspection);
  // An opaque token names no issuer: with two introspecting issuers it would be sent to both.
  if (introspecting.length > 1) problems.push('identity.issuers: at most one issuer may have introspection (an opaque token cannot say which issuer it is from)');
  identity.issuers.forEach((iss, i) => {
    if (iss.introspection) checkUrl(problems, `identity.issuers[${i}].introspection.endpoint`, iss.introspection.endpoint, { requireHttpsUnlessLoopback: true });
  });
  const browser = identity.browser;
  if (browser) {
    if (!identity.issuers.some((iss) => iss.issuer === browser.issuer)) {
      problems.push(`identity.browser.issuer: "${browser.issuer}" must also be listed in identity.issuers (its access tokens are verified like any other)`);
    }
    if (!browser.scopes.includes('openid')) problems.push('identity.browser.scopes: must include "openid"');
    let url: URL | undefined;
    try {
      url = new URL(publicUrl);
    } catch {}
    if (url && url.protocol === 'http:' && !isLoopback(url.hostname)) {
      problems.push('identity.browser: needs an https publicUrl (session cookies are Secure); plain http is accepted only on a loopback address');
    }
  }
  const session = identity.session;
  if (session.idleTimeoutSeconds > session.absoluteLifetimeSeconds) {
    problems.push('identity.session.idleTimeoutSeconds: must not exceed absoluteLifetimeSeconds');
  }
  const roster = identity.roster;
  if (roster.source === 'file' && !roster.file) problems.push('identity.roster.file: required when identity.roster.source is "file"');
  if (roster.source !== 'file' && roster.file) problems.push(`identity.roster.file: set, but identity.roster.source is "${roster.source}"; set source: file to use it`);
  if (roster.file && !/\.(csv|json)$/i.test(roster.file)) problems.push('identity.roster.file: must be a .csv or .json file');
}

/** The session key is read now, so a wrong file stops the start rather than the first sign-in. */
export function checkSessionKeyFile(identity: RawIdentity, baseDir: string): string[] {
  const file = identity.session.encryptionKeyFile;
  if (!file) return [];
  const problem = sessionKeyFileProblem(isAbsolute(file) ? file : resolve(baseDir, file));
  return problem ? [`identity.session.encryptionKeyFile: ${problem}`] : [];
}

/** The private_key_jwt key is read now too. */
export function checkBrowserClientFiles(identity: RawIdentity, baseDir: string): string[] {
  const browser = identity.browser;
  if (!browser) return [];
  const problems: string[] = [];
  checkBrowserClientAuth(problems, 'identity.browser', { ...browser, clientAssertionKeyFile: browser.clientAssertionKeyFile && resolve(baseDir, browser.clientAssertionKeyFile) });
  return problems;
}

/** Cross-field checks of the browser client authentication; `at` names the section in messages. */
export function checkBrowserClientAuth(problems: string[], at: string, browser: BrowserClientAuthConfig, readKey: (path: string) => string = (p) => readFileSync(p, 'utf8')): void {
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

/** The checked document as the program reads it: audiences as lists, claim names and levels from the preset, file paths absolute. */
export function normalizeIdentity(identity: RawIdentity, abs: (path: string) => string): IdentityConfig {
  const issuers = identity.issuers.map((iss): IssuerConfig => {
    const preset = CLAIMS_PRESETS[iss.claimsPreset as ClaimsPresetName];
    return { ...iss, audience: typeof iss.audience === 'string' ? [iss.audience] : iss.audience, claims: { ...preset.claims, ...iss.claims }, assurance: iss.assurance ?? { ...preset.assurance } };
  });
  const roster = identity.roster.file ? { ...identity.roster, file: abs(identity.roster.file) } : identity.roster;
  const session = identity.session.encryptionKeyFile ? { ...identity.session, encryptionKeyFile: abs(identity.session.encryptionKeyFile) } : identity.session;
  const browser = identity.browser?.clientAssertionKeyFile ? { ...identity.browser, clientAssertionKeyFile: abs(identity.browser.clientAssertionKeyFile) } : identity.browser;
  return { ...identity, issuers, roster, session, ...(browser ? { browser } : {}) };
}
