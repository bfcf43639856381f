import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { serialize } from 'pg-protocol';
import { Parser } from 'pg-protocol/dist/parser.js';
// node-postgres' SCRAM-SHA-256 client (RFC 5802 / RFC 7677), as its own connections use it.
import sasl from 'pg/lib/crypto/sasl.js';
import type { DatabaseServiceConfig } from './config.js';
import { CodedError } from '../../core/errors.js';

/**
 * The gateway's own connection to a database service, made with credentials only the gateway
 * holds. Parameters pinned at startup keep the upstream reading statements as the gateway's
 * parser did: `standard_conforming_strings` (backslashes in literals) and `search_path`
 * (unqualified table names are decided as `public.<table>`); clients may not change them.
 */

export interface UpstreamConnection {
  readonly socket: Socket;
  readonly processId: number;
  readonly secretKey: number;
  /** ParameterStatus values the server reported, relayed to the client. */
  readonly parameters: ReadonlyMap<string, string>;
}

export class UpstreamError extends CodedError {
  readonly code = 'ERR_UPSTREAM';
  /** What failed: the gateway's credentials, TLS to the database, or reaching it at all. */
  constructor(
    message: string,
    readonly kind: 'credentials' | 'tls' | 'network' = 'network',
  ) {
    super(message);
  }
}

function password(service: DatabaseServiceConfig): string | null {
  const c = service.credentials;
  if (c.passwordFile) return readFileSync(c.passwordFile, 'utf8').replace(/\r?\n$/, '');
  if (c.passwordEnv) {
    const v = process.env[c.passwordEnv];
    if (v === undefined) throw new UpstreamError(`environment variable ${c.passwordEnv} (credentials of ${service.id}) is not set`);
    return v;
  }
  return null;
}

const md5 = (s: string | Buffer) => createHash('md5').update(s).digest('hex');

/**
 * A socket to the database: plain TCP, or TLS after the protocol's SSLRequest when the service
 * has `tls`. A server that answers the SSLRequest with 'N' (no TLS) is refused, never used in the clear.
 */
export function openUpstreamSocket(service: DatabaseServiceConfig, timeoutMs: number): Promise<Socket> {
  const where = `${service.upstream.host}:${service.upstream.port}`;
  return new Promise((resolve, reject) => {
    const socket = connect({ host: service.upstream.host, port: service.upstream.port });
    socket.setNoDelay(true);
    let current: Socket = socket;
    let done = false;
    const fail = (err: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      current.destroy();
      socket.destroy();
      reject(err);
    };
    const succeed = (s: Socket) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.removeAllListeners('error');
      s.removeAllListeners('close');
      socket.removeAllListeners('error');
      socket.removeAllListeners('close');
      resolve(s);
    };
    const timer = setTimeout(() => fail(new UpstreamError(`no answer from ${where} within ${timeoutMs} ms`)), timeoutMs);
    socket.once('error', (err) => fail(new UpstreamError(`${where}: ${err.message}`)));
    socket.once('close', () => fail(new UpstreamError(`${where} closed the connection before it was ready`)));
    const tls = service.tls;
    socket.once('connect', () => {
      if (!tls) return succeed(socket);
      socket.write(serialize.requestSsl());
      socket.once('data', (answer: Buffer) => {
        if (answer.length !== 1 || (answer[0] !== 0x53 && answer[0] !== 0x4e)) return fail(new UpstreamError(`${where} answered the SSLRequest with something other than S or N`, 'tls'));
        if (answer[0] === 0x4e) return fail(new UpstreamError(`${where} does not accept TLS connections (it answered the SSLRequest with N), and tls.mode ${tls.mode} requires TLS`, 'tls'));
        const verify = tls.mode === 'verify-full';
        const servername = tls.servername ?? service.upstream.host;
        let ca: Buffer | undefined;
        try {
          ca = verify && tls.caFile ? readFileSync(tls.caFile) : undefined;
        } catch (err) {
          return fail(new UpstreamError(`tls.caFile of ${service.id}: ${(err as Error).message}`, 'tls'));
        }
        const secure = tlsConnect({
          socket,
          host: servername,
          // SNI carries host names only (RFC 6066 §3); the certificate is still checked against an address.
          servername: isIP(servername) ? undefined : servername,
          ca,
          rejectUnauthorized: verify,
          minVersion: 'TLSv1.2',
        });
        current = secure;
        secure.once('error', (err) => fail(new UpstreamError(`TLS to ${where} (${tls.mode}): ${err.message}`, 'tls')));
        secure.once('secureConnect', () => succeed(secure));
      });
    });
  });
}

export function connectUpstream(service: DatabaseServiceConfig, timeoutMs: number, extra: Readonly<Record<string, string>> = {}): Promise<UpstreamConnection> {
  return openUpstreamSocket(service, timeoutMs).then((socket) => login(service, socket, timeoutMs, extra));
}

/** The startup messages read below, by name (pg-protocol's parser; its types do not declare the SASL ones). */
type StartupMessage =
  | { readonly name: 'authenticationCleartextPassword' | 'readyForQuery' }
  | { readonly name: 'authenticationMD5Password'; readonly salt: Buffer }
  | { readonly name: 'authenticationSASL'; readonly mechanisms: string[] }
  | { readonly name: 'authenticationSASLContinue' | 'authenticationSASLFinal'; readonly data: string }
  | { readonly name: 'parameterStatus'; readonly parameterName: string; readonly parameterValue: string }
  | { readonly name: 'backendKeyData'; readonly processID: number; readonly secretKey: number }
  | { readonly name: 'error'; readonly code?: string; readonly message: string };

function login(service: DatabaseServiceConfig, socket: Socket, timeoutMs: number, extra: Readonly<Record<string, string>>): Promise<UpstreamConnection> {
  return new Promise((resolve, reject) => {
    const parser = new Parser();
    const parameters = new Map<string, string>();
    let processId = 0;
    let secretKey = 0;
    let scram: ReturnType<typeof sasl.startSession> | null = null;
    let done = false;
    const fail = (err: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new UpstreamError(`no answer from ${service.upstream.host}:${service.upstream.port} within ${timeoutMs} ms`)), timeoutMs);
    socket.once('error', (err) => fail(new UpstreamError(`${service.upstream.host}:${service.upstream.port}: ${err.message}`)));
    socket.once('close', () => fail(new UpstreamError('the database closed the connection during startup')));
    socket.write(
      serialize.startup({
        ...extra,
        user: service.credentials.user,
        database: service.upstream.database,
        application_name: 'ztgate',
        client_encoding: 'UTF8',
        options: '-c search_path=public -c standard_conforming_strings=on',
      }),
    );
    const onData = (chunk: Buffer) => {
      parser.parse(chunk, (received) => {
        const msg = received as StartupMessage;
        void (async () => {
          try {
            switch (msg.name) {
              case 'authenticationCleartextPassword': {
                const pw = password(service);
                if (pw === null) throw new UpstreamError('the database asks for a password and none is configured', 'credentials');
                socket.write(serialize.password(pw));
                break;
              }
              case 'authenticationMD5Password': {
                const pw = password(service);
                if (pw === null) throw new UpstreamError('the database asks for a password and none is configured', 'credentials');
                const inner = md5(pw + service.credentials.user);
                socket.write(serialize.password('md5' + md5(Buffer.concat([Buffer.from(inner), msg.salt]))));
                break;
              }
              case 'authenticationSASL':
                scram = sasl.startSession(msg.mechanisms);
                socket.write(serialize.sendSASLInitialResponseMessage(scram.mechanism, scram.response));
                break;
              case 'authenticationSASLContinue': {
                const pw = password(service);
                if (pw === null) throw new UpstreamError('the database asks for a password and none is configured', 'credentials');
                if (!scram) throw new UpstreamError('the database continued a SASL exchange it never started', 'network');
                await sasl.continueSession(scram, pw, msg.data);
                socket.write(serialize.sendSCRAMClientFinalMessage(scram.response));
                break;
              }
              case 'authenticationSASLFinal':
                if (!scram) throw new UpstreamError('the database finished a SASL exchange it never started', 'network');
                sasl.finalizeSession(scram, msg.data);
                break;
              case 'parameterStatus':
                parameters.set(msg.parameterName, msg.parameterValue);
                break;
              case 'backendKeyData':
                processId = msg.processID;
                secretKey = msg.secretKey;
                break;
              case 'error':
                // 28P01 invalid_password, 28000 invalid_authorization_specification (pg_hba.conf).
                throw new UpstreamError(`the database refused the gateway: ${msg.code} ${msg.message}`, msg.code?.startsWith('28') ? 'credentials' : 'network');
              case 'readyForQuery':
                if (done) return;
                done = true;
                clearTimeout(timer);
                socket.removeListener('data', onData);
                socket.removeAllListeners('error');
                socket.removeAllListeners('close');
                resolve({ socket, processId, secretKey, parameters });
                break;
            }
          } catch (err) {
            fail(err instanceof UpstreamError ? err : new UpstreamError((err as Error).message, scram ? 'credentials' : 'network'));
          }
        })();
      });
    };
    socket.on('data', onData);
  });
}

/** Sends a CancelRequest for an upstream backend (on a connection of its own, as the protocol has it). */
export function cancelUpstream(service: DatabaseServiceConfig, processId: number, secretKey: number): void {
  // Over TLS too when the service has it: the cancel key is as secret as the session.
  openUpstreamSocket(service, 5000).then(
    (socket) => {
      socket.on('error', () => socket.destroy());
      socket.setTimeout(5000, () => socket.destroy());
      socket.end(serialize.cancel(processId, secretKey));
    },
    () => undefined,
  );
}
