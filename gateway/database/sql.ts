import { createHash } from 'node:crypto';
import { loadModule, normalizeSync, parseSync, scanSync, type Node, type RawStmt } from 'libpg-query';
import type { Reason } from '../../core/reasons.js';

/**
 * What a statement is, read by the real PostgreSQL parser (libpg-query, the server's own grammar
 * compiled to WebAssembly): its kind, every table it names, how it uses columns, and whether it
 * would escape the per-statement decision. Classifications are cached by statement text, so a
 * repeated statement costs a map lookup.
 */

export type StatementKind = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE' | 'SESSION';

export interface TableRef {
  readonly schema: string;
  readonly table: string;
}

/** A statement the gateway answers itself: the purpose of access (SET ztgate.purpose). */
export interface PurposeSetting {
  readonly value: string | null;
}

export interface Classified {
  /** Normalised text: keywords, identifiers and operators; every literal and comment removed. */
  readonly fingerprintText: string;
  /** SHA-256 of fingerprintText, 16 hex digits: the same statement shape has the same fingerprint. */
  readonly fingerprint: string;
  readonly kind: StatementKind | null;
  /** BEGIN / START TRANSACTION: the gateway sets the ztgate.* settings once the transaction is open. */
  readonly opensTransaction: boolean;
  readonly tables: readonly TableRef[];
  /** Refused whatever the policy says, and why. */
  readonly refusal: { readonly reason: Reason; readonly detail: string } | null;
  /** Column names used other than as plain output columns (expressions, conditions, subqueries, RETURNING). */
  readonly columnsInExpressions: ReadonlySet<string>;
  /** Plain output columns: output name → source column name (aliases of masked columns are masked too). */
  readonly outputColumns: ReadonlyMap<string, string>;
  /** A whole-row reference (`SELECT c FROM t c`, `row_to_json(t)`): every column of the row leaves in one value. */
  readonly wholeRow: boolean;
  readonly purpose: PurposeSetting | null;
  /** No statement at all (an empty query string). */
  readonly empty: boolean;
}

let loaded: Promise<void> | null = null;
/** The parser is WebAssembly: compiled once per process before the first statement. */
export function loadParser(): Promise<void> {
  return (loaded ??= loadModule());
}

const KEEP_TOKENS = new Set(['IDENT', 'Op', 'TYPECAST', 'DOT_DOT', 'COLON_EQUALS', 'EQUALS_GREATER', 'LESS_EQUALS', 'GREATER_EQUALS', 'NOT_EQUALS']);
const COMMENTS = new Set(['C_COMMENT', 'SQL_COMMENT']);

/**
 * The statement with every literal replaced by `?` and comments dropped. Deny by default: a token
 * is kept only when it is a keyword, an identifier or punctuation; anything else (string,
 * number, bit-string, dollar-quoted constants, token kinds the scanner reports without a name)
 * becomes `?`, as do parameters ($1), so a statement has one fingerprint whether its values were
 * inlined (simple protocol) or bound (extended). Values are personal data and never reach the log.
 */
export function normalise(text: string): string {
  let tokens: { text: string; tokenName: string; keywordKind: number }[];
  try {
    tokens = scanSync(text).tokens as never;
  } catch {
    return '(không đọc được / unscannable)';
  }
  const out: string[] = [];
  for (const t of tokens) {
    if (COMMENTS.has(t.tokenName)) continue;
    if (t.keywordKind > 0) out.push(t.text.toUpperCase());
    else if (KEEP_TOKENS.has(t.tokenName) || t.tokenName.startsWith('ASCII_')) out.push(t.text);
    else out.push('?');
  }
  return out.join(' ').slice(0, 4096);
}

const fingerprintOf = (normalised: string) => createHash('sha256').update(normalised).digest('hex').slice(0, 16);

// Node types by what the gateway does with them.
const DDL = new Set([
  'CreateStmt',
  'CreateTableAsStmt',
  'AlterTableStmt',
  'DropStmt',
  'IndexStmt',
  'CreateFunctionStmt',
  'AlterFunctionStmt',
  'RenameStmt',
  'GrantStmt',
  'GrantRoleStmt',
  'CreateRoleStmt',
  'AlterRoleStmt',
  'DropRoleStmt',
  'CreateSchemaStmt',
  'ViewStmt',
  'CreateSeqStmt',
  'AlterSeqStmt',
  'TruncateStmt',
  'CreateExtensionStmt',
  'AlterExtensionStmt',
  'CreateTrigStmt',
  'CreateEventTrigStmt',
  'RuleStmt',
  'CreatePolicyStmt',
  'AlterPolicyStmt',
  'CommentStmt',
  'CreatedbStmt',
  'DropdbStmt',
  'AlterDatabaseStmt',
  'AlterDatabaseSetStmt',
  'AlterRoleSetStmt',
  'AlterOwnerStmt',
  'AlterObjectSchemaStmt',
  'CreateDomainStmt',
  'AlterDomainStmt',
  'CompositeTypeStmt',
  'CreateEnumStmt',
  'AlterEnumStmt',
  'DefineStmt',
  'CreateForeignServerStmt',
  'CreateFdwStmt',
  'CreateUserMappingStmt',
  'CreateForeignTableStmt',
  'ImportForeignSchemaStmt',
  'AlterDefaultPrivilegesStmt',
  'ReassignOwnedStmt',
  'DropOwnedStmt',
  'SecLabelStmt',
  'CreateTableSpaceStmt',
  'DropTableSpaceStmt',
  'AlterSystemStmt',
  'CreatePLangStmt',
  'CreateCastStmt',
  'CreateConversionStmt',
  'CreateOpClassStmt',
  'CreateStatsStmt',
  'RefreshMatViewStmt',
  'ClusterStmt',
  'ReindexStmt',
  'CreatePublicationStmt',
  'CreateSubscriptionStmt',
  'AlterTableSpaceOptionsStmt',
  'AlterTSConfigurationStmt',
  'CreateTransformStmt',
  'CreateAmStmt',
  'AlterCollationStmt',
  'AlterOperatorStmt',
  'AlterTypeStmt',
  'AlterStatsStmt',
  'AlterPublicationStmt',
  'AlterSubscriptionStmt',
  'DropSubscriptionStmt',
  'DropUserMappingStmt',
  'AlterUserMappingStmt',
  'AlterForeignServerStmt',
  'AlterFdwStmt',
  'AlterObjectDependsStmt',
  'AlterEventTrigStmt',
  'AlterExtensionContentsStmt',
  'AlterOpFamilyStmt',
  'CreateOpFamilyStmt',
]);
const KINDS: Record<string, StatementKind> = { SelectStmt: 'SELECT', InsertStmt: 'INSERT', UpdateStmt: 'UPDATE', DeleteStmt: 'DELETE' };

/** Session parameters a client may set: none of them changes what a statement reads or how it parses. */
const SETTABLE = new Set([
  'application_name',
  'client_encoding',
  'datestyle',
  'intervalstyle',
  'timezone',
  'time zone',
  'extra_float_digits',
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'bytea_output',
  'client_min_messages',
  'transaction',
  'session_characteristics',
  'transaction_isolation',
  'default_transaction_isolation',
  'default_transaction_read_only',
  'work_mem',
  'jit',
  'enable_seqscan',
  'enable_indexscan',
  'enable_bitmapscan',
  'max_parallel_workers_per_gather',
]);

/**
 * Functions that would reach outside the statement's tables: the server's files, large objects,
 * other databases, SQL given as text (run unseen by the parser), settings that RLS relies on,
 * other sessions. Matched on the function's own name, whatever schema qualifies it.
 */
const ESCAPE_FUNCTIONS = new Set([
  'set_config',
  'pg_read_file',
  'pg_read_binary_file',
  'pg_ls_dir',
  'pg_stat_file',
  'pg_file_write',
  'pg_file_rename',
  'pg_file_unlink',
  'pg_logdir_ls',
  'loread',
  'lowrite',
  'query_to_xml',
  'query_to_xml_and_xmlschema',
  'query_to_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'table_to_xml',
  'table_to_xml_and_xmlschema',
  'table_to_xmlschema',
  'schema_to_xml',
  'schema_to_xml_and_xmlschema',
  'schema_to_xmlschema',
  'database_to_xml',
  'database_to_xml_and_xmlschema',
  'database_to_xmlschema',
  'ts_stat',
  'ts_rewrite',
  'pg_terminate_backend',
  'pg_cancel_backend',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'pg_promote',
  'pg_switch_wal',
  'pg_create_restore_point',
  'pg_backup_start',
  'pg_backup_stop',
  'pg_start_backup',
  'pg_stop_backup',
  'pg_log_backend_memory_contexts',
  'pg_import_system_collations',
  'pg_current_logfile',
  'pg_create_logical_replication_slot',
  'pg_create_physical_replication_slot',
  'pg_logical_slot_get_changes',
  'pg_logical_emit_message',
  'pg_replication_origin_create',
  'binary_upgrade_set_next_pg_type_oid',
  'pg_notify',
  'xpath_table',
  'crosstab',
  'crosstab2',
  'crosstab3',
  'crosstab4',
  'connectby',
]);
const ESCAPE_PREFIXES = ['lo_', 'dblink', 'pg_ls_', 'pg_read_', 'pg_file_', 'pg_stat_reset', 'pg_advisory_unlock_all', 'binary_upgrade_'];

function isEscapeFunction(name: string): boolean {
  return ESCAPE_FUNCTIONS.has(name) || ESCAPE_PREFIXES.some((p) => name.startsWith(p));
}

/**
 * The fields read here, on nodes of libpg-query's tree (its types are @pgsql/types; the walk is
 * generic over every node kind, so it reads them as optional fields of any node).
 */
interface NodeFields {
  readonly String?: { readonly sval?: unknown };
  readonly relname?: unknown;
  readonly schemaname?: unknown;
  readonly alias?: { readonly aliasname?: unknown };
  readonly ctename?: unknown;
  readonly funcname?: readonly unknown[];
  readonly fields?: readonly unknown[];
  readonly A_Star?: unknown;
}
type TargetList = readonly { readonly ResTarget?: { readonly name?: unknown; readonly val?: { readonly ColumnRef?: { readonly fields?: readonly unknown[] } } } }[];
/** The fields of a statement node (SelectStmt, VariableSetStmt, CopyStmt, TransactionStmt…) read here. */
interface StatementFields {
  readonly kind?: unknown;
  readonly name?: unknown;
  readonly args?: readonly { readonly A_Const?: { readonly sval?: { readonly sval?: unknown } } }[];
  readonly is_program?: unknown;
  readonly filename?: unknown;
  readonly intoClause?: unknown;
  readonly lockingClause?: readonly unknown[];
  readonly withClause?: unknown;
  readonly op?: unknown;
  readonly targetList?: TargetList;
}

const str = (node: unknown): string | null => {
  const sval = (node as NodeFields | null | undefined)?.String?.sval;
  return typeof sval === 'string' ? sval : null;
};

interface Walk {
  tables: TableRef[];
  cteNames: Set<string>;
  functions: string[];
  columnsInExpressions: Set<string>;
  relationNames: Set<string>;
  singleFieldRefs: string[];
  starInExpression: boolean;
}

/**
 * Visits every node. `plainTarget` marks the top-level output list, where a bare column
 * reference is an output column rather than a use in an expression.
 */
function visit(node: unknown, w: Walk, plainTarget: boolean): void {
  if (Array.isArray(node)) {
    for (const n of node) visit(n, w, plainTarget);
    return;
  }
  if (!node || typeof node !== 'object') return;
  for (const [type, child] of Object.entries(node)) {
    const value = child as NodeFields | null | undefined;
    // A RangeVar is wrapped as a node in FROM lists, and bare where the grammar fixes the type
    // (the target relation of INSERT, UPDATE, DELETE, MERGE).
    if ((type === 'RangeVar' || (type === 'relation' && typeof value?.relname === 'string')) && value && typeof value === 'object') {
      const relname = String(value.relname ?? '').toLowerCase();
      if (!value.schemaname && w.cteNames.has(relname)) continue;
      w.tables.push({ schema: String(value.schemaname ?? 'public').toLowerCase(), table: relname });
      w.relationNames.add(relname);
      if (value.alias?.aliasname) w.relationNames.add(String(value.alias.aliasname).toLowerCase());
      continue;
    }
    if (type === 'CommonTableExpr' && value?.ctename) w.cteNames.add(String(value.ctename).toLowerCase());
    if (type === 'RangeSubselect' && value?.alias?.aliasname) w.relationNames.add(String(value.alias.aliasname).toLowerCase());
    if (type === 'FuncCall' && value) {
      const names = (value.funcname ?? []).map(str).filter(Boolean) as string[];
      const name = (names[names.length - 1] ?? '').toLowerCase();
      w.functions.push(name);
    }
    if (type === 'ColumnRef' && value) {
      const fields = value.fields ?? [];
      const last = fields[fields.length - 1] as NodeFields | undefined;
      const name = str(last);
      if (name && !plainTarget) w.columnsInExpressions.add(name.toLowerCase());
      if (fields.length === 1 && name) w.singleFieldRefs.push(name.toLowerCase());
      if (last?.A_Star !== undefined && !plainTarget) w.starInExpression = true;
      continue;
    }
    visit(child, w, false);
  }
}

function refuse(reason: Reason, detail: string) {
  return { reason, detail };
}

/** The output list of a plain SELECT: output name → source column, for bare column references only. */
function outputColumns(select: StatementFields | null): Map<string, string> {
  const out = new Map<string, string>();
  for (const item of select?.targetList ?? []) {
    const target = item.ResTarget;
    const fields = target?.val?.ColumnRef?.fields ?? [];
    const column = str(fields[fields.length - 1]);
    if (column) out.set(String(target?.name ?? column).toLowerCase(), column.toLowerCase());
  }
  return out;
}

function classifyTree(stmt: Node | undefined): Omit<Classified, 'fingerprintText' | 'fingerprint' | 'empty'> {
  const [type, node] = Object.entries(stmt ?? {})[0] ?? ['', null];
  const body = node as StatementFields | null;
  const none = { kind: null, opensTransaction: false, tables: [], columnsInExpressions: new Set<string>(), outputColumns: new Map<string, string>(), wholeRow: false, purpose: null };
  if (DDL.has(type)) return { ...none, refusal: refuse('statement-ddl', `${type.replace(/Stmt$/, '')} thay đổi lược đồ hoặc quyền / changes schema or privileges`) };
  if (type === 'TransactionStmt') {
    const kind = String(body?.kind ?? '');
    if (kind === 'TRANS_STMT_PREPARE' || kind === 'TRANS_STMT_COMMIT_PREPARED' || kind === 'TRANS_STMT_ROLLBACK_PREPARED') {
      return { ...none, refusal: refuse('statement-not-allowed', 'giao dịch hai pha / two-phase commit') };
    }
    return { ...none, kind: 'SESSION', opensTransaction: kind === 'TRANS_STMT_BEGIN' || kind === 'TRANS_STMT_START', refusal: null };
  }
  if (type === 'VariableShowStmt') {
    return { ...none, kind: 'SESSION', refusal: null };
  }
  if (type === 'VariableSetStmt') {
    const name = String(body?.name ?? '').toLowerCase();
    if (name === 'ztgate.purpose' && body?.kind === 'VAR_SET_VALUE') {
      const arg = body.args?.[0]?.A_Const?.sval?.sval;
      return { ...none, kind: 'SESSION', purpose: { value: typeof arg === 'string' ? arg : null }, refusal: typeof arg === 'string' ? null : refuse('statement-escape', 'ztgate.purpose nhận một chuỗi / ztgate.purpose takes one string') };
    }
    if (name === 'ztgate.purpose' && (body?.kind === 'VAR_RESET' || body?.kind === 'VAR_SET_DEFAULT')) return { ...none, kind: 'SESSION', purpose: { value: null }, refusal: null };
    if (body?.kind === 'VAR_RESET_ALL' || !SETTABLE.has(name)) {
      return { ...none, refusal: refuse('statement-escape', `không được đặt tham số ${name || 'ALL'} / the setting ${name || 'ALL'} may not be changed through the gateway`) };
    }
    return { ...none, kind: 'SESSION', refusal: null };
  }
  if (type === 'CopyStmt') {
    if (body?.is_program) return { ...none, refusal: refuse('statement-escape', 'COPY … PROGRAM chạy lệnh trên máy chủ / runs a program on the server') };
    if (body?.filename) return { ...none, refusal: refuse('statement-escape', 'COPY với tệp trên máy chủ / COPY with a server file') };
    return { ...none, refusal: refuse('statement-not-allowed', 'COPY không qua được kiểm soát từng bản ghi / COPY bypasses per-row obligations') };
  }
  if (type === 'LoadStmt') return { ...none, refusal: refuse('statement-escape', 'LOAD nạp thư viện vào máy chủ / loads a library into the server') };
  if (type === 'DoStmt' || type === 'CallStmt') return { ...none, refusal: refuse('statement-not-allowed', `${type.replace(/Stmt$/, '').toUpperCase()} chạy mã không phân tích được / runs code the gateway cannot read`) };
  const kind = KINDS[type];
  if (!kind) return { ...none, refusal: refuse('statement-not-allowed', `${type.replace(/Stmt$/, '')} không được hỗ trợ / is not forwarded`) };
  if (kind === 'SELECT' && body?.intoClause) return { ...none, refusal: refuse('statement-ddl', 'SELECT INTO tạo bảng / creates a table') };
  if (kind === 'SELECT' && (body?.lockingClause?.length ?? 0) > 0) {
    // FOR UPDATE/SHARE takes row locks: a write-side effect a SELECT grant does not cover.
    return { ...none, refusal: refuse('statement-not-allowed', 'SELECT … FOR UPDATE/SHARE khóa bản ghi / locks rows') };
  }

  const w: Walk = { tables: [], cteNames: new Set(), functions: [], columnsInExpressions: new Set(), relationNames: new Set(), singleFieldRefs: [], starInExpression: false };
  // CTE names first, so references to them are not read as tables.
  visit(body?.withClause, w, false);
  const rest = { ...body, withClause: undefined };
  if (kind === 'SELECT' && (!body?.op || body.op === 'SETOP_NONE')) {
    for (const item of body?.targetList ?? []) {
      const val = item?.ResTarget?.val;
      visit(val, w, val?.ColumnRef !== undefined);
    }
    visit({ ...rest, targetList: undefined }, w, false);
  } else {
    visit(rest, w, false);
  }
  const escape = w.functions.find(isEscapeFunction);
  if (escape) return { ...none, refusal: refuse('statement-escape', `hàm ${escape} vượt ra ngoài quyết định / the function ${escape} reaches outside the decision`) };
  const seen = new Set<string>();
  const tables = w.tables.filter((t) => {
    const k = `${t.schema}.${t.table}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  const wholeRow = w.starInExpression || w.singleFieldRefs.some((n) => w.relationNames.has(n));
  return {
    kind,
    opensTransaction: false,
    tables,
    refusal: null,
    columnsInExpressions: w.columnsInExpressions,
    outputColumns: kind === 'SELECT' ? outputColumns(body) : new Map(),
    wholeRow,
    purpose: null,
  };
}

/** Classifies one statement text (simple Query or extended Parse). Never throws. */
export function classify(text: string): Classified {
  const fingerprintText = normalise(text);
  const fingerprint = fingerprintOf(fingerprintText);
  const base = { fingerprintText, fingerprint, empty: false };
  const nothing = { kind: null, opensTransaction: false, tables: [], columnsInExpressions: new Set<string>(), outputColumns: new Map<string, string>(), wholeRow: false, purpose: null };
  let stmts: RawStmt[];
  try {
    stmts = parseSync(text).stmts ?? [];
  } catch (err) {
    return { ...base, ...nothing, refusal: refuse('statement-unparseable', `cú pháp / syntax: ${(err as Error).message.slice(0, 200)}`) };
  }
  if (stmts.length === 0) return { ...base, ...nothing, empty: true, refusal: null };
  if (stmts.length > 1) return { ...base, ...nothing, refusal: refuse('statement-multiple', `${stmts.length} câu lệnh trong một chuỗi / statements in one query string`) };
  return { ...base, ...classifyTree(stmts[0]!.stmt) };
}

/**
 * A cheaper key than the parser's normalisation for the commonest inlined values: integer
 * literals after a comparison operator (`WHERE aid = 42`), each replaced by '#'. Only texts with
 * no quote, dollar, backslash or comment characters qualify — there every character outside those
 * digits lexes the same whatever the digits are. `null`: no such literal, or a text that does not qualify.
 */
const INTEGER_AFTER_COMPARISON = /([=<>]\s*)\d+(?![\w.$])/g;
const NOT_PLAIN = /['"$\\]|--|\/\*/;
export function integerShape(text: string): string | null {
  if (NOT_PLAIN.test(text)) return null;
  let found = false;
  const shape = text.replace(INTEGER_AFTER_COMPARISON, (_m, op: string) => {
    found = true;
    return `${op}#`;
  });
  return found ? shape : null;
}

/** The text with every literal integerShape() replaces changed to another value. */
const otherIntegers = (text: string) => text.replace(INTEGER_AFTER_COMPARISON, (m, op: string) => `${op}${m.endsWith('7') ? 8 : 7}`);

/**
 * classify() behind a bounded cache. The key is the statement with its constants replaced by
 * $n (the parser's own normalisation, as pg_stat_statements does it): statements that differ
 * only in their values — the simple protocol inlines them — have one tree shape, so they share
 * one classification and a repeated statement costs the normalisation and a lookup. The one
 * classification that depends on a value (SET ztgate.purpose) is made from the text itself.
 */
export function createStatementClassifier(entries: number): (text: string) => Classified {
  const cache = new Map<string, Classified>();
  /** integerShape() → classification, for shapes proved to be values the normalisation replaces. */
  const shapes = new Map<string, Classified>();
  const remember = (key: string, c: Classified) => {
    if (entries <= 0 || key.length > 65_536) return;
    // Oldest first out: a Map iterates in insertion order.
    if (cache.size >= entries) cache.delete(cache.keys().next().value!);
    cache.set(key, c);
  };
  return (text) => {
    const exact = cache.get(text);
    if (exact) return exact;
    const shape = text.length <= 65_536 ? integerShape(text) : null;
    if (shape !== null) {
      const known = shapes.get(shape);
      if (known) return known;
    }
    let key: string;
    try {
      key = normalizeSync(text);
    } catch {
      // Not parseable: classify() says why, from the text itself.
      const c = classify(text);
      remember(text, c);
      return c;
    }
    let c = cache.get(key);
    if (c === undefined) c = classify(key);
    if (c.refusal?.reason === 'statement-unparseable' || c.purpose !== null || c.kind === 'SESSION') {
      // The normalised text did not parse ($n where the grammar wants a literal) or the statement
      // carries a setting's value: classify the statement as sent, cached under its own text.
      c = classify(text);
      remember(text, c);
      return c;
    }
    remember(key, c);
    if (shape !== null && entries > 0) {
      // The shape stands for the statement only if the parser replaced every integer it hides:
      // the same text with other integers must normalise to the same key.
      let same = false;
      try {
        same = normalizeSync(otherIntegers(text)) === key;
      } catch {
        same = false;
      }
      if (same) {
        if (shapes.size >= entries) shapes.delete(shapes.keys().next().value!);
        shapes.set(shape, c);
      }
    }
    return c;
  };
}
