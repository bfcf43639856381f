import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import type { AdminModule } from './app.js';

/**
 * The admin web UI: plain HTML, CSS and browser ES modules from admin-ui/, served by the
 * management listener behind the same checks as the admin API (signed-in security admin).
 * No framework, no CDN, no external font: it works inside a provincial data centre with no
 * Internet. The files are read once at start and served from memory.
 */

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};
const FILE = /^[a-z][a-z0-9-]*\.(html|js|css|svg)$/;

/**
 * Only our own files: no inline script or style, nothing from elsewhere, no framing
 * (clickjacking of admin actions), no <base>, forms only to this listener — and to the IdP, whose
 * end-session page the sign-out form is redirected to (browsers apply form-action to redirects).
 */
function securityHeaders(idpOrigin: string | null) {
  return {
    'content-security-policy': `default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'${idpOrigin ? ` ${idpOrigin}` : ''}; base-uri 'none'; frame-ancestors 'none'`,
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    // Nothing to other sites; to itself, the origin: with no-referrer a browser sends `Origin: null`
    // on form posts (the sign-out button), which no same-origin check can accept.
    'referrer-policy': 'same-origin',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    // Never kept: an admin must never run yesterday's script against today's API, and a shared
    // office PC must not give the next user the admin's pages from its cache.
    'cache-control': 'no-store',
  };
}

export function findAdminUiDir(from: string = dirname(fileURLToPath(import.meta.url))): string {
  // gateway/admin/ui.ts in development, dist/gateway/admin/ui.js when built: admin-ui/ is at the root.
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'admin-ui', 'index.html'))) return join(dir, 'admin-ui');
    if (dirname(dir) === dir) throw new Error(`ztgate: admin-ui/ not found above ${from}`);
  }
}

interface Asset {
  readonly body: Buffer;
  readonly type: string;
}

export function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    if (!FILE.test(name)) continue;
    const body = readFileSync(join(dir, name));
    assets.set(name, { body, type: TYPES[name.slice(name.lastIndexOf('.'))]! });
  }
  return assets;
}

export function uiModule(dir?: string): AdminModule {
  return (app, runtime) => {
    const assets = loadAssets(dir ?? findAdminUiDir());
    const issuer = runtime.config.identity.browser?.issuer;
    const headers = securityHeaders(issuer ? new URL(issuer).origin : null);
    const send = (reply: FastifyReply, name: string) => {
      const asset = assets.get(name);
      if (!asset) throw new GatewayError('ZTG_ERR_ROUTE_NOT_FOUND', 'route-not-found');
      reply.headers({ ...headers, 'content-type': asset.type });
      return reply.send(asset.body);
    };
    app.get('/', (_request, reply) => send(reply, 'index.html'));
    app.get('/ui/:file', (request: FastifyRequest<{ Params: { file: string } }>, reply) => send(reply, request.params.file));
  };
}
