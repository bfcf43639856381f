import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Type as T, type Static } from 'typebox';
import type { Transport } from '../sinks.js';
import { SYSLOG_FORMATS, frame, toSyslog } from '../syslog.js';
import { defineSinkKind, filePath, sinkName } from './kind.js';

export const SyslogSinkSchema = T.Object(
  {
    type: T.Literal('syslog'),
    name: sinkName,
    host: T.String({ minLength: 1, maxLength: 255 }),
    port: T.Integer({ minimum: 1, maximum: 65535 }),
    transport: T.Enum(['tcp', 'tls'], { default: 'tls' }),
    format: T.Enum(SYSLOG_FORMATS, { default: 'cef' }),
    /** RFC 5424 facility; 13 = log audit. */
    facility: T.Integer({ minimum: 0, maximum: 23, default: 13 }),
    caFile: T.Optional(filePath),
    certFile: T.Optional(filePath),
    keyFile: T.Optional(filePath),
    servername: T.Optional(T.String({ minLength: 1, maxLength: 255 })),
    connectTimeoutMs: T.Integer({ minimum: 100, maximum: 60_000, default: 5_000 }),
    /** A written record counts as delivered once the connection stayed up this long after it. */
    confirmAfterMs: T.Integer({ minimum: 50, maximum: 60_000, default: 1_000 }),
    reconnectMaxMs: T.Integer({ minimum: 100, maximum: 300_000, default: 30_000 }),
  },
  { additionalProperties: false },
);
export type SyslogSinkConfig = Static<typeof SyslogSinkSchema>;

/** RFC 5424 over TCP or TLS (RFC 5425), octet-counted (RFC 6587), to a SIEM. */
export const syslogSink = defineSinkKind({
  type: 'syslog',
  schema: SyslogSinkSchema,
  delivery: 'spooled',
  filePaths: ['caFile', 'certFile', 'keyFile'],
  check(sink, at) {
    const problems: string[] = [];
    if (sink.transport === 'tcp' && (sink.caFile || sink.certFile || sink.keyFile || sink.servername)) problems.push(`${at}: caFile, certFile, keyFile and servername need transport "tls"`);
    if (!sink.certFile !== !sink.keyFile) problems.push(`${at}: certFile and keyFile go together (client certificate and its key)`);
    return problems;
  },
  create: (sink) => ({ name: sink.name, reconnectMaxMs: sink.reconnectMaxMs, transport: syslogTransport(sink) }),
});

export function syslogTransport(cfg: SyslogSinkConfig): Transport {
  let socket: Socket | null = null;
  let broken = false;
  const tlsOptions = () => ({
    host: cfg.host,
    port: cfg.port,
    servername: cfg.servername ?? (/^[\d.:]+$/.test(cfg.host) ? undefined : cfg.host),
    ca: cfg.caFile ? readFileSync(cfg.caFile) : undefined,
    cert: cfg.certFile ? readFileSync(cfg.certFile) : undefined,
    key: cfg.keyFile ? readFileSync(cfg.keyFile) : undefined,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2' as const,
  });
  return {
    deliveryIsAck: false,
    confirmAfterMs: cfg.confirmAfterMs,
    async connect() {
      broken = false;
      socket = await new Promise<Socket>((resolve, reject) => {
        const s = cfg.transport === 'tls' ? tlsConnect(tlsOptions()) : netConnect({ host: cfg.host, port: cfg.port });
        const timer = setTimeout(() => {
          s.destroy();
          reject(new Error(`connect timeout after ${cfg.connectTimeoutMs} ms`));
        }, cfg.connectTimeoutMs);
        s.once(cfg.transport === 'tls' ? 'secureConnect' : 'connect', () => {
          clearTimeout(timer);
          resolve(s);
        });
        s.once('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      });
      socket.setKeepAlive(true, 10_000);
      socket.setNoDelay(true);
      const down = () => {
        broken = true;
      };
      socket.on('error', down);
      socket.on('close', down);
      // The receiver closing its side means it is going away: what it has not read is lost.
      socket.on('end', down);
      socket.resume();
    },
    alive: () => socket !== null && !broken && !socket.destroyed && socket.writableLength === 0,
    broken: () => broken || socket === null,
    async send(lines) {
      const s = socket;
      if (!s || broken) throw new Error('not connected');
      const data = Buffer.concat(lines.map((l) => frame(toSyslog(JSON.parse(l), cfg))));
      await new Promise<void>((resolve, reject) => {
        s.write(data, (err) => (err ? reject(err) : resolve()));
      });
      if (broken) throw new Error('connection lost');
    },
    async close(graceful) {
      const s = socket;
      socket = null;
      if (!s) return false;
      if (!graceful || broken) {
        s.destroy();
        return false;
      }
      // A clean close after everything was flushed: the receiver has read all of it.
      return new Promise<boolean>((resolve) => {
        let clean = true;
        const timer = setTimeout(() => {
          s.destroy();
          resolve(false);
        }, 2000);
        s.once('error', () => (clean = false));
        s.once('close', (hadError) => {
          clearTimeout(timer);
          resolve(clean && !hadError);
        });
        s.end();
      });
    },
  };
}
