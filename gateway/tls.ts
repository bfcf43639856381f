import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ServerOptions } from 'node:https';
import { isAbsolute, resolve } from 'node:path';
import { createSecureContext, TLSSocket } from 'node:tls';
import { calculateJwkThumbprint, type JWK } from 'jose';
import Type from 'typebox';
import { NonEmpty, Section, type DeepReadonly, type Static } from '../core/schema.js';

/**
 * TLS on the gateway's listeners, and mutual TLS as a device credential: a client certificate
 * issued by the province's device CA (`clientCaFile`) proves, through the TLS handshake itself
 * (RFC 8446 §4.4.3 CertificateVerify), possession of the certificate's private key. The device is
 * the RFC 7638 thumbprint of that public key — the same identifier a DPoP key has, so one
 * registry serves both.
 */

export const CLIENT_CERTIFICATE_MODES = ['none', 'optional', 'required'] as const;
export type ClientCertificateMode = (typeof CLIENT_CERTIFICATE_MODES)[number];

/**
 * Hybrid post-quantum key exchange first (X25519 + ML-KEM-768, FIPS 203; OpenSSL 3.5): a recorded
 * session cannot be decrypted later by a quantum computer unless both halves break. The classical
 * groups after it serve clients without ML-KEM and every TLS 1.2 client.
 */
export const DEFAULT_TLS_GROUPS = ['X25519MLKEM768', 'X25519', 'P-256', 'P-384'] as const;

export const TLS_SCHEMA = Section({
  certFile: NonEmpty(),
  keyFile: NonEmpty(),
  /** CA certificates (PEM, one or more) that client certificates must chain to. */
  clientCaFile: Type.Optional(NonEmpty()),
  /**
   * none: no client certificate asked for. optional: asked for; one the CA did not issue is
   * treated as no certificate. required: the handshake fails without one the CA issued.
   */
  requestClientCertificate: Type.Enum(CLIENT_CERTIFICATE_MODES, { default: 'none' }),
  /** Key exchange groups, most preferred first (TLS 1.3 `supported_groups`, RFC 8446 §4.2.7). */
  groups: Type.Array(Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_-]{0,63}$' }), { minItems: 1, maxItems: 16, uniqueItems: true, default: [...DEFAULT_TLS_GROUPS] }),
});

export type ListenerTlsConfig = DeepReadonly<Static<typeof TLS_SCHEMA>>;

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

function read(problems: string[], at: string, path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`${at}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    return null;
  }
}

/** The section as ajv leaves it: its file paths are made absolute here, in place. */
type RawTls = Static<typeof TLS_SCHEMA>;

function checkOne(problems: string[], at: string, tls: RawTls, publicUrl: string | undefined, publicUrlKey: string, baseDir: string): void {
  for (const k of ['certFile', 'keyFile', 'clientCaFile'] as const) {
    const file = tls[k];
    if (typeof file === 'string' && !isAbsolute(file)) tls[k] = resolve(baseDir, file);
  }
  const certPem = read(problems, `${at}.certFile`, tls.certFile);
  const keyPem = read(problems, `${at}.keyFile`, tls.keyFile);
  let cert: X509Certificate | null = null;
  let key: KeyObject | null = null;
  if (certPem !== null) {
    try {
      cert = new X509Certificate(certPem);
    } catch {
      problems.push(`${at}.certFile: not a PEM X.509 certificate`);
    }
  }
  if (keyPem !== null) {
    try {
      key = createPrivateKey(keyPem);
    } catch {
      problems.push(`${at}.keyFile: not a PEM private key (or it is encrypted; give the gateway an unencrypted key readable by its user only)`);
    }
  }
  if (cert && key && !cert.checkPrivateKey(key)) problems.push(`${at}.keyFile: does not match the certificate in certFile`);
  if (cert && Date.parse(cert.validTo) < Date.now()) problems.push(`${at}.certFile: the certificate expired on ${new Date(cert.validTo).toISOString()}`);

  for (const group of tls.groups) {
    try {
      createSecureContext({ ecdhCurve: group });
    } catch {
      problems.push(`${at}.groups: "${group}" is not a TLS key exchange group this runtime supports (OpenSSL ${process.versions.openssl}); e.g. ${DEFAULT_TLS_GROUPS.join(', ')}`);
    }
  }

  const mode = tls.requestClientCertificate as ClientCertificateMode;
  if (mode !== 'none' && !tls.clientCaFile) problems.push(`${at}.clientCaFile: required when requestClientCertificate is "${mode}" (the CA that issues device certificates)`);
  if (mode === 'none' && tls.clientCaFile) problems.push(`${at}.clientCaFile: set, but requestClientCertificate is "none"; set it to "optional" or "required" to use it`);
  if (tls.clientCaFile) {
    const caPem = read(problems, `${at}.clientCaFile`, tls.clientCaFile);
    if (caPem !== null) {
      const certs = caPem.match(PEM_CERTIFICATE) ?? [];
      if (certs.length === 0) problems.push(`${at}.clientCaFile: no PEM certificate in the file`);
      for (const pem of certs) {
        try {
          if (!new X509Certificate(pem).ca) problems.push(`${at}.clientCaFile: a certificate in the file is not a CA certificate (basicConstraints CA:TRUE)`);
        } catch {
          problems.push(`${at}.clientCaFile: a certificate in the file does not parse`);
        }
      }
    }
  }
  // Cookies are Secure and DPoP htu names the scheme: the URL clients use must say https.
  if (publicUrl !== undefined && !publicUrl.startsWith('https://')) problems.push(`${publicUrlKey}: must be an https URL when ${at} is set`);
}

/** Checks one listener's TLS files (another section's listener, e.g. `databases.listen.tls`). */
export function checkTlsFiles(problems: string[], at: string, tls: RawTls, baseDir: string): void {
  checkOne(problems, at, tls, undefined, '', baseDir);
}

/**
 * Checks `listen.tls` and `admin.listen.tls`: files readable, the key matches the certificate,
 * a client CA when client certificates are asked for, https public URLs. Resolves the file
 * paths against `baseDir` in place.
 */
type Listener = { readonly listen: { readonly tls?: RawTls } };

export function checkListenerTls(raw: Listener & { readonly publicUrl: string; readonly admin?: Listener & { readonly publicUrl?: string } }, baseDir: string): string[] {
  const problems: string[] = [];
  if (raw.listen.tls) checkOne(problems, 'listen.tls', raw.listen.tls, raw.publicUrl, 'publicUrl', baseDir);
  if (raw.admin?.listen.tls) checkOne(problems, 'admin.listen.tls', raw.admin.listen.tls, raw.admin.publicUrl, 'admin.publicUrl', baseDir);
  return problems;
}

/** Node https server options of a listener; the files were checked when the configuration was parsed. */
export function httpsServerOptions(tls: ListenerTlsConfig): ServerOptions {
  const mode = tls.requestClientCertificate;
  return {
    cert: readFileSync(tls.certFile),
    key: readFileSync(tls.keyFile),
    minVersion: 'TLSv1.2',
    // One group per preference tuple ("/", OpenSSL 3.5): the server's order is strict — a client
    // that supports X25519MLKEM768 but sent a key share for X25519 is asked again
    // (HelloRetryRequest) rather than settling for the classical group.
    ecdhCurve: tls.groups.join('/'),
    ...(mode === 'none' ? {} : { ca: readFileSync(tls.clientCaFile!), requestCert: true, rejectUnauthorized: mode === 'required' }),
  };
}

export interface ClientCertificateKey {
  /** RFC 7638 thumbprint of the certificate's public key: the device id. */
  readonly deviceId: string;
  readonly jwk: JWK;
}

// Per connection: the certificate is fixed for the life of a TLS session (renegotiation is off in Node by default for TLS 1.3).
const perSocket = new WeakMap<object, Promise<ClientCertificateKey | null>>();

/**
 * The key of the client certificate of a connection, when it was verified against the listener's
 * `clientCaFile`; null without TLS, without a certificate, or with one the CA did not issue.
 */
export function clientCertificateKey(socket: unknown): Promise<ClientCertificateKey | null> {
  if (!(socket instanceof TLSSocket) || !socket.authorized) return Promise.resolve(null);
  let found = perSocket.get(socket);
  if (!found) {
    found = (async () => {
      const cert = socket.getPeerX509Certificate();
      if (!cert) return null;
      const jwk = cert.publicKey.export({ format: 'jwk' }) as JWK;
      return { deviceId: await calculateJwkThumbprint(jwk, 'sha256'), jwk };
    })();
    perSocket.set(socket, found);
  }
  return found;
}
