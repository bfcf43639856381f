import { GatewayError } from './errors.js';

/**
 * The value of cookie `name` in a Cookie header (RFC 6265 §5.4), or null. The same name twice is
 * refused, not resolved: a sibling subdomain can toss a second cookie of ours into the browser, and
 * serving whichever comes first is how session fixation starts (RFC 6265 §8.6).
 */
export function cookieValue(header: string | undefined, name: string): string | null {
  if (!header) return null;
  let value: string | null = null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      if (value !== null) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'cookie-duplicate', { detail: `Cookie ${name} xuất hiện hơn một lần / cookie ${name} sent more than once` });
      value = part.slice(eq + 1).trim();
    }
  }
  return value;
}

/** Attributes of the gateway's own cookies (session, sign-in transaction): no Secure over plain http. */
export function cookieAttributes(secure: boolean): string {
  return `Path=/; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
}

/** A Set-Cookie value that removes cookie `name`. */
export function clearCookieHeader(name: string, secure: boolean): string {
  return `${name}=; ${cookieAttributes(secure)}; Max-Age=0`;
}
