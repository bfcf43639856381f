import type { Logger } from 'pino';
import type { Spool, SpoolBatch, SpoolPosition } from './spool.js';

/**
 * Delivery from a spool to one remote sink, in its own loop: in order, at-least-once, never on
 * the request path. A sink that is down or slow only makes its spool grow.
 *
 * Where the transport's answer is an acknowledgement (Redis XADD), the cursor moves on the
 * answer. Plain syslog over TCP/TLS has none: a write is counted as delivered once the connection
 * stayed up, with nothing left unsent, for `confirmAfterMs` after it; a connection that breaks
 * first sends everything unconfirmed again. Receivers de-duplicate on event.id.
 */
export interface Transport {
  /** True when send() resolving means the receiver has the records. */
  readonly deliveryIsAck: boolean;
  /** Without acknowledgements: a write counts as delivered once the connection stayed up this long after it. */
  readonly confirmAfterMs?: number;
  connect(): Promise<void>;
  send(lines: string[]): Promise<void>;
  /** Connected and nothing queued locally. */
  alive(): boolean;
  broken(): boolean;
  /** Resolves true when a graceful close proved everything sent was received. */
  close(graceful: boolean): Promise<boolean>;
}

export interface SinkStatus {
  readonly name: string;
  readonly type: string;
  readonly connected: boolean;
  readonly spoolBytes: number;
  readonly backlogBytes: number;
  readonly dropped: number;
  /** Events the spool's disk did not take. */
  readonly failed: number;
  /** Torn or corrupted records found in the spool and skipped. */
  readonly skipped: number;
  readonly delivered: number;
  readonly lastError: string | null;
}

/** Where one spool delivers to: a SOC sink (its kind in `type`), or an access webhook (`webhook`). */
export interface DeliveryTarget {
  readonly name: string;
  readonly type: string;
  readonly reconnectMaxMs: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export class RemoteSink {
  private connected = false;
  private closing = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private pending: { pos: SpoolPosition; at: number }[] = [];
  private delivered = 0;
  private lastError: string | null = null;
  private backoffMs = 100;
  private skipped = 0;
  /** Skipped records are reported once, even when a reconnect reads past them again. */
  private reportedUpTo: SpoolPosition = { segment: 0, offset: 0 };
  /** The current outage is in the operator log: one line per outage, not one per reconnection attempt. */
  private outageLogged = false;

  constructor(
    readonly cfg: DeliveryTarget,
    readonly spool: Spool,
    private readonly transport: Transport,
    private readonly log?: Pick<Logger, 'warn' | 'info'>,
    /** Torn or corrupted spool records were skipped (the SOC alert). */
    private readonly onSkipped?: (sink: RemoteSink, detail: { records: number; bytes: number; segment: number; offset: number }) => void,
  ) {}

  start(): void {
    this.loop ??= this.run();
  }

  /** New records are in the spool. */
  notify(): void {
    this.wake?.();
  }

  status(): SinkStatus {
    return { name: this.cfg.name, type: this.cfg.type, connected: this.connected, spoolBytes: this.spool.bytes, backlogBytes: this.spool.backlogBytes, dropped: this.spool.dropped, failed: this.spool.failed, skipped: this.skipped, delivered: this.delivered, lastError: this.lastError };
  }

  private confirmAfterMs(): number {
    return this.transport.confirmAfterMs ?? 0;
  }

  private confirm(): void {
    if (this.pending.length === 0 || !this.transport.alive()) return;
    const cutoff = Date.now() - this.confirmAfterMs();
    let last: SpoolPosition | null = null;
    while (this.pending.length > 0 && this.pending[0]!.at <= cutoff) last = this.pending.shift()!.pos;
    if (last) this.spool.commit(last);
  }

  private async down(err: unknown): Promise<void> {
    if (this.connected || !this.outageLogged) this.log?.warn({ sink: this.cfg.name, err: String((err as Error)?.message ?? err) }, this.cfg.type === 'webhook' ? 'webhook receiver unreachable; notifications wait in the spool' : 'SOC sink unreachable; events wait in the spool');
    this.outageLogged = true;
    this.lastError = String((err as Error)?.message ?? err);
    this.connected = false;
    this.pending = [];
    this.spool.rewind();
    await this.transport.close(false).catch(() => false);
  }

  private async run(): Promise<void> {
    while (!this.closing) {
      if (!this.connected) {
        try {
          await this.transport.connect();
          this.connected = true;
          this.outageLogged = false;
          if (this.cfg.type !== 'webhook') this.log?.info({ sink: this.cfg.name }, 'SOC sink connected');
        } catch (err) {
          await this.down(err);
          await this.retryLater();
          continue;
        }
      }
      if (this.transport.broken()) {
        await this.down(new Error('connection closed by the receiver'));
        await this.retryLater();
        continue;
      }
      this.confirm();
      let batch;
      try {
        batch = await this.spool.next(500);
      } catch (err) {
        this.lastError = String(err);
        await this.idle(1000);
        continue;
      }
      if (!batch) {
        await this.idle(this.pending.length > 0 ? Math.max(20, this.confirmAfterMs() / 4) : 1000);
        continue;
      }
      if (batch.skipped > 0) this.reportSkipped(batch);
      if (batch.lines.length === 0) {
        this.spool.advance(batch.end);
        if (this.pending.length === 0) this.spool.commit(batch.end);
        else this.pending.push({ pos: batch.end, at: Date.now() });
        continue;
      }
      try {
        await this.transport.send(batch.lines);
      } catch (err) {
        await this.down(err);
        await this.retryLater();
        continue;
      }
      // The backoff resets on a delivery, not on a connect: a receiver that accepts connections
      // and then fails every one must not be reconnected to hundreds of times a second.
      this.backoffMs = 100;
      this.spool.advance(batch.end);
      this.delivered += batch.lines.length;
      if (this.transport.deliveryIsAck) this.spool.commit(batch.end);
      else this.pending.push({ pos: batch.end, at: Date.now() });
    }
  }

  private reportSkipped(batch: SpoolBatch): void {
    const { segment, offset } = batch.end;
    if (segment < this.reportedUpTo.segment || (segment === this.reportedUpTo.segment && offset <= this.reportedUpTo.offset)) return;
    this.reportedUpTo = batch.end;
    this.skipped += batch.skipped;
    const detail = { records: batch.skipped, bytes: batch.skippedBytes, segment, offset };
    this.log?.warn({ sink: this.cfg.name, ...detail }, 'torn or corrupted records in the SOC spool were skipped; delivery continues');
    this.onSkipped?.(this, detail);
  }

  private async retryLater(): Promise<void> {
    // Not cut short by traffic: under load every new event would otherwise end the backoff at once.
    await this.idle(this.backoffMs, true);
    this.backoffMs = Math.min(this.backoffMs * 2, this.cfg.reconnectMaxMs);
  }

  /** Waits `ms`; new events cut the wait short unless it is a backoff (only closing ends that early). */
  private idle(ms: number, backoff = false): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        if (backoff && !this.closing) return;
        this.wake = null;
        done();
      };
    });
  }

  /** Stops the loop; what was sent and provably received is committed, the rest waits for the next start. */
  async close(): Promise<void> {
    this.closing = true;
    this.wake?.();
    await this.loop;
    if (this.connected) {
      const clean = await this.transport.close(true).catch(() => false);
      if (clean && this.pending.length > 0) this.spool.commit(this.pending.at(-1)!.pos);
    }
    this.pending = [];
    this.spool.close();
  }
}

export { sleep };
