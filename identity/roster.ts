import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { STATE_EPOCH_KEY, StateLostError, type Store } from '../core/store.js';
import { isNationalId } from '../core/national-id.js';
import { CLEARANCES, type Clearance } from '../core/levels.js';
import type { Principal } from '../core/principal.js';
import { CodedError } from '../core/errors.js';

/**
 * The official roster (danh sách cán bộ): national ID → who the official is in the province's
 * organisation — agency, unit, position, roles, clearance (độ mật) and status. When a roster is
 * configured it is authoritative: a valid token for someone not on it, or not active, is refused,
 * and agency, unit, roles and clearance come from here rather than from the token.
 *
 * Held in the shared store, so an admin's change (a suspension) reaches every gateway instance at
 * once. An import replaces the whole roster: every row is checked first, then a new version is
 * written and switched to in one step, so a bad file changes nothing.
 */

export const OFFICIAL_STATUSES = ['active', 'suspended', 'retired'] as const;
export type OfficialStatus = (typeof OFFICIAL_STATUSES)[number];

export interface RosterEntry {
  readonly nationalId: string;
  /** Full name (họ và tên). */
  readonly name: string;
  readonly agency: string;
  readonly unit: string;
  readonly position: string;
  readonly roles: readonly string[];
  readonly clearance: Clearance;
  readonly status: OfficialStatus;
}

export const ROSTER_COLUMNS = ['nationalId', 'name', 'agency', 'unit', 'position', 'roles', 'clearance', 'status'] as const;
const MAX_ROWS = 200_000;
const MAX_PROBLEMS = 50;
const WRITE_BATCH = 500;
const AGENCY = /^[a-z0-9][a-z0-9-]{0,62}$/;
const ROLE = /^[a-z][a-z0-9_.:-]{0,63}$/;
// Control characters have no place in a name and would let a row forge log lines.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const NON_ASCII = /[^\u0000-\u007f]/;

/** Vietnamese labels accepted for clearance, as HR exports write them. */
const CLEARANCE_LABELS: Record<string, Clearance> = {
  none: 'none',
  không: 'none',
  '': 'none',
  mat: 'mat',
  mật: 'mat',
  'toi-mat': 'toi-mat',
  'tối mật': 'toi-mat',
  'tuyet-mat': 'tuyet-mat',
  'tuyệt mật': 'tuyet-mat',
};

export class RosterError extends CodedError {
  readonly code = 'ERR_ROSTER_INVALID';
  readonly problems: readonly string[];
  constructor(source: string, problems: string[]) {
    const shown = problems.slice(0, MAX_PROBLEMS);
    if (problems.length > shown.length) shown.push(`… and ${problems.length - shown.length} more / và ${problems.length - shown.length} lỗi khác`);
    super(`${source}: danh sách cán bộ không hợp lệ, không có gì được thay đổi / invalid roster, nothing was changed\n  - ${shown.join('\n  - ')}`);
    this.name = 'RosterError';
    this.problems = Object.freeze(shown);
  }
}

export class RosterUnavailableError extends CodedError {
  readonly code = 'ERR_ROSTER_UNAVAILABLE';
  constructor(cause: unknown) {
    super('the official roster cannot be read', { cause });
    this.name = 'RosterUnavailableError';
  }
}

/** Checks one row; `at(column)` names where a problem is ("row 3, column agency"). */
function checkEntry(raw: Record<string, unknown>, at: (column: string) => string, problems: string[]): RosterEntry | null {
  const before = problems.length;
  const text = (column: string, max: number): string => {
    const v = raw[column];
    if (typeof v !== 'string' || v.trim() === '') {
      problems.push(`${at(column)}: required / bắt buộc`);
      return '';
    }
    const trimmed = v.trim();
    // ASCII is already in NFC: the ICU call is for the Vietnamese names and units only.
    const t = NON_ASCII.test(trimmed) ? trimmed.normalize('NFC') : trimmed;
    if (t.length > max) problems.push(`${at(column)}: longer than ${max} characters`);
    if (CONTROL.test(t)) problems.push(`${at(column)}: contains control characters`);
    return t;
  };
  const nationalId = text('nationalId', 12);
  if (nationalId && !isNationalId(nationalId)) problems.push(`${at('nationalId')}: "${nationalId}" is not a 12-digit national ID / không phải số định danh 12 chữ số`);
  const name = text('name', 200);
  const agency = text('agency', 63);
  if (agency && !AGENCY.test(agency)) problems.push(`${at('agency')}: "${agency}" must be a lower-case agency id like so-tu-phap`);
  const unit = text('unit', 300);
  const position = text('position', 200);

  let roles: string[] = [];
  const rawRoles = raw.roles;
  if (Array.isArray(rawRoles)) roles = rawRoles.map(String);
  else if (typeof rawRoles === 'string')
    roles = rawRoles
      .split('|')
      .map((r) => r.trim())
      .filter(Boolean);
  else if (rawRoles !== undefined) problems.push(`${at('roles')}: must be a list of role names (CSV: separated by |)`);
  for (const role of roles) if (!ROLE.test(role)) problems.push(`${at('roles')}: "${role}" is not a role name (lower case, starting with a letter)`);
  if (roles.length > 64) problems.push(`${at('roles')}: more than 64 roles`);

  const rawClearance = raw.clearance ?? 'none';
  const clearance = typeof rawClearance === 'string' ? CLEARANCE_LABELS[rawClearance.trim().normalize('NFC').toLowerCase()] : undefined;
  if (!clearance) problems.push(`${at('clearance')}: "${String(rawClearance)}" must be one of ${CLEARANCES.join(', ')} (or Không, Mật, Tối mật, Tuyệt mật)`);

  const status = typeof raw.status === 'string' ? raw.status.trim() : raw.status;
  if (!(OFFICIAL_STATUSES as readonly unknown[]).includes(status)) problems.push(`${at('status')}: "${String(raw.status)}" must be one of ${OFFICIAL_STATUSES.join(', ')}`);

  if (problems.length > before) return null;
  return { nationalId, name, agency, unit, position, roles: [...new Set(roles)], clearance: clearance!, status: status as OfficialStatus };
}

function finish(source: string, entries: (RosterEntry | null)[], rows: number[], problems: string[], label: (row: number) => string): RosterEntry[] {
  const seen = new Map<string, number>();
  entries.forEach((e, i) => {
    if (!e) return;
    const first = seen.get(e.nationalId);
    if (first !== undefined) problems.push(`${label(rows[i]!)}, column nationalId: ${e.nationalId} is already on ${label(first)} / trùng số định danh`);
    else seen.set(e.nationalId, rows[i]!);
  });
  if (problems.length > 0) throw new RosterError(source, problems);
  return entries as RosterEntry[];
}

/** RFC 4180 CSV: a header row naming the columns (any order), quoted fields may hold commas, quotes ("") and line breaks. */
export function parseCsv(text: string): { rows: string[][]; lines: number[] } {
  const rows: string[][] = [];
  const lines: number[] = [];
  let field = '';
  let row: string[] = [];
  let quoted = false;
  let line = 1;
  let rowLine = 1;
  const src = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  // Most rows hold no quotes: split them at once (a 100,000-row roster in a fraction of the time
  // and garbage of a character-by-character parse). A row with a quote starts the full parse below.
  let i = 0;
  while (i < src.length) {
    let end = src.indexOf('\n', i);
    if (end === -1) end = src.length;
    const lineEnd = end > i && src.charCodeAt(end - 1) === 13 ? end - 1 : end;
    const plain = src.slice(i, lineEnd);
    if (plain.includes('"') || plain.includes('\r')) break;
    if (plain !== '') {
      rows.push(plain.split(','));
      lines.push(line);
    }
    i = end + 1;
    line++;
    rowLine = line;
  }
  for (; i < src.length; i++) {
    const c = src[i]!;
    if (quoted) {
      if (c === '"') {
        if (src[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else {
        if (c === '\n') line++;
        field += c;
      }
    } else if (c === '"' && field === '') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && src[i + 1] === '\n') i++;
      row.push(field);
      field = '';
      if (row.length > 1 || row[0] !== '') {
        rows.push(row);
        lines.push(rowLine);
      }
      row = [];
      line++;
      rowLine = line;
    } else field += c;
  }
  if (quoted) throw new RosterError('CSV', [`row ${rowLine}: a quoted field is not closed`]);
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
    lines.push(rowLine);
  }
  return { rows, lines };
}

export function parseRosterCsv(text: string, source = 'CSV'): RosterEntry[] {
  let parsed: { rows: string[][]; lines: number[] };
  try {
    parsed = parseCsv(text);
  } catch (err) {
    throw err instanceof RosterError ? new RosterError(source, [...err.problems]) : err;
  }
  // Lines whose first field starts with # are comments (e.g. the "synthetic data" banner of a demo file).
  const kept = parsed.rows.map((row, i) => [row, parsed.lines[i]!] as const).filter(([row]) => !row[0]?.trimStart().startsWith('#'));
  parsed = { rows: kept.map(([row]) => row), lines: kept.map(([, line]) => line) };
  const [header, ...body] = parsed.rows;
  if (!header) throw new RosterError(source, ['the file is empty; expected a header row: ' + ROSTER_COLUMNS.join(',')]);
  const headerRow = parsed.lines[0]!;
  const columns = header.map((h) => h.trim());
  const problems: string[] = [];
  columns.forEach((c, i) => {
    if (!(ROSTER_COLUMNS as readonly string[]).includes(c)) problems.push(`row ${headerRow}, column ${i + 1}: unknown column "${c}" / cột không được hỗ trợ (expected ${ROSTER_COLUMNS.join(', ')})`);
    else if (columns.indexOf(c) !== i) problems.push(`row ${headerRow}, column ${i + 1}: column "${c}" appears twice`);
  });
  for (const required of ROSTER_COLUMNS) {
    if (required !== 'clearance' && !columns.includes(required)) problems.push(`row ${headerRow}: missing column "${required}" / thiếu cột`);
  }
  if (problems.length > 0) throw new RosterError(source, problems);
  if (body.length > MAX_ROWS) throw new RosterError(source, [`more than ${MAX_ROWS} rows`]);
  const rowNumbers = parsed.lines.slice(1);
  const entries = body.map((cells, i) => {
    const rowNo = rowNumbers[i]!;
    if (cells.length !== columns.length) {
      problems.push(`row ${rowNo}: ${cells.length} fields, expected ${columns.length}`);
      return null;
    }
    const raw: Record<string, string | undefined> = {};
    for (let j = 0; j < columns.length; j++) raw[columns[j]!] = cells[j];
    return checkEntry(raw, (column) => `row ${rowNo}, column ${column}`, problems);
  });
  return finish(source, entries, rowNumbers, problems, (row) => `row ${row}`);
}

/** JSON: an array of entries, or `{ "officials": [...] }`; keys are the CSV column names, `roles` a list. */
export function parseRosterJson(doc: unknown, source = 'JSON'): RosterEntry[] {
  const list = Array.isArray(doc) ? doc : doc && typeof doc === 'object' && Array.isArray((doc as { officials?: unknown }).officials) ? (doc as { officials: unknown[] }).officials : null;
  if (!list) throw new RosterError(source, ['expected an array of officials, or an object with an "officials" array']);
  if (list.length > MAX_ROWS) throw new RosterError(source, [`more than ${MAX_ROWS} officials`]);
  const problems: string[] = [];
  const entries = list.map((item, i) => {
    const at = (column: string) => `officials[${i}].${column}`;
    if (!item || typeof item !== 'object' || Array.isArray(item)) {
      problems.push(`officials[${i}]: must be an object`);
      return null;
    }
    for (const key of Object.keys(item)) if (!(ROSTER_COLUMNS as readonly string[]).includes(key)) problems.push(`officials[${i}]: unknown key "${key}" / khóa không được hỗ trợ`);
    return checkEntry(item as Record<string, unknown>, at, problems);
  });
  return finish(
    source,
    entries,
    list.map((_, i) => i),
    problems,
    (i) => `officials[${i}]`,
  );
}

export function parseRoster(text: string, format: 'csv' | 'json', source: string): RosterEntry[] {
  if (format === 'csv') return parseRosterCsv(text, source);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new RosterError(source, [`not valid JSON: ${(err as Error).message}`]);
  }
  return parseRosterJson(doc, source);
}

/**
 * `start` checks the roster file in full before it opens anything (gateway/preflight.ts) and then
 * loads it: the load takes the check's parse when the file has not changed in between (same inode,
 * size and times), instead of parsing 100,000 rows twice. Taken once; dropped after a while if the
 * load never comes (`check`).
 */
let lastParse: { readonly file: string; readonly stamp: string; readonly entries: RosterEntry[] } | null = null;
const LAST_PARSE_KEPT_MS = 60_000;

export async function readRosterFile(file: string): Promise<RosterEntry[]> {
  let text: string;
  let stamp: string;
  try {
    const st = await stat(file);
    stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    if (lastParse && lastParse.file === file && lastParse.stamp === stamp) {
      const { entries } = lastParse;
      lastParse = null;
      return entries;
    }
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new RosterError(file, [`cannot read the file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`]);
  }
  const entries = parseRoster(text, /\.json$/i.test(file) ? 'json' : 'csv', file);
  lastParse = { file, stamp, entries };
  // The timer holds only the stamp: a closure over the entries would keep 100,000 of them alive until it fires.
  setTimeout(() => void (lastParse?.stamp === stamp && (lastParse = null)), LAST_PARSE_KEPT_MS).unref();
  return entries;
}

export interface Roster {
  /** The official, or null when not on the roster. Throws RosterUnavailableError when the store cannot answer. */
  lookup(nationalId: string): Promise<RosterEntry | null>;
  list(): Promise<RosterEntry[]>;
  /** Replaces the whole roster with already-validated entries. */
  replace(entries: readonly RosterEntry[]): Promise<{ version: string; count: number }>;
  /** Null when the official is not on the roster. */
  setStatus(nationalId: string, status: OfficialStatus): Promise<RosterEntry | null>;
}

/**
 * An entry as the store keeps it: a JSON array in column order, non-ASCII escaped. Without the key
 * names, and as a one-byte string (a Vietnamese name would make V8 keep the whole text at two bytes
 * a character), 100,000 officials take about a third of the memory of JSON objects.
 */
export function encodeRosterEntry(e: RosterEntry): string {
  const json = JSON.stringify([e.nationalId, e.name, e.agency, e.unit, e.position, e.roles, e.clearance, e.status]);
  let out = '';
  let from = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c < 0x80) continue;
    out += `${json.slice(from, i)}\\u${c.toString(16).padStart(4, '0')}`;
    from = i + 1;
  }
  if (from === 0) return json;
  // Pieces cut from a two-byte string stay two-byte in V8: copy the ASCII result into a one-byte one.
  return Buffer.from(out + json.slice(from), 'latin1').toString('latin1');
}

/** Either form: the array above, or the object earlier versions wrote. */
export function decodeRosterEntry(json: string): RosterEntry {
  const v = JSON.parse(json) as unknown;
  if (!Array.isArray(v)) return v as RosterEntry;
  const [nationalId, name, agency, unit, position, roles, clearance, status] = v as [string, string, string, string, string, string[], Clearance, OfficialStatus];
  return { nationalId, name, agency, unit, position, roles, clearance, status };
}

/** An imported roster is kept durably (a roster from a file is read from the file again instead). */
export const isRosterKey = (k: string): boolean => k.startsWith('roster:');

/** The roster in the shared store: `roster:version` names the version in force; entries live under it. */
export function createStoreRoster(store: Store): Roster {
  const VERSION = 'roster:version';
  const entryKey = (version: string, id: string) => `roster:${version}:official:${id}`;
  const idsKey = (version: string) => `roster:${version}:ids`;
  const guarded = async <T>(op: () => Promise<T>): Promise<T> => {
    try {
      return await op();
    } catch (err) {
      throw new RosterUnavailableError(err);
    }
  };

  return {
    lookup: (nationalId) =>
      guarded(async () => {
        // With the state marker: after a Redis data loss the answer is "state lost", not "not on the roster".
        const [epoch, version] = await store.mget([STATE_EPOCH_KEY, VERSION]);
        if (epoch === null) throw new StateLostError();
        if (!version) return null;
        const json = await store.get(entryKey(version, nationalId));
        return json ? decodeRosterEntry(json) : null;
      }),
    list: () =>
      guarded(async () => {
        const version = await store.get(VERSION);
        if (!version) return [];
        const ids = (await store.smembers(idsKey(version))).sort();
        const out: RosterEntry[] = [];
        for (const id of ids) {
          const json = await store.get(entryKey(version, id));
          if (json) out.push(decodeRosterEntry(json));
        }
        return out;
      }),
    async replace(entries) {
      const version = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
      const previous = await store.get(VERSION);
      // In batches: a roster has up to MAX_ROWS officials, more than one call's arguments may hold
      // (a spread of 100,000 ids overflowed the stack), and a batch of writes is one Redis pipeline.
      for (let i = 0; i < entries.length; i += WRITE_BATCH) {
        const batch = entries.slice(i, i + WRITE_BATCH);
        await Promise.all(batch.map((e) => store.set(entryKey(version, e.nationalId), encodeRosterEntry(e))));
        await store.sadd(idsKey(version), ...batch.map((e) => e.nationalId));
      }
      // The switch: one write, seen by every instance at once.
      await store.set(VERSION, version);
      if (previous) {
        const old = await store.smembers(idsKey(previous));
        for (let i = 0; i < old.length; i += 500) await store.del(...old.slice(i, i + 500).map((id) => entryKey(previous, id)));
        await store.del(idsKey(previous));
      }
      return { version, count: entries.length };
    },
    async setStatus(nationalId, status) {
      const version = await store.get(VERSION);
      if (!version) return null;
      const json = await store.get(entryKey(version, nationalId));
      if (!json) return null;
      const updated: RosterEntry = { ...decodeRosterEntry(json), status };
      await store.set(entryKey(version, nationalId), encodeRosterEntry(updated));
      return updated;
    },
  };
}

/** The roster the configuration asks for, loaded: a file is read, checked in full and put in the store at start. */
export async function openRoster(config: { source: 'none' | 'file' | 'store'; file?: string }, store: Store): Promise<Roster | null> {
  if (config.source === 'none') return null;
  const roster = createStoreRoster(store);
  if (config.source === 'file') await roster.replace(await readRosterFile(config.file!));
  return roster;
}

/** The principal as the roster knows the official: the roster wins for agency, unit, roles and clearance. */
export function withRosterEntry(principal: Principal, entry: RosterEntry): Principal {
  return Object.freeze({ ...principal, agency: entry.agency, unit: entry.unit, roles: Object.freeze([...entry.roles]), clearance: entry.clearance });
}
