import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The durable local spool of one remote sink: events wait here, in order, until the sink has
 * them. Append-only segment files (`000000000001.jsonl`, …) and a cursor file naming the first
 * byte not yet delivered. The cursor moves only after delivery, and is read back at start, so a
 * crash or an outage loses nothing and repeats at most what was in flight (at-least-once; the
 * SOC de-duplicates on event.id). Delivered segments are deleted; the total stays under
 * `maxBytes` — past it, new events are refused here (they remain in the hash-chained local log)
 * and the gateway raises an alert.
 */

export interface SpoolPosition {
  readonly segment: number;
  readonly offset: number;
}

export type AppendResult = 'ok' | 'full' | 'error';

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
  dropped = 0;

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
    else this.fd = openSync(join(this.dir, name(this.writeSegment)), 'a');
    if (this.committed.segment === 0) this.read = this.committed = { segment: this.segments[0]!, offset: 0 };
    return this;
  }

  private startSegment(segment: number): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = openSync(join(this.dir, name(segment)), 'a');
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
    const buf = Buffer.from(line.endsWith('\n') ? line : `${line}\n`);
    if (this.total + buf.length > this.opts.maxBytes) {
      this.dropped++;
      return 'full';
    }
    try {
      if ((this.sizes.get(this.writeSegment) ?? 0) >= this.opts.segmentBytes) this.startSegment(this.writeSegment + 1);
      writeSync(this.fd, buf);
    } catch {
      return 'error';
    }
    this.sizes.set(this.writeSegment, (this.sizes.get(this.writeSegment) ?? 0) + buf.length);
    this.total += buf.length;
    return 'ok';
  }

  /** The next records after the read position (not yet sent), whole lines only. */
  async next(maxLines: number, maxBytes = 256 * 1024): Promise<{ lines: string[]; end: SpoolPosition } | null> {
    for (;;) {
      const { segment, offset } = this.read;
      const size = this.sizes.get(segment) ?? 0;
      if (offset < size) {
        const fh = await open(join(this.dir, name(segment)), 'r');
        try {
          const length = Math.min(size - offset, maxBytes);
          const buf = Buffer.alloc(length);
          const { bytesRead } = await fh.read(buf, 0, length, offset);
          const text = buf.subarray(0, bytesRead).toString('utf8');
          const cut = text.lastIndexOf('\n');
          if (cut === -1) return null;
          const lines = text.slice(0, cut).split('\n').slice(0, maxLines);
          const used = lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
          return { lines, end: { segment, offset: offset + used } };
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
    writeFileSync(`${cursorFile}.tmp`, `${pos.segment} ${pos.offset}\n`);
    renameSync(`${cursorFile}.tmp`, cursorFile);
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
