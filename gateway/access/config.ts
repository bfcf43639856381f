/**
 * The `access` section: just-in-time access requests and break-glass (gateway/access/*).
 * Periods and approvals are bounded per service by its security level; webhooks notify each
 * service's owners of every step.
 */

export interface AccessWebhookConfig {
  /** The service whose access steps are sent. */
  readonly route: string;
  readonly url: string;
  /** File holding the HMAC-SHA256 key (at least 32 bytes); receivers verify X-Ztgate-Signature with it. */
  readonly secretFile: string;
  readonly timeoutMs: number;
  /** Longest wait between retries; the wait doubles from 100 ms up to it. */
  readonly retryMaxMs: number;
}

export interface AccessConfig {
  /** Officials of a service's owner agency with this role review its access requests. */
  readonly approverRole: string;
  /** Longest period an access request may ask for, in minutes, by security level (1–5). */
  readonly maxMinutesBySecurityLevel: Readonly<Record<'1' | '2' | '3' | '4' | '5', number>>;
  /** Approvals a request needs, by security level (two from level 4). */
  readonly approvalsBySecurityLevel: Readonly<Record<'1' | '2' | '3' | '4' | '5', number>>;
  /** The head of an agency (thủ trưởng) sees their officials' unreviewed break-glass uses on their page. */
  readonly agencyHeadRole: string;
  /** A request nobody decided within this many minutes expires. */
  readonly pendingMaxMinutes: number;
  readonly breakGlass: {
    /** Officials with this role may open break-glass and confirm another's. */
    readonly eligibleRole: string;
    readonly maxMinutes: number;
    /** A second eligible official confirms within this window, or the access ends by itself. */
    readonly confirmWindowSeconds: number;
  };
  /** How often each instance looks for requests whose time is up (events, webhooks). */
  readonly sweepIntervalMs: number;
  /** Where webhook notifications wait until their receiver has them. */
  readonly spoolDir?: string;
  readonly spoolMaxBytes: number;
  readonly webhooks: readonly AccessWebhookConfig[];
}

const ROLE = { type: 'string', pattern: '^[a-z][a-z0-9_.:-]{0,63}$' };
const byLevel = (defaults: number[], max: number) => ({
  type: 'object',
  additionalProperties: false,
  properties: Object.fromEntries(defaults.map((d, i) => [String(i + 1), { type: 'integer', minimum: 1, maximum: max, default: d }])),
  default: {},
});

export const ACCESS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    approverRole: { ...ROLE, default: 'access-approver' },
    agencyHeadRole: { ...ROLE, default: 'agency-head' },
    maxMinutesBySecurityLevel: byLevel([24 * 60, 24 * 60, 8 * 60, 60, 60], 7 * 24 * 60),
    approvalsBySecurityLevel: byLevel([1, 1, 1, 2, 2], 5),
    pendingMaxMinutes: { type: 'integer', minimum: 1, maximum: 30 * 24 * 60, default: 24 * 60 },
    breakGlass: {
      type: 'object',
      additionalProperties: false,
      properties: {
        eligibleRole: { ...ROLE, default: 'break-glass' },
        maxMinutes: { type: 'integer', minimum: 1, maximum: 240, default: 60 },
        confirmWindowSeconds: { type: 'integer', minimum: 1, maximum: 3600, default: 900 },
      },
      default: {},
    },
    sweepIntervalMs: { type: 'integer', minimum: 50, maximum: 60_000, default: 1000 },
    spoolDir: { type: 'string', minLength: 1, maxLength: 1024 },
    spoolMaxBytes: { type: 'integer', minimum: 4096, maximum: 1024 * 1024 * 1024, default: 64 * 1024 * 1024 }, // 64 MiB
    webhooks: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['route', 'url', 'secretFile'],
        properties: {
          route: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' },
          url: { type: 'string', minLength: 1, maxLength: 2048 },
          secretFile: { type: 'string', minLength: 1, maxLength: 1024 },
          timeoutMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 5000 },
          retryMaxMs: { type: 'integer', minimum: 100, maximum: 3_600_000, default: 60_000 },
        },
      },
    },
  },
  default: {},
} as const;

/** Checks what the schema cannot: routes exist, URLs are http(s), a spool for webhooks. */
export function checkAccessSemantics(raw: Record<string, any>): string[] {
  const problems: string[] = [];
  const access = raw.access;
  if (!access) return problems;
  const routes = new Set((raw.routes ?? []).map((r: { id: string }) => r.id));
  const seen = new Set<string>();
  access.webhooks.forEach((w: AccessWebhookConfig, i: number) => {
    const at = `access.webhooks[${i}]`;
    if (!routes.has(w.route)) problems.push(`${at}.route: "${w.route}" is not a configured route`);
    if (seen.has(w.route)) problems.push(`${at}.route: "${w.route}" already has a webhook`);
    seen.add(w.route);
    let url: URL | null = null;
    try {
      url = new URL(w.url);
    } catch {
      problems.push(`${at}.url: "${w.url}" is not a URL`);
    }
    if (url && url.protocol !== 'https:' && url.protocol !== 'http:') problems.push(`${at}.url: must be http or https`);
  });
  if (access.webhooks.length > 0 && !access.spoolDir) problems.push('access.spoolDir: webhooks need a spool folder (notifications wait there until delivered)');
  if (access.breakGlass.eligibleRole === access.approverRole) problems.push('access.breakGlass.eligibleRole: must differ from access.approverRole');
  return problems;
}

export function resolveAccessPaths(raw: Record<string, any>, abs: (p: string) => string): void {
  if (!raw.access) return;
  if (raw.access.spoolDir) raw.access.spoolDir = abs(raw.access.spoolDir);
  for (const w of raw.access.webhooks) w.secretFile = abs(w.secretFile);
}
