import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './harness.js';

/**
 * LemonLDAP::NG (Debian's `lemonldap-ng` + `lemonldap-ng-fastcgi-server`) as a real, third-party
 * OpenID provider: a File configuration backend and session store in a temporary folder, the Demo
 * authentication backend (dwho, rtyler, msmith; password = login), its FastCGI server behind an
 * nginx of our own on a loopback port. `.ci/run` installs the packages.
 */

export const LLNG_BINARIES = ['/usr/sbin/llng-fastcgi-server', '/usr/sbin/nginx', '/usr/share/lemonldap-ng/portal/htdocs/index.psgi'] as const;

/** What is missing to run LemonLDAP::NG here; empty when it can run. */
export function lemonLdapMissing(): string[] {
  return LLNG_BINARIES.filter((p) => !existsSync(p));
}

export const LLNG_USERS = ['dwho', 'rtyler', 'msmith'] as const;
export type LlngUser = (typeof LLNG_USERS)[number];

export interface LemonLdapOptions {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly redirectUris: readonly string[];
  readonly postLogoutRedirectUris: readonly string[];
  /** The gateway's OIDC Front-Channel Logout URI; the IdP adds `iss` and `sid` to it. */
  readonly frontchannelLogoutUri?: string;
  /** Extra audience put into the access tokens (and, as LemonLDAP::NG does, into the ID tokens). */
  readonly audience: string;
  /** User → synthetic national ID (the `national_id` macro). */
  readonly nationalIds: Readonly<Record<LlngUser, string>>;
  readonly agencies: Readonly<Record<LlngUser, string>>;
  /** LemonLDAP::NG's "force claims in ID token": the ID token carries the exported claims too. */
  readonly idTokenForceClaims?: boolean;
}

export interface LemonLdap {
  readonly issuer: string;
  readonly options: LemonLdapOptions;
  /** Where its stderr goes, for a failing test to show. */
  log(): string;
  /** A new configuration (cfgNum + 1) and a FastCGI restart, which is how LemonLDAP::NG takes one. */
  reconfigure(change: Partial<Pick<LemonLdapOptions, 'clientSecret' | 'idTokenForceClaims'>> & { rotateKey?: boolean }): Promise<void>;
  /** Resource owner password grant, enabled for API tests: the tokens a program would get. */
  passwordGrant(user: LlngUser, scope?: string): Promise<{ access_token: string; id_token: string; refresh_token?: string }>;
  /** The current signing key id. */
  readonly kid: string;
  close(): Promise<void>;
}

function rsaKey() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    priv: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    pub: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    kid: randomBytes(6).toString('hex'),
  };
}

/** A Perl string literal for a macro: only [0-9a-z-] reach it, so quoting is plain. */
const perlString = (s: string) => {
  if (!/^[0-9a-z-]+$/.test(s)) throw new Error(`unsafe macro value ${s}`);
  return `"${s}"`;
};

function configDoc(dir: string, portal: string, cfgNum: number, opts: LemonLdapOptions, key: { priv: string; pub: string; kid: string }) {
  const byUser = (map: Readonly<Record<string, string>>) => `${LLNG_USERS.map((u) => `$uid eq ${perlString(u)} ? ${perlString(map[u]!)} : `).join('')}""`;
  return {
    authentication: 'Demo',
    userDB: 'Same',
    passwordDB: 'Demo',
    registerDB: 'Null',
    cfgAuthor: 'ztgate interop test',
    cfgDate: String(Math.floor(Date.now() / 1000)),
    cfgNum,
    cfgVersion: '2.16.1',
    cookieName: 'lemonldap',
    domain: '127.0.0.1',
    securedCookie: 0,
    portal,
    portalSkin: 'bootstrap',
    timeout: 72000,
    globalStorage: 'Apache::Session::File',
    globalStorageOptions: { Directory: join(dir, 'sessions'), LockDirectory: join(dir, 'sessions/lock'), generateModule: 'Lemonldap::NG::Common::Apache::Session::Generate::SHA256' },
    persistentStorage: 'Apache::Session::File',
    persistentStorageOptions: { Directory: join(dir, 'psessions'), LockDirectory: join(dir, 'psessions/lock') },
    localSessionStorage: 'Cache::FileCache',
    localSessionStorageOptions: { cache_root: join(dir, 'cache'), cache_depth: 3, default_expires_in: 600, directory_umask: '007', namespace: 'lemonldap-ng-sessions' },
    notification: 0,
    loginHistoryEnabled: 0,
    demoExportedVars: { cn: 'cn', mail: 'mail', uid: 'uid' },
    exportedVars: {},
    macros: {
      national_id: byUser(opts.nationalIds),
      agency: byUser(opts.agencies),
      _whatToTrace: '$uid',
    },
    whatToTrace: '_whatToTrace',
    groups: {},
    locationRules: { '127.0.0.1': { default: 'accept' } },
    exportedHeaders: {},
    applicationList: {},
    issuerDBOpenIDConnectActivation: 1,
    oidcServiceMetaDataIssuer: portal.replace(/\/$/, ''),
    oidcServicePrivateKeySig: key.priv,
    oidcServicePublicKeySig: key.pub,
    oidcServiceKeyIdSig: key.kid,
    oidcServiceAllowAuthorizationCodeFlow: 1,
    oidcServiceIgnoreScopeForClaims: 1,
    oidcRPMetaDataOptions: {
      ztgate: {
        oidcRPMetaDataOptionsClientID: opts.clientId,
        oidcRPMetaDataOptionsClientSecret: opts.clientSecret,
        oidcRPMetaDataOptionsDisplayName: 'ztgate',
        oidcRPMetaDataOptionsRedirectUris: opts.redirectUris.join(' '),
        oidcRPMetaDataOptionsPostLogoutRedirectUris: opts.postLogoutRedirectUris.join(' '),
        oidcRPMetaDataOptionsRequirePKCE: 1,
        oidcRPMetaDataOptionsAccessTokenJWT: 1,
        oidcRPMetaDataOptionsAccessTokenClaims: 1,
        oidcRPMetaDataOptionsAdditionalAudiences: opts.audience,
        oidcRPMetaDataOptionsBypassConsent: 1,
        oidcRPMetaDataOptionsRefreshToken: 1,
        oidcRPMetaDataOptionsAllowPasswordGrant: 1,
        oidcRPMetaDataOptionsIDTokenForceClaims: opts.idTokenForceClaims ? 1 : 0,
        oidcRPMetaDataOptionsIDTokenSignAlg: 'RS256',
        oidcRPMetaDataOptionsAccessTokenSignAlg: 'RS256',
        oidcRPMetaDataOptionsLogoutBypassConfirm: 1,
        oidcRPMetaDataOptionsUserIDAttr: 'uid',
        oidcRPMetaDataOptionsAccessTokenExpiration: 60,
        ...(opts.frontchannelLogoutUri ? { oidcRPMetaDataOptionsLogoutUrl: opts.frontchannelLogoutUri, oidcRPMetaDataOptionsLogoutType: 'front', oidcRPMetaDataOptionsLogoutSessionRequired: 1 } : {}),
      },
    },
    oidcRPMetaDataExportedVars: { ztgate: { national_id: 'national_id', agency: 'agency', name: 'cn', email: 'mail' } },
    oidcRPMetaDataOptionsExtraClaims: { ztgate: { ztgate: 'national_id agency' } },
  };
}

function nginxConf(dir: string, port: number, asRoot: boolean): string {
  return `${asRoot ? 'user www-data www-data;\n' : ''}worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr warn;
daemon off;
events { worker_connections 256; }
http {
  include /etc/nginx/mime.types;
  access_log off;
  client_body_temp_path ${dir}/nginx-tmp/body;
  fastcgi_temp_path ${dir}/nginx-tmp/fastcgi;
  proxy_temp_path ${dir}/nginx-tmp/proxy;
  uwsgi_temp_path ${dir}/nginx-tmp/uwsgi;
  scgi_temp_path ${dir}/nginx-tmp/scgi;
  upstream llng { server unix:${dir}/llng.sock; }
  server {
    listen 127.0.0.1:${port};
    server_name _;
    root /usr/share/lemonldap-ng/portal/htdocs/;
    if ($uri !~ ^/((static|javascript|favicon).*|.*\\.psgi)) { rewrite ^/(.*)$ /index.psgi/$1 break; }
    location ~ ^(?<sc>/.*\\.psgi)(?:$|/) {
      include /etc/nginx/fastcgi_params;
      fastcgi_pass llng;
      fastcgi_param HTTP_HOST $http_host;
      fastcgi_param LLTYPE psgi;
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
      fastcgi_split_path_info ^(.*\\.psgi)(/.*)$;
      fastcgi_param PATH_INFO $fastcgi_path_info;
    }
    location /static/ { alias /usr/share/lemonldap-ng/portal/htdocs/static/; }
    location /javascript/ { alias /usr/share/javascript/; }
  }
}
`;
}

function iniFile(dir: string): string {
  return `[all]
logLevel = warn
checkTime = 1
[configuration]
type = File
dirName = ${dir}/conf
prettyPrint = 1
[portal]
staticPrefix = /static
templateDir = /usr/share/lemonldap-ng/portal/templates
languages = en, vi, fr
`;
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs: number, log: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`LemonLDAP::NG: ${what} did not happen within ${timeoutMs} ms; its log:\n${log().slice(-4000)}`);
}

function stop(child: ChildProcess | null): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function startLemonLdap(opts: LemonLdapOptions): Promise<LemonLdap> {
  const missing = lemonLdapMissing();
  if (missing.length) throw new Error(`LemonLDAP::NG cannot start: missing ${missing.join(', ')} (apt-get install lemonldap-ng lemonldap-ng-fastcgi-server nginx; .ci/run does it)`);
  // Without these (Recommends and a Suggests of the packages) the portal only answers 500 "Initialization failed".
  const perl = spawnSync('perl', ['-MGD::SecurityImage', '-MImage::Magick', '-MString::Random', '-e', '1'], { encoding: 'utf8' });
  if (perl.status !== 0) {
    throw new Error(`LemonLDAP::NG's portal cannot start: ${(perl.stderr || String(perl.error)).split('\n')[0]} (apt-get install libgd-securityimage-perl libimage-magick-perl libstring-random-perl; .ci/run does it)`);
  }
  const asRoot = userInfo().uid === 0;
  const dir = mkdtempSync(join(tmpdir(), 'ztgate-llng-'));
  for (const sub of ['conf', 'sessions/lock', 'psessions/lock', 'cache', 'nginx-tmp']) mkdirSync(join(dir, sub), { recursive: true });
  const port = await freePort();
  const portal = `http://127.0.0.1:${port}/`;
  let options = { ...opts };
  let cfgNum = 1;
  let key = rsaKey();
  const writeConfig = () => {
    const file = join(dir, 'conf', `lmConf-${cfgNum}.json`);
    writeFileSync(file, JSON.stringify(configDoc(dir, portal, cfgNum, options, key), null, 1));
    if (asRoot) chownTree(dir);
  };
  writeFileSync(join(dir, 'lemonldap-ng.ini'), iniFile(dir));
  writeFileSync(join(dir, 'nginx.conf'), nginxConf(dir, port, asRoot));
  writeConfig();

  let logText = '';
  const append = (b: Buffer) => {
    logText += b.toString();
    if (logText.length > 200_000) logText = logText.slice(-100_000);
  };
  let fcgi: ChildProcess | null = null;
  const startFcgi = async () => {
    // The FastCGI server refuses to run as root; www-data is what Debian's service uses.
    const args = ['--foreground', '-n', '2', '-s', join(dir, 'llng.sock'), '-p', join(dir, 'llng.pid'), ...(asRoot ? ['-u', 'www-data', '-g', 'www-data'] : [])];
    fcgi = spawn('/usr/sbin/llng-fastcgi-server', args, {
      env: { ...process.env, LLNG_DEFAULTCONFFILE: join(dir, 'lemonldap-ng.ini'), LLNG_DEFAULTLOGGER: 'Lemonldap::NG::Common::Logger::Std' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    fcgi.stdout!.on('data', append);
    fcgi.stderr!.on('data', append);
    await waitFor(
      async () => existsSync(join(dir, 'llng.sock')),
      'the FastCGI socket',
      20_000,
      () => logText,
    );
  };
  const nginx = spawn('/usr/sbin/nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir, '-e', 'stderr'], { stdio: ['ignore', 'pipe', 'pipe'] });
  nginx.stdout.on('data', append);
  nginx.stderr.on('data', append);

  const discovery = `${portal}.well-known/openid-configuration`;
  const discovered = async () => {
    const res = await fetch(discovery, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) return false;
    const doc = (await res.json()) as { issuer?: string };
    return doc.issuer === portal.replace(/\/$/, '');
  };
  const closeAll = async () => {
    await stop(nginx);
    await stop(fcgi);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await startFcgi();
    await waitFor(discovered, `discovery at ${discovery}`, 30_000, () => logText);
  } catch (err) {
    await closeAll();
    throw err;
  }

  const llng: LemonLdap = {
    issuer: portal.replace(/\/$/, ''),
    get options() {
      return options;
    },
    get kid() {
      return key.kid;
    },
    log: () => logText,
    async reconfigure(change) {
      options = { ...options, ...change };
      if (change.rotateKey) key = rsaKey();
      cfgNum += 1;
      writeConfig();
      await stop(fcgi);
      rmSync(join(dir, 'llng.sock'), { force: true });
      await startFcgi();
      await waitFor(
        async () => {
          if (!(await discovered())) return false;
          const jwks = (await (await fetch(`${portal}oauth2/jwks`)).json()) as { keys: { kid: string }[] };
          return jwks.keys.some((k) => k.kid === key.kid);
        },
        'the new configuration',
        30_000,
        () => logText,
      );
    },
    async passwordGrant(user, scope = 'openid profile email ztgate') {
      const res = await fetch(`${portal}oauth2/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'password', username: user, password: user, scope, client_id: options.clientId, client_secret: options.clientSecret }),
      });
      const body = (await res.json()) as any;
      if (!res.ok) throw new Error(`LemonLDAP::NG password grant answered ${res.status}: ${JSON.stringify(body)}`);
      return body;
    },
    close: closeAll,
  };
  return llng;
}

function chownTree(dir: string): void {
  const uid = Number(spawnSync('id', ['-u', 'www-data']).stdout.toString().trim());
  const gid = Number(spawnSync('id', ['-g', 'www-data']).stdout.toString().trim());
  const walk = (p: string) => {
    chownSync(p, uid, gid);
    for (const entry of readdirSync(p, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(p, entry.name));
      else chownSync(join(p, entry.name), uid, gid);
    }
  };
  walk(dir);
}
