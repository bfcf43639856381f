/** The gateway's own browser sign-in endpoints (gateway/auth-routes.ts), and where a browser may be sent back to. */
export const AUTH_PATH_PREFIX = '/.ztgate/auth/';
export const LOGIN_PATH = `${AUTH_PATH_PREFIX}login`;

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
