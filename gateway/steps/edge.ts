import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../errors.js';
import { HTTP_METHODS } from '../../policies/access.js';

/**
 * Step 1, edge hygiene. Paths that parsers disagree on are refused, not normalised: the
 * gateway, the policy and the upstream must all read the same path, or a rule written for
 * /records can be walked around with /x/../records or /records%2F..%2Fadmin.
 */

export const METHODS: ReadonlySet<string> = new Set(HTTP_METHODS);

/**
 * Identity and assertion headers a client could forge to impersonate someone to an upstream,
 * or to the gateway itself. Removed on arrival, before anything reads them.
 */
const FORGEABLE_IDENTITY_HEADER =
  /^(x-ztgate-.*|x-forwarded-(user|email|preferred-username|groups|access-token)|x-auth-request-.*|x-remote-(user|group)s?|remote-user|x-user(-id|name)?|x-national-id|x-so-dinh-danh|x-pomerium-.*|x-jwt-assertion|x-id-token|x-access-token|x-client-cert.*|x-ssl-client-.*|ssl-client-.*|x-client-verify|x-amzn-oidc-.*|x-goog-authenticated-user-.*|x-ms-client-principal.*|cf-access-.*)$/;

export function stripForgeableIdentityHeaders(headers: IncomingHttpHeaders): string[] {
  const stripped: string[] = [];
  for (const name of Object.keys(headers)) {
    if (FORGEABLE_IDENTITY_HEADER.test(name)) {
      delete headers[name];
      stripped.push(name);
    }
  }
  return stripped;
}

const DOT_SEGMENT = /^\.{1,2}$/;
const PCT = /%([0-9A-Fa-f]{2})/g;

function ambiguous(detail: string): GatewayError {
  return new GatewayError('ZTG_ERR_PATH_AMBIGUOUS', 'path-ambiguous', { detail: `Đường dẫn không rõ ràng / ambiguous path: ${detail}` });
}

/**
 * Returns the raw path (as received, still percent-encoded) and its decoded form for policy
 * evaluation; throws for any form that could be read two ways.
 */
export function checkPath(rawUrl: string): { rawPath: string; path: string } {
  if (!rawUrl.startsWith('/')) throw ambiguous('the request target must be an absolute path');
  const q = rawUrl.indexOf('?');
  const rawPath = q === -1 ? rawUrl : rawUrl.slice(0, q);
  if (rawPath.includes('#')) throw ambiguous('fragment in request target');
  if (rawPath.includes('\\')) throw ambiguous('backslash');
  // Servlet containers strip ";params" from segments (/admin;x → /admin): the policy would see another path.
  if (/;|%3b/i.test(rawPath)) throw ambiguous('path parameter (;)');
  if (rawPath.includes('//')) throw ambiguous('empty path segment (//)');
  // Control characters and NUL, raw; the HTTP parser refuses most, not all.
  if (/[\u0000-\u001f\u007f]/.test(rawPath)) throw ambiguous('control character');
  if (/%(?![0-9A-Fa-f]{2})/.test(rawPath)) throw ambiguous('malformed percent-encoding');
  for (const [, hex] of rawPath.matchAll(PCT)) {
    const byte = parseInt(hex!, 16);
    if (byte === 0x2f) throw ambiguous('encoded slash (%2F)');
    if (byte === 0x5c) throw ambiguous('encoded backslash (%5C)');
    if (byte === 0x25) throw ambiguous('double encoding (%25)');
    if (byte < 0x20 || byte === 0x7f) throw ambiguous('encoded control character or NUL');
  }
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    throw ambiguous('percent-encoding is not valid UTF-8');
  }
  // Line separators slip past ".*" in path patterns (JavaScript's "." does not match them) while
  // "[^/]+" matches them: a deny on /* would miss a path an allow on /:id still covers.
  if (/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(path)) throw ambiguous('Unicode control, format or separator character');
  if (path.split('/').some((segment) => DOT_SEGMENT.test(segment))) throw ambiguous('dot segment (. or ..)');
  return { rawPath, path };
}

export function checkMethod(method: string): void {
  if (!METHODS.has(method)) {
    throw new GatewayError('ZTG_ERR_METHOD_NOT_ALLOWED', 'method-not-allowed', { headers: { allow: [...METHODS].join(', ') } });
  }
}

/** Bodies must declare their length so the limit holds before a byte is forwarded. */
export function checkBody(headers: IncomingHttpHeaders, bodyLimitBytes: number): void {
  const length = headers['content-length'];
  if (length === undefined) {
    if (headers['transfer-encoding'] !== undefined) throw new GatewayError('ZTG_ERR_LENGTH_REQUIRED', 'length-required');
    return;
  }
  if (!/^\d{1,15}$/.test(length)) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: 'Content-Length is not a number' });
  if (Number(length) > bodyLimitBytes) {
    throw new GatewayError('ZTG_ERR_BODY_TOO_LARGE', 'body-too-large', { detail: `body of ${length} bytes exceeds the limit of ${bodyLimitBytes} bytes` });
  }
}
