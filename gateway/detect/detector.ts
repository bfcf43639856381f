import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { DetectionConfig, DetectionRuleConfig } from '../audit/config.js';
import type { EventFields } from '../audit/event-fields.js';
import type { AuditEvent, DecisionLog } from '../audit/log.js';
import type { LockKind, Locks } from '../lock-registry.js';
import { normalizeAddress } from '../steps/locks.js';
import type { Store } from '../../core/store.js';

/**
 * Detection rules over the decision stream (README "For the SOC"). Each instance evaluates the
 * events it writes, but every counter and window lives in the shared Store, so the thresholds
 * apply to the totals of all instances. Windows are fixed (`windowSeconds`-long buckets); a rule
 * fires once, when its count crosses the threshold in a window (the atomic increment makes
 * exactly one instance see the crossing). Firing writes an alert event (event.kind `alert`) to
 * the same sinks, and, if the rule says so, locks the official, device, session or address.
 * Evaluation never delays a response: it runs after the event is written.
 */

type Ev = EventFields;

const PERSONAL = new Set(['personal-data', 'sensitive-personal-data']);
/** Denials that mean a proof did not hold: device proof, posture report, identity assurance, token signature. */
const PROOF_FAILURE = /^(device-proof-|device-clock-skew|posture-|token-signature-invalid|token-key-unknown|assurance-insufficient|authentication-too-old)/;

const RULE_NAMES: Record<DetectionRuleConfig['kind'], string> = {
  'bulk-extraction': 'Khai thác dữ liệu hàng loạt / bulk record extraction by one official',
  'denial-burst': 'Nhiều yêu cầu bị từ chối liên tiếp / burst of denials',
  'off-hours-personal-data': 'Truy cập dữ liệu cá nhân ngoài giờ làm việc / personal data accessed outside office hours',
  'new-device': 'Thiết bị mới lần đầu sử dụng / first use of a new device',
  'concurrent-networks': 'Cùng cán bộ từ nhiều mạng cùng lúc / same official from several networks at once',
  'repeated-proof-failures': 'Xác minh thiết bị/tình trạng/định danh thất bại lặp lại / repeated device, posture or assurance failures',
};

export interface Detector {
  /** Resolves once every evaluation started so far has finished. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

const clockFormats = new Map<string, Intl.DateTimeFormat>();

export function officeHoursAt(date: Date, oh: DetectionConfig['officeHours']): boolean {
  let format = clockFormats.get(oh.timeZone);
  if (!format) clockFormats.set(oh.timeZone, (format = new Intl.DateTimeFormat('en-GB', { timeZone: oh.timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })));
  const parts = Object.fromEntries(format.formatToParts(date).map((p) => [p.type, p.value]));
  const weekday = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].indexOf(parts.weekday!) + 1;
  const hhmm = `${parts.hour}:${parts.minute}`;
  return oh.days.includes(weekday) && hhmm >= oh.start && hhmm < oh.end;
}

/** Networks, not addresses: /24 for IPv4, /64 for IPv6 (a NAT pool or a DHCP renewal is one network). */
export function networkOf(ip: string): string {
  const v4 = normalizeAddress(ip)!;
  if (/^\d+\.\d+\.\d+\.\d+$/.test(v4)) return `${v4.split('.').slice(0, 3).join('.')}.0/24`;
  const groups = ip.split('::')[0]!.split(':').slice(0, 4);
  return `${groups.join(':')}::/64`;
}

export function createDetector(opts: { config: DetectionConfig; store: Store; locks: Locks; log: DecisionLog; opLog?: Pick<Logger, 'error' | 'warn'>; now?: () => number }): Detector {
  const rules = opts.config.rules.filter((r) => r.enabled);
  const now = opts.now ?? Date.now;
  const inflight = new Set<Promise<void>>();
  let closed = false;

  const unsubscribe =
    rules.length === 0
      ? () => undefined
      : opts.log.subscribe((event) => {
          if (closed || event.event.kind !== 'event' || event.event.action !== 'access-decision') return;
          for (const rule of rules) {
            const p: Promise<void> = evaluate(rule, event as Ev)
              .catch((err) => opts.opLog?.error({ err, rule: rule.id }, 'detection rule failed'))
              .finally(() => inflight.delete(p));
            inflight.add(p);
          }
        });

  /** Adds `by` in the rule's current window; true when this increment crossed the threshold. */
  async function crossed(rule: DetectionRuleConfig, subject: string, by: number): Promise<{ count: number } | null> {
    const bucket = Math.floor(now() / 1000 / rule.windowSeconds);
    const count = await opts.store.incr(`detect:${rule.id}:${subject}:${bucket}`, by, rule.windowSeconds * 1000 + 1000);
    return count >= rule.threshold && count - by < rule.threshold ? { count } : null;
  }

  async function evaluate(rule: DetectionRuleConfig, e: Ev): Promise<void> {
    const user: string | undefined = e.user?.id;
    const device: string | undefined = e.ztgate?.device?.id ?? undefined;
    const ip: string | undefined = e.source?.ip ?? undefined;
    const allowed = e.ztgate?.decision === 'allow';
    let hit: { count: number; subject: string } | null = null;
    switch (rule.kind) {
      case 'bulk-extraction': {
        if (!allowed || !user) return;
        // Records returned when the response step counted them; else each allowed request is one.
        const n = typeof e.ztgate?.records === 'number' ? e.ztgate.records : 1;
        if (n <= 0) return;
        const c = await crossed(rule, `u:${user}`, n);
        if (c) hit = { ...c, subject: user };
        break;
      }
      case 'denial-burst': {
        if (allowed) return;
        const subject = user ? `u:${user}` : ip ? `ip:${ip}` : null;
        if (!subject) return;
        const c = await crossed(rule, subject, 1);
        if (c) hit = { ...c, subject: user ?? ip! };
        break;
      }
      case 'off-hours-personal-data': {
        if (!allowed || !user || !PERSONAL.has(e.ztgate?.route?.classification ?? '')) return;
        if (officeHoursAt(new Date(e['@timestamp'] ?? NaN), opts.config.officeHours)) return;
        const c = await crossed(rule, `u:${user}`, 1);
        if (c) hit = { ...c, subject: user };
        break;
      }
      case 'new-device': {
        if (!user || !device) return;
        const first = await opts.store.set(`detect:${rule.id}:dev:${user}:${device}`, '1', { ttlMs: rule.windowSeconds * 1000, ifAbsent: true });
        if (!first) return;
        const known = await opts.store.incr(`detect:${rule.id}:devcount:${user}`, 1, rule.windowSeconds * 1000);
        // The first `threshold` devices are the baseline; each one after is new.
        if (known > rule.threshold) hit = { count: known, subject: user };
        break;
      }
      case 'concurrent-networks': {
        if (!user || !ip) return;
        const bucket = Math.floor(now() / 1000 / rule.windowSeconds);
        const net = networkOf(ip);
        const seen = await opts.store.set(`detect:${rule.id}:net:${user}:${bucket}:${net}`, '1', { ttlMs: rule.windowSeconds * 1000 + 1000, ifAbsent: true });
        if (!seen) return;
        const c = await crossed(rule, `u:${user}`, 1);
        if (c) hit = { ...c, subject: user };
        break;
      }
      case 'repeated-proof-failures': {
        if (allowed || !(e.ztgate?.reasons ?? []).some((r: string) => PROOF_FAILURE.test(r))) return;
        const subject = device ? `d:${device}` : user ? `u:${user}` : ip ? `ip:${ip}` : null;
        if (!subject) return;
        const c = await crossed(rule, subject, 1);
        if (c) hit = { ...c, subject: device ?? user ?? ip! };
        break;
      }
    }
    if (hit && !closed) await fire(rule, e, hit);
  }

  async function fire(rule: DetectionRuleConfig, e: Ev, hit: { count: number; subject: string }): Promise<void> {
    let lock: { kind: LockKind; value: string; expires_at: string } | { kind: LockKind; skipped: string } | undefined;
    if (rule.action !== 'alert') {
      const kind = rule.action.slice('lock-'.length) as LockKind;
      const value = kind === 'user' ? e.user?.id : kind === 'device' ? e.ztgate?.device?.id : kind === 'session' ? e.ztgate?.session?.id_digest : normalizeAddress(e.source?.ip);
      if (typeof value === 'string' && value) {
        const set = await opts.locks.set({
          kind,
          value,
          seconds: rule.lockSeconds,
          lockedBy: `rule:${rule.id}`,
          reason: `Quy tắc phát hiện ${rule.id} (${rule.kind}): ${hit.count} ≥ ${rule.threshold} trong ${rule.windowSeconds} giây / detection rule ${rule.id}: ${hit.count} >= ${rule.threshold} within ${rule.windowSeconds} s`,
        });
        lock = { kind, value, expires_at: set.expiresAt };
      } else {
        lock = { kind, skipped: `the event has no ${kind} to lock` };
      }
    }
    const alert: AuditEvent = {
      '@timestamp': new Date(now()).toISOString(),
      log: { level: 'warn' },
      event: { kind: 'alert', category: ['intrusion_detection', 'iam'], type: ['indicator'], action: 'detection-alert', outcome: 'unknown', id: randomUUID(), severity: rule.action === 'alert' ? 7 : 9 },
      rule: { id: rule.id, name: RULE_NAMES[rule.kind], ruleset: 'ztgate-detection', category: rule.kind },
      ztgate: {
        alert: {
          rule: rule.id,
          kind: rule.kind,
          action: rule.action,
          reasons: [rule.kind],
          count: hit.count,
          threshold: rule.threshold,
          window_seconds: rule.windowSeconds,
          subject: hit.subject,
          source_event_id: e.event?.id,
          ...(lock ? { lock } : {}),
        },
        ...(e.ztgate?.route ? { route: e.ztgate.route } : {}),
        ...(e.ztgate?.device ? { device: e.ztgate.device } : {}),
      },
      ...(e.user ? { user: e.user } : {}),
      ...(e.organization ? { organization: e.organization } : {}),
      ...(e.source ? { source: e.source } : {}),
      message: `${RULE_NAMES[rule.kind]}: ${hit.subject}`,
    };
    opts.log.write(alert);
  }

  return {
    async idle() {
      while (inflight.size > 0) await Promise.allSettled([...inflight]);
    },
    async close() {
      closed = true;
      unsubscribe();
      await Promise.allSettled([...inflight]);
    },
  };
}
