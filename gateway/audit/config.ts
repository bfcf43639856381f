/**
 * The `audit` and `detection` sections of the gateway configuration. gateway/config.ts embeds
 * these schemas in its one strict schema and calls the checks below; they live here so the SOC
 * options stay next to the code that reads them.
 */

import Type from 'typebox';
import { Id, Section, SecurityLevel, type DeepReadonly, type Static } from '../../core/schema.js';
import { SINK_KINDS, SinksSchema, sinkKind, type SinkConfig } from './sink-kinds.js';

export const CHECKPOINT_ALGORITHMS = ['ES256', 'ES384', 'EdDSA'] as const;
export type CheckpointAlgorithm = (typeof CHECKPOINT_ALGORITHMS)[number];

export const DETECTION_KINDS = ['bulk-extraction', 'denial-burst', 'off-hours-personal-data', 'new-device', 'concurrent-networks', 'repeated-proof-failures'] as const;
export type DetectionKind = (typeof DETECTION_KINDS)[number];
export const DETECTION_ACTIONS = ['alert', 'lock-user', 'lock-device', 'lock-session', 'lock-address'] as const;
export type DetectionAction = (typeof DETECTION_ACTIONS)[number];

export type { SinkConfig } from './sink-kinds.js';
export type { SyslogSinkConfig } from './kinds/syslog.js';
export type { RedisStreamSinkConfig } from './kinds/redis-stream.js';

const Path = () => Type.String({ minLength: 1, maxLength: 4096 });
const Clock = (defaultTime: string) => Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$', default: defaultTime });
const TimeZone = () => Type.String({ minLength: 1, maxLength: 64, default: 'Asia/Ho_Chi_Minh' });

const CHAIN_SCHEMA = Section({
  file: Path(),
  checkpointEvery: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1000 }),
  checkpointIntervalSeconds: Type.Integer({ minimum: 1, maximum: 86_400, default: 60 }),
  algorithm: Type.Enum(CHECKPOINT_ALGORITHMS, { default: 'ES256' }),
  /** PKCS#8 PEM; without it assertion.keyFile, else a key generated at start (logged). */
  signingKeyFile: Type.Optional(Path()),
  rotation: Type.Enum(['daily', 'none'], { default: 'daily' }),
  compressRotated: Type.Boolean({ default: true }),
  /** Calendar days for rotation and office hours. */
  timeZone: TimeZone(),
});

const Months = (months: number) => Type.Integer({ minimum: 1, maximum: 600, default: months });

export const AUDIT_SCHEMA = Section(
  {
    sinks: SinksSchema,
    spoolDir: Type.Optional(Path()),
    spoolMaxBytes: Type.Integer({ minimum: 64 * 1024, default: 1024 * 1024 * 1024 }), // 1 GiB per remote sink
    spoolSegmentBytes: Type.Integer({ minimum: 4 * 1024, maximum: 1024 * 1024 * 1024, default: 8 * 1024 * 1024 }), // 8 MiB
    spoolAlertRatio: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.8 }),
    chain: Type.Optional(CHAIN_SCHEMA),
    retention: Section(
      {
        byLevelMonths: Section({ '1': Months(3), '2': Months(3), '3': Months(3), '4': Months(6), '5': Months(12) }, { default: {} }),
        /** The level whose retention applies; by default the highest securityLevel among the routes. */
        securityLevel: Type.Optional(SecurityLevel()),
      },
      { default: {} },
    ),
  },
  { default: {} },
);

const DETECTION_RULE_SCHEMA = Section({
  id: Id(),
  kind: Type.Enum(DETECTION_KINDS),
  threshold: Type.Integer({ minimum: 1, maximum: 100_000_000, default: 1 }),
  windowSeconds: Type.Integer({ minimum: 1, maximum: 30 * 86_400, default: 300 }),
  action: Type.Enum(DETECTION_ACTIONS, { default: 'alert' }),
  lockSeconds: Type.Integer({ minimum: 1, maximum: 365 * 86_400, default: 3600 }),
  enabled: Type.Boolean({ default: true }),
});

export const DETECTION_SCHEMA = Section(
  {
    officeHours: Section(
      {
        timeZone: TimeZone(),
        start: Clock('07:30'),
        end: Clock('17:30'),
        // ISO weekday numbers: 1 = Monday … 7 = Sunday.
        days: Type.Array(Type.Integer({ minimum: 1, maximum: 7 }), { uniqueItems: true, default: [1, 2, 3, 4, 5] }),
      },
      { default: {} },
    ),
    rules: Type.Array(DETECTION_RULE_SCHEMA, { default: [] }),
  },
  { default: {} },
);

export type ChainConfig = DeepReadonly<Static<typeof CHAIN_SCHEMA>>;
export type AuditConfig = DeepReadonly<Static<typeof AUDIT_SCHEMA>>;
export type DetectionRuleConfig = DeepReadonly<Static<typeof DETECTION_RULE_SCHEMA>>;
export type DetectionConfig = DeepReadonly<Static<typeof DETECTION_SCHEMA>>;

function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-GB', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Cross-field checks of `audit`, `detection` and `routes[].auditRequired`; `raw` is the defaulted document. */
export function checkAuditSemantics(raw: { readonly audit: Static<typeof AUDIT_SCHEMA>; readonly detection: Static<typeof DETECTION_SCHEMA>; readonly state?: { readonly redisUrl?: string }; readonly routes?: readonly { readonly auditRequired?: boolean }[] }): string[] {
  const problems: string[] = [];
  const audit = raw.audit;
  const names = new Set<string>();
  audit.sinks.forEach((sink: SinkConfig, i: number) => {
    const at = `audit.sinks[${i}]`;
    const kind = sinkKind(sink.type)!;
    if (kind.delivery === 'direct') {
      if (names.has(sink.type)) problems.push(`${at}: ${sink.type} is listed twice`);
      names.add(sink.type);
    } else {
      const { name } = sink as SinkConfig & { name: string };
      if (names.has(name)) problems.push(`${at}.name: "${name}" is used by another sink`);
      names.add(name);
    }
    problems.push(...kind.check(sink, at, { stateRedisUrl: raw.state?.redisUrl }));
  });
  const spooled = SINK_KINDS.filter((k) => k.delivery === 'spooled').map((k) => k.type);
  if (audit.sinks.some((s: SinkConfig) => spooled.includes(s.type)) && !audit.spoolDir) problems.push(`audit.spoolDir: required with a ${spooled.join(' or ')} sink (events wait there while the SOC is unreachable)`);
  if (audit.chain && !validTimeZone(audit.chain.timeZone)) problems.push(`audit.chain.timeZone: "${audit.chain.timeZone}" is not a time zone`);
  (raw.routes ?? []).forEach((route, i) => {
    if (route.auditRequired === true && !audit.chain) problems.push(`routes[${i}].auditRequired: needs audit.chain.file (the local log a refused write is detected on)`);
  });

  const detection = raw.detection;
  if (!validTimeZone(detection.officeHours.timeZone)) problems.push(`detection.officeHours.timeZone: "${detection.officeHours.timeZone}" is not a time zone`);
  if (detection.officeHours.start >= detection.officeHours.end) problems.push('detection.officeHours: start must be before end');
  const ids = new Set<string>();
  detection.rules.forEach((rule, i) => {
    const at = `detection.rules[${i}]`;
    if (ids.has(rule.id)) problems.push(`${at}.id: "${rule.id}" is used by another rule`);
    ids.add(rule.id);
    if (rule.kind === 'concurrent-networks' && rule.threshold < 2) problems.push(`${at}.threshold: concurrent-networks counts distinct networks; use 2 or more`);
  });
  return problems;
}

/** Makes the file paths of `audit` absolute. */
export function resolveAuditPaths(raw: { readonly audit: Static<typeof AUDIT_SCHEMA> }, abs: (p: string) => string): void {
  const audit = raw.audit;
  if (audit.spoolDir) audit.spoolDir = abs(audit.spoolDir);
  if (audit.chain) {
    audit.chain.file = abs(audit.chain.file);
    if (audit.chain.signingKeyFile) audit.chain.signingKeyFile = abs(audit.chain.signingKeyFile);
  }
  for (const sink of audit.sinks) {
    // A kind names its own file-path keys; the sink's type is the union of every kind's shape.
    const paths = sink as unknown as Record<string, string | undefined>;
    for (const k of sinkKind(sink.type)!.filePaths) {
      const value = paths[k];
      if (value) paths[k] = abs(value);
    }
  }
}

/** Audit-required routes are refused (503) when their events cannot be written to the local chain. */
export function isAuditRequired(route: { auditRequired?: boolean; securityLevel: number }, audit: AuditConfig): boolean {
  if (!audit.chain) return false;
  return route.auditRequired ?? route.securityLevel >= 4;
}
