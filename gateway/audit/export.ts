import { sha256hex } from '../../identity/digest.js';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { readChainText, rotatedFiles, type ChainRecord } from './chain.js';
import { embeddedKeys, loadEntries, verifyChain, type VerifyResult } from './verify.js';
import type { PublicJwk } from './keys.js';
import { CodedError } from '../../core/errors.js';

/**
 * Evidence bundles ("đúng, đủ, sạch, sống"): the events of a time range together with the
 * stretch of the chain that proves them — from the signed checkpoint at or before the start to
 * the signed checkpoint at or after the end — and the public keys. `ztgate audit verify --bundle`
 * checks it anywhere, without the gateway.
 */

export const BUNDLE_FILES = { records: 'chain.jsonl', events: 'events.jsonl', keys: 'keys.jwks.json', manifest: 'manifest.json', readme: 'README.txt' } as const;

/** Why an evidence bundle is not written (export) or not read (verify --bundle). */
export type ExportErrorCode = 'ERR_AUDIT_EXPORT_RANGE_INVALID' | 'ERR_AUDIT_EXPORT_OUT_NOT_EMPTY' | 'ERR_AUDIT_EXPORT_SOURCE_INVALID' | 'ERR_AUDIT_EXPORT_NO_EVENTS' | 'ERR_AUDIT_BUNDLE_FILE_MISSING';

export class ExportError extends CodedError {
  constructor(
    readonly code: ExportErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ExportError';
  }
}

/** The chain files of a configured log, oldest first (rotated files, then the current one). */
export function chainFiles(file: string): string[] {
  return [...rotatedFiles(file).map((f) => f.path), ...(existsSync(file) ? [file] : [])];
}

export interface ExportResult {
  readonly dir: string;
  readonly events: number;
  readonly records: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly signedEnd: boolean;
}

export function exportBundle(opts: { files: readonly string[]; from: Date; to: Date; out: string; keys?: readonly PublicJwk[]; now?: Date }): ExportResult {
  if (!(opts.from < opts.to)) throw new ExportError('ERR_AUDIT_EXPORT_RANGE_INVALID', '--from phải trước --to / --from must be before --to');
  if (existsSync(opts.out) && readdirSync(opts.out).length > 0) throw new ExportError('ERR_AUDIT_EXPORT_OUT_NOT_EMPTY', `${opts.out}: thư mục đã có dữ liệu / directory is not empty`);
  const files = opts.files.map((p) => ({ name: basename(p), text: readChainText(p) }));
  // The source must verify before anything is exported from it.
  const check = verifyChain(files, opts.keys ? { keys: opts.keys } : {});
  if (!check.ok) throw new ExportError('ERR_AUDIT_EXPORT_SOURCE_INVALID', `nhật ký nguồn không toàn vẹn / the source log does not verify: ${check.problem!.message}`);
  const entries = loadEntries(files);
  const lines = files.flatMap((f) => f.text.split('\n').filter((l) => l !== ''));
  const recs = entries.map((e) => e.rec!);
  const inRange = (r: ChainRecord) => {
    if (r.type !== 'event') return false;
    const t = Date.parse(String(r.event?.['@timestamp']));
    return t >= opts.from.getTime() && t <= opts.to.getTime();
  };
  const first = recs.findIndex(inRange);
  if (first === -1) throw new ExportError('ERR_AUDIT_EXPORT_NO_EVENTS', 'không có sự kiện trong khoảng thời gian / no events in that time range');
  let last = first;
  recs.forEach((r, i) => {
    if (inRange(r)) last = i;
  });
  let start = first;
  while (start > 0 && recs[start]!.type !== 'checkpoint') start--;
  let end = last;
  while (end < recs.length - 1 && recs[end]!.type !== 'checkpoint') end++;
  const signedEnd = recs[end]!.type === 'checkpoint';

  const chainText = `${lines.slice(start, end + 1).join('\n')}\n`;
  const eventsText = `${recs
    .slice(first, last + 1)
    .filter(inRange)
    .map((r) => JSON.stringify(r.event))
    .join('\n')}\n`;
  const keys = opts.keys ?? embeddedKeys(entries);
  const keysText = `${JSON.stringify({ keys }, null, 2)}\n`;
  const manifest = {
    format: 'ztgate-evidence-bundle/1',
    created_at: (opts.now ?? new Date()).toISOString(),
    from: opts.from.toISOString(),
    to: opts.to.toISOString(),
    source_files: opts.files.map((p) => basename(p)),
    first_seq: recs[start]!.seq,
    last_seq: recs[end]!.seq,
    start_prev_hash: recs[start]!.prev_hash,
    events: eventsText.trim() ? eventsText.trim().split('\n').length : 0,
    signed_start: recs[start]!.type === 'checkpoint',
    signed_end: signedEnd,
    key_ids: keys.map((k) => k.kid),
    sha256: { [BUNDLE_FILES.records]: sha256hex(chainText), [BUNDLE_FILES.events]: sha256hex(eventsText), [BUNDLE_FILES.keys]: sha256hex(keysText) },
  };
  mkdirSync(opts.out, { recursive: true });
  writeFileSync(join(opts.out, BUNDLE_FILES.records), chainText, { flag: 'wx' });
  writeFileSync(join(opts.out, BUNDLE_FILES.events), eventsText, { flag: 'wx' });
  writeFileSync(join(opts.out, BUNDLE_FILES.keys), keysText, { flag: 'wx' });
  writeFileSync(join(opts.out, BUNDLE_FILES.manifest), `${JSON.stringify(manifest, null, 2)}\n`, { flag: 'wx' });
  writeFileSync(join(opts.out, BUNDLE_FILES.readme), bundleReadme(manifest), { flag: 'wx' });
  return { dir: opts.out, events: manifest.events, records: end - start + 1, firstSeq: manifest.first_seq, lastSeq: manifest.last_seq, signedEnd };
}

function bundleReadme(m: { from: string; to: string; first_seq: number; last_seq: number; key_ids: string[]; signed_end: boolean }): string {
  return `GÓI CHỨNG CỨ NHẬT KÝ QUYẾT ĐỊNH TRUY CẬP — ztgate / ztgate decision-log evidence bundle

Khoảng thời gian / time range: ${m.from} — ${m.to}
Chuỗi / chain: seq ${m.first_seq} … ${m.last_seq}${m.signed_end ? '' : ' (đoạn cuối chưa có điểm kiểm tra ký / the end is not yet covered by a signed checkpoint)'}
Khóa ký / signing key ids (RFC 7638 thumbprints): ${m.key_ids.join(', ')}

Tệp / files:
  ${BUNDLE_FILES.events}     các sự kiện trong khoảng thời gian / the events of the range (one JSON per line)
  ${BUNDLE_FILES.records}      đoạn chuỗi băm chứa chúng, từ điểm kiểm tra ký trước đến điểm kiểm tra ký sau /
                   the stretch of the hash chain holding them, from a signed checkpoint to a signed checkpoint
  ${BUNDLE_FILES.keys}   khóa công khai của cổng / the gateway's public keys (JWKS)
  ${BUNDLE_FILES.manifest}    mô tả và SHA-256 của từng tệp / description and SHA-256 of each file

Kiểm tra / how to verify (no access to the gateway needed):
  ztgate audit verify --bundle <this folder>
It checks: each file's SHA-256 against the manifest; every record's hash (SHA-256 over the
canonical JSON of the record without "hash", RFC 8785 key order) and its link (prev_hash) to the
record before; every checkpoint's JWS (RFC 7515) with the keys above; that every event in
${BUNDLE_FILES.events} is a record of the chain. Compare the key ids with the gateway's key
obtained from the province through another channel: the keys in this folder prove integrity,
their provenance proves origin.

By hand: for each line of ${BUNDLE_FILES.records}, hash = sha256(canonical(record minus "hash")),
and record.prev_hash = previous record's hash; checkpoint.jws signs {head_seq, head_hash} = the
record just before the checkpoint.
`;
}

export interface BundleVerifyResult extends VerifyResult {
  readonly manifestProblems: string[];
}

export function verifyBundle(dir: string, opts: { keys?: readonly PublicJwk[] } = {}): BundleVerifyResult {
  const read = (name: string) => {
    const p = join(dir, name);
    if (!existsSync(p)) throw new ExportError('ERR_AUDIT_BUNDLE_FILE_MISSING', `${p}: thiếu tệp / missing file`);
    return readFileSync(p, 'utf8');
  };
  const manifest = JSON.parse(read(BUNDLE_FILES.manifest));
  const chainText = read(BUNDLE_FILES.records);
  const eventsText = read(BUNDLE_FILES.events);
  const keysText = read(BUNDLE_FILES.keys);
  const problems: string[] = [];
  for (const [name, text] of [
    [BUNDLE_FILES.records, chainText],
    [BUNDLE_FILES.events, eventsText],
    [BUNDLE_FILES.keys, keysText],
  ] as const) {
    if (manifest.sha256?.[name] !== sha256hex(text)) problems.push(`${name}: SHA-256 không khớp manifest / does not match the manifest`);
  }
  const keys = opts.keys ?? (JSON.parse(keysText).keys as PublicJwk[]);
  const result = verifyChain([{ name: BUNDLE_FILES.records, text: chainText }], { keys });
  const warnings = result.warnings.filter((w) => !w.startsWith('chuỗi bắt đầu'));
  if (result.ok) {
    const entries = loadEntries([{ name: BUNDLE_FILES.records, text: chainText }]);
    if (entries[0]?.rec?.type !== 'checkpoint') problems.push(`${BUNDLE_FILES.records}: không bắt đầu bằng điểm kiểm tra ký / does not start at a signed checkpoint`);
    const hashes = new Set(entries.filter((e) => e.rec?.type === 'event').map((e) => JSON.stringify(e.rec!.event)));
    eventsText
      .split('\n')
      .filter((l) => l.trim())
      .forEach((l, i) => {
        if (!hashes.has(JSON.stringify(JSON.parse(l)))) problems.push(`${BUNDLE_FILES.events}:${i + 1}: sự kiện không có trong chuỗi / event not in the chain`);
      });
    if (result.firstSeq !== manifest.first_seq || result.lastSeq !== manifest.last_seq) problems.push('manifest: seq range does not match the chain');
  }
  return { ...result, ok: result.ok && problems.length === 0, warnings, manifestProblems: problems };
}
