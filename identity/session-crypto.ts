import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

/**
 * Encryption at rest of a session's OIDC tokens. A read of the shared store (a Redis dump, a
 * replica, a backup) must not yield tokens that call data services as the official.
 *
 * AES-256-GCM with a fresh 96-bit IV per write (NIST SP 800-38D §8.2.2: random IVs, one key).
 * The session's store handle is the additional authenticated data, so a ciphertext copied into
 * another session's record does not open there. `v` names the algorithm, so another can follow
 * without breaking records already written.
 */

export interface SealedTokens {
  readonly v: 1;
  readonly iv: string;
  readonly ct: string;
  readonly tag: string;
}

export interface SessionTokens {
  readonly accessToken: string;
  readonly refreshToken: string | null;
  readonly idToken: string;
}

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HKDF_INFO = 'ztgate session tokens v1';
const B64URL = /^[A-Za-z0-9_-]*$/;

/** A key file's text: 32 bytes as hex (64 digits) or base64 / base64url; null when it is not that. */
export function parseSessionKey(text: string): Buffer | null {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(t)) return null;
  const key = Buffer.from(t, 'base64');
  return key.length === KEY_BYTES ? key : null;
}

/** Why a key file cannot be used, or null when it can (checked at config load). */
export function sessionKeyFileProblem(path: string): string | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return `cannot read "${path}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
  return parseSessionKey(text) ? null : `"${path}" must hold exactly 32 random bytes, as hex (64 digits) or base64 / khóa phải đúng 32 byte`;
}

/**
 * The key from `encryptionKeyFile`, or else derived (HKDF-SHA256, RFC 5869) from the browser
 * client secret that every instance already shares: rotating that secret then ends every session.
 */
export function sessionTokenKey(opts: { readonly encryptionKeyFile?: string; readonly clientSecret: string }): Buffer {
  if (opts.encryptionKeyFile) {
    const key = parseSessionKey(readFileSync(opts.encryptionKeyFile, 'utf8'));
    if (!key) throw new Error(`identity.session.encryptionKeyFile: ${sessionKeyFileProblem(opts.encryptionKeyFile) ?? 'invalid key'}`);
    return key;
  }
  return Buffer.from(hkdfSync('sha256', Buffer.from(opts.clientSecret, 'utf8'), Buffer.alloc(0), HKDF_INFO, KEY_BYTES));
}

export function sealTokens(key: Buffer, handle: string, tokens: SessionTokens): SealedTokens {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(handle, 'utf8'));
  const plain = JSON.stringify({ accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, idToken: tokens.idToken });
  const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return { v: 1, iv: iv.toString('base64url'), ct: ct.toString('base64url'), tag: cipher.getAuthTag().toString('base64url') };
}

/** The tokens, or null when the sealed value is malformed, of another version, key or session, or altered. */
export function openTokens(key: Buffer, handle: string, sealed: unknown): SessionTokens | null {
  if (!sealed || typeof sealed !== 'object') return null;
  const s = sealed as Record<string, unknown>;
  if (s.v !== 1 || typeof s.iv !== 'string' || typeof s.ct !== 'string' || typeof s.tag !== 'string') return null;
  if (!B64URL.test(s.iv) || !B64URL.test(s.ct) || !B64URL.test(s.tag)) return null;
  const iv = Buffer.from(s.iv, 'base64url');
  const tag = Buffer.from(s.tag, 'base64url');
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) return null;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(handle, 'utf8'));
    decipher.setAuthTag(tag);
    const plain = Buffer.concat([decipher.update(Buffer.from(s.ct, 'base64url')), decipher.final()]).toString('utf8');
    const t = JSON.parse(plain) as Record<string, unknown>;
    if (typeof t.accessToken !== 'string' || typeof t.idToken !== 'string' || (t.refreshToken !== null && typeof t.refreshToken !== 'string')) return null;
    return { accessToken: t.accessToken, refreshToken: t.refreshToken as string | null, idToken: t.idToken };
  } catch {
    return null; // authentication failed: tampered, another key, or another session's record
  }
}
