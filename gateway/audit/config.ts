/**
 * The `audit` and `detection` sections of the gateway configuration. gateway/config.ts embeds
 * these schemas in its one strict schema and calls the checks below; they live here so the SOC
 * options stay next to the code that reads them.
 */

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

export interface ChainConfig {
  readonly file: string;
  readonly checkpointEvery: number;
  readonly checkpointIntervalSeconds: number;
  readonly algorithm: CheckpointAlgorithm;
  /** PKCS#8 PEM; without it assertion.keyFile, else a key generated at start (logged). */
  readonly signingKeyFile?: string;
  readonly rotation: 'daily' | 'none';
  readonly compressRotated: boolean;
  /** Calendar days for rotation and office hours. */
  readonly timeZone: string;
}

export interface AuditConfig {
  readonly sinks: readonly SinkConfig[];
  readonly spoolDir?: string;
  readonly spoolMaxBytes: number;
  readonly spoolSegmentBytes: number;
  readonly spoolAlertRatio: number;
  readonly chain?: ChainConfig;
  readonly retention: {
    readonly byLevelMonths: Readonly<Record<'1' | '2' | '3' | '4' | '5', number>>;
    /** The level whose retention applies; by default the highest securityLevel among the routes. */
    readonly securityLevel?: 1 | 2 | 3 | 4 | 5;
  };
}

export interface DetectionRuleConfig {
  readonly id: string;
  readonly kind: DetectionKind;
  readonly threshold: number;
  readonly windowSeconds: number;
  readonly action: DetectionAction;
  readonly lockSeconds: number;
  readonly enabled: boolean;
}

export interface DetectionConfig {
  readonly officeHours: { readonly timeZone: string; readonly start: string; readonly end: string; readonly days: readonly number[] };
  readonly rules: readonly DetectionRuleConfig[];
}

const name = { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' };
const path = { type: 'string', minLength: 1, maxLength: 4096 };
const clock = { type: 'string', pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$' };

export const AUDIT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    sinks: SinksSchema,
    spoolDir: path,
    spoolMaxBytes: { type: 'integer', minimum: 64 * 1024, default: 1024 * 1024 * 1024 }, // 1 GiB per remote sink
    spoolSegmentBytes: { type: 'integer', minimum: 4 * 1024, maximum: 1024 * 1024 * 1024, default: 8 * 1024 * 1024 }, // 8 MiB
    spoolAlertRatio: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.8 },
    chain: {
      type: 'object',
      additionalProperties: false,
      required: ['file'],
      properties: {
        file: path,
        checkpointEvery: { type: 'integer', minimum: 1, maximum: 1_000_000, default: 1000 },
        checkpointIntervalSeconds: { type: 'integer', minimum: 1, maximum: 86_400, default: 60 },
        algorithm: { enum: CHECKPOINT_ALGORITHMS, default: 'ES256' },
        signingKeyFile: path,
        rotation: { enum: ['daily', 'none'], default: 'daily' },
        compressRotated: { type: 'boolean', default: true },
        timeZone: { type: 'string', minLength: 1, maxLength: 64, default: 'Asia/Ho_Chi_Minh' },
      },
    },
    retention: {
      type: 'object',
      additionalProperties: false,
      properties: {
        byLevelMonths: {
          type: 'object',
          additionalProperties: false,
          properties: {
            '1': { type: 'integer', minimum: 1, maximum: 600, default: 3 },
            '2': { type: 'integer', minimum: 1, maximum: 600, default: 3 },
            '3': { type: 'integer', minimum: 1, maximum: 600, default: 3 },
            '4': { type: 'integer', minimum: 1, maximum: 600, default: 6 },
            '5': { type: 'integer', minimum: 1, maximum: 600, default: 12 },
          },
          default: {},
        },
        securityLevel: { type: 'integer', minimum: 1, maximum: 5 },
      },
      default: {},
    },
  },
  default: {},
} as const;

export const DETECTION_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    officeHours: {
      type: 'object',
      additionalProperties: false,
      properties: {
        timeZone: { type: 'string', minLength: 1, maxLength: 64, default: 'Asia/Ho_Chi_Minh' },
        start: { ...clock, default: '07:30' },
        end: { ...clock, default: '17:30' },
        // ISO weekday numbers: 1 = Monday … 7 = Sunday.
        days: { type: 'array', uniqueItems: true, items: { type: 'integer', minimum: 1, maximum: 7 }, default: [1, 2, 3, 4, 5] },
      },
      default: {},
    },
    rules: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'kind'],
        properties: {
          id: name,
          kind: { enum: DETECTION_KINDS },
          threshold: { type: 'integer', minimum: 1, maximum: 100_000_000, default: 1 },
          windowSeconds: { type: 'integer', minimum: 1, maximum: 30 * 86_400, default: 300 },
          action: { enum: DETECTION_ACTIONS, default: 'alert' },
          lockSeconds: { type: 'integer', minimum: 1, maximum: 365 * 86_400, default: 3600 },
          enabled: { type: 'boolean', default: true },
        },
      },
    },
  },
  default: {},
} as const;

function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-GB', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Cross-field checks of `audit`, `detection` and `routes[].auditRequired`; `raw` is the defaulted document. */
export function checkAuditSemantics(raw: Record<string, any>): string[] {
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
  (raw.routes ?? []).forEach((route: any, i: number) => {
    if (route.auditRequired === true && !audit.chain) problems.push(`routes[${i}].auditRequired: needs audit.chain.file (the local log a refused write is detected on)`);
  });

  const detection = raw.detection;
  if (!validTimeZone(detection.officeHours.timeZone)) problems.push(`detection.officeHours.timeZone: "${detection.officeHours.timeZone}" is not a time zone`);
  if (detection.officeHours.start >= detection.officeHours.end) problems.push('detection.officeHours: start must be before end');
  const ids = new Set<string>();
  detection.rules.forEach((rule: any, i: number) => {
    const at = `detection.rules[${i}]`;
    if (ids.has(rule.id)) problems.push(`${at}.id: "${rule.id}" is used by another rule`);
    ids.add(rule.id);
    if (rule.kind === 'concurrent-networks' && rule.threshold < 2) problems.push(`${at}.threshold: concurrent-networks counts distinct networks; use 2 or more`);
  });
  return problems;
}

/** Makes the file paths of `audit` absolute. */
export function resolveAuditPaths(raw: Record<string, any>, abs: (p: string) => string): void {
  const audit = raw.audit;
  if (audit.spoolDir) audit.spoolDir = abs(audit.spoolDir);
  if (audit.chain) {
    audit.chain.file = abs(audit.chain.file);
    if (audit.chain.signingKeyFile) audit.chain.signingKeyFile = abs(audit.chain.signingKeyFile);
  }
  for (const sink of audit.sinks) {
    for (const k of sinkKind(sink.type)!.filePaths) if (sink[k]) sink[k] = abs(sink[k]);
  }
}

/** Audit-required routes are refused (503) when their events cannot be written to the local chain. */
export function isAuditRequired(route: { auditRequired?: boolean; securityLevel: number }, audit: AuditConfig): boolean {
  if (!audit.chain) return false;
  return route.auditRequired ?? route.securityLevel >= 4;
}
