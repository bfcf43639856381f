import { Type as T, type Static } from 'typebox';
import type { SinkKind } from './kinds/kind.js';
import { redisStreamSink } from './kinds/redis-stream.js';
import { stdoutSink } from './kinds/stdout.js';
import { syslogSink } from './kinds/syslog.js';

/**
 * Every kind of SOC sink (`audit.sinks[].type`). Config validation, path resolution and the
 * decision log all read this table: a new kind is a file in gateway/audit/kinds/ and a line here
 * (README "Sinks" documents each kind with an example; test/audit-sink-kinds.test.ts checks it).
 */
export const SINK_KINDS = [stdoutSink, syslogSink, redisStreamSink] as const;

export type SinkConfig = Static<(typeof SINK_KINDS)[number]['schema']>;
export type SinkType = SinkConfig['type'];
export const SINK_TYPES = SINK_KINDS.map((k) => k.type) as readonly SinkType[];

export function sinkKind(type: string): SinkKind | undefined {
  // Each kind's functions take its own config; the table is keyed by the `type` that config carries.
  return SINK_KINDS.find((k) => k.type === type) as SinkKind | undefined;
}

/**
 * `audit.sinks`: each entry is checked against the schema of the kind its `type` names. One
 * if/then per kind (rather than oneOf) keeps the messages about the entry's own keys.
 */
const sinkEntry = {
  type: 'object',
  required: ['type'],
  properties: { type: { enum: SINK_TYPES } },
  allOf: SINK_KINDS.map((k) => ({ if: { required: ['type'], properties: { type: { const: k.type } } }, then: k.schema })),
};

export const SinksSchema = T.Array(T.Unsafe<SinkConfig>(sinkEntry), { minItems: 1, default: [{ type: 'stdout' }] });
