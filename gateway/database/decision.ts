import { GatewayError } from '../errors.js';
import type { Reason } from '../../core/reasons.js';
import type { AuditEvent, DecisionLog } from '../audit/log.js';
import { buildDecisionEvent, isAllowed } from '../audit/decision-event.js';
import type { DeviceTrust } from '../steps/device.js';
import { decide } from '../steps/decide.js';
import { DATABASE_OBJECT_PREFIX, type Purpose } from '../../policies/access.js';
import type { Principal, Obligation, Decision } from '../../core/principal.js';
import type { PolicyEngine } from '../../policies/engine.js';
import type { RecentDecisions } from '../../policies/what-if.js';
import { CLASSIFICATIONS, type Classification } from '../../core/levels.js';
import type { RouteConfig } from '../config.js';
import type { DatabaseServiceConfig } from './config.js';
import type { Classified, TableRef } from './sql.js';

/**
 * One decision per statement: every table it names is an object `db:<service>/<schema>.<table>`
 * decided through the same policy engine as HTTP requests, with the statement kind as the
 * action and the table's classification against the official's clearance. Every table must be
 * allowed; obligations of all of them apply (masks add up, the smallest limits win).
 */

export const policyPath = (t: TableRef) => `/${t.schema}.${t.table}`;

export function tableClassification(service: DatabaseServiceConfig, t: TableRef): Classification {
  return service.tables[`${t.schema}.${t.table}`]?.classification ?? service.classification;
}

export interface StatementDecision {
  readonly decision: Decision;
  /** The highest classification among the statement's tables. */
  readonly classification: Classification;
}

function merge(decisions: readonly Decision[]): readonly Obligation[] {
  const masked = new Set<string>();
  let perResponse = Infinity;
  let perDay = Infinity;
  for (const d of decisions) {
    for (const o of d.obligations) {
      if (o.type === 'mask-fields') o.fields.forEach((f) => masked.add(f.toLowerCase()));
      else if (o.type === 'max-records-per-response') perResponse = Math.min(perResponse, o.max);
      else if (o.type === 'max-records-per-day') perDay = Math.min(perDay, o.max);
    }
  }
  const out: Obligation[] = [];
  if (masked.size > 0) out.push({ type: 'mask-fields', fields: [...masked].sort() });
  if (perResponse !== Infinity) out.push({ type: 'max-records-per-response', max: perResponse });
  if (perDay !== Infinity) out.push({ type: 'max-records-per-day', max: perDay });
  return out;
}

/**
 * Decides a data statement. Returns the allow; a denial throws the GatewayError of the first
 * table refused, after `onDecision` has seen the decision.
 */
/** What the engine is asked for one table of a statement; the same for every run of the statement on a service. */
interface TableInput {
  readonly route: Pick<RouteConfig, 'id' | 'securityLevel' | 'classification'>;
  readonly path: string;
}

interface StatementInputs {
  readonly tables: readonly TableInput[];
  readonly classification: Classification;
}

/** Per service, per classified statement (itself cached by statement text): built once, then a lookup. */
const inputsCache = new WeakMap<DatabaseServiceConfig, WeakMap<Classified, StatementInputs>>();

function statementInputs(service: DatabaseServiceConfig, statement: Classified): StatementInputs {
  let byStatement = inputsCache.get(service);
  if (!byStatement) inputsCache.set(service, (byStatement = new WeakMap()));
  let inputs = byStatement.get(statement);
  if (inputs) return inputs;
  const id = `${DATABASE_OBJECT_PREFIX}${service.id}`;
  // A statement without a table (SELECT now()) is decided on the service's root object.
  const refs: readonly (TableRef | null)[] = statement.tables.length > 0 ? statement.tables : [null];
  let classification: Classification = refs[0] ? tableClassification(service, refs[0]) : service.classification;
  const tables = refs.map((t) => {
    const c = t ? tableClassification(service, t) : service.classification;
    if (CLASSIFICATIONS.indexOf(c) > CLASSIFICATIONS.indexOf(classification)) classification = c;
    return { route: Object.freeze({ id, securityLevel: service.securityLevel, classification: c }), path: t ? policyPath(t) : '/' };
  });
  inputs = Object.freeze({ tables: Object.freeze(tables), classification });
  byStatement.set(statement, inputs);
  return inputs;
}

export function decideStatement(engine: PolicyEngine, input: { service: DatabaseServiceConfig; statement: Classified; principal: Principal; device: DeviceTrust | null; purpose: Purpose | null; sourceIp: string | null }, onDecision: (d: StatementDecision) => void, recent?: RecentDecisions): StatementDecision {
  const { service, statement } = input;
  const { tables, classification } = statementInputs(service, statement);
  const decisions: Decision[] = [];
  for (const t of tables) {
    let denied: GatewayError | null = null;
    let seen: Decision | null = null;
    try {
      decide(
        engine,
        {
          route: t.route,
          path: t.path,
          method: statement.kind!,
          principal: input.principal,
          deviceTier: input.device?.tier ?? null,
          purpose: input.purpose,
          sourceIp: input.sourceIp,
        },
        (d) => (seen = d),
        recent,
      );
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err;
      denied = err;
    }
    if (denied) {
      if (seen) onDecision({ decision: seen, classification: t.route.classification });
      throw denied;
    }
    decisions.push(seen!);
  }
  const first = decisions[0]!;
  // One table and no obligation: the engine's decision as it is (frozen already).
  const decision: Decision = decisions.length === 1 && first.obligations.length === 0 ? first : Object.freeze({ ...first, obligations: Object.freeze(merge(decisions)) });
  const result = { decision, classification };
  onDecision(result);
  return result;
}

/** Everything the event of one statement (or one refused connection) records. */
export interface StatementRecord {
  readonly id: string;
  readonly startedAt: bigint;
  readonly service: DatabaseServiceConfig | null;
  readonly classification: Classification | null;
  readonly principal: Principal | null;
  readonly device: DeviceTrust | null;
  readonly purpose: Purpose | null;
  readonly source: { readonly ip: string | null; readonly port: number | null };
  readonly connectionId: string;
  statement: Classified | null;
  decision: Decision | null;
  policyVersion: string | null;
  /** Allowed without a policy rule (session control). */
  allowedWithoutPolicy: boolean;
  reasons: Reason[];
  errorCode: string | null;
  rows: number;
  bytes: number;
  /** The database answered with an error of its own (SQLSTATE). */
  upstreamError: string | null;
}

const namesCache = new WeakMap<Classified, readonly string[]>();

/** `schema.table` of each table, as events list them: once per classified statement. */
function tableNames(statement: Classified): readonly string[] {
  let names = namesCache.get(statement);
  if (!names) namesCache.set(statement, (names = Object.freeze(statement.tables.map((t) => `${t.schema}.${t.table}`))));
  return names;
}

/** The decision event of a statement (the builder both planes share): db.* for the statement, never a literal. */
export function statementEvent(r: StatementRecord): AuditEvent {
  // A statement that ended in any error of the gateway's is a denial, not an allow that failed.
  const allowed = isAllowed(r) && r.errorCode === null;
  const s = r.service;
  return buildDecisionEvent(
    {
      id: r.id,
      startedAt: r.startedAt,
      action: 'access-decision',
      category: 'database',
      allowed,
      succeeded: r.upstreamError === null,
      decision: r.decision,
      reasons: r.reasons,
      policyVersion: r.policyVersion,
      errorCode: r.errorCode,
      route: s ? { id: `${DATABASE_OBJECT_PREFIX}${s.id}`, securityLevel: s.securityLevel, classification: r.classification ?? s.classification, ownerAgency: s.ownerAgency } : null,
      principal: r.principal,
      device: r.device,
      purpose: r.purpose,
      records: r.statement?.kind === 'SELECT' ? r.rows : null,
      source: r.source,
    },
    {
      fields: {
        db: {
          system: 'postgresql',
          name: s?.id ?? null,
          connection_id: r.connectionId,
          operation: r.statement?.kind ?? null,
          statement: r.statement?.fingerprintText ?? null,
          fingerprint: r.statement?.fingerprint ?? null,
          tables: r.statement ? tableNames(r.statement) : [],
          rows: r.rows,
          bytes: r.bytes,
          error_code: r.upstreamError ?? undefined,
        },
      },
    },
  );
}

export function emitStatement(log: DecisionLog, r: StatementRecord): void {
  log.write(statementEvent(r));
}
