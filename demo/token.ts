/**
 * Obtain a real access token for a demo official from the demo IdP, through the standard
 * authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636), as the public client ztgate-cli.
 *
 * The browser part (authorization request → login form → redirects) is driven with `fetch`; the
 * token is minted by the IdP and nowhere else. Only the IdP's own origin ever receives cookies or
 * credentials, and the flow stops at the loopback redirect without calling it.
 */
import * as client from 'openid-client';
import { isLoopback } from '../gateway/config.js';
import { DEMO_CLI_CLIENT_ID, DEMO_CLI_REDIRECT_URI, DEMO_LOGIN_ERROR_HEADER, readDemoOfficials, type DemoLoginRefusal } from './idp.js';

export interface ObtainDemoTokenOptions {
  issuer: string;
  nationalId: string;
  password?: string; // default: the shared password of demo/officials.json
  resource?: string; // RFC 8707 resource indicator; default: the IdP's data audience
  scope?: string; // default 'openid profile'
}

export interface DemoTokenResponse {
  access_token: string;
  id_token?: string;
  refresh_token?: string;
  expires_in?: number;
  token_type: string;
}

export type DemoTokenErrorCode =
  /** The IdP refused the official's sign-in; `reason` says why. */
  | 'ERR_DEMO_LOGIN_REFUSED'
  /** The flow went somewhere it should not: unexpected status, redirect or page. */
  | 'ERR_DEMO_FLOW'
  /** The issuer is plain http on a non-loopback host. */
  | 'ERR_DEMO_INSECURE_ISSUER'
  /** Discovery, the authorization response or the token request failed at the OAuth layer. */
  | 'ERR_DEMO_TOKEN_EXCHANGE';

export class DemoTokenError extends Error {
  override name = 'DemoTokenError';
  readonly code: DemoTokenErrorCode;
  /** For ERR_DEMO_LOGIN_REFUSED: why the IdP refused the sign-in. */
  readonly reason: DemoLoginRefusal | undefined;
  /** HTTP status of the response that ended the flow, when there was one. */
  readonly status: number | undefined;

  constructor(code: DemoTokenErrorCode, message: string, extra: { reason?: DemoLoginRefusal; status?: number; cause?: unknown } = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.code = code;
    this.reason = extra.reason;
    this.status = extra.status;
  }
}

const MAX_REDIRECTS = 10;
const REFUSAL_MESSAGES: Record<DemoLoginRefusal, string> = {
  'invalid-national-id': 'the national ID must be exactly 12 digits',
  'unknown-official': 'no demo official has this national ID',
  'wrong-password': 'wrong password',
  'account-inactive': 'the official is not active (e.g. suspended) and may not sign in',
};

export async function obtainDemoToken(opts: ObtainDemoTokenOptions): Promise<DemoTokenResponse> {
  const issuerUrl = new URL(opts.issuer);
  const insecure = issuerUrl.protocol === 'http:';
  if (insecure && !isLoopback(issuerUrl.hostname)) {
    throw new DemoTokenError('ERR_DEMO_INSECURE_ISSUER', `issuer ${issuerUrl.href} uses http on a non-loopback host; https is required`);
  }
  if (issuerUrl.protocol !== 'http:' && issuerUrl.protocol !== 'https:') {
    throw new DemoTokenError('ERR_DEMO_INSECURE_ISSUER', `issuer ${issuerUrl.href} is not an http(s) URL`);
  }
  const password = opts.password ?? (await readDemoOfficials()).password;
  const scope = opts.scope ?? 'openid profile';

  let config: client.Configuration;
  try {
    config = await client.discovery(issuerUrl, DEMO_CLI_CLIENT_ID, undefined, client.None(), insecure ? { execute: [client.allowInsecureRequests] } : undefined);
  } catch (cause) {
    throw new DemoTokenError('ERR_DEMO_TOKEN_EXCHANGE', `discovery at ${issuerUrl.href} failed: ${errorText(cause)}`, {
      cause,
    });
  }

  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const params: Record<string, string> = {
    redirect_uri: DEMO_CLI_REDIRECT_URI,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  };
  if (opts.resource !== undefined) params.resource = opts.resource;
  // OIDC Core §11: offline_access is ignored unless consent is prompted for (granted by the IdP).
  if (scope.split(' ').includes('offline_access')) params.prompt = 'consent';
  const authorizationUrl = client.buildAuthorizationUrl(config, params);

  const browser = new Browser(new URL(authorizationUrl.origin));
  const callbackUrl = await signIn(browser, authorizationUrl, opts.nationalId, password);

  try {
    const tokens = await client.authorizationCodeGrant(config, callbackUrl, {
      pkceCodeVerifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: scope.split(' ').includes('openid'),
    });
    return {
      access_token: tokens.access_token,
      token_type: tokens.token_type,
      ...(tokens.id_token !== undefined ? { id_token: tokens.id_token } : {}),
      ...(tokens.refresh_token !== undefined ? { refresh_token: tokens.refresh_token } : {}),
      ...(tokens.expires_in !== undefined ? { expires_in: tokens.expires_in } : {}),
    };
  } catch (cause) {
    throw new DemoTokenError('ERR_DEMO_TOKEN_EXCHANGE', `authorization code grant failed: ${errorText(cause)}`, {
      cause,
    });
  }
}

/** Authorization request → login page → login POST → redirects, until the loopback redirect. */
async function signIn(browser: Browser, authorizationUrl: URL, nationalId: string, password: string): Promise<URL> {
  let response = await browser.follow(await browser.request(authorizationUrl));
  if (response.callback) return response.callback;

  const loginPage = response.res;
  if (loginPage.status !== 200) {
    throw await unexpected(loginPage, 'the login page');
  }
  const html = await loginPage.text();
  const formTag = /<form\b[^>]*\bid="login-form"[^>]*>/.exec(html)?.[0];
  const formAction = formTag && /\baction="([^"]+)"/.exec(formTag)?.[1];
  if (!formAction) {
    throw new DemoTokenError('ERR_DEMO_FLOW', `no login form found at ${loginPage.url || 'the interaction page'}`, {
      status: loginPage.status,
    });
  }

  const loginUrl = new URL(decodeHtmlAttribute(formAction), response.url);
  const posted = await browser.request(loginUrl, {
    method: 'POST',
    body: new URLSearchParams({ username: nationalId, password }),
  });
  const refusal = posted.headers.get(DEMO_LOGIN_ERROR_HEADER) as DemoLoginRefusal | null;
  if (refusal !== null) {
    await posted.body?.cancel();
    const why = REFUSAL_MESSAGES[refusal] ?? refusal;
    throw new DemoTokenError('ERR_DEMO_LOGIN_REFUSED', `the demo IdP refused sign-in of ${nationalId}: ${why}`, {
      reason: refusal,
      status: posted.status,
    });
  }

  response = await browser.follow(posted, loginUrl);
  if (response.callback) return response.callback;
  throw await unexpected(response.res, 'the redirects after login');
}

interface Followed {
  /** Set once a redirect to DEMO_CLI_REDIRECT_URI is reached. */
  callback?: URL;
  res: Response;
  url: URL;
}

/**
 * A minimal browser for one origin: manual redirects and a cookie jar keyed by name. Cookie paths
 * and expiry are ignored: every cookie set by the IdP goes back to the IdP, and nowhere else.
 */
class Browser {
  readonly #origin: URL;
  readonly #jar = new Map<string, string>();

  constructor(origin: URL) {
    this.#origin = origin;
  }

  async request(url: URL, init: { method?: string; body?: URLSearchParams } = {}): Promise<Response> {
    if (url.origin !== this.#origin.origin) {
      throw new DemoTokenError('ERR_DEMO_FLOW', `refusing to send the sign-in to another origin: ${url.origin}`);
    }
    const headers: Record<string, string> = { accept: 'text/html' };
    if (this.#jar.size) {
      headers.cookie = [...this.#jar].map(([name, value]) => `${name}=${value}`).join('; ');
    }
    let res: Response;
    try {
      res = await fetch(url, { method: init.method ?? 'GET', headers, body: init.body, redirect: 'manual' });
    } catch (cause) {
      throw new DemoTokenError('ERR_DEMO_FLOW', `request to ${url.href} failed: ${errorText(cause)}`, { cause });
    }
    for (const line of res.headers.getSetCookie()) this.#store(line);
    return res;
  }

  /** Follows redirects from `res` (fetched from `url`) until a non-redirect or the loopback callback. */
  async follow(res: Response, url: URL = new URL(res.url)): Promise<Followed> {
    for (let hops = 0; ; hops++) {
      if (![301, 302, 303, 307, 308].includes(res.status)) return { res, url };
      const location = res.headers.get('location');
      await res.body?.cancel();
      if (!location) {
        throw new DemoTokenError('ERR_DEMO_FLOW', `redirect ${res.status} from ${url.href} without a Location`, {
          status: res.status,
        });
      }
      if (location.startsWith(DEMO_CLI_REDIRECT_URI)) return { callback: new URL(location), res, url };
      if (hops >= MAX_REDIRECTS) {
        throw new DemoTokenError('ERR_DEMO_FLOW', `more than ${MAX_REDIRECTS} redirects, last to ${location}`, {
          status: res.status,
        });
      }
      url = new URL(location, url);
      res = await this.request(url);
    }
  }

  #store(setCookie: string): void {
    const [pair = '', ...attributes] = setCookie.split(';');
    const eq = pair.indexOf('=');
    if (eq <= 0) return;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const expired = attributes.some((a) => {
      const [key = '', val = ''] = a.split('=').map((s) => s.trim());
      const k = key.toLowerCase();
      return (k === 'max-age' && Number(val) <= 0) || (k === 'expires' && Date.parse(val) <= Date.now());
    });
    if (expired || value === '') this.#jar.delete(name);
    else this.#jar.set(name, value);
  }
}

async function unexpected(res: Response, where: string): Promise<DemoTokenError> {
  const text = await res.text().catch(() => '');
  const snippet = text
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 300);
  return new DemoTokenError('ERR_DEMO_FLOW', `unexpected response ${res.status} from ${where}${res.url ? ` (${res.url})` : ''}${snippet ? `: ${snippet}` : ''}`, { status: res.status });
}

function decodeHtmlAttribute(value: string): string {
  return value
    .replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const description = (err as { error_description?: unknown }).error_description;
    return typeof description === 'string' ? `${err.message} (${description})` : err.message;
  }
  return String(err);
}
