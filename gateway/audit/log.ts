import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { DestinationStream, Logger } from 'pino';
import type { AuditConfig } from './config.js';
import { ChainWriter } from './chain.js';
import { canonicalJson } from './canonical.js';
import { createCheckpointSigner } from './keys.js';
import { sinkKind } from './sink-kinds.js';
import { RemoteSink, type SinkStatus } from './sinks.js';
import { Spool } from './spool.js';

/**
 * Where every event goes (README "For the SOC"): synchronously to the local hash-chained file and
 * to standard output, and into the durable spool of each remote sink (syslog, Redis Streams),
 * from which their own loops deliver. Nothing here waits on the network.
 */

export type AuditEvent = Record<string, unknown> & { event: Record<string, unknown> & { id: string; kind: string; action: string } };

export interface AuditStatus {
  readonly chain: { readonly file: string; readonly healthy: boolean; readonly headSeq: number; readonly lastCheckpointAtMs: number | null } | null;
  readonly sinks: readonly SinkStatus[];
}

export interface DecisionLog {
  /** Writes one event everywhere it goes; returns false when the local chain refused it. */
  write(event: AuditEvent): boolean;
  /** The local chain accepts writes: audit-required routes may be served. */
  healthy(): boolean;
  /**
   * Before an audit-required request is forwarded: its forward record is written to the local
   * chain and flushed to disk. False (refuse the request) when that could not be done.
   */
  recordForward(entry: ForwardEntry): Promise<boolean>;
  /** Every event written, after it was written (detection rules, live views). */
  subscribe(listener: (event: AuditEvent) => void): () => void;
  status(): AuditStatus;
  /** Per remote sink, when the oldest event still waiting for it was written (null: none waits). Reads the spools. */
  oldestWaiting(): Promise<{ sink: string; atMs: number | null }[]>;
  /** Opens the local chain (its first write would too) and starts delivery to remote sinks. */
  start(): void;
  close(): Promise<void>;
}

/** What an audit-required request's forward record holds (gateway/audit/chain.ts ForwardBody). */
export interface ForwardEntry {
  readonly requestId: string;
  readonly routeId: string;
  readonly userId: string | null;
  readonly method: string;
  /** The path as events record it: no query, fragment or parameters. */
  readonly path: string;
  readonly rule: string | null;
  readonly policyVersion: string | null;
}

export interface DecisionLogOptions {
  readonly audit?: AuditConfig;
  /** For redis-stream sinks without a redisUrl of their own. */
  readonly stateRedisUrl?: string;
  /** Fallback checkpoint signing key (the assertion key). */
  readonly assertionKeyFile?: string;
  /** Highest security level among the routes: picks the retention period. */
  readonly maxSecurityLevel?: number;
  readonly log?: Pick<Logger, 'error' | 'warn' | 'info'>;
  readonly now?: () => Date;
}

export function createDecisionLog(destination: DestinationStream, opts: DecisionLogOptions = {}): DecisionLog {
  const audit = opts.audit;
  const listeners = new Set<(event: AuditEvent) => void>();

  let chain: ChainWriter | null = null;
  if (audit?.chain) {
    const c = audit.chain;
    const keyFile = c.signingKeyFile ?? opts.assertionKeyFile;
    const signer = createCheckpointSigner({ alg: c.algorithm, keyFile, keyFileSetting: c.signingKeyFile ? 'audit.chain.signingKeyFile' : 'assertion.keyFile' });
    if (signer.ephemeral) opts.log?.warn({ kid: signer.kid }, 'audit.chain.signingKeyFile not set: checkpoints are signed with a key generated at start; its public key is only in the log');
    const level = String(audit.retention.securityLevel ?? opts.maxSecurityLevel ?? 3) as '1' | '2' | '3' | '4' | '5';
    // Opened by start() or the first write, not here: a start that fails before leaves the chain as it was.
    chain = new ChainWriter({
      file: c.file,
      signer,
      checkpointEvery: c.checkpointEvery,
      checkpointIntervalSeconds: c.checkpointIntervalSeconds,
      rotation: c.rotation,
      compressRotated: c.compressRotated,
      timeZone: c.timeZone,
      retentionMonths: audit.retention.byLevelMonths[level] ?? 3,
      log: opts.log,
      now: opts.now,
    });
  }
  let chainOpened = false;
  const openChain = (): ChainWriter | null => {
    if (chain && !chainOpened) {
      chainOpened = true;
      chain.open();
    }
    return chain;
  };

  // Each configured sink is built by its kind (gateway/audit/sink-kinds.ts); without `audit`, standard output only.
  const direct: ((line: string) => void)[] = [];
  const remotes: RemoteSink[] = [];
  if (!audit) direct.push((line) => void destination.write(`${line}\n`));
  for (const sink of audit?.sinks ?? []) {
    const made = sinkKind(sink.type)!.create(sink, { destination, stateRedisUrl: opts.stateRedisUrl });
    if ('write' in made) {
      direct.push(made.write);
      continue;
    }
    const spool = new Spool(join(audit!.spoolDir!, made.name), { maxBytes: audit!.spoolMaxBytes, segmentBytes: audit!.spoolSegmentBytes }).open();
    remotes.push(
      new RemoteSink({ name: made.name, type: sink.type, reconnectMaxMs: made.reconnectMaxMs }, spool, made.transport, opts.log, (sink, detail) =>
        raise(
          auditAlert('audit-spool-record-skipped', `Bản ghi hỏng trong hàng đợi gửi SOC "${sink.cfg.name}" đã bị bỏ qua / torn or corrupted records in the spool of SOC sink "${sink.cfg.name}" were skipped`, {
            sink: sink.cfg.name,
            records: detail.records,
            bytes: detail.bytes,
            segment: detail.segment,
            offset: detail.offset,
          }),
        ),
      ),
    );
  }
  const alertArmed = new Map<string, boolean>();
  let inAlert = false;

  /** Writes an alert about the audit pipeline itself; one raised while another is written follows it. */
  const queued: AuditEvent[] = [];
  function raise(alert: AuditEvent): void {
    queued.push(alert);
    if (inAlert) return;
    inAlert = true;
    try {
      for (let next = queued.shift(); next; next = queued.shift()) api.write(next);
    } finally {
      inAlert = false;
    }
  }

  /** One alert per episode: armed again once the condition cleared. */
  function once(key: string, failing: boolean, alert: () => AuditEvent): void {
    if (!failing) {
      alertArmed.delete(key);
      return;
    }
    if (alertArmed.get(key) === false) return;
    alertArmed.set(key, false);
    raise(alert());
  }

  function spoolAlert(sink: RemoteSink, state: 'near-full' | 'full'): void {
    raise(
      auditAlert(
        `audit-spool-${state}`,
        state === 'full' ? `Hàng đợi gửi SOC "${sink.cfg.name}" đã đầy: sự kiện mới chỉ còn trong nhật ký cục bộ / spool of SOC sink "${sink.cfg.name}" is full: new events are kept in the local log only` : `Hàng đợi gửi SOC "${sink.cfg.name}" sắp đầy / spool of SOC sink "${sink.cfg.name}" is nearly full`,
        {
          sink: sink.cfg.name,
          spool_bytes: sink.spool.bytes,
          spool_max_bytes: sink.spool.maxBytes,
          dropped: sink.spool.dropped,
        },
      ),
    );
  }

  const api: DecisionLog = {
    write(event) {
      const c = openChain();
      const lostBefore = c?.lostEvents ?? 0;
      // Serialised once: with the chain, its canonical form is also the line for stdout and the sinks.
      const line = c ? canonicalJson(event) : JSON.stringify(event);
      const ok = c ? c.append(event, line) : true;
      for (const write of direct) write(line);
      const failedSinks: string[] = [];
      for (const sink of remotes) {
        const result = sink.spool.append(line);
        sink.notify();
        if (result === 'error') failedSinks.push(sink.cfg.name);
        const key = sink.cfg.name;
        const ratio = sink.spool.bytes / sink.spool.maxBytes;
        if (result === 'ok') {
          // Told once the spool takes events again, so the alert itself reaches the SOC.
          const stretch = sink.spool.takeFailedStretch();
          if (stretch)
            raise(
              auditAlert('audit-spool-write-failed', `${stretch.events} sự kiện không ghi được vào hàng đợi gửi SOC "${key}" (đĩa đầy hoặc lỗi I/O) / ${stretch.events} event(s) could not be written to the spool of SOC sink "${key}" (disk full or I/O error); they are in the local chain`, {
                sink: key,
                events: stretch.events,
                first_at: stretch.first_at,
                last_at: stretch.last_at,
              }),
            );
        }
        if (result === 'full' && alertArmed.get(`${key}:full`) !== false) {
          alertArmed.set(`${key}:full`, false);
          spoolAlert(sink, 'full');
        } else if (result === 'ok' && ratio >= audit!.spoolAlertRatio && alertArmed.get(`${key}:near`) !== false) {
          alertArmed.set(`${key}:near`, false);
          spoolAlert(sink, 'near-full');
        } else if (ratio < audit!.spoolAlertRatio * 0.9) {
          // Re-armed once the spool drained well below the mark: one alert per episode.
          alertArmed.delete(`${key}:near`);
          alertArmed.delete(`${key}:full`);
        }
      }
      if (failedSinks.length > 0 && alertArmed.get('spool-write-log') !== false) {
        alertArmed.set('spool-write-log', false);
        opts.log?.error({ sinks: failedSinks }, 'SOC spool write failed (disk full or I/O error): events are missing from these sinks until it recovers');
      } else if (failedSinks.length === 0) alertArmed.delete('spool-write-log');
      if (ok && lostBefore > 0) raise(auditAlert('audit-chain-gap', `${lostBefore} sự kiện không ghi được vào nhật ký cục bộ; đã ghi bản ghi khoảng trống / ${lostBefore} event(s) could not be written to the local chain; a gap record says so`, { file: audit!.chain!.file, events: lostBefore }));
      if (c && event.event.action !== 'audit-alert') {
        once('chain:write', !ok, () => auditAlert('audit-chain-write-failed', 'Không ghi được nhật ký kiểm toán cục bộ (đĩa đầy hoặc lỗi I/O): tuyến bắt buộc kiểm toán bị từ chối / the local audit chain cannot be written (disk full or I/O error): audit-required routes are refused', { file: audit!.chain!.file }));
      }
      for (const listener of listeners) {
        try {
          listener(event);
        } catch (err) {
          opts.log?.error({ err }, 'audit listener failed');
        }
      }
      return ok;
    },
    healthy: () => openChain()?.healthy() ?? true,
    async recordForward(entry) {
      const c = openChain();
      return c ? c.forward({ request_id: entry.requestId, route: entry.routeId, user_id: entry.userId, method: entry.method, path: entry.path, rule: entry.rule, policy_version: entry.policyVersion }) : true;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    status: () => ({ chain: chain && audit?.chain ? { file: audit.chain.file, healthy: chain.healthy(), headSeq: chain.headSeq, lastCheckpointAtMs: chain.lastCheckpointAtMs } : null, sinks: remotes.map((r) => r.status()) }),
    oldestWaiting: () => Promise.all(remotes.map(async (r) => ({ sink: r.cfg.name, atMs: await r.spool.oldestWaitingMs().catch(() => null) }))),
    start() {
      openChain();
      for (const r of remotes) r.start();
    },
    async close() {
      await Promise.all(remotes.map((r) => r.close()));
      if (chainOpened) await chain?.close();
    },
  };
  return api;
}

/** An alert event about the audit pipeline itself (event.kind alert, rule.id = what happened). */
export function auditAlert(ruleId: string, message: string, detail: Record<string, unknown>): AuditEvent {
  return {
    '@timestamp': new Date().toISOString(),
    log: { level: 'warn' },
    event: { kind: 'alert', category: ['configuration'], type: ['info'], action: 'audit-alert', outcome: 'unknown', id: randomUUID(), severity: 7 },
    rule: { id: ruleId, name: ruleId, ruleset: 'ztgate-audit' },
    ztgate: { alert: { rule: ruleId, action: 'alert', reasons: [ruleId], detail } },
    message,
  };
}
