import { closeSync, existsSync, fstatSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';

/**
 * The durable local spool of one remote sink: events wait here, in order, until the sink has
 * them. Append-only segment files (`000000000001.jsonl`, …) and a cursor file naming the first
 * byte not yet delivered. The cursor moves only after delivery, and is read back at start, so a
 * crash or an outage loses nothing and repeats at most what was in flight (at-least-once; the
 * SOC de-duplicates on event.id). Delivered segments are deleted; the total stays under
 * `maxBytes` — past it, new events are refused here (they remain in the hash-chained local log)
 * and the gateway raises an alert.
 *
 * Each record is framed as in RFC 7464 (JSON text sequences): RS (0x1E), then the CRC-32 of the
 * JSON in 8 hex digits, a space, the JSON, LF. JSON never contains a raw RS, so a record torn by a
 * full disk or a crash is found (no LF, or a CRC that does not match, or an RS inside the line),
 * skipped and counted — one bad record never stops delivery of the ones after it.
 */

export interface SpoolPosition {
  readonly segment: number;
  readonly offset: number;
}

export type AppendResult = 'ok' | 'full' | 'error';

/** What a read found besides whole records: torn or corrupted stretches, skipped. */
export interface SpoolBatch {
  readonly lines: string[];
  readonly end: SpoolPosition;
  readonly skipped: number;
  readonly skippedBytes: number;
}

const RS = '\x1e';

export function frameRecord(json: string): string {
  return `${RS}${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

/** The JSON of one spool line (without its LF), or null when the line is not a whole, intact record. */
export function unframeRecord(line: string): { json: string | null; bad: number } {
  if (line === '') return { json: null, bad: 0 };
  const start = line.lastIndexOf(RS);
  if (start === -1) {
    // Written before records were framed: whole JSON lines.
    try {
      JSON.parse(line);
      return { json: line, bad: 0 };
    } catch {
      return { json: null, bad: 1 };
    }
  }
  const record = line.slice(start + 1);
  const json = record.slice(9);
  const intact = record[8] === ' ' && crc32(json).toString(16).padStart(8, '0') === record.slice(0, 8);
  // Anything before the last RS is what remains of a record torn mid-write.
  return { json: intact ? json : null, bad: (intact ? 0 : 1) + (start > 0 ? 1 : 0) };
}

const SEGMENT = /^(\d{12})\.jsonl$/;
const name = (segment: number) => `${String(segment).padStart(12, '0')}.jsonl`;

export class Spool {
  private segments: number[] = [];
  private sizes = new Map<number, number>();
  private fd = -1;
  private writeSegment = 0;
  private committed: SpoolPosition = { segment: 0, offset: 0 };
  private read: SpoolPosition = { segment: 0, offset: 0 };
  private total = 0;
  /** The last record written may be incomplete: the next one starts on a line of its own. */
  private torn = false;
  dropped = 0;
  /** Records the disk did not take (write errors, short writes). */
  failed = 0;
  /** The current stretch of failed appends, until someone reports it. */
  private failing: { events: number; first_at: string; last_at: string } | null = null;

  constructor(
    readonly dir: string,
    private readonly opts: { maxBytes: number; segmentBytes: number },
  ) {}

  open(): this {
    mkdirSync(this.dir, { recursive: true });
    this.segments = readdirSync(this.dir)
      .map((f) => SEGMENT.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    for (const s of this.segments) {
      const size = statSync(join(this.dir, name(s))).size;
      this.sizes.set(s, size);
      this.total += size;
    }
    const cursorFile = join(this.dir, 'cursor');
    if (existsSync(cursorFile)) {
      const [segment, offset] = readFileSync(cursorFile, 'utf8').trim().split(' ').map(Number);
      if (Number.isSafeInteger(segment) && Number.isSafeInteger(offset)) this.committed = { segment: segment!, offset: offset! };
    }
    if (this.segments.length > 0 && this.committed.segment < this.segments[0]!) this.committed = { segment: this.segments[0]!, offset: 0 };
    this.read = this.committed;
    this.writeSegment = this.segments.at(-1) ?? 1;
    if (this.segments.length === 0) this.startSegment(1);
    else {
      this.fd = openSync(join(this.dir, name(this.writeSegment)), 'a+');
      this.torn = !endsWithNewline(this.fd, this.sizes.get(this.writeSegment) ?? 0);
    }
    if (this.committed.segment === 0) this.read = this.committed = { segment: this.segments[0]!, offset: 0 };
    return this;
  }

  private startSegment(segment: number): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = openSync(join(this.dir, name(segment)), 'a+');
    this.writeSegment = segment;
    this.segments.push(segment);
    this.sizes.set(segment, fstatSync(this.fd).size);
  }

  get bytes(): number {
    return this.total;
  }

  get maxBytes(): number {
    return this.opts.maxBytes;
  }

  /** Synchronous: called on the request path, it never waits on the network. */
  append(line: string): AppendResult {
    const json = line.endsWith('\n') ? line.slice(0, -1) : line;
    const buf = Buffer.from(`${this.torn ? '\n' : ''}${frameRecord(json)}`);
    if (this.total + buf.length > this.opts.maxBytes) {
      this.dropped++;
      return 'full';
    }
    try {
      if ((this.sizes.get(this.writeSegment) ?? 0) >= this.opts.segmentBytes) this.startSegment(this.writeSegment + 1);
      const written = writeSync(this.fd, buf);
      if (written !== buf.length) throw Object.assign(new Error(`short write (${written} of ${buf.length} bytes)`), { code: 'EIO' });
    } catch {
      this.failed++;
      const at = new Date().toISOString();
      this.failing ??= { events: 0, first_at: at, last_at: at };
      this.failing.events++;
      this.failing.last_at = at;
      this.undoPartialWrite();
      return 'error';
    }
    this.torn = false;
    this.sizes.set(this.writeSegment, (this.sizes.get(this.writeSegment) ?? 0) + buf.length);
    this.total += buf.length;
    return 'ok';
  }

  /** The stretch of appends that failed before this one succeeded, once. */
  takeFailedStretch(): { events: number; first_at: string; last_at: string } | null {
    const f = this.failing;
    this.failing = null;
    return f;
  }

  /** A short write is cut off again; where even that fails, the reader skips the fragment. */
  private undoPartialWrite(): void {
    if (this.fd < 0) return;
    const before = this.sizes.get(this.writeSegment) ?? 0;
    try {
      ftruncateSync(this.fd, before);
      return;
    } catch {
      // fall through: the file keeps a fragment
    }
    try {
      const size = fstatSync(this.fd).size;
      if (size !== before) {
        this.torn = true;
        this.sizes.set(this.writeSegment, size);
        this.total += size - before;
      }
    } catch {
      this.torn = true;
    }
  }

  /**
   * The next records after the read position (not yet sent), whole and intact ones only; torn or
   * corrupted stretches in between are skipped and counted.
   */
  async next(maxLines: number, maxBytes = 256 * 1024): Promise<SpoolBatch | null> {
    for (;;) {
      const { segment, offset } = this.read;
      const size = this.sizes.get(segment) ?? 0;
      if (offset < size) {
        const fh = await open(join(this.dir, name(segment)), 'r');
        try {
          const length = Math.min(size - offset, maxBytes);
          const buf = Buffer.alloc(length);
          const { bytesRead } = await fh.read(buf, 0, length, offset);
          const window = buf.subarray(0, bytesRead);
          const cut = window.lastIndexOf(0x0a);
          if (cut === -1) {
            // A window without any LF is not a record still being written: skip it whole.
            if (bytesRead === maxBytes) return { lines: [], end: { segment, offset: offset + bytesRead }, skipped: 1, skippedBytes: bytesRead };
            // The tail of an earlier segment never gets its LF: skip it.
            if (this.segments.some((s) => s > segment)) return { lines: [], end: { segment, offset: size }, skipped: 1, skippedBytes: size - offset };
            return null;
          }
          const lines: string[] = [];
          let skipped = 0;
          let skippedBytes = 0;
          let used = 0;
          for (const raw of window.subarray(0, cut).toString('utf8').split('\n')) {
            if (lines.length >= maxLines) break;
            used += Buffer.byteLength(raw) + 1;
            const { json, bad } = unframeRecord(raw);
            if (bad > 0) {
              skipped += bad;
              skippedBytes += Buffer.byteLength(raw) - (json ? Buffer.byteLength(json) + 10 : 0);
            }
            if (json !== null) lines.push(json);
          }
          return { lines, end: { segment, offset: offset + used }, skipped, skippedBytes };
        } finally {
          await fh.close();
        }
      }
      const later = this.segments.find((s) => s > segment);
      if (later === undefined) return null;
      this.read = { segment: later, offset: 0 };
    }
  }

  /** Marks records up to `pos` as sent (not yet confirmed). */
  advance(pos: SpoolPosition): void {
    this.read = pos;
  }

  /** Records up to `pos` are delivered: persist the cursor, delete whole delivered segments. */
  commit(pos: SpoolPosition): void {
    this.committed = pos;
    const cursorFile = join(this.dir, 'cursor');
    try {
      writeFileSync(`${cursorFile}.tmp`, `${pos.segment} ${pos.offset}\n`);
      renameSync(`${cursorFile}.tmp`, cursorFile);
    } catch {
      // A full disk: the cursor is kept in memory and written with the next commit; after a crash
      // meanwhile, the last written cursor repeats a little (at-least-once). Nothing is deleted.
      return;
    }
    for (const s of [...this.segments]) {
      if (s >= pos.segment || s === this.writeSegment) break;
      unlinkSync(join(this.dir, name(s)));
      this.total -= this.sizes.get(s) ?? 0;
      this.sizes.delete(s);
      this.segments.shift();
    }
    // A fully delivered current segment restarts, so an idle spool holds no bytes.
    if (pos.segment === this.writeSegment && pos.offset === this.sizes.get(this.writeSegment) && pos.offset >= this.opts.segmentBytes) {
      this.startSegment(this.writeSegment + 1);
    }
  }

  /** Back to the last confirmed position: what was sent since is sent again. */
  rewind(): void {
    this.read = this.committed;
  }

  /**
   * When the oldest event not yet delivered was written (its @timestamp, epoch ms), or null when
   * none waits. Read from disk at the committed position: called by a metrics scrape, not per event.
   */
  async oldestWaitingMs(): Promise<number | null> {
    let { segment, offset } = this.committed;
    while ((this.sizes.get(segment) ?? 0) <= offset) {
      const later = this.segments.find((s) => s > segment);
      if (later === undefined) return null;
      segment = later;
      offset = 0;
    }
    const fh = await open(join(this.dir, name(segment)), 'r');
    try {
      const buf = Buffer.alloc(256);
      const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
      const at = /"@timestamp":"([^"]{10,40})"/.exec(buf.subarray(0, bytesRead).toString('utf8'))?.[1];
      const ms = at ? Date.parse(at) : Number.NaN;
      return Number.isNaN(ms) ? null : ms;
    } finally {
      await fh.close();
    }
  }

  /** Records waiting (sent or not) after the committed position. */
  get backlogBytes(): number {
    let n = 0;
    for (const s of this.segments) {
      if (s < this.committed.segment) continue;
      n += (this.sizes.get(s) ?? 0) - (s === this.committed.segment ? this.committed.offset : 0);
    }
    return n;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

function endsWithNewline(fd: number, size: number): boolean {
  if (size === 0) return true;
  const last = Buffer.alloc(1);
  readSync(fd, last, 0, 1, size - 1);
  return last[0] === 0x0a;
}
