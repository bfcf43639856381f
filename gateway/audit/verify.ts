import { GENESIS_HASH, recordHash } from './canonical.js';
import { readChainText, type ChainRecord } from './chain.js';
import { verifyCheckpointJws, type PublicJwk } from './keys.js';

/**
 * Verification of the hash-chained log, on any machine: needs the files and the public keys,
 * nothing of the gateway. Reports the FIRST problem with its file and line, classified:
 * altered (content changed), removed (records missing), inserted (a record that does not
 * belong), reordered (records out of order), rewritten (a stretch recomputed after the fact:
 * the signed checkpoint disagrees), signature (a checkpoint not signed by a trusted key).
 */

export type ProblemKind = 'altered' | 'removed' | 'inserted' | 'reordered' | 'rewritten' | 'signature' | 'malformed' | 'checkpoint-missing';

export interface Problem {
  readonly kind: ProblemKind;
  readonly file: string;
  readonly line: number;
  readonly seq: number | null;
  readonly message: string;
}

export interface VerifyResult {
  readonly ok: boolean;
  readonly problem: Problem | null;
  readonly records: number;
  readonly events: number;
  readonly checkpoints: number;
  readonly firstSeq: number | null;
  readonly lastSeq: number | null;
  readonly lastHash: string | null;
  /** prev_hash of the first record: the genesis hash, or the hash the earlier (absent) records ended with. */
  readonly startPrevHash: string | null;
  readonly keysUsed: string[];
  readonly warnings: string[];
  /**
   * Events the gateway knows it did not write (gap records), and audit-required requests that were
   * forwarded but whose event never followed before the gateway stopped. The chain can be intact
   * and still incomplete: `complete` is false then.
   */
  readonly gaps: Gap[];
  readonly complete: boolean;
}

export interface Gap {
  readonly file: string;
  readonly line: number;
  readonly events: number;
  readonly message: string;
}

interface Entry {
  file: string;
  line: number;
  rec: ChainRecord | null;
  error?: string;
}

const HEX64 = /^[0-9a-f]{64}$/;
const RECORD_TYPES = new Set(['event', 'checkpoint', 'forward', 'gap']);

function parseLine(text: string): { rec: ChainRecord | null; error?: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { rec: null, error: 'not JSON' };
  }
  const rec = (parsed !== null && typeof parsed === 'object' ? parsed : {}) as Partial<Record<'seq' | 'type' | 'prev_hash' | 'hash', unknown>>;
  if (!Number.isSafeInteger(rec.seq) || typeof rec.type !== 'string' || !RECORD_TYPES.has(rec.type) || typeof rec.prev_hash !== 'string' || !HEX64.test(rec.prev_hash) || typeof rec.hash !== 'string' || !HEX64.test(rec.hash)) {
    return { rec: null, error: 'not a chain record (seq, type, prev_hash, hash)' };
  }
  return { rec: rec as ChainRecord };
}

export function loadEntries(files: readonly { name: string; text: string }[]): Entry[] {
  const entries: Entry[] = [];
  for (const f of files) {
    const lines = f.text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    lines.forEach((text, i) => entries.push({ file: f.name, line: i + 1, ...parseLine(text) }));
  }
  return entries;
}

export function readFilesForVerify(paths: readonly string[]): { name: string; text: string }[] {
  return paths.map((p) => ({ name: p, text: readChainText(p) }));
}

/** Public keys embedded in the log's open checkpoints: integrity only, unless compared with a trusted copy. */
export function embeddedKeys(entries: readonly Entry[]): PublicJwk[] {
  const keys = new Map<string, PublicJwk>();
  for (const e of entries) {
    const jwk = e.rec?.type === 'checkpoint' ? (e.rec.checkpoint?.public_jwk as PublicJwk | undefined) : undefined;
    if (jwk?.kid) keys.set(jwk.kid, jwk);
  }
  return [...keys.values()];
}

export function verifyChain(files: readonly { name: string; text: string }[], opts: { keys?: readonly PublicJwk[] } = {}): VerifyResult {
  const entries = loadEntries(files);
  const warnings: string[] = [];
  let keys = opts.keys ? [...opts.keys] : null;
  if (!keys) {
    keys = embeddedKeys(entries);
    warnings.push('Khóa công khai lấy từ chính nhật ký: chỉ chứng minh tính toàn vẹn nội tại; hãy đối chiếu kid với khóa của cổng (--keys) / public keys taken from the log itself: compare their kid with the gateway key (--keys)');
  }
  const keysUsed = new Set<string>();
  let prev: { seq: number; hash: string } | null = null;
  let events = 0;
  let checkpoints = 0;
  let sinceCheckpoint = 0;
  let checkpointEvery: number | null = null;
  let lastCheckpoint: Entry | null = null;
  let startPrevHash: string | null = null;
  let firstSeq: number | null = null;
  const vouchedStarts = new Set<string>();
  const gaps: Gap[] = [];
  /** Forward records whose event has not come yet, by request id. */
  const forwarded = new Map<string, Entry>();
  const lostIds = new Set<string>();
  const unfinished = (why: string) => {
    for (const [id, at] of forwarded) {
      if (lostIds.has(id)) continue;
      gaps.push({ file: at.file, line: at.line, events: 1, message: `${at.file}:${at.line}: yêu cầu ${id} đã được chuyển tiếp nhưng không có sự kiện / request ${id} was forwarded but has no event (${why})` });
    }
    forwarded.clear();
  };

  const result = (problem: Problem | null): VerifyResult => ({
    ok: problem === null,
    problem,
    records: events + checkpoints,
    events,
    checkpoints,
    firstSeq,
    lastSeq: prev?.seq ?? null,
    lastHash: prev?.hash ?? null,
    startPrevHash,
    keysUsed: [...keysUsed],
    warnings,
    gaps,
    complete: problem === null && gaps.length === 0,
  });
  const problem = (kind: ProblemKind, e: Entry, message: string, at: Entry = e): VerifyResult => result({ kind, file: at.file, line: at.line, seq: at.rec?.seq ?? null, message: `${at.file}:${at.line}: ${message}` });

  const laterIndexOfSeq = (seq: number, from: number): number => entries.findIndex((x, j) => j > from && x.rec?.seq === seq);

  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const rec = e.rec;
    const expectedSeq = prev ? prev.seq + 1 : null;
    const next = entries[i + 1]?.rec;
    const nextLinksToPrev = prev !== null && next && next.seq === expectedSeq && next.prev_hash === prev.hash && recordHash(next) === next.hash;

    if (!rec) {
      if (nextLinksToPrev) return problem('inserted', e, `bản ghi bị chèn thêm / inserted line that is not part of the chain (${e.error})`);
      return problem('malformed', e, `bản ghi hỏng / malformed record (${e.error})`);
    }
    const computed = recordHash(rec);
    if (prev === null) {
      firstSeq = rec.seq;
      startPrevHash = rec.prev_hash;
      if (computed !== rec.hash) return problem('altered', e, `nội dung bị sửa / record seq ${rec.seq} altered: its hash does not match its content`);
    } else if (!(rec.seq === expectedSeq && rec.prev_hash === prev.hash && computed === rec.hash)) {
      if (computed !== rec.hash) {
        if (nextLinksToPrev) return problem('inserted', e, `bản ghi bị chèn thêm / inserted record (claims seq ${rec.seq}); the chain continues without it`);
        return problem('altered', e, `nội dung bị sửa / record seq ${rec.seq} altered: its hash does not match its content`);
      }
      if (rec.seq <= prev.seq) {
        // Two records with one seq: the genuine one is the one the next record links to.
        if (rec.seq === prev.seq && next && next.prev_hash === rec.hash) return problem('inserted', e, `bản ghi bị chèn thêm / inserted record (a forged seq ${rec.seq} linked into the chain)`, entries[i - 1]!);
        return problem('inserted', e, `bản ghi bị chèn thêm / seq ${rec.seq} appears again after seq ${prev.seq} (a copied or replayed record)`);
      }
      if (rec.seq > expectedSeq!) {
        if (laterIndexOfSeq(rec.seq, i) !== -1) return problem('inserted', e, `bản ghi bị chèn thêm / a copy of seq ${rec.seq} inserted ahead of the original`);
        const j = laterIndexOfSeq(expectedSeq!, i);
        if (j !== -1) return problem('reordered', e, `thứ tự bị đảo / reordered: seq ${expectedSeq} should come here but is at ${entries[j]!.file}:${entries[j]!.line}; found seq ${rec.seq}`);
        const missing = rec.seq - expectedSeq!;
        return problem('removed', e, `bản ghi bị xóa / ${missing} record(s) removed before this line: seq ${expectedSeq}${missing > 1 ? `–${rec.seq - 1}` : ''} missing`);
      }
      if (nextLinksToPrev) return problem('inserted', e, `bản ghi bị chèn thêm / inserted record (claims seq ${rec.seq}); the chain continues without it`);
      // Right seq, own hash consistent, but not linked: the record before was altered and its hash recomputed.
      return problem('altered', e, `nội dung bị sửa và băm lại / record seq ${prev.seq} altered and re-hashed: the next record's prev_hash no longer matches it`, entries[i - 1]!);
    }

    if (rec.type === 'checkpoint') {
      checkpoints++;
      const cp = rec.checkpoint;
      if (!cp || typeof cp.jws !== 'string') return problem('malformed', e, 'điểm kiểm tra thiếu chữ ký / checkpoint without a signature');
      let payload: Record<string, unknown>;
      try {
        const verified = verifyCheckpointJws(cp.jws, keys);
        payload = verified.payload;
        keysUsed.add(verified.kid);
      } catch (err) {
        return problem('signature', e, `chữ ký điểm kiểm tra không hợp lệ / checkpoint signature invalid: ${(err as Error).message}`);
      }
      if (payload.head_seq !== rec.seq - 1 || payload.head_hash !== rec.prev_hash || cp.head_hash !== payload.head_hash || cp.head_seq !== payload.head_seq) {
        const since = lastCheckpoint ? `${lastCheckpoint.file}:${lastCheckpoint.line}` : 'the start';
        return problem('rewritten', e, `chuỗi bị viết lại / the records between ${since} and this checkpoint were rewritten: the signed head (seq ${String(payload.head_seq)}) does not match`);
      }
      if (cp.reason === 'open' && typeof cp.checkpoint_every === 'number') checkpointEvery = cp.checkpoint_every;
      // Whatever was in flight when the gateway stopped never gets its event.
      const afterRotation = lastCheckpoint?.rec?.checkpoint?.reason === 'rotate' && lastCheckpoint.rec.seq === rec.seq - 1;
      if (cp.reason === 'open' && !afterRotation && forwarded.size > 0) unfinished('the gateway stopped before writing it');
      if (cp.reason === 'retention' && Array.isArray(payload.deleted)) for (const d of payload.deleted as { last_hash: string }[]) vouchedStarts.add(d.last_hash);
      sinceCheckpoint = 0;
      lastCheckpoint = e;
    } else if (rec.type === 'forward') {
      const id = rec.forward?.request_id;
      if (typeof id === 'string') forwarded.set(id, e);
    } else if (rec.type === 'gap') {
      const gap = rec.gap;
      const count = Number(gap?.events ?? 0);
      for (const id of gap?.event_ids ?? []) lostIds.add(id);
      gaps.push({ file: e.file, line: e.line, events: count, message: `${e.file}:${e.line}: ${count} sự kiện không ghi được / ${count} event(s) could not be written between ${gap?.first_at ?? '?'} and ${gap?.last_at ?? '?'} (disk full or I/O error)` });
    } else {
      events++;
      const event = rec.event as { http?: { request?: { id?: unknown } }; event?: { id?: unknown } } | undefined;
      forwarded.delete(String(event?.http?.request?.id ?? event?.event?.id ?? ''));
      if (checkpointEvery !== null && ++sinceCheckpoint > checkpointEvery) {
        return problem('checkpoint-missing', e, `thiếu điểm kiểm tra / more than ${checkpointEvery} events since the last checkpoint: a signed checkpoint was removed`);
      }
    }
    prev = { seq: rec.seq, hash: rec.hash };
  }

  if (lastCheckpoint?.rec?.checkpoint?.reason === 'close') unfinished('the gateway closed without writing it');
  if (forwarded.size > 0) warnings.push(`${forwarded.size} yêu cầu đã chuyển tiếp chưa có sự kiện (đang xử lý?) / ${forwarded.size} forwarded request(s) have no event yet: still in flight, or lost if the gateway stopped`);
  if (entries.length === 0) warnings.push('không có bản ghi / no records');
  if (startPrevHash !== null && startPrevHash !== GENESIS_HASH) {
    warnings.push(
      vouchedStarts.has(startPrevHash)
        ? `chuỗi bắt đầu ở seq ${firstSeq}; các bản ghi trước đã xóa theo thời hạn lưu trữ (có điểm kiểm tra ký xác nhận) / chain starts at seq ${firstSeq}; earlier records were deleted by retention, vouched for by a signed checkpoint`
        : `chuỗi bắt đầu ở seq ${firstSeq}, không phải từ đầu / chain starts at seq ${firstSeq} (prev_hash ${startPrevHash.slice(0, 16)}…): earlier records are not in these files`,
    );
  }
  if (lastCheckpoint && prev && lastCheckpoint.rec!.seq !== prev.seq) {
    warnings.push(`${prev.seq - lastCheckpoint.rec!.seq} bản ghi cuối chưa có điểm kiểm tra ký / the last ${prev.seq - lastCheckpoint.rec!.seq} record(s) after ${lastCheckpoint.file}:${lastCheckpoint.line} are protected by the hash chain only (no signed checkpoint yet)`);
  }
  return result(null);
}
