import { randomInt, randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { decodeJwt } from 'jose';
import type { Logger } from 'pino';
import { serialize } from 'pg-protocol';
import type { GatewayConfig } from '../config.js';
import { GatewayError, type ErrorCode } from '../errors.js';
import { REASONS, type Reason } from '../../core/reasons.js';
import type { Store } from '../../core/store.js';
import type { Locks } from '../lock-registry.js';
import type { DecisionLog } from '../audit/log.js';
import { isAuditRequired } from '../audit/config.js';
import type { Authenticator } from '../steps/authenticate.js';
import { requireRouteAssurance } from '../steps/assurance.js';
import { requireDeviceTier, type DeviceAssessor, type DeviceTrust } from '../steps/device.js';
import { checkLocks } from '../steps/locks.js';
import { checkDailyQuota, dailyQuotaKey, maskValue } from '../steps/obligations.js';
import { sessionKeys } from '../../identity/sessions.js';
import type { Principal, Obligation } from '../../core/principal.js';
import type { Purpose } from '../../policies/access.js';
import type { PolicyEngine } from '../../policies/engine.js';
import type { RecentDecisions } from '../../policies/what-if.js';
import type { DatabaseServiceConfig, DatabasesConfig } from './config.js';
import { decideStatement, emitStatement, type StatementRecord } from './decision.js';
import type { Classified } from './sql.js';
import { cancelUpstream, connectUpstream, UpstreamError, type UpstreamConnection } from './upstream.js';
import type { CancelRegistry } from './cancels.js';
import * as wire from './wire.js';

/**
 * One client connection of the database plane, from the startup packet to the last statement:
 *
 *   SSLRequest → TLS (client certificate = device) → StartupMessage (user = national ID,
 *   database = service) → password = OIDC access token → assurance, device tier, locks →
 *   the gateway's own upstream connection → per statement: parse, refuse escapes, decide, set
 *   the official's ztgate.* settings in the transaction, forward, mask and count the rows →
 *   one decision event.
 *
 * Client messages are handled one exchange at a time (a simple Query, or extended-protocol
 * messages up to Sync), so the gateway always knows which statement a response belongs to.
 */

export interface DatabasePlaneDeps {
  readonly config: GatewayConfig;
  readonly databases: DatabasesConfig;
  readonly authenticator: Authenticator;
  readonly policy: () => PolicyEngine;
  readonly devices: DeviceAssessor;
  readonly locks: Locks;
  readonly decisionLog: DecisionLog;
  readonly store: Store;
  readonly recentDecisions?: RecentDecisions;
  readonly log: Logger;
  readonly classify: (text: string) => Classified;
}

/** SQLSTATE of each gateway refusal on the wire (PostgreSQL Appendix A). */
function sqlstate(code: ErrorCode, startup: boolean): string {
  switch (code) {
    case 'ZTG_ERR_UNAUTHENTICATED':
    case 'ZTG_ERR_IDENTITY_REFUSED':
    case 'ZTG_ERR_STEP_UP_REQUIRED':
      return '28000'; // invalid_authorization_specification
    case 'ZTG_ERR_TLS_REQUIRED':
      return '28000';
    case 'ZTG_ERR_PROTOCOL_VIOLATION':
      return '08P01'; // protocol_violation
    case 'ZTG_ERR_ROUTE_NOT_FOUND':
      return '3D000'; // invalid_catalog_name
    case 'ZTG_ERR_UPSTREAM_UNAVAILABLE':
    case 'ZTG_ERR_UPSTREAM_TIMEOUT':
      return '08006'; // connection_failure
    case 'ZTG_ERR_IDP_UNAVAILABLE':
    case 'ZTG_ERR_DEVICE_UNVERIFIABLE':
    case 'ZTG_ERR_LOCK_CHECK_UNAVAILABLE':
    case 'ZTG_ERR_QUOTA_UNAVAILABLE':
    case 'ZTG_ERR_AUDIT_UNAVAILABLE':
    case 'ZTG_ERR_INTERNAL':
      return startup ? '57P03' : '58000'; // cannot_connect_now / system_error
    default:
      return '42501'; // insufficient_privilege: every refusal by policy, lock, device or statement kind
  }
}

/** The ErrorResponse a refusal becomes: the message names the reason; the detail explains it. */
export function errorFields(err: GatewayError, severity: 'ERROR' | 'FATAL', startup = false): wire.ErrorFields {
  return {
    severity,
    code: sqlstate(err.code, startup),
    message: `ztgate: ${err.reason}: ${err.message}`,
    detail: REASONS[err.reason],
    hint: `${err.code}`,
  };
}

const refused = (reason: Reason, detail?: string) => new GatewayError('ZTG_ERR_STATEMENT_REFUSED', reason, { detail });
const protocolError = (detail: string) => new GatewayError('ZTG_ERR_PROTOCOL_VIOLATION', 'database-protocol-violation', { detail: `Thông điệp không hợp lệ / malformed message: ${detail}` });

/** Startup parameters passed on to the database: presentation only, nothing that changes what a statement reads. */
const FORWARDED_STARTUP = ['client_encoding', 'DateStyle', 'TimeZone', 'extra_float_digits', 'IntervalStyle'];

/** `-c name=value` and `--name=value` of the startup `options` parameter (backslash escapes a space). */
export function parseStartupOptions(options: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!options) return out;
  const words = options.match(/(?:\\.|\S)+/g)?.map((w) => w.replace(/\\(.)/g, '$1')) ?? [];
  for (let i = 0; i < words.length; i++) {
    let setting: string | undefined;
    if (words[i] === '-c') setting = words[++i];
    else if (words[i]!.startsWith('-c')) setting = words[i]!.slice(2);
    else if (words[i]!.startsWith('--')) setting = words[i]!.slice(2);
    const eq = setting?.indexOf('=') ?? -1;
    if (!setting || eq <= 0) throw protocolError(`startup option "${words[i] ?? ''}" is not -c name=value`);
    out.set(setting.slice(0, eq).toLowerCase(), setting.slice(eq + 1));
  }
  return out;
}

/** `CODE/CASE-REF` → purpose; the engine checks the code against its list and the reference against its pattern. */
export function parsePurpose(value: string): Purpose {
  const slash = value.indexOf('/');
  if (slash <= 0 || slash === value.length - 1) {
    throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'purpose-invalid', { detail: 'Mục đích khai thác có dạng MÃ/SỐ-HỒ-SƠ / the purpose of access is CODE/CASE-REF' });
  }
  return { code: value.slice(0, slash), caseRef: value.slice(slash + 1) };
}

const PURPOSE_APPLICATION_NAME = 'purpose:';

/** The gateway's own prepared statement and portal on the upstream; client names with this prefix are refused. */
const RESERVED_NAME_PREFIX = 'ztgate_';
const SETTINGS_STATEMENT = 'ztgate_settings';
const SETTINGS_NAMES = ['national_id', 'agency', 'commune', 'purpose', 'case_ref'];
const SETTINGS_CALLS = SETTINGS_NAMES.map((n, i) => `set_config('ztgate.${n}', $${i + 1}, true)`);
const SETTINGS_SQL = `SELECT ${SETTINGS_CALLS.join(', ')}`;
const NO_INDEXES: readonly number[] = Object.freeze([]);
const NOTHING_MASKED: ReadonlySet<string> = new Set();

/** A SQL string literal; standard_conforming_strings is pinned on upstream, so only quotes need doubling. */
const literal = (v: string) => `'${v.replaceAll('\0', '').replaceAll("'", "''")}'`;

interface StatementState {
  readonly text: string;
  readonly classified: Classified;
}

interface Exec {
  readonly record: StatementRecord;
  readonly masked: ReadonlySet<string>;
  /** Most rows this statement may still deliver (records per response, the rest of today's quota). */
  readonly limit: number;
  readonly limitReason: Reason | null;
  readonly quota: boolean;
  maskedIndexes: readonly number[] | null;
  over: boolean;
  delivered: number;
}

/** Upstream responses of one exchange, routed to what they answer. */
interface Responder {
  readonly kind: 'one' | 'describe-statement' | 'describe-portal' | 'execute' | 'sync' | 'swallow-describe' | 'swallow-one' | 'swallow-execute';
  readonly exec?: Exec;
  readonly masked?: ReadonlySet<string>;
  readonly portal?: PortalState;
  /** describe-statement: ParameterDescription seen, RowDescription/NoData to come. */
  step?: number;
}

interface PortalState {
  readonly statement: StatementState;
  readonly binaryResults: boolean;
  fields: wire.FieldDescription[] | null;
}

type Phase = { readonly onMessage: (m: wire.Message) => void; readonly done: (status: string) => void };

export class DatabaseConnection {
  readonly id = randomUUID();
  readonly cancelKey = { processId: randomInt(1, 2 ** 31 - 1), secretKey: randomInt(-(2 ** 31), 2 ** 31 - 1) };
  private client: Socket;
  private readonly source: { ip: string | null; port: number | null };
  private service: DatabaseServiceConfig | null = null;
  private principal: Principal | null = null;
  private token: string | null = null;
  private device: DeviceTrust | null = null;
  private purpose: Purpose | null = null;
  private upstream: UpstreamConnection | null = null;
  private upstreamSplitter: wire.MessageSplitter | null = null;
  private readonly phases: Phase[] = [];
  private txStatus = 'I';
  /** The ztgate.* settings are current in the upstream's open transaction. */
  private settingsInTransaction = false;
  private readonly statements = new Map<string, StatementState>();
  private readonly portals = new Map<string, PortalState>();
  /** (statement kind, table) pairs this connection was allowed: re-decided when the policy changes. */
  private readonly granted = new Map<string, Classified>();
  private grantedVersion: string | null = null;
  private revocationHandle: string | null = null;
  private watcher: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly splitter: wire.MessageSplitter;
  private waiting: { resolve: (m: wire.Message) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  constructor(
    socket: TLSSocket,
    private readonly deps: DatabasePlaneDeps,
    private readonly cancels: CancelRegistry,
    private readonly initial: wire.MessageSplitter,
  ) {
    this.client = socket;
    this.source = { ip: socket.remoteAddress ?? null, port: socket.remotePort ?? null };
    this.splitter = initial;
    socket.on('data', (chunk: Buffer) => {
      this.splitter.push(chunk);
      this.wake();
    });
    socket.on('close', () => this.close());
    socket.on('error', () => {
      this.close();
      socket.destroy();
    });
  }

  private wake(): void {
    if (!this.waiting) return;
    let m: wire.Message | null;
    try {
      m = this.splitter.next();
    } catch (err) {
      const w = this.waiting;
      this.waiting = null;
      w.reject(err as Error);
      return;
    }
    if (m) {
      const w = this.waiting;
      this.waiting = null;
      w.resolve(m);
    }
  }

  private nextMessage(): Promise<wire.Message> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.wake();
    });
  }

  /** What an exchange answers, gathered so that it leaves in one write (one TLS record, one syscall). */
  private outbox: Buffer[] | null = null;
  private outboxBytes = 0;

  private flushOutbox(): void {
    const out = this.outbox;
    if (!out) return;
    this.outbox = [];
    this.outboxBytes = 0;
    if (!this.closed && out.length > 0) this.client.write(out.length === 1 ? out[0]! : Buffer.concat(out));
  }

  private write(buf: Buffer | Buffer[]): void {
    if (this.closed) return;
    if (this.outbox) {
      for (const b of Array.isArray(buf) ? buf : [buf]) {
        this.outbox.push(b);
        this.outboxBytes += b.length;
      }
      // A large result goes out as it comes rather than piling up in memory.
      if (this.outboxBytes >= 64 * 1024) this.flushOutbox();
      return;
    }
    if (Array.isArray(buf)) {
      if (buf.length > 0) this.client.write(buf.length === 1 ? buf[0]! : Buffer.concat(buf));
    } else this.client.write(buf);
  }

  private record(statement: Classified | null): StatementRecord {
    return {
      id: randomUUID(),
      startedAt: process.hrtime.bigint(),
      service: this.service,
      classification: null,
      principal: this.principal,
      device: this.device,
      purpose: this.purpose,
      source: this.source,
      connectionId: this.id,
      statement,
      decision: null,
      policyVersion: this.deps.policy().version,
      allowedWithoutPolicy: false,
      reasons: [],
      errorCode: null,
      rows: 0,
      bytes: 0,
      upstreamError: null,
    };
  }

  private fail(rec: StatementRecord, err: GatewayError): void {
    rec.reasons.push(err.reason);
    rec.errorCode = err.code;
  }

  /** Refuses the connection with a FATAL error and one event. */
  private refuseConnection(err: GatewayError, rec = this.record(null)): void {
    this.fail(rec, err);
    emitStatement(this.deps.decisionLog, rec);
    this.flushOutbox();
    this.outbox = null;
    if (!this.closed) this.client.end(wire.errorResponse(errorFields(err, 'FATAL', this.upstream === null)));
    this.close(true);
  }

  /** `ending`: the client socket was ended with a last message; it is destroyed only if it does not close by itself. */
  close(ending = false): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watcher) clearInterval(this.watcher);
    this.cancels.delete(this.cancelKey.processId);
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = null;
      w.reject(new Error('connection closed'));
    }
    this.failure = new Error('connection closed');
    if (this.upstream) {
      const up = this.upstream.socket;
      if (!up.destroyed) up.end(serialize.end());
      up.destroy();
    }
    for (const p of this.phases.splice(0)) p.done('closed');
    if (this.revocationHandle) void this.deps.store.del(sessionKeys.ended(this.revocationHandle)).catch(() => undefined);
    if (ending) setTimeout(() => this.client.destroy(), 1000).unref();
    else this.client.destroy();
  }

  /** Called by the listener for a CancelRequest naming this connection. */
  cancel(): void {
    if (this.service && this.upstream) cancelUpstream(this.service, this.upstream.processId, this.upstream.secretKey);
  }

  async run(): Promise<void> {
    const startupDeadline = setTimeout(() => this.refuseConnection(protocolError(`startup not finished within ${this.deps.databases.startupTimeoutMs} ms`)), this.deps.databases.startupTimeoutMs);
    try {
      if (!(await this.startup())) return;
    } catch (err) {
      this.refuseConnection(err instanceof GatewayError ? err : err instanceof wire.ProtocolViolation ? protocolError(err.message) : this.internal(err));
      return;
    } finally {
      clearTimeout(startupDeadline);
    }
    this.watcher = setInterval(() => void this.checkGrant(), this.deps.databases.revocationCheckIntervalMs);
    this.watcher.unref();
    try {
      for (;;) {
        const m = await this.nextMessage();
        if (m.type === 'X') return this.close();
        this.outbox = [];
        try {
          await this.exchange(m);
        } finally {
          this.flushOutbox();
          this.outbox = null;
          const settling = this.settleDeferred();
          if (settling) await settling;
        }
        if (this.closed) return;
      }
    } catch (err) {
      if (this.closed) return;
      if (err instanceof wire.ProtocolViolation) this.refuseConnection(protocolError(err.message));
      else this.refuseConnection(err instanceof GatewayError ? err : this.internal(err));
    }
  }

  private internal(err: unknown): GatewayError {
    this.deps.log.error({ err, connection: this.id }, 'database connection failed');
    return new GatewayError('ZTG_ERR_INTERNAL', 'gateway-error', { cause: err });
  }

  // ── Startup and authentication ───────────────────────────────────────────────────────────

  private async startup(): Promise<boolean> {
    const packet = wire.readStartup(await this.nextMessage());
    // Every message after the startup packet starts with its type byte.
    this.splitter.typed = true;
    if (packet.kind === 'cancel') {
      this.handleCancel(packet.processId, packet.secretKey);
      return false;
    }
    if (packet.kind !== 'startup') throw protocolError('a second SSLRequest or GSSENCRequest inside TLS');
    const params = packet.parameters;
    if (params.replication !== undefined) throw refused('statement-not-allowed', 'Không hỗ trợ kết nối sao chép / replication connections are not served');
    const service = this.deps.databases.services.find((s) => s.id === params.database);
    if (!service) throw new GatewayError('ZTG_ERR_ROUTE_NOT_FOUND', 'route-not-found', { detail: `Không có cơ sở dữ liệu "${String(params.database ?? '').slice(0, 63)}" / no database service of that name` });
    this.service = service;
    if (service.approval.status !== 'approved') throw new GatewayError('ZTG_ERR_ROUTE_NOT_APPROVED', 'route-not-approved');
    const options = parseStartupOptions(params.options);
    for (const name of options.keys()) {
      if (name !== 'ztgate.purpose' && name !== 'ztgate.posture') throw refused('statement-escape', `Không được đặt tùy chọn ${name} / the startup option ${name} is not accepted`);
    }
    const declared = options.get('ztgate.purpose') ?? (params.application_name?.startsWith(PURPOSE_APPLICATION_NAME) ? params.application_name.slice(PURPOSE_APPLICATION_NAME.length) : undefined);

    // The access token is the password (cleartext is safe here: the channel is TLS).
    this.write(wire.authenticationCleartextPassword());
    const pm = await this.nextMessage();
    if (pm.type !== 'p') throw protocolError('expected a password message');
    const token = wire.readPassword(pm);
    if (token.length === 0 || token.length > 16_384) throw new GatewayError('ZTG_ERR_UNAUTHENTICATED', 'token-missing');
    const principal = await this.deps.authenticator.verifyAccessToken(token);
    this.principal = principal;
    this.token = token;
    if (params.user !== principal.nationalId) {
      throw new GatewayError('ZTG_ERR_UNAUTHENTICATED', 'database-user-mismatch', { detail: 'Tên người dùng phải là số định danh cá nhân trong access token / the user name must be the national ID of the access token' });
    }
    requireRouteAssurance(principal, { minAssuranceLevel: service.minAssuranceLevel, maxAuthAgeSeconds: undefined }, { identity: this.deps.config.identity, browser: false, returnTo: '/' });
    const posture = options.get('ztgate.posture');
    this.device = await this.deps.devices.assess({ method: 'CONNECT', url: '/', headers: posture ? { 'x-device-posture': posture } : {}, socket: this.client }, principal);
    requireDeviceTier(this.device, service, this.deps.config.devices);
    await checkLocks(this.deps.locks, { nationalId: principal.nationalId, deviceId: this.device.id, sessionId: null, address: this.source.ip });
    if (declared !== undefined) this.setPurpose(declared);

    try {
      const extra = Object.fromEntries(FORWARDED_STARTUP.filter((k) => params[k] !== undefined).map((k) => [k, params[k]!]));
      this.upstream = await connectUpstream(service, this.deps.databases.upstreamConnectTimeoutMs, extra);
    } catch (err) {
      const kind = err instanceof UpstreamError ? err.kind : 'network';
      // The client learns which part failed; the operator log has the database's own words.
      const detail = {
        credentials: `Cơ sở dữ liệu ${service.id} từ chối thông tin đăng nhập của cổng / the database ${service.id} refused the gateway's own credentials (see the operator log)`,
        tls: `Không thiết lập được TLS tới cơ sở dữ liệu ${service.id} / TLS to the database ${service.id} could not be established (see the operator log)`,
        network: `Không kết nối được cơ sở dữ liệu ${service.id} / the database ${service.id} could not be reached`,
      }[kind];
      this.deps.log.error({ err, service: service.id, failure: kind }, kind === 'credentials' ? 'database service refused the gateway credentials' : kind === 'tls' ? 'TLS to the database service failed' : 'database service unreachable');
      throw new GatewayError('ZTG_ERR_UPSTREAM_UNAVAILABLE', 'upstream-unavailable', { cause: err, detail });
    }
    if (this.closed) return false;
    this.attachUpstream();
    await this.registerForRevocation(token, principal);
    this.cancels.add(this.cancelKey.processId, this.cancelKey.secretKey, this);
    const hello: Buffer[] = [wire.authenticationOk()];
    for (const [k, v] of this.upstream.parameters) hello.push(wire.parameterStatus(k, v));
    hello.push(wire.backendKeyData(this.cancelKey.processId, this.cancelKey.secretKey), wire.readyForQuery('I'));
    this.write(hello);
    return true;
  }

  private handleCancel(processId: number, secretKey: number): void {
    this.cancels.cancel(processId, secretKey);
    this.close();
  }

  private setPurpose(value: string): void {
    const purpose = parsePurpose(value);
    const problem = this.deps.policy().purposeProblem(purpose);
    if (problem) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'purpose-invalid', { detail: `Mục đích khai thác không hợp lệ / invalid purpose of access: ${problem}` });
    this.purpose = purpose;
    this.settingsInTransaction = false;
  }

  /**
   * Ending the official's sessions (sign-out everywhere, the IdP's back-channel logout of the
   * token's `sid`) ends this connection too: it is indexed like a browser session, and the
   * tombstone those write is what the revocation check reads.
   */
  private async registerForRevocation(token: string, principal: Principal): Promise<void> {
    const handle = `db-${this.id}`;
    const store = this.deps.store;
    try {
      await store.sadd(sessionKeys.byOfficial(principal.nationalId), handle);
      const claims = decodeJwtSafe(token);
      if (typeof claims?.sid === 'string') await store.sadd(sessionKeys.bySid(principal.issuer, claims.sid), handle);
      if (typeof claims?.sub === 'string') await store.sadd(sessionKeys.bySub(principal.issuer, claims.sub), handle);
    } catch (err) {
      throw new GatewayError('ZTG_ERR_LOCK_CHECK_UNAVAILABLE', 'session-store-unavailable', { cause: err });
    }
    this.revocationHandle = handle;
  }

  // ── Revocation while connected ───────────────────────────────────────────────────────────

  private checking = false;

  /** Lock, sign-out, expired or withdrawn token, policy change: the connection ends within one interval. */
  private async checkGrant(): Promise<void> {
    if (this.checking || this.closed || !this.principal || !this.service) return;
    this.checking = true;
    try {
      let err: GatewayError | null = null;
      try {
        await this.deps.authenticator.verifyAccessToken(this.token!);
        await checkLocks(this.deps.locks, { nationalId: this.principal.nationalId, deviceId: this.device?.id, sessionId: null, address: this.source.ip });
        if (this.revocationHandle && (await this.deps.store.get(sessionKeys.ended(this.revocationHandle))) !== null) err = new GatewayError('ZTG_ERR_UNAUTHENTICATED', 'session-revoked');
        if (!err) err = this.regrant();
      } catch (e) {
        err = e instanceof GatewayError ? e : this.internal(e);
      }
      if (err && !this.closed) this.revoke(err);
    } finally {
      this.checking = false;
    }
  }

  /** Under a new policy version, everything this connection was allowed is decided again. */
  private regrant(): GatewayError | null {
    const engine = this.deps.policy();
    if (this.grantedVersion === null || engine.version === this.grantedVersion) return null;
    for (const c of this.granted.values()) {
      try {
        decideStatement(engine, { service: this.service!, statement: c, principal: this.principal!, device: this.device, purpose: this.purpose, sourceIp: this.source.ip }, () => undefined);
      } catch (err) {
        return err instanceof GatewayError ? err : this.internal(err);
      }
    }
    this.grantedVersion = engine.version;
    return null;
  }

  private revoke(err: GatewayError): void {
    const rec = this.record(null);
    rec.reasons.push('connection-revoked');
    this.refuseConnection(err, rec);
  }

  // ── Upstream responses ───────────────────────────────────────────────────────────────────

  private attachUpstream(): void {
    const up = this.upstream!.socket;
    // A DataRow can be as large as a column value PostgreSQL allows (1 GiB).
    this.upstreamSplitter = new wire.MessageSplitter(1024 * 1024 * 1024 + 1024, true);
    up.on('data', (chunk: Buffer) => {
      this.upstreamSplitter!.push(chunk);
      try {
        for (let m = this.upstreamSplitter!.next(); m; m = this.upstreamSplitter!.next()) this.onUpstream(m);
      } catch (err) {
        this.deps.log.error({ err, connection: this.id }, 'database service sent a malformed message');
        this.close();
      }
    });
    const lost = () => {
      if (this.closed) return;
      this.refuseConnection(new GatewayError('ZTG_ERR_UPSTREAM_UNAVAILABLE', 'upstream-unavailable'));
    };
    up.on('close', lost);
    up.on('error', lost);
  }

  private onUpstream(m: wire.Message): void {
    const phase = this.phases[0];
    if (m.type === 'Z') {
      this.txStatus = String.fromCharCode(m.raw[5]!);
      if (this.txStatus === 'I') this.settingsInTransaction = false;
      this.phases.shift();
      phase?.done(this.txStatus);
      return;
    }
    if (phase) phase.onMessage(m);
    // Outside any exchange only asynchronous messages arrive: notices, notifications, parameter changes.
    else if (m.type === 'N' || m.type === 'A' || m.type === 'S') this.write(m.raw);
    else if (m.type === 'E') {
      // The server ending the session (admin shutdown, idle timeout): tell the client and close.
      this.write(m.raw);
      this.close();
    }
  }

  /** Sends `messages` upstream and resolves with the transaction status at their ReadyForQuery. */
  private send(messages: Buffer[], onMessage: (m: wire.Message) => void): Promise<string> {
    return new Promise((resolve) => {
      this.phases.push({ onMessage, done: resolve });
      // What one exchange sends in the same tick (its BEGIN, the statement, its COMMIT) leaves in one write.
      if (this.outgoing.length === 0) queueMicrotask(() => this.flushUpstream());
      this.outgoing.push(...messages);
    });
  }

  private outgoing: Buffer[] = [];

  private flushUpstream(): void {
    const out = this.outgoing;
    this.outgoing = [];
    if (!this.closed && out.length > 0) this.upstream!.socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
  }

  /** A statement of the gateway's own, answered to nobody; an error in it is passed on (a COMMIT that failed). */
  private quiet(sql: string, passErrors: boolean, rec?: StatementRecord): Promise<string> {
    return this.send([serialize.query(sql)], (m) => {
      if (m.type === 'E' && passErrors) {
        if (rec) rec.upstreamError = wire.readErrorFields(m).C ?? 'XX000';
        this.write(m.raw);
      } else if (m.type === 'N' && passErrors) this.write(m.raw);
    });
  }

  /** The ztgate.* values, in the order of SETTINGS_STATEMENT's parameters. */
  private settingsValues(): string[] {
    const p = this.principal!;
    return [p.nationalId, p.agency ?? '', p.unit ?? p.agency ?? '', this.purpose?.code ?? '', this.purpose?.caseRef ?? ''];
  }

  private settingsPrepared = false;
  private settingsBound: { readonly key: string; readonly raw: Buffer } | null = null;

  /**
   * Extended-protocol messages that set the ztgate.* values for the transaction they run in —
   * the implicit one that ends at the client's Sync — with the responders that swallow their answers.
   */
  private settingsMessages(responders: Responder[]): Buffer[] {
    const out: Buffer[] = [];
    if (!this.settingsPrepared) {
      out.push(serialize.parse({ name: SETTINGS_STATEMENT, text: SETTINGS_SQL, types: [] }));
      responders.push({ kind: 'swallow-one' });
      this.settingsPrepared = true;
    }
    // The values change only with the purpose: their Bind and Execute are serialised once per value.
    const values = this.settingsValues();
    const key = values.join('\0');
    if (this.settingsBound?.key !== key) {
      this.settingsBound = { key, raw: Buffer.concat([serialize.bind({ portal: SETTINGS_STATEMENT, statement: SETTINGS_STATEMENT, values }), serialize.execute({ portal: SETTINGS_STATEMENT })]) };
    }
    out.push(this.settingsBound.raw);
    responders.push({ kind: 'swallow-one' }, { kind: 'swallow-execute' });
    return out;
  }

  private settingsText: { readonly key: string; readonly sql: string; readonly prefix: Buffer } | null = null;

  /** The statement setting the ztgate.* values; built once per set of values (they change only with the purpose). */
  private settingsSql(): string {
    return this.settings().sql;
  }

  private settings(): { readonly sql: string; readonly prefix: Buffer } {
    const values = this.settingsValues();
    const key = values.join('\0');
    if (this.settingsText?.key !== key) {
      // RLS policies read these with current_setting('ztgate.…', true).
      const sql = `SELECT ${SETTINGS_NAMES.map((n, i) => `set_config('ztgate.${n}', ${literal(values[i]!)}, true)`).join(', ')}`;
      this.settingsText = { key, sql, prefix: Buffer.from(`${sql};\n`, 'utf8') };
    }
    return this.settingsText;
  }

  // ── Exchanges ────────────────────────────────────────────────────────────────────────────

  private async exchange(first: wire.Message): Promise<void> {
    if (first.type === 'Q') return this.simpleQuery(first);
    if (first.type === 'P' || first.type === 'B' || first.type === 'D' || first.type === 'E' || first.type === 'C' || first.type === 'H' || first.type === 'S') {
      const batch = [first];
      while (batch[batch.length - 1]!.type !== 'S') {
        const m = await this.nextMessage();
        if (m.type === 'X') return this.close();
        batch.push(m);
        if (batch.length > 10_000) throw new wire.ProtocolViolation('more than 10000 messages without Sync');
      }
      return this.extended(batch);
    }
    if (first.type === 'F') {
      // Fast-path function calls name a function by OID: nothing the parser can read.
      const rec = this.record(null);
      return this.refuseAndReady(rec, refused('statement-escape', 'Gọi hàm kiểu fast-path / fast-path function call'));
    }
    throw new wire.ProtocolViolation(`unexpected message type "${first.type}"`);
  }

  /** Refuses one statement: its event, the error, and (inside a transaction) the transaction failed as PostgreSQL would. */
  private async refuseAndReady(rec: StatementRecord, err: GatewayError): Promise<void> {
    this.fail(rec, err);
    emitStatement(this.deps.decisionLog, rec);
    this.write(wire.errorResponse(errorFields(err, 'ERROR')));
    const status = await this.failTransaction();
    this.write(wire.readyForQuery(status));
  }

  /** After a refusal inside the client's transaction, the upstream transaction must fail too: a later COMMIT must not commit. */
  private async failTransaction(): Promise<string> {
    if (this.txStatus !== 'T') return this.txStatus;
    return this.quiet('SELECT 1/0', false);
  }

  private auditRequiredOf: { readonly service: DatabaseServiceConfig; readonly required: boolean } | null = null;

  /** The service's events must be written before its results leave (asked once per connection). */
  private auditRequired(): boolean {
    const service = this.service!;
    if (this.auditRequiredOf?.service !== service) this.auditRequiredOf = { service, required: isAuditRequired({ securityLevel: service.securityLevel }, this.deps.config.audit) };
    return this.auditRequiredOf.required;
  }

  /** The policy decision for a data statement, and the obligations as the wire applies them. */
  private async decideData(rec: StatementRecord, c: Classified): Promise<{ masked: Set<string>; limit: number; limitReason: Reason | null; quota: boolean }> {
    const engine = this.deps.policy();
    const { decision } = decideStatement(
      engine,
      { service: this.service!, statement: c, principal: this.principal!, device: this.device, purpose: this.purpose, sourceIp: this.source.ip },
      (d) => {
        rec.decision = d.decision;
        (rec as { classification: StatementRecord['classification'] }).classification = d.classification;
      },
      this.deps.recentDecisions,
    );
    if (this.grantedVersion !== engine.version) {
      this.granted.clear();
      this.grantedVersion = engine.version;
    }
    for (const t of c.tables) this.granted.set(`${c.kind} ${t.schema}.${t.table}`, c);
    if (this.auditRequired() && !this.deps.decisionLog.healthy()) {
      throw new GatewayError('ZTG_ERR_AUDIT_UNAVAILABLE', 'audit-unavailable');
    }
    const find = <T extends Obligation['type']>(type: T) => decision.obligations.find((o) => o.type === type) as Extract<Obligation, { type: T }> | undefined;
    const mask = find('mask-fields');
    const masked = new Set<string>();
    if (mask) {
      const fields = new Set(mask.fields.map((f) => f.toLowerCase()));
      if (c.wholeRow) throw refused('masked-column-in-expression', 'Giá trị cả bản ghi chứa cột bị che / a whole-row value carries masked columns');
      const used = [...c.columnsInExpressions].find((col) => fields.has(col));
      if (used) throw refused('masked-column-in-expression', `Cột ${used} bị che, chỉ được chọn trực tiếp / the masked column ${used} may only be selected as is`);
      for (const f of fields) masked.add(f);
      for (const [output, column] of c.outputColumns) if (fields.has(column)) masked.add(output);
    }
    let limit = Infinity;
    let limitReason: Reason | null = null;
    const cap = find('max-records-per-response');
    if (cap) {
      limit = cap.max;
      limitReason = 'records-per-response-exceeded';
    }
    const quota = find('max-records-per-day');
    if (quota) {
      await checkDailyQuota(this.deps.store, decision, this.principal!.nationalId);
      const used = Number((await this.deps.store.get(dailyQuotaKey(this.principal!.nationalId, Date.now()))) ?? 0);
      if (quota.max - used < limit) {
        limit = quota.max - used;
        limitReason = 'quota-exceeded';
      }
    }
    return { masked, limit, limitReason, quota: quota !== undefined };
  }

  private newExec(rec: StatementRecord, o: { masked: Set<string>; limit: number; limitReason: Reason | null; quota: boolean } | null): Exec {
    return { record: rec, masked: o?.masked ?? NOTHING_MASKED, limit: o?.limit ?? Infinity, limitReason: o?.limitReason ?? null, quota: o?.quota ?? false, maskedIndexes: null, over: false, delivered: 0 };
  }

  /** RowDescription with masked columns re-typed as text (their values become text like '056*********'). */
  private describeRows(m: wire.Message, masked: ReadonlySet<string>, strict = true): { raw: Buffer; fields: wire.FieldDescription[] | null; indexes: readonly number[] } {
    // Nothing masked: the description passes as received, unread.
    if (masked.size === 0) return { raw: m.raw, fields: null, indexes: NO_INDEXES };
    const fields = wire.readRowDescription(m);
    const indexes: number[] = [];
    const out = fields.map((f, i) => {
      if (!masked.has(f.name.toLowerCase())) return f;
      if (f.format !== 0 && !strict) return f;
      if (f.format !== 0) throw new GatewayError('ZTG_ERR_OBLIGATION_FAILED', 'obligation-failed', { detail: `Cột ${f.name} bị che không gửi được ở dạng nhị phân / a masked column cannot be sent in binary format` });
      indexes.push(i);
      return { ...f, typeId: 25, typeSize: -1, typeModifier: -1 };
    });
    return { raw: indexes.length > 0 ? wire.rowDescription(out) : m.raw, fields, indexes };
  }

  /** A DataRow, counted and masked; false once the statement went over its limit (nothing more is sent). */
  private deliverRow(exec: Exec, m: wire.Message): void {
    exec.record.bytes += m.raw.length;
    exec.record.rows += 1;
    if (exec.over) return;
    if (exec.delivered + 1 > exec.limit) {
      exec.over = true;
      return;
    }
    exec.delivered += 1;
    if (exec.maskedIndexes && exec.maskedIndexes.length > 0) {
      const values = wire.readDataRow(m);
      for (const i of exec.maskedIndexes) {
        const v = values[i];
        if (v !== null && v !== undefined) values[i] = Buffer.from(String(maskValue(v.toString('utf8'))));
      }
      this.write(wire.dataRow(values));
    } else this.write(m.raw);
  }

  /** The end of a statement's rows: its CommandComplete, or the error that replaces it past the limit. */
  private completeExec(exec: Exec, m: wire.Message): void {
    if (exec.over) {
      const err = new GatewayError('ZTG_ERR_QUOTA_EXCEEDED', exec.limitReason ?? 'records-per-response-exceeded', {
        detail: `Câu lệnh trả về quá ${exec.delivered} bản ghi được phép / the statement returned more than the ${exec.delivered} records allowed`,
      });
      this.fail(exec.record, err);
      this.write(wire.errorResponse(errorFields(err, 'ERROR')));
      return;
    }
    if (m.type === 'C' && exec.record.statement?.kind !== 'SELECT') exec.record.rows = wire.rowsOfTag(wire.readQuery(m));
    this.write(m.raw);
  }

  /** Statements answered in this exchange whose event and quota count wait until the answer has left. */
  private deferred: Exec[] = [];

  private async finishExec(exec: Exec): Promise<void> {
    // An audit-required service records the statement before the client sees its result; others
    // send the result first (the connection takes no next message before the event is written).
    if (!this.auditRequired()) {
      this.deferred.push(exec);
      return;
    }
    await this.settle(exec);
  }

  /** Events of the deferred statements (written in the same tick, in order), then their quota counts; undefined when none is counted. */
  private settleDeferred(): Promise<void> | undefined {
    const execs = this.deferred;
    if (execs.length === 0) return undefined;
    this.deferred = [];
    for (const e of execs) emitStatement(this.deps.decisionLog, e.record);
    const counted = execs.filter((e) => this.counts(e));
    if (counted.length === 0) return undefined;
    return (async () => {
      for (const e of counted) await this.countQuota(e);
    })();
  }

  private async settle(exec: Exec): Promise<void> {
    if (this.counts(exec)) await this.countQuota(exec);
    emitStatement(this.deps.decisionLog, exec.record);
  }

  /** The statement delivered rows that count against the official's daily quota. */
  private counts(exec: Exec): boolean {
    return exec.quota && exec.delivered > 0 && exec.record.upstreamError === null;
  }

  private async countQuota(exec: Exec): Promise<void> {
    try {
      await this.deps.store.incr(dailyQuotaKey(this.principal!.nationalId, Date.now()), exec.delivered, 2 * 86_400_000);
    } catch (err) {
      this.deps.log.error({ err, connection: this.id }, 'daily record quota could not be counted');
    }
  }

  /** Before the client's statement: open the transaction the ztgate.* settings live in. */
  private wrapPrefix(): Buffer[] {
    return [serialize.query(`BEGIN; ${this.settingsSql()}`)];
  }

  /** After it: commit the transaction the gateway opened (roll back when the statement failed or was cut off). */
  private async unwrap(ok: boolean, rec: StatementRecord | null): Promise<string> {
    if (this.txStatus === 'I') return 'I';
    return this.quiet(ok && this.txStatus === 'T' ? 'COMMIT' : 'ROLLBACK', true, rec ?? undefined);
  }

  private async simpleQuery(m: wire.Message): Promise<void> {
    const text = wire.readQuery(m);
    const c = this.deps.classify(text);
    const rec = this.record(c);
    if (c.empty) {
      this.write([wire.emptyQueryResponse(), wire.readyForQuery(this.txStatus)]);
      return;
    }
    if (c.refusal) return this.refuseAndReady(rec, refused(c.refusal.reason, c.refusal.detail));
    if (c.purpose) {
      try {
        if (c.purpose.value === null) this.purpose = null;
        else this.setPurpose(c.purpose.value);
      } catch (err) {
        if (!(err instanceof GatewayError)) throw err;
        return this.refuseAndReady(rec, err);
      }
      (rec as { purpose: Purpose | null }).purpose = this.purpose;
      rec.allowedWithoutPolicy = true;
      rec.reasons.push('statement-session-control');
      emitStatement(this.deps.decisionLog, rec);
      this.write([wire.commandComplete(c.purpose.value === null ? 'RESET' : 'SET'), wire.readyForQuery(this.txStatus)]);
      return;
    }
    let obligations = null;
    if (c.kind === 'SESSION') {
      rec.allowedWithoutPolicy = true;
      rec.reasons.push('statement-session-control');
    } else {
      try {
        obligations = await this.decideData(rec, c);
      } catch (err) {
        if (!(err instanceof GatewayError)) throw err;
        return this.refuseAndReady(rec, err);
      }
    }
    const exec = this.newExec(rec, obligations);
    if (this.txStatus === 'I' && c.kind === 'SELECT') {
      // One query string is one implicit transaction: the settings and the SELECT travel and commit
      // together, in one round trip. (The text was parsed as exactly one statement, so nothing of it
      // can reach into the settings statement before it.)
      let settingsDone = false;
      const status = await this.send([wire.prefixedQuery(this.settings().prefix, m)], (r) => {
        if (settingsDone) return this.onSimpleResponse(exec, r);
        if (r.type === 'C') settingsDone = true;
        else if (r.type === 'E') {
          exec.record.upstreamError = wire.readErrorFields(r).C ?? 'XX000';
          this.write(r.raw);
        }
      });
      this.write(wire.readyForQuery(status));
      await this.finishExec(exec);
      return;
    }
    const wrap = this.txStatus === 'I' && c.kind !== 'SESSION';
    // A SELECT's transaction ends the same whether committed or rolled back: its COMMIT goes in the
    // same round trip (after an error PostgreSQL answers it with ROLLBACK). Writes wait for the outcome.
    const pipelined = wrap && c.kind === 'SELECT';
    let prefix: Promise<string> | null = null;
    if (wrap) prefix = this.send(this.wrapPrefix(), () => undefined);
    else if (this.txStatus === 'T' && !this.settingsInTransaction && c.kind !== 'SESSION') prefix = this.quiet(this.settingsSql(), false);
    const statement = this.send([m.raw], (r) => this.onSimpleResponse(exec, r));
    const commit = pipelined ? this.quiet('COMMIT', true, rec) : null;
    const status = await statement;
    if (prefix) await prefix;
    if (wrap || this.txStatus === 'T') this.settingsInTransaction = this.txStatus !== 'I';
    let final = status;
    if (commit) final = await commit;
    else if (wrap) final = await this.unwrap(!exec.over && rec.upstreamError === null, rec);
    else if (exec.over) final = await this.failTransaction();
    if (c.opensTransaction && final === 'T') {
      await this.quiet(this.settingsSql(), false);
      this.settingsInTransaction = true;
    }
    this.write(wire.readyForQuery(final));
    await this.finishExec(exec);
  }

  private onSimpleResponse(exec: Exec, m: wire.Message): void {
    switch (m.type) {
      case 'T': {
        try {
          const d = this.describeRows(m, exec.masked);
          exec.maskedIndexes = d.indexes;
          this.write(d.raw);
        } catch (err) {
          exec.over = true;
          this.fail(exec.record, err as GatewayError);
        }
        return;
      }
      case 'D':
        return this.deliverRow(exec, m);
      case 'C':
      case 'I':
        return this.completeExec(exec, m);
      case 'E':
        exec.record.upstreamError = wire.readErrorFields(m).C ?? 'XX000';
        this.write(m.raw);
        return;
      case 'G':
      case 'H':
      case 'W':
        // COPY is refused before it reaches the database; a copy mode here means the parser was bypassed.
        this.deps.log.error({ connection: this.id }, 'database entered COPY mode for a statement the gateway allowed');
        this.close();
        return;
      default:
        this.write(m.raw);
    }
  }

  // ── Extended protocol ────────────────────────────────────────────────────────────────────

  private async extended(batch: wire.Message[]): Promise<void> {
    const forward: Buffer[] = [];
    const responders: Responder[] = [];
    const execs: Exec[] = [];
    let refusal: { rec: StatementRecord; err: GatewayError } | null = null;
    let hasData = false;
    let opensTransaction = false;
    // One decision per statement and exchange, whether a Describe or the Execute asked first.
    const decided = new Map<StatementState, { o: Awaited<ReturnType<DatabaseConnection['decideData']>>; rec: StatementRecord }>();
    const obligationsOf = async (st: StatementState, rec: StatementRecord) => {
      let d = decided.get(st);
      if (!d) {
        d = { o: await this.decideData(rec, st.classified), rec };
        decided.set(st, d);
      } else if (d.rec !== rec) {
        rec.decision = d.rec.decision;
        (rec as { classification: StatementRecord['classification'] }).classification = d.rec.classification;
      }
      return d.o;
    };

    for (const m of batch) {
      if (refusal && m.type !== 'S') continue;
      switch (m.type) {
        case 'P': {
          const { name, text } = wire.readParse(m);
          if (name.startsWith(RESERVED_NAME_PREFIX)) {
            refusal = { rec: this.record(null), err: protocolError(`statement names starting with ${RESERVED_NAME_PREFIX} are the gateway's`) };
            break;
          }
          const c = this.deps.classify(text);
          if (c.refusal || c.purpose) {
            const err = c.refusal ? refused(c.refusal.reason, c.refusal.detail) : refused('statement-not-allowed', 'Khai báo mục đích bằng truy vấn đơn giản (SET ztgate.purpose) / declare the purpose with a simple query');
            refusal = { rec: this.record(c), err };
            break;
          }
          this.statements.set(name, { text, classified: c });
          forward.push(m.raw);
          responders.push({ kind: 'one' });
          break;
        }
        case 'B': {
          const { portal, statement, resultFormats } = wire.readBind(m);
          if (portal.startsWith(RESERVED_NAME_PREFIX)) {
            refusal = { rec: this.record(null), err: protocolError(`portal names starting with ${RESERVED_NAME_PREFIX} are the gateway's`) };
            break;
          }
          const st = this.statements.get(statement);
          if (!st) {
            refusal = { rec: this.record(null), err: protocolError(`no prepared statement "${statement}"`) };
            break;
          }
          this.portals.set(portal, { statement: st, binaryResults: resultFormats.includes(1), fields: null });
          forward.push(m.raw);
          responders.push({ kind: 'one' });
          break;
        }
        case 'D': {
          const { which, name } = wire.readTarget(m);
          const st = which === 'S' ? this.statements.get(name) : this.portals.get(name)?.statement;
          const portal = which === 'P' ? this.portals.get(name) : undefined;
          let masked: ReadonlySet<string> = new Set();
          if (st && st.classified.kind !== 'SESSION' && st.classified.kind !== null) {
            try {
              masked = (await obligationsOf(st, this.record(st.classified))).masked;
            } catch (err) {
              if (!(err instanceof GatewayError)) throw err;
              refusal = { rec: this.record(st.classified), err };
              break;
            }
          }
          forward.push(m.raw);
          responders.push({ kind: which === 'S' ? 'describe-statement' : 'describe-portal', masked, portal, step: 0 });
          break;
        }
        case 'E': {
          const { portal: name } = wire.readExecute(m);
          const portal = this.portals.get(name);
          if (!portal) {
            refusal = { rec: this.record(null), err: protocolError(`no portal "${name}"`) };
            break;
          }
          const c = portal.statement.classified;
          const rec = this.record(c);
          let o = null;
          if (c.empty) {
            // An empty statement: EmptyQueryResponse, no decision, no event.
          } else if (c.kind === 'SESSION') {
            rec.allowedWithoutPolicy = true;
            rec.reasons.push('statement-session-control');
            opensTransaction ||= c.opensTransaction;
          } else {
            try {
              o = await obligationsOf(portal.statement, rec);
              if (portal.binaryResults && o.masked.size > 0) throw new GatewayError('ZTG_ERR_OBLIGATION_FAILED', 'obligation-failed', { detail: 'Cột bị che không gửi được ở dạng nhị phân / masked columns cannot be sent in binary format' });
            } catch (err) {
              if (!(err instanceof GatewayError)) throw err;
              refusal = { rec, err };
              break;
            }
            hasData = true;
          }
          const exec = this.newExec(rec, o);
          if (!c.empty) execs.push(exec);
          if (exec.masked.size > 0 && !portal.fields) {
            // The masked columns' positions come from the portal's row description: ask for it when the client did not.
            forward.push(serialize.describe({ type: 'P', name }));
            responders.push({ kind: 'swallow-describe', portal });
          }
          forward.push(m.raw);
          responders.push({ kind: 'execute', exec, portal });
          break;
        }
        case 'C': {
          const { which, name } = wire.readTarget(m);
          if (which === 'S') this.statements.delete(name);
          else this.portals.delete(name);
          forward.push(m.raw);
          responders.push({ kind: 'one' });
          break;
        }
        case 'H':
          forward.push(m.raw);
          break;
        case 'S':
          forward.push(m.raw);
          break;
        default:
          refusal = { rec: this.record(null), err: protocolError(`message type "${m.type}" inside an extended-protocol exchange`) };
      }
    }

    if (this.txStatus === 'I' && hasData && !opensTransaction && refusal === null && execs.every((e) => e.record.statement?.kind === 'SELECT')) {
      // Messages up to Sync run in one implicit transaction: the settings go first in it, and the
      // whole exchange is one round trip with no BEGIN or COMMIT.
      const prefixResponders: Responder[] = [];
      const settings = this.settingsMessages(prefixResponders);
      const status = await this.send([...settings, ...forward], (r) => this.onExtendedResponse(prefixResponders.length > 0 ? prefixResponders : responders, r));
      this.write(wire.readyForQuery(status));
      for (const e of execs) await this.finishExec(e);
      return;
    }
    const wrap = this.txStatus === 'I' && hasData && !opensTransaction;
    let prefix: Promise<string> | null = null;
    if (wrap) prefix = this.send(this.wrapPrefix(), () => undefined);
    else if (this.txStatus === 'T' && hasData && !this.settingsInTransaction) prefix = this.quiet(this.settingsSql(), false);
    const pipelined = wrap && refusal === null && execs.every((e) => e.record.statement?.kind === 'SELECT');
    const main = this.send(forward, (r) => this.onExtendedResponse(responders, r));
    const commit = pipelined ? this.quiet('COMMIT', true, execs[execs.length - 1]?.record) : null;
    const status = await main;
    if (prefix) await prefix;
    if (this.txStatus === 'T') this.settingsInTransaction = true;
    const failed = refusal !== null || execs.some((e) => e.over || e.record.upstreamError !== null);
    if (refusal) {
      this.fail(refusal.rec, refusal.err);
      emitStatement(this.deps.decisionLog, refusal.rec);
      this.write(wire.errorResponse(errorFields(refusal.err, 'ERROR')));
    }
    let final = status;
    if (commit) final = await commit;
    else if (wrap) final = await this.unwrap(!failed, execs[execs.length - 1]?.record ?? null);
    else if (failed && status === 'T') final = await this.failTransaction();
    if (opensTransaction && final === 'T' && !this.settingsInTransaction) {
      await this.quiet(this.settingsSql(), false);
      this.settingsInTransaction = true;
    }
    this.write(wire.readyForQuery(final));
    for (const e of execs) await this.finishExec(e);
  }

  private onExtendedResponse(responders: Responder[], m: wire.Message): void {
    if (m.type === 'N' || m.type === 'A' || m.type === 'S') {
      this.write(m.raw);
      return;
    }
    if (m.type === 'E') {
      // The server skips everything up to Sync after an error.
      const r = responders.shift();
      if (r?.exec) r.exec.record.upstreamError = wire.readErrorFields(m).C ?? 'XX000';
      responders.length = 0;
      this.write(m.raw);
      return;
    }
    const r = responders[0];
    if (!r) {
      this.write(m.raw);
      return;
    }
    switch (r.kind) {
      case 'one':
        responders.shift();
        this.write(m.raw);
        return;
      case 'describe-statement':
        if (m.type === 't') {
          this.write(m.raw);
          return;
        }
        responders.shift();
        this.write(m.type === 'T' ? this.safeDescribe(m, r.masked!) : m.raw);
        return;
      case 'describe-portal':
        responders.shift();
        if (m.type === 'T') {
          this.write(this.safeDescribe(m, r.masked!, r.portal));
        } else this.write(m.raw);
        return;
      case 'swallow-one':
        responders.shift();
        return;
      case 'swallow-execute':
        if (m.type === 'C') responders.shift();
        return;
      case 'swallow-describe':
        responders.shift();
        if (m.type === 'T' && r.portal) r.portal.fields = wire.readRowDescription(m);
        return;
      case 'execute': {
        const exec = r.exec!;
        if (exec.maskedIndexes === null) {
          const fields = r.portal?.fields ?? [];
          exec.maskedIndexes = fields.flatMap((f, i) => (exec.masked.has(f.name.toLowerCase()) ? [i] : []));
        }
        if (m.type === 'D') return this.deliverRow(exec, m);
        responders.shift();
        if (m.type === 'C' || m.type === 'I') return this.completeExec(exec, m);
        this.write(m.raw); // PortalSuspended
        return;
      }
      default:
        this.write(m.raw);
    }
  }

  private safeDescribe(m: wire.Message, masked: ReadonlySet<string>, portal?: PortalState): Buffer {
    // Binary results of a masked column are refused at Execute; a description alone reveals no value.
    const d = this.describeRows(m, masked, false);
    // Unread (nothing masked now): an Execute that masks asks for the description again.
    if (portal && d.fields) portal.fields = d.fields;
    return d.raw;
  }
}

function decodeJwtSafe(token: string): Record<string, unknown> | null {
  try {
    return decodeJwt(token);
  } catch {
    return null;
  }
}
