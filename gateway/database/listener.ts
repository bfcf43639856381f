import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { GatewayError } from '../errors.js';
import { httpsServerOptions } from '../tls.js';
import { createDeviceAssessor } from '../steps/device.js';
import { DeviceRegistry } from '../../identity/devices.js';
import type { Runtime } from '../runtime.js';
import type { DatabasesConfig } from './config.js';
import { CancelRegistry } from './cancels.js';
import { DatabaseConnection, errorFields, type DatabasePlaneDeps } from './connection.js';
import { emitStatement } from './decision.js';
import { createStatementClassifier, loadParser } from './sql.js';
import * as wire from './wire.js';

/**
 * The database plane's listener: PostgreSQL clients (psql, DBeaver, reporting tools, ETL jobs)
 * connect here. TLS is negotiated the protocol's way (SSLRequest, then the handshake on the same
 * socket); a startup packet sent in plaintext is refused with a FATAL error the client shows.
 * Cancel requests carry no credentials by design (a secret key the gateway handed out) and are
 * accepted with or without TLS, as PostgreSQL does.
 */

export interface DatabaseListener {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startDatabaseListener(runtime: Runtime, databases: DatabasesConfig, opts: { logger: Logger }): Promise<DatabaseListener> {
  await loadParser();
  const deps: DatabasePlaneDeps = {
    config: runtime.config,
    databases,
    authenticator: runtime.authenticator,
    policy: runtime.policy,
    devices: createDeviceAssessor(runtime.config, runtime.store, { registry: new DeviceRegistry(runtime.store) }),
    locks: runtime.locks,
    decisionLog: runtime.decisionLog,
    store: runtime.store,
    recentDecisions: runtime.policies.recent,
    log: opts.logger,
    classify: createStatementClassifier(databases.statementCacheEntries),
  };
  const cancels = new CancelRegistry();
  const open = new Set<Socket>();
  const tlsServer = createTlsServer({ ...httpsServerOptions(databases.listen.tls), handshakeTimeout: databases.startupTimeoutMs });
  tlsServer.on('secureConnection', (socket: TLSSocket) => {
    socket.setNoDelay(true);
    const connection = new DatabaseConnection(socket, deps, cancels, new wire.MessageSplitter(databases.maxMessageBytes, false));
    void connection.run();
  });
  // A failed handshake (no or a foreign client certificate where one is required) ends here.
  tlsServer.on('tlsClientError', (err, socket) => {
    opts.logger.info({ err: err.message, address: socket.remoteAddress }, 'database client TLS handshake failed');
    socket.destroy();
  });

  const refusePlain = (socket: Socket, err: GatewayError) => {
    emitStatement(runtime.decisionLog, {
      id: crypto.randomUUID(),
      startedAt: process.hrtime.bigint(),
      service: null,
      classification: null,
      principal: null,
      device: null,
      purpose: null,
      source: { ip: socket.remoteAddress ?? null, port: socket.remotePort ?? null },
      connectionId: crypto.randomUUID(),
      statement: null,
      decision: null,
      policyVersion: runtime.policy().version,
      allowedWithoutPolicy: false,
      reasons: [err.reason],
      errorCode: err.code,
      rows: 0,
      bytes: 0,
      upstreamError: null,
    });
    socket.end(wire.errorResponse(errorFields(err, 'FATAL', true)));
  };

  const server: Server = createServer((socket) => {
    // Small request/response messages: Nagle's algorithm with delayed ACKs would add tens of milliseconds.
    socket.setNoDelay(true);
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setTimeout(databases.startupTimeoutMs, () => socket.destroy());
    const splitter = new wire.MessageSplitter(databases.maxMessageBytes, false);
    const onData = (chunk: Buffer) => {
      splitter.push(chunk);
      let m: wire.Message | null;
      let packet: wire.StartupPacket;
      try {
        m = splitter.next();
        if (!m) return;
        packet = wire.readStartup(m);
      } catch (err) {
        socket.removeListener('data', onData);
        refusePlain(socket, new GatewayError('ZTG_ERR_PROTOCOL_VIOLATION', 'database-protocol-violation', { detail: `Gói khởi động không hợp lệ / malformed startup packet: ${(err as Error).message}` }));
        return;
      }
      if (packet.kind === 'gssenc') {
        // No GSSAPI encryption: the client falls back to an SSLRequest.
        socket.write('N');
        return;
      }
      socket.removeListener('data', onData);
      if (packet.kind === 'cancel') {
        cancels.cancel(packet.processId, packet.secretKey);
        socket.destroy();
        return;
      }
      if (packet.kind === 'startup') {
        refusePlain(socket, new GatewayError('ZTG_ERR_TLS_REQUIRED', 'database-tls-required', { detail: 'Cổng chỉ nhận kết nối TLS; dùng sslmode=verify-full / the gateway accepts TLS only; use sslmode=verify-full' }));
        return;
      }
      if (splitter.pending > 0) {
        // Bytes after the SSLRequest before the answer: a client (or attacker) injecting plaintext ahead of TLS (CVE-2021-23214).
        refusePlain(socket, new GatewayError('ZTG_ERR_PROTOCOL_VIOLATION', 'database-protocol-violation', { detail: 'Dữ liệu gửi trước khi bắt tay TLS / data sent before the TLS handshake' }));
        return;
      }
      socket.setTimeout(0);
      socket.write('S');
      tlsServer.emit('connection', socket);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(databases.listen.port, databases.listen.host, () => resolve());
  });
  const address = server.address();
  return {
    host: databases.listen.host,
    port: typeof address === 'object' && address ? address.port : 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        cancels.close();
        server.close(() => resolve());
      }),
  };
}
