/**
 * The embedded demo identity provider: a real OpenID Provider (`oidc-provider`) whose accounts are
 * the synthetic officials of demo/officials.json (DỮ LIỆU GIẢ LẬP — SYNTHETIC DEMO DATA).
 *
 * It stands in for the national digital identity system (VNeID) in demos and tests: officials sign
 * in with their 12-digit personal identification number (số định danh cá nhân) and every access
 * token is an RFC 9068 JWT signed ES256 for the data audience. Signing keys and cookie keys are
 * generated at start and live only as long as the instance.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { demoFile } from './paths.js';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { isLoopback } from '../gateway/config.js';
import { isNationalId } from '../core/national-id.js';

export const DEMO_CLI_CLIENT_ID = 'ztgate-cli';
/** RFC 8252 §7.3 loopback redirect; never listened on (the token client stops at the redirect). */
export const DEMO_CLI_REDIRECT_URI = 'http://127.0.0.1/callback';
export const DEMO_GATEWAY_CLIENT_ID = 'ztgate-gateway';
export const DEMO_GATEWAY_CLIENT_SECRET = 'demo-gateway-secret-not-for-production';
export const DEMO_DEFAULT_AUDIENCE = 'urn:ztgate:data';

/** Header set on refused logins so that scripted clients need not parse the HTML. */
export const DEMO_LOGIN_ERROR_HEADER = 'x-ztgate-demo-login-error';

/** Assurance level of the electronic identity (mức độ 1 / mức độ 2 of VNeID). */
export type AssuranceLevel = 1 | 2;
export type DemoAcr = 'vneid-level-1' | 'vneid-level-2';

export interface DemoOfficial {
  /** 12-digit personal identification number (số định danh cá nhân); the `sub`. */
  nationalId: string;
  name: string;
  agency: string;
  unit: string;
  position: string;
  roles: string[];
  clearance: string;
  assuranceLevel: AssuranceLevel;
  /** Only `active` officials can sign in. */
  status: string;
}

export interface DemoOfficialsFile {
  /** The one password shared by every synthetic account. */
  password: string;
  officials: DemoOfficial[];
}

export type DemoLoginRefusal = 'invalid-national-id' | 'unknown-official' | 'wrong-password' | 'account-inactive';

export interface DemoIdpOptions {
  host?: string; // default 127.0.0.1
  port?: number; // 0 = random
  audience?: string; // default 'urn:ztgate:data'
  officialsFile?: string; // default <repo root>/demo/officials.json
  accessTokenTtlSeconds?: number; // default 600 (10 min)
  /** Registering ztgate-gateway needs at least one redirect URI; without one it is not registered. */
  gatewayRedirectUris?: string[]; // default []
  postLogoutRedirectUris?: string[]; // default [], for ztgate-gateway
  /** OpenID Connect Back-Channel Logout 1.0 endpoint of ztgate-gateway. */
  gatewayBackchannelLogoutUri?: string;
  /** Issue opaque access tokens (checked by RFC 7662 introspection) instead of JWTs. */
  opaqueAccessTokens?: boolean; // default false
  /** How ztgate-gateway authenticates at the token endpoint; private_key_jwt needs its public keys. */
  gatewayTokenEndpointAuth?: { method: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt'; jwks?: { keys: Record<string, unknown>[] } };
}

export interface DemoIdp {
  issuer: string; // e.g. http://127.0.0.1:PORT
  audience: string;
  officials: DemoOfficial[];
  close(): Promise<void>;
}

export function acrForAssuranceLevel(level: AssuranceLevel): DemoAcr {
  return level === 2 ? 'vneid-level-2' : 'vneid-level-1';
}

export function defaultOfficialsFile(): string {
  return demoFile('officials.json');
}

export async function readDemoOfficials(file: string = defaultOfficialsFile()): Promise<DemoOfficialsFile> {
  const raw: unknown = JSON.parse(await readFile(file, 'utf8'));
  const fail = (what: string): never => {
    throw new TypeError(`${file}: ${what}`);
  };
  if (!isRecord(raw)) return fail('expected a JSON object');
  if (typeof raw.password !== 'string' || raw.password === '') fail('"password" must be a non-empty string');
  if (!Array.isArray(raw.officials)) return fail('"officials" must be an array');
  const seen = new Set<string>();
  const officials = raw.officials.map((entry: unknown, i): DemoOfficial => {
    const at = `officials[${i}]`;
    if (!isRecord(entry)) return fail(`${at} must be an object`);
    const str = (key: string): string => {
      const value = entry[key];
      return typeof value === 'string' && value !== '' ? value : fail(`${at}.${key} must be a non-empty string`);
    };
    const nationalId = str('nationalId');
    if (!isNationalId(nationalId)) fail(`${at}.nationalId must be 12 digits`);
    if (seen.has(nationalId)) fail(`${at}.nationalId ${nationalId} is duplicated`);
    seen.add(nationalId);
    const { roles, assuranceLevel } = entry;
    if (!Array.isArray(roles) || !roles.every((r) => typeof r === 'string' && r !== '')) {
      fail(`${at}.roles must be an array of strings`);
    }
    if (assuranceLevel !== 1 && assuranceLevel !== 2) fail(`${at}.assuranceLevel must be 1 or 2`);
    return {
      nationalId,
      name: str('name'),
      agency: str('agency'),
      unit: str('unit'),
      position: str('position'),
      roles: [...(roles as string[])],
      clearance: str('clearance'),
      assuranceLevel: assuranceLevel as AssuranceLevel,
      status: str('status'),
    };
  });
  return { password: raw.password as string, officials };
}

// ---------------------------------------------------------------------------------------------
// The slice of oidc-provider's API used here. The package ships no type declarations.

interface OidcInteraction {
  uid: string;
  prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
  params: Record<string, unknown>;
  session?: { accountId?: string };
  grantId?: string;
}

interface OidcGrant {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  addResourceScope(resource: string, scope: string): void;
  save(): Promise<string>;
}

interface OidcProvider {
  callback(): (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<OidcInteraction>;
  interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, opts?: { mergeWithLastSubmission?: boolean }): Promise<void>;
  Grant: {
    new (init: { accountId: string; clientId: string }): OidcGrant;
    find(id: string): Promise<OidcGrant | undefined>;
  };
}

interface OidcProviderModule {
  default: new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;
  errors: {
    SessionNotFound: new (...args: never[]) => Error;
    InvalidTarget: new (description?: string) => Error;
  };
}

interface OidcContext {
  oidc: {
    entities: {
      AuthorizationCode?: { authTime?: number };
      RefreshToken?: { authTime?: number };
    };
    client?: { clientId: string; clientName?: string };
  };
  host: string;
  type: string;
  body: unknown;
}

interface OidcToken {
  kind: string;
  accountId?: string;
}

// ---------------------------------------------------------------------------------------------

export async function startDemoIdp(opts: DemoIdpOptions = {}): Promise<DemoIdp> {
  const host = opts.host ?? '127.0.0.1';
  const audience = opts.audience ?? DEMO_DEFAULT_AUDIENCE;
  const accessTokenTTL = opts.accessTokenTtlSeconds ?? 10 * 60; // 10 min
  const directory = await readDemoOfficials(opts.officialsFile ?? defaultOfficialsFile());
  const byId = new Map(directory.officials.map((o) => [o.nationalId, o]));

  // Loaded lazily so that importing this module (e.g. for the officials) does not load the OP.
  // @ts-expect-error -- oidc-provider ships no type declarations; OidcProviderModule types the slice used.
  const oidc = (await import('oidc-provider')) as OidcProviderModule;
  const { default: Provider, errors } = oidc;

  let handle: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const server = createServer((req, res) => {
    if (handle) handle(req, res);
    else {
      res.statusCode = 503;
      res.end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });

  try {
    const { port } = server.address() as AddressInfo;
    const issuer = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

    const clients: Record<string, unknown>[] = [
      {
        client_id: DEMO_CLI_CLIENT_ID,
        client_name: 'ztgate CLI',
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [DEMO_CLI_REDIRECT_URI],
      },
    ];
    if (opts.gatewayRedirectUris?.length) {
      clients.push({
        client_id: DEMO_GATEWAY_CLIENT_ID,
        client_secret: DEMO_GATEWAY_CLIENT_SECRET,
        client_name: 'ztgate gateway',
        application_type: 'web',
        token_endpoint_auth_method: opts.gatewayTokenEndpointAuth?.method ?? 'client_secret_basic',
        ...(opts.gatewayTokenEndpointAuth?.jwks ? { jwks: opts.gatewayTokenEndpointAuth.jwks } : {}),
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [...opts.gatewayRedirectUris],
        post_logout_redirect_uris: [...(opts.postLogoutRedirectUris ?? [])],
        ...(opts.gatewayBackchannelLogoutUri ? { backchannel_logout_uri: opts.gatewayBackchannelLogoutUri, backchannel_logout_session_required: true } : {}),
      });
    }
    // Every demo client is first-party: consent is granted on the official's behalf.
    const firstParty = new Set(clients.map((c) => c.client_id as string));

    const activeOfficial = (accountId: string | undefined): DemoOfficial | undefined => {
      const official = accountId === undefined ? undefined : byId.get(accountId);
      return official?.status === 'active' ? official : undefined;
    };

    const provider = new Provider(issuer, {
      clients,
      jwks: { keys: await generateSigningKeys() },
      cookies: {
        keys: [randomBytes(32).toString('base64url'), randomBytes(32).toString('base64url')],
      },
      acrValues: ['vneid-level-1', 'vneid-level-2'],
      scopes: ['openid', 'offline_access', 'profile'],
      claims: {
        acr: null,
        auth_time: null,
        iss: null,
        sid: null,
        // Always on the ID token, not only when requested: the gateway's policy reads them.
        openid: ['sub', 'acr', 'amr', 'auth_time'],
        profile: ['name', 'national_id', 'agency', 'unit', 'position', 'roles'],
      },
      // A suspended official has no account: no new tokens, refresh or userinfo for them.
      async findAccount(_ctx: unknown, sub: string) {
        const official = activeOfficial(sub);
        if (!official) return undefined;
        return {
          accountId: official.nationalId,
          async claims() {
            return {
              sub: official.nationalId,
              name: official.name,
              national_id: official.nationalId,
              agency: official.agency,
              unit: official.unit,
              position: official.position,
              roles: [...official.roles],
            };
          },
        };
      },
      // RFC 9068 §2.2: claims the resource server needs, on access tokens only.
      async extraTokenClaims(ctx: OidcContext | undefined, token: OidcToken) {
        if (token.kind !== 'AccessToken') return undefined;
        const official = activeOfficial(token.accountId);
        if (!official) return undefined;
        const { AuthorizationCode, RefreshToken } = ctx?.oidc.entities ?? {};
        const authTime = AuthorizationCode?.authTime ?? RefreshToken?.authTime;
        return {
          national_id: official.nationalId,
          agency: official.agency,
          roles: [...official.roles],
          acr: acrForAssuranceLevel(official.assuranceLevel),
          ...(authTime !== undefined ? { auth_time: authTime } : {}),
        };
      },
      features: {
        devInteractions: { enabled: false },
        revocation: { enabled: true },
        // RFC 7662, for the gateway to check opaque access tokens.
        introspection: { enabled: true },
        backchannelLogout: { enabled: true },
        rpInitiatedLogout: {
          enabled: true,
          logoutSource: async (ctx: OidcContext, form: string) => {
            ctx.type = 'html';
            ctx.body = logoutPage(ctx.host, form);
          },
          postLogoutSuccessSource: async (ctx: OidcContext) => {
            ctx.type = 'html';
            ctx.body = postLogoutPage(ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId);
          },
        },
        resourceIndicators: {
          enabled: true,
          // Requests without `resource` are for the data audience (RFC 8707 §2).
          defaultResource: async () => audience,
          useGrantedResource: async () => true,
          getResourceServerInfo: async (_ctx: unknown, resourceIndicator: string) => {
            if (resourceIndicator !== audience) throw new errors.InvalidTarget();
            return {
              scope: 'openid data',
              audience,
              accessTokenFormat: opts.opaqueAccessTokens ? 'opaque' : 'jwt',
              accessTokenTTL,
              jwt: { sign: { alg: 'ES256' } },
            };
          },
        },
      },
      // The gateway's browser sessions refresh their tokens without offline_access: such refresh
      // tokens end with the IdP session. Rotated on every use, so a replayed one is caught.
      async issueRefreshToken(_ctx: unknown, client: { clientId: string; grantTypeAllowed(type: string): boolean }, code: { scopes: Set<string> }) {
        return client.grantTypeAllowed('refresh_token') && (code.scopes.has('offline_access') || client.clientId === DEMO_GATEWAY_CLIENT_ID);
      },
      rotateRefreshToken(ctx: { oidc: { entities: { Client?: { clientId: string; clientAuthMethod: string }; RefreshToken?: { ttlPercentagePassed(): number } } } }) {
        const { Client: client, RefreshToken: refreshToken } = ctx.oidc.entities;
        return client?.clientId === DEMO_GATEWAY_CLIENT_ID || client?.clientAuthMethod === 'none' || (refreshToken?.ttlPercentagePassed() ?? 0) >= 70;
      },
      pkce: { required: () => true },
      responseTypes: ['code'], // code flow only: no implicit or hybrid tokens in the front channel
      interactions: { url: async (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
      ttl: {
        AccessToken: accessTokenTTL,
        AuthorizationCode: 60, // 1 min
        IdToken: 10 * 60, // 10 min
        Interaction: 10 * 60, // 10 min
        Session: 8 * 60 * 60, // 8 h, one working day
        Grant: 8 * 60 * 60, // 8 h
        RefreshToken: 8 * 60 * 60, // 8 h
      },
      // oidc-provider refuses outgoing requests to special-use addresses (SSRF guard), loopback included;
      // the demo's gateway (back-channel logout) lives on loopback, so only loopback targets skip the guard.
      fetch: (url: string | URL, options: RequestInit & { dispatcher?: unknown }) => {
        const { hostname } = new URL(url);
        if (!isLoopback(hostname)) return globalThis.fetch(url, options);
        const { dispatcher: _guard, ...rest } = options;
        return globalThis.fetch(url, rest);
      },
      clientBasedCORS: () => false,
      renderError: async (ctx: OidcContext, out: Record<string, unknown>) => {
        ctx.type = 'html';
        ctx.body = errorPage(
          'Yêu cầu không hợp lệ',
          'Invalid request',
          Object.entries(out).map(([k, v]) => `${k}: ${String(v)}`),
        );
      },
    });

    // A back-channel logout the gateway refused would otherwise go unnoticed.
    (provider as unknown as { on(event: string, fn: (...args: unknown[]) => void): void }).on('backchannel.error', (_ctx, err) => {
      console.error(`demo idp: back-channel logout failed: ${(err as Error).message}`, (err as Error).cause);
    });
    const providerCallback = provider.callback();
    const interactions = createInteractionHandler({
      provider,
      errors,
      directory,
      byId,
      firstParty,
    });
    handle = (req, res) => {
      const { pathname } = new URL(req.url ?? '/', issuer);
      if (pathname === '/interaction' || pathname.startsWith('/interaction/')) {
        interactions(req, res, pathname).catch((err: unknown) => {
          console.error('demo idp: interaction failed', err);
          if (!res.headersSent) sendHtml(res, 500, errorPage('Lỗi máy chủ', 'Server error', []));
          else res.destroy();
        });
      } else {
        void providerCallback(req, res);
      }
    };

    return {
      issuer,
      audience,
      officials: directory.officials.map((o) => ({ ...o, roles: [...o.roles] })),
      close: () => closeServer(server),
    };
  } catch (err) {
    await closeServer(server);
    throw err;
  }
}

async function generateSigningKeys(): Promise<JWK[]> {
  const make = async (alg: 'ES256' | 'RS256'): Promise<JWK> => {
    const { privateKey } = await generateKeyPair(alg, { extractable: true });
    const jwk = await exportJWK(privateKey);
    // RFC 7638 thumbprint as kid: stable for the key, unique across instances.
    return { ...jwk, alg, use: 'sig', kid: await calculateJwkThumbprint(jwk) };
  };
  // ES256 signs access tokens; RS256 stays for ID tokens (the OIDC default alg clients expect).
  return [await make('ES256'), await make('RS256')];
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close((err) => (err ? reject(err) : resolve()));
    // Keep-alive sockets from fetch clients would otherwise hold close() open.
    server.closeAllConnections();
  });
}

// ---------------------------------------------------------------------------------------------
// Interactions: the login page, and consent auto-granted for first-party clients.

interface InteractionDeps {
  provider: OidcProvider;
  errors: OidcProviderModule['errors'];
  directory: DemoOfficialsFile;
  byId: Map<string, DemoOfficial>;
  firstParty: Set<string>;
}

const MAX_FORM_BYTES = 16 * 1024; // 16 KiB

function createInteractionHandler(deps: InteractionDeps) {
  const { provider, errors, directory, byId, firstParty } = deps;

  const authenticate = (username: string, password: string): { official: DemoOfficial } | { refusal: DemoLoginRefusal; status: number; official?: DemoOfficial } => {
    if (!isNationalId(username)) return { refusal: 'invalid-national-id', status: 401 };
    const official = byId.get(username);
    if (!official) return { refusal: 'unknown-official', status: 401 };
    if (!samePassword(password, directory.password)) return { refusal: 'wrong-password', status: 401 };
    if (official.status !== 'active') return { refusal: 'account-inactive', status: 403, official };
    return { official };
  };

  const details = async (req: IncomingMessage, res: ServerResponse, uid: string) => {
    try {
      const interaction = await provider.interactionDetails(req, res);
      if (interaction.uid !== uid) return undefined;
      return interaction;
    } catch (err) {
      if (err instanceof errors.SessionNotFound) return undefined;
      throw err;
    }
  };

  const expired = (res: ServerResponse) => sendHtml(res, 400, errorPage('Phiên đăng nhập không tồn tại hoặc đã hết hạn. Hãy bắt đầu lại từ ứng dụng.', 'The sign-in session does not exist or has expired. Start again from the application.', []));

  return async (req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> => {
    const match = /^\/interaction\/([A-Za-z0-9_-]{1,64})(\/login|\/abort)?$/.exec(pathname);
    if (!match) {
      sendHtml(res, 404, errorPage('Không tìm thấy trang', 'Not found', []));
      return;
    }
    const uid = match[1] as string;
    const action = match[2];
    const method = req.method ?? 'GET';

    if (action === undefined) {
      if (method !== 'GET' && method !== 'HEAD') return methodNotAllowed(res, 'GET, HEAD');
      const interaction = await details(req, res, uid);
      if (!interaction) return expired(res);
      if (interaction.prompt.name === 'login') {
        sendHtml(res, 200, loginPage({ uid, directory }));
        return;
      }
      if (interaction.prompt.name === 'consent') return autoConsent(req, res, interaction);
      sendHtml(res, 400, errorPage('Yêu cầu không được hỗ trợ', 'Unsupported prompt', [interaction.prompt.name]));
      return;
    }

    if (method !== 'POST') return methodNotAllowed(res, 'POST');
    const interaction = await details(req, res, uid);
    if (!interaction) return expired(res);

    if (action === '/abort') {
      await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'End-User aborted interaction' }, { mergeWithLastSubmission: false });
      return;
    }

    if (interaction.prompt.name !== 'login') {
      sendHtml(res, 400, errorPage('Bước đăng nhập không còn hiệu lực', 'This sign-in step is no longer valid', []));
      return;
    }
    const form = await readForm(req);
    if (!form) {
      sendHtml(res, 400, errorPage('Biểu mẫu không hợp lệ', 'Malformed form submission', []));
      return;
    }
    const username = (form.get('username') ?? '').trim();
    const outcome = authenticate(username, form.get('password') ?? '');
    if ('refusal' in outcome) {
      res.setHeader(DEMO_LOGIN_ERROR_HEADER, outcome.refusal);
      sendHtml(res, outcome.status, loginPage({ uid, directory, username, error: { refusal: outcome.refusal, status: outcome.official?.status } }));
      return;
    }
    const { official } = outcome;
    await provider.interactionFinished(
      req,
      res,
      {
        login: {
          accountId: official.nationalId,
          acr: acrForAssuranceLevel(official.assuranceLevel),
          amr: ['pwd'],
        },
      },
      { mergeWithLastSubmission: false },
    );
  };

  async function autoConsent(req: IncomingMessage, res: ServerResponse, interaction: OidcInteraction) {
    const clientId = interaction.params.client_id;
    const accountId = interaction.session?.accountId;
    if (typeof clientId !== 'string' || !firstParty.has(clientId) || accountId === undefined) {
      sendHtml(res, 403, errorPage('Ứng dụng không được phép truy cập', 'This application may not be granted access', []));
      return;
    }
    const { details } = interaction.prompt;
    const grant = (interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined) ?? new provider.Grant({ accountId, clientId });
    const missingOIDCScope = details.missingOIDCScope as string[] | undefined;
    const missingOIDCClaims = details.missingOIDCClaims as string[] | undefined;
    const missingResourceScopes = details.missingResourceScopes as Record<string, string[]> | undefined;
    if (missingOIDCScope?.length) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims?.length) grant.addOIDCClaims(missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
}

function samePassword(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    req.resume();
    return undefined;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) return undefined;
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  res.setHeader('allow', allow);
  sendHtml(res, 405, errorPage('Phương thức không được hỗ trợ', 'Method not allowed', []));
}

// ---------------------------------------------------------------------------------------------
// HTML. Self-contained: no external CSS, fonts or scripts; the only style block is hash-pinned.

const STYLE = [
  'body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d2433}',
  'main{max-width:760px;margin:24px auto;padding:0 16px}',
  '.card{background:#fff;border-radius:6px;box-shadow:0 1px 3px rgba(0,0,0,.15);padding:20px 24px;margin-bottom:16px}',
  'h1{font-size:1.4em;margin:0 0 4px}h2{font-size:1.1em;margin:0 0 8px}',
  '.en{display:block;font-size:.8em;color:#5b6578;font-weight:normal}',
  '.banner{background:#fff4ce;border:2px solid #c98a00;color:#6b4800;font-weight:bold;padding:8px 12px;border-radius:4px;text-align:center;margin-bottom:16px}',
  '.error{background:#fde7e9;border:1px solid #c50f1f;color:#8a0a15;padding:8px 12px;border-radius:4px;margin-bottom:12px}',
  'label{display:block;margin:12px 0 4px;font-weight:600}',
  'input{width:100%;box-sizing:border-box;padding:8px;font-size:1em;border:1px solid #8a94a6;border-radius:4px}',
  'button{margin-top:16px;padding:10px 18px;font-size:1em;border:0;border-radius:4px;background:#b3261e;color:#fff;cursor:pointer}',
  'button.secondary{background:#5b6578}',
  'table{border-collapse:collapse;width:100%;font-size:.9em}th,td{text-align:left;padding:6px;border-bottom:1px solid #e1e4ea;vertical-align:top}',
  'code{font-size:1em}',
].join('');
const STYLE_HASH = createHash('sha256').update(STYLE).digest('base64');
const CSP = `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; base-uri 'none'; frame-ancestors 'none'`;

function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function bilingual(vi: string, en: string): string {
  return `${escapeHtml(vi)}<span class="en" lang="en">${escapeHtml(en)}</span>`;
}

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body><main>
<div class="banner">DỮ LIỆU GIẢ LẬP / SYNTHETIC DEMO DATA</div>
${body}
</main></body>
</html>`;
}

function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.statusCode = status;
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  res.setHeader('content-security-policy', CSP);
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('referrer-policy', 'no-referrer');
  res.end(html);
}

const REFUSAL_TEXT: Record<DemoLoginRefusal, (status?: string) => [vi: string, en: string]> = {
  'invalid-national-id': () => ['Số định danh cá nhân phải gồm đúng 12 chữ số.', 'The personal identification number must be exactly 12 digits.'],
  'unknown-official': () => ['Không tìm thấy cán bộ có số định danh này.', 'No official has this personal identification number.'],
  'wrong-password': () => ['Mật khẩu không đúng.', 'Wrong password.'],
  'account-inactive': (status) => [`Tài khoản đang ở trạng thái "${status ?? ''}" nên không được đăng nhập.`, `This account is "${status ?? ''}" and cannot sign in.`],
};

function loginPage(input: { uid: string; directory: DemoOfficialsFile; username?: string; error?: { refusal: DemoLoginRefusal; status?: string | undefined } }): string {
  const { uid, directory, username, error } = input;
  const errorBlock = error ? `<div class="error" role="alert" data-error="${escapeHtml(error.refusal)}">${bilingual(...REFUSAL_TEXT[error.refusal](error.status))}</div>` : '';
  const rows = directory.officials
    .map(
      (o) => `<tr>
<td><code>${escapeHtml(o.nationalId)}</code></td>
<td>${escapeHtml(o.name)}<span class="en">${escapeHtml(o.position)}, ${escapeHtml(o.unit)}</span></td>
<td>${escapeHtml(o.agency)}</td>
<td>${o.roles.map((r) => `<code>${escapeHtml(r)}</code>`).join(', ')}</td>
<td>${escapeHtml(acrForAssuranceLevel(o.assuranceLevel))}</td>
<td>${escapeHtml(o.status)}</td>
</tr>`,
    )
    .join('\n');
  const action = `/interaction/${encodeURIComponent(uid)}`;
  return page(
    'Đăng nhập cán bộ — Official sign-in',
    `<div class="card">
<h1>${bilingual('Đăng nhập cán bộ, công chức', 'Official sign-in')}</h1>
<p>${bilingual('Hệ thống định danh giả lập thay cho VNeID trong môi trường trình diễn. Không dùng cho dữ liệu thật.', 'A simulated identity provider standing in for VNeID in demos. Never use it with real data.')}</p>
${errorBlock}
<form method="post" action="${escapeHtml(`${action}/login`)}" id="login-form" autocomplete="off">
<label for="username">${bilingual('Số định danh cá nhân (12 chữ số)', 'Personal identification number (12 digits)')}</label>
<input id="username" name="username" inputmode="numeric" pattern="[0-9]{12}" maxlength="12" required autofocus value="${escapeHtml(username ?? '')}">
<label for="password">${bilingual('Mật khẩu', 'Password')}</label>
<input id="password" name="password" type="password" required>
<button type="submit">Đăng nhập / Sign in</button>
</form>
<form method="post" action="${escapeHtml(`${action}/abort`)}">
<button type="submit" class="secondary">Hủy / Cancel</button>
</form>
</div>
<div class="card">
<h2>${bilingual('Tài khoản giả lập — DỮ LIỆU GIẢ LẬP', 'Synthetic accounts — SYNTHETIC DEMO DATA')}</h2>
<p>${bilingual('Mọi tên, số định danh và đơn vị đều là giả lập; không thuộc về người thật.', 'Every name, ID and unit is synthetic and belongs to no real person.')}</p>
<p>${escapeHtml('Mật khẩu chung cho mọi tài khoản giả lập:')} <code>${escapeHtml(directory.password)}</code><span class="en" lang="en">Shared password of every synthetic account</span></p>
<table>
<thead><tr><th>Số định danh<span class="en">National ID</span></th><th>Họ tên<span class="en">Name</span></th><th>Cơ quan<span class="en">Agency</span></th><th>Vai trò<span class="en">Roles</span></th><th>Mức định danh<span class="en">Assurance</span></th><th>Trạng thái<span class="en">Status</span></th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
</div>`,
  );
}

function errorPage(vi: string, en: string, details: string[]): string {
  const list = details.length ? `<ul>${details.map((d) => `<li><code>${escapeHtml(d)}</code></li>`).join('')}</ul>` : '';
  return page('Lỗi — Error', `<div class="card"><h1>${bilingual(vi, en)}</h1>${list}</div>`);
}

function logoutPage(host: string, form: string): string {
  // `form` is oidc-provider's own markup (hidden xsrf field), inserted as is.
  return page(
    'Đăng xuất — Sign out',
    `<div class="card">
<h1>${bilingual(`Đăng xuất khỏi ${host}?`, `Sign out from ${host}?`)}</h1>
${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Đăng xuất / Sign out</button>
<button type="submit" class="secondary" form="op.logoutForm">Ở lại / Stay signed in</button>
</div>`,
  );
}

function postLogoutPage(client: string | undefined): string {
  return page('Đã đăng xuất — Signed out', `<div class="card"><h1>${bilingual(client ? `Đã đăng xuất khỏi ${client}.` : 'Đã đăng xuất.', client ? `You have signed out of ${client}.` : 'You have signed out.')}</h1></div>`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
