import Type from 'typebox';
import { Id, NonEmpty, Section, type DeepReadonly, type Static } from '../../core/schema.js';

/**
 * The `access` section: just-in-time access requests and break-glass (gateway/access/*).
 * Periods and approvals are bounded per service by its security level; webhooks notify each
 * service's owners of every step.
 */

const Role = (defaultRole: string) => Type.String({ pattern: '^[a-z][a-z0-9_.:-]{0,63}$', default: defaultRole });
const ByLevel = (defaults: readonly [number, number, number, number, number], max: number) => {
  const level = (i: number) => Type.Integer({ minimum: 1, maximum: max, default: defaults[i] });
  return Section({ '1': level(0), '2': level(1), '3': level(2), '4': level(3), '5': level(4) }, { default: {} });
};

const WEBHOOK_SCHEMA = Section({
  /** The service whose access steps are sent. */
  route: Id(),
  url: NonEmpty(),
  /** File holding the HMAC-SHA256 key (at least 32 bytes); receivers verify X-Ztgate-Signature with it. */
  secretFile: Type.String({ minLength: 1, maxLength: 1024 }),
  timeoutMs: Type.Integer({ minimum: 100, maximum: 60_000, default: 5000 }),
  /** Longest wait between retries; the wait doubles from 100 ms up to it. */
  retryMaxMs: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 60_000 }),
});

export const ACCESS_SCHEMA = Section(
  {
    /** Officials of a service's owner agency with this role review its access requests. */
    approverRole: Role('access-approver'),
    /** The head of an agency (thủ trưởng) sees their officials' unreviewed break-glass uses on their page. */
    agencyHeadRole: Role('agency-head'),
    /** Longest period an access request may ask for, in minutes, by security level (1–5). */
    maxMinutesBySecurityLevel: ByLevel([24 * 60, 24 * 60, 8 * 60, 60, 60], 7 * 24 * 60),
    /** Approvals a request needs, by security level (two from level 4). */
    approvalsBySecurityLevel: ByLevel([1, 1, 1, 2, 2], 5),
    /** A request nobody decided within this many minutes expires. */
    pendingMaxMinutes: Type.Integer({ minimum: 1, maximum: 30 * 24 * 60, default: 24 * 60 }),
    breakGlass: Section(
      {
        /** Officials with this role may open break-glass and confirm another's. */
        eligibleRole: Role('break-glass'),
        maxMinutes: Type.Integer({ minimum: 1, maximum: 240, default: 60 }),
        /** A second eligible official confirms within this window, or the access ends by itself. */
        confirmWindowSeconds: Type.Integer({ minimum: 1, maximum: 3600, default: 900 }),
      },
      { default: {} },
    ),
    /** How often each instance looks for requests whose time is up (events, webhooks). */
    sweepIntervalMs: Type.Integer({ minimum: 50, maximum: 60_000, default: 1000 }),
    /** Where webhook notifications wait until their receiver has them. */
    spoolDir: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    spoolMaxBytes: Type.Integer({ minimum: 4096, maximum: 1024 * 1024 * 1024, default: 64 * 1024 * 1024 }), // 64 MiB
    webhooks: Type.Array(WEBHOOK_SCHEMA, { default: [] }),
  },
  { default: {} },
);

export type AccessWebhookConfig = DeepReadonly<Static<typeof WEBHOOK_SCHEMA>>;
export type AccessConfig = DeepReadonly<Static<typeof ACCESS_SCHEMA>>;
type RawAccess = Static<typeof ACCESS_SCHEMA>;

/** Checks what the schema cannot: routes exist, URLs are http(s), a spool for webhooks. */
export function checkAccessSemantics(raw: { readonly access?: AccessConfig; readonly routes?: readonly { readonly id: string }[] }): string[] {
  const problems: string[] = [];
  const access = raw.access;
  if (!access) return problems;
  const routes = new Set((raw.routes ?? []).map((r) => r.id));
  const seen = new Set<string>();
  access.webhooks.forEach((w, i) => {
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

/** The spool folder and the webhook key files, absolute. */
export function resolveAccessPaths(access: RawAccess, abs: (p: string) => string): AccessConfig {
  return {
    ...access,
    ...(access.spoolDir ? { spoolDir: abs(access.spoolDir) } : {}),
    webhooks: access.webhooks.map((w) => ({ ...w, secretFile: abs(w.secretFile) })),
  };
}
