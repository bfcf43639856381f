import { BufferReader } from 'pg-protocol/dist/buffer-reader.js';
import { Writer } from 'pg-protocol/dist/buffer-writer.js';
import { CodedError } from '../../core/errors.js';

/**
 * PostgreSQL protocol 3.0 messages (https://www.postgresql.org/docs/current/protocol-message-formats.html)
 * as the database plane needs them: fields are read with pg-protocol's BufferReader and written
 * with its Writer (node-postgres' own parser and serialiser); messages are split off the socket by
 * their length word, bounded so a client cannot make the gateway buffer without limit.
 */

export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;
export const PROTOCOL_3_0 = 196608;

export class ProtocolViolation extends CodedError {
  readonly code = 'ERR_PG_PROTOCOL';
}

export interface Message {
  /** Type byte as a character ('Q', 'P', …); '' for the untyped startup-phase messages. */
  readonly type: string;
  /** The whole message as received, for forwarding unchanged. */
  readonly raw: Buffer;
  /** Offset of the body in `raw`. */
  readonly bodyOffset: number;
}

/** Splits a byte stream into messages; `typed` false during startup (length word first). */
export class MessageSplitter {
  private buffer: Buffer = Buffer.alloc(0);
  typed: boolean;
  constructor(
    private readonly maxBytes: number,
    typed: boolean,
  ) {
    this.typed = typed;
  }

  push(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
  }

  /** The next whole message, or null until more bytes arrive. Throws ProtocolViolation on a bad length. */
  next(): Message | null {
    const head = this.typed ? 5 : 4;
    if (this.buffer.length < head) return null;
    const length = this.buffer.readInt32BE(this.typed ? 1 : 0);
    if (length < 4) throw new ProtocolViolation(`message length ${length} is below the minimum of 4`);
    if (length > this.maxBytes) throw new ProtocolViolation(`message of ${length} bytes is over the limit of ${this.maxBytes}`);
    const total = length + (this.typed ? 1 : 0);
    if (this.buffer.length < total) return null;
    const raw = this.buffer.subarray(0, total);
    this.buffer = this.buffer.subarray(total);
    return { type: this.typed ? String.fromCharCode(raw[0]!) : '', raw, bodyOffset: head };
  }

  /** Bytes received but not yet a whole message. */
  get pending(): number {
    return this.buffer.length;
  }
}

/** A reader over one message's body. */
export function reader(m: Message): BufferReader {
  const r = new BufferReader();
  r.setBuffer(m.bodyOffset, m.raw);
  return r;
}

function cstrings(r: BufferReader, end: number, buf: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (;;) {
    const offset = (r as unknown as { offset: number }).offset;
    if (offset >= end || buf[offset] === 0) break;
    const key = r.cstring();
    out[key] = r.cstring();
  }
  return out;
}

export type StartupPacket = { readonly kind: 'ssl' } | { readonly kind: 'gssenc' } | { readonly kind: 'cancel'; readonly processId: number; readonly secretKey: number } | { readonly kind: 'startup'; readonly parameters: Readonly<Record<string, string>> };

export function readStartup(m: Message): StartupPacket {
  if (m.raw.length < 8) throw new ProtocolViolation('startup packet too short');
  const code = m.raw.readInt32BE(4);
  if (code === SSL_REQUEST_CODE && m.raw.length === 8) return { kind: 'ssl' };
  if (code === GSSENC_REQUEST_CODE && m.raw.length === 8) return { kind: 'gssenc' };
  if (code === CANCEL_REQUEST_CODE && m.raw.length === 16) return { kind: 'cancel', processId: m.raw.readInt32BE(8), secretKey: m.raw.readInt32BE(12) };
  if (code !== PROTOCOL_3_0) throw new ProtocolViolation(`unsupported protocol version ${code >> 16}.${code & 0xffff}`);
  const r = new BufferReader();
  r.setBuffer(8, m.raw);
  const parameters = cstrings(r, m.raw.length, m.raw);
  if (!parameters.user) throw new ProtocolViolation('startup packet without a user');
  return { kind: 'startup', parameters };
}

// Frontend messages the data path reads.
export const readQuery = (m: Message): string => reader(m).cstring();
export function readParse(m: Message): { name: string; text: string; paramTypes: number } {
  const r = reader(m);
  const name = r.cstring();
  const text = r.cstring();
  return { name, text, paramTypes: r.int16() };
}
export function readBind(m: Message): { portal: string; statement: string; resultFormats: number[] } {
  const r = reader(m);
  const portal = r.cstring();
  const statement = r.cstring();
  const nFormats = r.int16();
  for (let i = 0; i < nFormats; i++) r.int16();
  const nParams = r.int16();
  for (let i = 0; i < nParams; i++) {
    const len = r.int32();
    if (len > 0) r.bytes(len);
  }
  const nResult = r.int16();
  const resultFormats: number[] = [];
  for (let i = 0; i < nResult; i++) resultFormats.push(r.int16());
  return { portal, statement, resultFormats };
}
export function readExecute(m: Message): { portal: string; maxRows: number } {
  const r = reader(m);
  return { portal: r.cstring(), maxRows: r.int32() };
}
/** Describe and Close: 'S' (statement) or 'P' (portal), and a name. */
export function readTarget(m: Message): { which: string; name: string } {
  const r = reader(m);
  return { which: String.fromCharCode(r.byte()), name: r.cstring() };
}
export const readPassword = (m: Message): string => reader(m).cstring();

// Backend messages the gateway writes itself.
const w = () => new Writer();
export const authenticationCleartextPassword = () => w().addInt32(3).flush(0x52);
export const authenticationOk = () => w().addInt32(0).flush(0x52);
export const parameterStatus = (name: string, value: string) => w().addCString(name).addCString(value).flush(0x53);
export const backendKeyData = (pid: number, key: number) => w().addInt32(pid).addInt32(key).flush(0x4b);
export const readyForQuery = (status: string) => w().add(Buffer.from(status)).flush(0x5a);
export const emptyQueryResponse = () => w().flush(0x49);
export const commandComplete = (tag: string) => w().addCString(tag).flush(0x43);
export const noData = () => w().flush(0x6e);
export const parseComplete = () => w().flush(0x31);
export const bindComplete = () => w().flush(0x32);

export interface ErrorFields {
  readonly severity: 'ERROR' | 'FATAL';
  /** SQLSTATE. */
  readonly code: string;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
}

/** ErrorResponse: S (localised) and V (never localised) severity, C SQLSTATE, M, D, H. */
export function errorResponse(e: ErrorFields): Buffer {
  const writer = w().addString('S').addCString(e.severity).addString('V').addCString(e.severity).addString('C').addCString(e.code).addString('M').addCString(e.message);
  if (e.detail) writer.addString('D').addCString(e.detail);
  if (e.hint) writer.addString('H').addCString(e.hint);
  return writer.addCString('').flush(0x45);
}

/** Fields of an ErrorResponse or NoticeResponse body, by their one-letter codes. */
export function readErrorFields(m: Message): Record<string, string> {
  const r = reader(m);
  const out: Record<string, string> = {};
  for (;;) {
    const code = r.byte();
    if (code === 0 || Number.isNaN(code)) break;
    out[String.fromCharCode(code)] = r.cstring();
  }
  return out;
}

export interface FieldDescription {
  readonly name: string;
  readonly tableId: number;
  readonly columnId: number;
  readonly typeId: number;
  readonly typeSize: number;
  readonly typeModifier: number;
  readonly format: number;
}

export function readRowDescription(m: Message): FieldDescription[] {
  const r = reader(m);
  const n = r.int16();
  const fields: FieldDescription[] = [];
  for (let i = 0; i < n; i++) fields.push({ name: r.cstring(), tableId: r.int32(), columnId: r.int16(), typeId: r.int32(), typeSize: r.int16(), typeModifier: r.int32(), format: r.int16() });
  return fields;
}

export function rowDescription(fields: readonly FieldDescription[]): Buffer {
  const writer = w().addInt16(fields.length);
  for (const f of fields) writer.addCString(f.name).addInt32(f.tableId).addInt16(f.columnId).addInt32(f.typeId).addInt16(f.typeSize).addInt32(f.typeModifier).addInt16(f.format);
  return writer.flush(0x54);
}

/** DataRow values: null for SQL NULL. */
export function readDataRow(m: Message): (Buffer | null)[] {
  const r = reader(m);
  const n = r.int16();
  const values: (Buffer | null)[] = [];
  for (let i = 0; i < n; i++) {
    const len = r.int32();
    values.push(len < 0 ? null : r.bytes(len));
  }
  return values;
}

export function dataRow(values: readonly (Buffer | null)[]): Buffer {
  const writer = w().addInt16(values.length);
  for (const v of values) {
    if (v === null) writer.addInt32(-1);
    else writer.addInt32(v.length).add(v);
  }
  return writer.flush(0x44);
}

/** The row count in a CommandComplete tag ("SELECT 5", "INSERT 0 1", "UPDATE 3"); 0 when it has none. */
export function rowsOfTag(tag: string): number {
  const n = Number(tag.slice(tag.lastIndexOf(' ') + 1));
  return Number.isFinite(n) ? n : 0;
}

/**
 * A simple Query whose text is `prefix` followed by the text of `query`, the client's bytes copied
 * as received (never decoded and encoded again). `prefix` ends with the statement separator.
 */
export function prefixedQuery(prefix: Buffer, query: Message): Buffer {
  const body = query.raw.length - query.bodyOffset;
  const out = Buffer.allocUnsafe(1 + 4 + prefix.length + body);
  out[0] = 0x51; // 'Q'
  out.writeInt32BE(4 + prefix.length + body, 1);
  prefix.copy(out, 5);
  query.raw.copy(out, 5 + prefix.length, query.bodyOffset);
  return out;
}
