import { closeSync, createReadStream, createWriteStream, existsSync, fdatasync, fdatasyncSync, fstatSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip, gunzipSync } from 'node:zlib';
import type { Logger } from 'pino';
import { canonicalJson, GENESIS_HASH } from './canonical.js';
import { sha256hex } from '../../identity/digest.js';
import type { CheckpointSigner } from './keys.js';

/**
 * The local, append-only, hash-chained decision log (README "For the SOC").
 *
 * One JSON record per line: `{seq, type, prev_hash, event | checkpoint, hash}`, where `hash` is
 * SHA-256 over the canonical form of the record without `hash`, so each record commits to every
 * record before it. Every `checkpointEvery` records (and every `checkpointIntervalSeconds`, and at
 * open, rotation, retention and close) a checkpoint record carries a JWS signed with the gateway
 * key over the head of the chain: rewriting the chain after it needs that key.
 *
 * Writes are synchronous, on purpose: the local write is what an audit-required route waits for
 * (a request is refused rather than served unaudited), it keeps the order of records the order
 * of the chain without a lock, and a local append of one line costs microseconds. Nothing remote
 * is ever awaited here.
 *
 * Two more record types keep the log honest on a full or failing disk. A `forward` record is
 * written, and flushed to disk, before an audit-required request is forwarded: the evidence that
 * it was forwarded exists before the upstream sees it. Events that could not be written are
 * counted, and the first write that succeeds again is preceded by a `gap` record naming how many,
 * when, and which event ids — `ztgate audit verify` reports it.
 */

export type CheckpointReason = 'open' | 'periodic' | 'rotate' | 'retention' | 'close';

export interface ChainRecord {
  seq: number;
  type: 'event' | 'checkpoint' | 'forward' | 'gap';
  prev_hash: string;
  event?: Record<string, unknown>;
  checkpoint?: CheckpointBody;
  forward?: ForwardBody;
  gap?: GapBody;
  hash: string;
}

/**
 * An audit-required request about to be forwarded — who, what, and the decision that allowed it —
 * so that the decision is on disk before the upstream acts on it; the full decision event (status,
 * records, duration) follows when the response ends.
 */
export interface ForwardBody {
  request_id: string;
  at: string;
  route: string;
  user_id: string | null;
  method: string;
  path: string;
  rule: string | null;
  policy_version: string | null;
}

/** Events that could not be written (disk full, I/O error) between two records that could. */
export interface GapBody {
  events: number;
  first_at: string;
  last_at: string;
  /** event.id of the lost events, the first MAX_GAP_IDS of them. */
  event_ids: string[];
}

const MAX_GAP_IDS = 1000;

export interface CheckpointBody {
  reason: CheckpointReason;
  at: string;
  head_seq: number;
  head_hash: string;
  kid: string;
  jws: string;
  /** On `open`: the public key and the promise of how often checkpoints come. */
  public_jwk?: Record<string, unknown>;
  checkpoint_every?: number;
  truncated_bytes?: number;
  /** On `retention`: the files deleted and the last hash each ended with. */
  deleted?: { file: string; last_seq: number; last_hash: string }[];
}

export interface ChainWriterOptions {
  readonly file: string;
  readonly signer: CheckpointSigner;
  readonly checkpointEvery: number;
  readonly checkpointIntervalSeconds: number;
  readonly rotation: 'daily' | 'none';
  readonly compressRotated: boolean;
  readonly timeZone: string;
  /** Rotated files older than this many months are deleted (0: never). */
  readonly retentionMonths: number;
  readonly log?: Pick<Logger, 'error' | 'warn' | 'info'>;
  readonly now?: () => Date;
}

// Building a formatter costs far more than using one, and this runs for every event.
const dayFormats = new Map<string, Intl.DateTimeFormat>();

export function dayIn(timeZone: string, date: Date): string {
  let format = dayFormats.get(timeZone);
  if (!format) dayFormats.set(timeZone, (format = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' })));
  return format.format(date);
}

function monthsBefore(day: string, months: number): string {
  const [y, m, d] = day.split('-').map(Number) as [number, number, number];
  const total = y * 12 + (m - 1) - months;
  const yy = Math.floor(total / 12);
  const mm = (total % 12) + 1;
  const lastDay = new Date(Date.UTC(yy, mm, 0)).getUTCDate();
  return `${String(yy).padStart(4, '0')}-${String(mm).padStart(2, '0')}-${String(Math.min(d, lastDay)).padStart(2, '0')}`;
}

/** Rotated siblings of the chain file, oldest first: `<base>-YYYY-MM-DD[.n].log[.gz]`. */
export function rotatedFiles(file: string): { path: string; day: string }[] {
  const dir = dirname(file);
  const ext = extname(file);
  const stem = basename(file, ext);
  const pattern = new RegExp(`^${stem.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(\\d{4}-\\d{2}-\\d{2})(\\.\\d+)?${ext.replace('.', '\\.')}(\\.gz)?$`);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((name) => ({ name, m: pattern.exec(name) }))
    .filter((x) => x.m)
    .map((x) => ({ path: join(dir, x.name), day: x.m![1]!, n: Number((x.m![2] ?? '.0').slice(1)) }))
    .sort((a, b) => (a.day === b.day ? a.n - b.n : a.day < b.day ? -1 : 1))
    .map(({ path, day }) => ({ path, day }));
}

export function readChainText(path: string): string {
  const buf = readFileSync(path);
  return (path.endsWith('.gz') ? gunzipSync(buf) : buf).toString('utf8');
}

function lastRecordOf(path: string): ChainRecord | null {
  const lines = readChainText(path)
    .split('\n')
    .filter((l) => l.trim());
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      return JSON.parse(lines[i]!) as ChainRecord;
    } catch {
      // a torn last line; the one before it is the head
    }
  }
  return null;
}

export class ChainWriter {
  private fd = -1;
  private size = 0;
  private seq = 0;
  private head = GENESIS_HASH;
  private day = '';
  private sinceCheckpoint = 0;
  private failed: Error | null = null;
  private lastFailureLog = 0;
  private timer: NodeJS.Timeout | null = null;
  private lost: GapBody | null = null;
  private syncing: Promise<boolean> | null = null;
  private nextSync: Promise<boolean> | null = null;
  private readonly now: () => Date;
  readonly pending = new Set<Promise<void>>();

  constructor(private readonly opts: ChainWriterOptions) {
    this.now = opts.now ?? (() => new Date());
  }

  /** Opens (or continues) the chain. A failure leaves the writer unhealthy rather than throwing. */
  open(): this {
    try {
      this.openFile();
    } catch (err) {
      this.fail(err as Error);
    }
    this.timer = setInterval(() => {
      if (this.sinceCheckpoint > 0) this.checkpoint('periodic');
      this.maybeRotate();
    }, this.opts.checkpointIntervalSeconds * 1000);
    this.timer.unref();
    return this;
  }

  private openFile(): void {
    const { file } = this.opts;
    mkdirSync(dirname(file), { recursive: true });
    let truncated = 0;
    const isRegular = existsSync(file) && statSync(file).isFile();
    if (isRegular && statSync(file).size > 0) {
      const { record, validBytes, totalBytes } = tailOf(file);
      if (record) {
        this.seq = record.seq;
        this.head = record.hash;
      }
      if (validBytes < totalBytes) {
        // A record torn by a crash mid-write: cut it, and say so in the signed open checkpoint.
        const fd = openSync(file, 'r+');
        ftruncateSync(fd, validBytes);
        closeSync(fd);
        truncated = totalBytes - validBytes;
      }
      this.day = dayIn(this.opts.timeZone, statSync(file).mtime);
    } else {
      const previous = rotatedFiles(file).at(-1);
      const record = previous ? lastRecordOf(previous.path) : null;
      if (record) {
        this.seq = record.seq;
        this.head = record.hash;
      }
      this.day = dayIn(this.opts.timeZone, this.now());
    }
    this.fd = openSync(file, 'a');
    this.size = isRegular ? fstatSync(this.fd).size : 0;
    this.failed = null;
    this.checkpoint('open', { truncated_bytes: truncated || undefined, public_jwk: { ...this.opts.signer.publicJwk }, checkpoint_every: this.opts.checkpointEvery });
  }

  healthy(): boolean {
    return this.failed === null && this.fd >= 0;
  }

  get headSeq(): number {
    return this.seq;
  }

  /** When this process last wrote a signed checkpoint (epoch ms), or null before the first. */
  lastCheckpointAtMs: number | null = null;

  /**
   * `eventJson` is canonicalJson(event), when the caller has it (gateway/audit/log.ts sends the same
   * string to stdout and the sinks): the event is serialised once.
   */
  append(event: Record<string, unknown>, eventJson: string = canonicalJson(event)): boolean {
    this.maybeRotate();
    // The canonical form of { seq, type, prev_hash, event }: keys in code-unit order.
    const ok = this.ensureOpen() && this.writeGap() && this.writeCanonical(this.seq + 1, `{"event":${eventJson},"prev_hash":${JSON.stringify(this.head)},"seq":${this.seq + 1},"type":"event"}`);
    if (!ok) {
      this.recordLost(String((event.event as { id?: unknown } | undefined)?.id ?? ''));
      return false;
    }
    if (++this.sinceCheckpoint >= this.opts.checkpointEvery) this.checkpoint('periodic');
    return true;
  }

  /** Events written so far that the disk did not take, not yet recorded in a gap record. */
  get lostEvents(): number {
    return this.lost?.events ?? 0;
  }

  /** Writes the forward record of an audit-required request and resolves once it is on disk. */
  forward(entry: Omit<ForwardBody, 'at'>): Promise<boolean> {
    this.maybeRotate();
    const ok = this.ensureOpen() && this.writeGap() && this.write({ seq: this.seq + 1, type: 'forward', prev_hash: this.head, forward: { ...entry, at: this.now().toISOString() } });
    return ok ? this.durable() : Promise.resolve(false);
  }

  /**
   * fdatasync, shared: every caller waiting while one runs is served by the next one, so a burst of
   * audit-required requests costs two flushes, not one each.
   */
  private durable(): Promise<boolean> {
    if (!this.syncing) {
      const fd = this.fd;
      this.syncing = new Promise<boolean>((resolve) =>
        fdatasync(fd, (err) => {
          if (err) this.fail(err);
          resolve(!err);
        }),
      ).finally(() => (this.syncing = null));
      return this.syncing;
    }
    this.nextSync ??= this.syncing.then(() => {
      this.nextSync = null;
      return this.durable();
    });
    return this.nextSync;
  }

  private recordLost(eventId: string): void {
    const at = this.now().toISOString();
    this.lost ??= { events: 0, first_at: at, last_at: at, event_ids: [] };
    this.lost.events++;
    this.lost.last_at = at;
    if (eventId && this.lost.event_ids.length < MAX_GAP_IDS) this.lost.event_ids.push(eventId);
  }

  /** Before anything else is written after a failure: the record of what was lost. */
  private writeGap(): boolean {
    if (!this.lost) return true;
    if (!this.write({ seq: this.seq + 1, type: 'gap', prev_hash: this.head, gap: this.lost })) return false;
    this.opts.log?.warn({ events: this.lost.events, from: this.lost.first_at, to: this.lost.last_at }, 'audit chain writable again; the events it could not write are recorded as a gap');
    this.lost = null;
    return true;
  }

  checkpoint(reason: CheckpointReason, extra: Partial<CheckpointBody> = {}): boolean {
    if (!this.ensureOpen() || !this.writeGap()) return false;
    const at = this.now().toISOString();
    const jws = this.opts.signer.sign({ iss: 'ztgate', reason, at, head_seq: this.seq, head_hash: this.head, ...(extra.deleted ? { deleted: extra.deleted } : {}) });
    const checkpoint: CheckpointBody = { reason, at, head_seq: this.seq, head_hash: this.head, kid: this.opts.signer.kid, jws, ...extra };
    const ok = this.write({ seq: this.seq + 1, type: 'checkpoint', prev_hash: this.head, checkpoint });
    if (ok) {
      this.sinceCheckpoint = 0;
      this.lastCheckpointAtMs = Date.now();
      try {
        fdatasyncSync(this.fd);
      } catch {
        // reported by the next write, if the disk is really gone
      }
    }
    return ok;
  }

  /** Reopens after a failed open or rotation; the open checkpoint comes before anything else. */
  private ensureOpen(): boolean {
    if (this.fd >= 0) return true;
    try {
      this.openFile();
    } catch (err) {
      this.fail(err as Error);
    }
    return this.fd >= 0;
  }

  private write(partial: Omit<ChainRecord, 'hash'>): boolean {
    return this.writeCanonical(partial.seq, canonicalJson(partial));
  }

  /**
   * `body` is the canonical JSON of the record without its hash (what recordHash hashes). The line
   * is that same string with the hash added last: the record is serialised once, and a reader
   * parsing it gets every field back.
   */
  private writeCanonical(seq: number, body: string): boolean {
    const hash = sha256hex(body);
    const line = Buffer.from(`${body.slice(0, -1)},"hash":"${hash}"}\n`);
    try {
      const written = writeSync(this.fd, line);
      if (written !== line.length) throw Object.assign(new Error(`short write (${written} of ${line.length} bytes)`), { code: 'EIO' });
    } catch (err) {
      try {
        ftruncateSync(this.fd, this.size);
      } catch {
        // nothing more to do; the next open cuts a torn line
      }
      this.fail(err as Error);
      return false;
    }
    this.size += line.length;
    this.seq = seq;
    this.head = hash;
    this.failed = null;
    return true;
  }

  private fail(err: Error): void {
    this.failed = err;
    const t = Date.now();
    if (t - this.lastFailureLog > 10_000) {
      this.lastFailureLog = t;
      this.opts.log?.error({ err, file: this.opts.file }, 'audit chain write failed; audit-required routes are refused');
    }
  }

  private maybeRotate(): void {
    if (this.opts.rotation !== 'daily' || this.fd < 0) return;
    const today = dayIn(this.opts.timeZone, this.now());
    if (today === this.day) return;
    try {
      this.rotate(today);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  /** Closes the day's file with a checkpoint, renames it, continues the chain in a new file. */
  private rotate(today: string): void {
    const { file } = this.opts;
    this.checkpoint('rotate');
    closeSync(this.fd);
    this.fd = -1;
    const ext = extname(file);
    const stem = join(dirname(file), basename(file, ext));
    let target = `${stem}-${this.day}${ext}`;
    for (let n = 1; existsSync(target) || existsSync(`${target}.gz`); n++) target = `${stem}-${this.day}.${n}${ext}`;
    renameSync(file, target);
    if (this.opts.compressRotated) this.track(gzipFile(target));
    this.day = today;
    this.size = 0;
    this.fd = openSync(file, 'a');
    this.checkpoint('open', { public_jwk: { ...this.opts.signer.publicJwk }, checkpoint_every: this.opts.checkpointEvery });
    this.applyRetention(today, target);
  }

  /** Deletes rotated files past retention, recording what each ended with in a signed checkpoint. */
  applyRetention(today: string = dayIn(this.opts.timeZone, this.now()), justRotated?: string): string[] {
    if (this.opts.retentionMonths <= 0) return [];
    const cutoff = monthsBefore(today, this.opts.retentionMonths);
    const expired = rotatedFiles(this.opts.file).filter((f) => f.day < cutoff && f.path !== justRotated && `${f.path}` !== `${justRotated}.gz`);
    if (expired.length === 0) return [];
    const deleted: NonNullable<CheckpointBody['deleted']> = [];
    for (const f of expired) {
      const last = lastRecordOf(f.path);
      deleted.push({ file: basename(f.path), last_seq: last?.seq ?? 0, last_hash: last?.hash ?? GENESIS_HASH });
    }
    // The record of what is deleted goes first: no window where files are gone unexplained.
    if (!this.checkpoint('retention', { deleted })) return [];
    for (const f of expired) unlinkSync(f.path);
    this.opts.log?.info({ deleted: deleted.map((d) => d.file) }, 'audit files past retention deleted');
    return expired.map((f) => f.path);
  }

  private track(p: Promise<void>): void {
    const tracked = p.catch((err) => this.opts.log?.error({ err }, 'compressing a rotated audit file failed')).finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.fd >= 0) {
      if (!this.checkpoint('close') && this.lost) {
        this.opts.log?.error({ events: this.lost.events, from: this.lost.first_at, to: this.lost.last_at, file: this.opts.file }, 'audit chain closed while still unwritable: these events are in no local record (stdout and the SOC spools only)');
      }
      closeSync(this.fd);
      this.fd = -1;
    }
    await Promise.all([...this.pending]);
  }
}

async function gzipFile(path: string): Promise<void> {
  await pipeline(createReadStream(path), createGzip(), createWriteStream(`${path}.gz`, { flags: 'wx' }));
  unlinkSync(path);
}

/** The last complete record of a file, and how many bytes of it are whole lines. */
function tailOf(file: string): { record: ChainRecord | null; validBytes: number; totalBytes: number } {
  const fd = openSync(file, 'r');
  try {
    const total = fstatSync(fd).size;
    let span = Math.min(total, 64 * 1024);
    for (;;) {
      const buf = Buffer.alloc(span);
      readSync(fd, buf, 0, span, total - span);
      const text = buf.toString('utf8');
      const lastNl = text.lastIndexOf('\n');
      const validBytes = lastNl === -1 ? total - span : total - span + Buffer.byteLength(text.slice(0, lastNl + 1));
      const lines = text
        .slice(0, lastNl + 1)
        .split('\n')
        .filter((l) => l.trim());
      // The first line of a partial window may be cut; only trust it when the window is the whole file.
      const candidates = span === total ? lines : lines.slice(1);
      for (let i = candidates.length - 1; i >= 0; i--) {
        try {
          return { record: JSON.parse(candidates[i]!) as ChainRecord, validBytes, totalBytes: total };
        } catch {
          // not a whole record
        }
      }
      if (span === total) return { record: null, validBytes, totalBytes: total };
      span = Math.min(total, span * 4);
    }
  } finally {
    closeSync(fd);
  }
}
