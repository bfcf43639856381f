import { randomUUID } from 'node:crypto';
import type { Principal } from '../../core/principal.js';
import { grantUnlocks } from '../../policies/conditions.js';
import type { GrantKind } from '../../policies/access.js';
import type { PolicyEngine } from '../../policies/engine.js';
import type { RouteConfig } from '../config.js';
import type { AuditEvent, DecisionLog } from '../audit/log.js';
import { StoreError, type Store } from '../../core/store.js';
import type { AccessConfig } from './config.js';
import { CodedError } from '../../core/errors.js';

/**
 * Just-in-time access (truy cập theo yêu cầu) and break-glass (truy cập khẩn cấp).
 *
 * An official asks for one role on one service, for a purpose, a case number and a period the
 * service's security level bounds. Officials of the service's owner agency holding the approver
 * role review it — never the requester — and it needs as many approvals as the level demands.
 * Approved, it becomes a grant: one key in the shared Store (`access:grant:<national ID>:<service>`)
 * whose TTL is the grant's end. The pipeline reads that key on every request, so approval,
 * expiry and revocation hold on every instance from the next request, with no cache to go stale.
 *
 * Break-glass: an eligible official opens emergency access themselves, effective at once, but
 * the grant key lives only until the confirmation deadline; a second eligible official's
 * confirmation extends it to the period asked for. Unconfirmed, Redis ends it by itself.
 *
 * The records live in the Store too; each change happens under a short per-record mutex so two
 * reviewers approving at once cannot lose an approval, and only one instance reports a period
 * that ran out. Every step is an event to the SOC and a notification to the service's webhook.
 */

export const ACCESS_STATES = ['pending', 'active', 'denied', 'cancelled', 'revoked', 'expired', 'ended-unconfirmed'] as const;
export type AccessState = (typeof ACCESS_STATES)[number];
export const LIVE_STATES: readonly AccessState[] = ['pending', 'active'];

export interface AccessRecord {
  readonly id: string;
  readonly kind: GrantKind;
  state: AccessState;
  readonly requester: { readonly nationalId: string; readonly agency: string | null };
  readonly routeId: string;
  readonly ownerAgency: string;
  readonly securityLevel: number;
  readonly role: string;
  /** Why: the purpose for a request, the emergency for break-glass. */
  readonly purpose: string;
  readonly caseRef: string | null;
  readonly durationSeconds: number;
  readonly requiredApprovals: number;
  approvals: { nationalId: string; at: string; note: string | null }[];
  readonly createdAt: string;
  activatedAt: string | null;
  expiresAt: string | null;
  endedAt: string | null;
  endedBy: string | null;
  endReason: string | null;
  /** Break-glass: the confirmation deadline, and who confirmed. */
  confirmBy: string | null;
  confirmedBy: { nationalId: string; at: string } | null;
  /** Break-glass: the mandatory after-the-fact review. */
  review: { by: string; at: string; note: string } | null;
}

/** What the pipeline reads on every request. */
export interface ActiveGrant {
  readonly id: string;
  readonly kind: GrantKind;
  readonly role: string;
  readonly expiresAt: string;
  readonly confirmed: boolean;
}

export type AccessErrorCode = 'ERR_ACCESS_INPUT' | 'ERR_ACCESS_NOT_FOUND' | 'ERR_ACCESS_STATE' | 'ERR_ACCESS_SELF_APPROVAL' | 'ERR_ACCESS_NOT_REVIEWER' | 'ERR_BREAK_GLASS_NOT_ELIGIBLE' | 'ERR_GRANT_NOT_UNLOCKABLE';

export class AccessError extends CodedError {
  constructor(
    readonly code: AccessErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'AccessError';
  }
}

/** The steps every record goes through; each is one SOC event and one webhook notification. */
export type AccessStep = 'requested' | 'approval-recorded' | 'approved' | 'denied' | 'cancelled' | 'revoked' | 'expired' | 'break-glass-opened' | 'break-glass-confirmed' | 'break-glass-unconfirmed' | 'break-glass-reviewed';

export interface AccessNotifier {
  notify(record: AccessRecord, step: AccessStep, actor: string): void;
}

export interface AccessServiceDeps {
  readonly store: Store;
  readonly config: AccessConfig;
  readonly route: (id: string) => RouteConfig | null;
  readonly policy: () => PolicyEngine;
  readonly log: DecisionLog;
  readonly notifier?: AccessNotifier;
  readonly now?: () => number;
  readonly onError?: (err: unknown) => void;
}

const recordKey = (id: string) => `access:req:${id}`;
const grantKey = (nationalId: string, routeId: string) => `access:grant:${nationalId}:${routeId}`;
const mutexKey = (id: string) => `access:mutex:${id}`;
const ALL = 'access:index';
const LIVE = 'access:live';
/** Requests, their indexes and grants are governance records (kept durably where state.durable is set); the mutex is not. */
export function isAccessKey(key: string): boolean {
  return key.startsWith('access:req:') || key.startsWith('access:grant:') || key === ALL || key === LIVE;
}
const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// Records are kept for the agency head's accounting; a year and a month, then Redis forgets them.
const RECORD_TTL_MS = 400 * 86_400_000;

function text(value: unknown, field: string, min: number, max: number, what: string): string {
  if (typeof value !== 'string' || value.trim().length < min || value.length > max) throw new AccessError('ERR_ACCESS_INPUT', `${field}: ${what} (${min}–${max} ký tự / characters)`, field);
  return value.trim();
}

function seconds(value: unknown, maxMinutes: number, field: string): number {
  if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > maxMinutes * 60) {
    throw new AccessError('ERR_ACCESS_INPUT', `${field}: thời hạn tối đa ${maxMinutes} phút (${maxMinutes * 60} giây) theo cấp độ của dịch vụ / the period must be 1–${maxMinutes * 60} seconds for this service's security level`, field);
  }
  return value as number;
}

export interface CreateInput {
  readonly route: unknown;
  readonly role: unknown;
  readonly purpose: unknown;
  readonly caseRef: unknown;
  readonly durationSeconds: unknown;
}

export interface BreakGlassInput {
  readonly route: unknown;
  readonly role: unknown;
  readonly reason: unknown;
  readonly durationSeconds: unknown;
}

export function createAccessService(deps: AccessServiceDeps) {
  const { store, config } = deps;
  const now = deps.now ?? Date.now;
  const iso = (t: number) => new Date(t).toISOString();
  const level = (route: RouteConfig) => String(route.securityLevel) as '1' | '2' | '3' | '4' | '5';

  const read = async (id: string): Promise<AccessRecord | null> => {
    if (!ID.test(id)) return null;
    const raw = await store.get(recordKey(id));
    if (raw === null) return null;
    try {
      return JSON.parse(raw) as AccessRecord;
    } catch {
      throw new StoreError(`access record ${id} in the store is unreadable`);
    }
  };
  const write = (r: AccessRecord) => store.set(recordKey(r.id), JSON.stringify(r), { ttlMs: RECORD_TTL_MS });

  /** Runs `change` on the record under its mutex: one writer at a time, on every instance. */
  async function mutate<T>(id: string, change: (r: AccessRecord) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      if (await store.set(mutexKey(id), '1', { ttlMs: 5000, ifAbsent: true })) break;
      if (attempt >= 100) throw new StoreError(`access record ${id} stayed busy`);
      await new Promise((r) => setTimeout(r, 20));
    }
    try {
      const r = await read(id);
      if (!r) throw new AccessError('ERR_ACCESS_NOT_FOUND', `không có yêu cầu ${id} / no access request ${id}`);
      return await change(r);
    } finally {
      await store.del(mutexKey(id)).catch(() => undefined);
    }
  }

  function serviceOf(routeId: unknown): RouteConfig {
    const route = typeof routeId === 'string' ? deps.route(routeId) : null;
    if (!route) throw new AccessError('ERR_ACCESS_INPUT', `route: không có dịch vụ "${String(routeId).slice(0, 64)}" / no such service`, 'route');
    return route;
  }

  function checkRole(kind: GrantKind, route: RouteConfig, role: unknown): string {
    if (typeof role !== 'string' || !/^[a-z][a-z0-9_.:-]{0,63}$/.test(role)) throw new AccessError('ERR_ACCESS_INPUT', 'role: phải là tên vai trò / must be a role name', 'role');
    if (!grantUnlocks(deps.policy().conditions, { id: '', kind, role }, route.id)) {
      throw new AccessError('ERR_GRANT_NOT_UNLOCKABLE', `Chính sách không cho phép ${kind === 'break-glass' ? 'truy cập khẩn cấp' : 'yêu cầu truy cập'} mở vai trò "${role}" trên dịch vụ "${route.id}" / the policy does not let a ${kind} grant unlock role "${role}" on "${route.id}"`, 'role');
    }
    return role;
  }

  async function activeGrant(nationalId: string, routeId: string): Promise<ActiveGrant | null> {
    const raw = await store.get(grantKey(nationalId, routeId));
    if (raw === null) return null;
    let g: ActiveGrant;
    try {
      g = JSON.parse(raw) as ActiveGrant;
    } catch {
      // A grant in an unknown state is refused rather than ignored or trusted.
      throw new StoreError('a grant record in the store is unreadable');
    }
    // The key's TTL ends it; the recorded end is checked too, so a clock-skewed or restored key grants nothing.
    return Date.parse(g.expiresAt) > now() ? g : null;
  }

  async function refuseIfActive(nationalId: string, routeId: string): Promise<void> {
    if (await activeGrant(nationalId, routeId)) throw new AccessError('ERR_ACCESS_STATE', `Đã có quyền truy cập còn hiệu lực trên dịch vụ "${routeId}" / an active grant on "${routeId}" already exists`);
  }

  async function setGrant(r: AccessRecord, untilMs: number): Promise<void> {
    const grant: ActiveGrant = { id: r.id, kind: r.kind, role: r.role, expiresAt: r.expiresAt!, confirmed: r.kind === 'access-request' || r.confirmedBy !== null };
    await store.set(grantKey(r.requester.nationalId, r.routeId), JSON.stringify(grant), { ttlMs: Math.max(1, untilMs - now()) });
  }

  /** Ends the grant this record made, and no later one on the same service. */
  async function clearGrant(r: AccessRecord): Promise<void> {
    const key = grantKey(r.requester.nationalId, r.routeId);
    const raw = await store.get(key);
    if (raw !== null && (JSON.parse(raw) as ActiveGrant).id === r.id) await store.del(key);
  }

  function emit(r: AccessRecord, step: AccessStep, actor: string): void {
    const breakGlass = r.kind === 'break-glass';
    const common = {
      '@timestamp': iso(now()),
      ztgate: {
        access: { operation: step, id: r.id, kind: r.kind, state: r.state, route: r.routeId, role: r.role, requester: r.requester.nationalId, actor, approvals: r.approvals.length, required_approvals: r.requiredApprovals, expires_at: r.expiresAt, case_ref: r.caseRef },
      },
      user: { id: r.requester.nationalId },
      ...(r.requester.agency ? { organization: { id: r.requester.agency } } : {}),
    };
    const severe = step === 'break-glass-opened' || step === 'break-glass-unconfirmed';
    const event: AuditEvent = {
      ...common,
      log: { level: severe ? 'warn' : 'info' },
      event: { kind: 'event', category: ['iam'], type: ['info'], action: 'access-grant', outcome: 'success', id: randomUUID() },
      message: `${breakGlass ? 'Truy cập khẩn cấp' : 'Yêu cầu truy cập'} ${r.id}: ${step} / ${r.kind} ${step}`,
    };
    deps.log.write(event);
    if (severe) {
      // The SOC is alerted at once: break-glass opened, or left unconfirmed by a second official.
      deps.log.write({
        ...common,
        log: { level: 'warn' },
        event: { kind: 'alert', category: ['iam'], type: ['indicator'], action: 'access-alert', outcome: 'unknown', id: randomUUID(), severity: step === 'break-glass-opened' ? 8 : 9 },
        rule: { id: step, name: step === 'break-glass-opened' ? 'Break-glass opened' : 'Break-glass not confirmed in time', ruleset: 'ztgate-access' },
        ztgate: { ...common.ztgate, alert: { rule: step, kind: step, action: 'alert', reasons: [step], subject: r.requester.nationalId } },
        message: step === 'break-glass-opened' ? `Mở truy cập khẩn cấp trên ${r.routeId} / break-glass opened on ${r.routeId}` : `Truy cập khẩn cấp không được xác nhận, đã tự kết thúc / break-glass not confirmed, ended by itself`,
      });
    }
    deps.notifier?.notify(r, step, actor);
  }

  async function create(p: Principal, input: CreateInput): Promise<AccessRecord> {
    const route = serviceOf(input.route);
    const role = checkRole('access-request', route, input.role);
    const purpose = text(input.purpose, 'purpose', 5, 500, 'cần nêu mục đích / a purpose is required');
    const caseRef = text(input.caseRef, 'caseRef', 3, 64, 'cần số hồ sơ hoặc số văn bản / a case or document number is required');
    if (!/^[\p{L}\p{N}][\p{L}\p{N}/._ -]*$/u.test(caseRef)) throw new AccessError('ERR_ACCESS_INPUT', 'caseRef: chỉ gồm chữ, số và / . _ - / letters, digits and / . _ - only', 'caseRef');
    const durationSeconds = seconds(input.durationSeconds, config.maxMinutesBySecurityLevel[level(route)], 'durationSeconds');
    await refuseIfActive(p.nationalId, route.id);
    const r: AccessRecord = {
      id: randomUUID(),
      kind: 'access-request',
      state: 'pending',
      requester: { nationalId: p.nationalId, agency: p.agency },
      routeId: route.id,
      ownerAgency: route.ownerAgency,
      securityLevel: route.securityLevel,
      role,
      purpose,
      caseRef,
      durationSeconds,
      requiredApprovals: config.approvalsBySecurityLevel[level(route)],
      approvals: [],
      createdAt: iso(now()),
      activatedAt: null,
      expiresAt: null,
      endedAt: null,
      endedBy: null,
      endReason: null,
      confirmBy: null,
      confirmedBy: null,
      review: null,
    };
    await write(r);
    await store.sadd(ALL, r.id);
    await store.sadd(LIVE, r.id);
    emit(r, 'requested', p.nationalId);
    return r;
  }

  /** Whether this official reviews this request: the owner agency's approvers, never the requester. */
  function reviews(p: Principal, r: AccessRecord): boolean {
    return r.kind === 'access-request' && p.agency === r.ownerAgency && p.roles.includes(config.approverRole) && p.nationalId !== r.requester.nationalId;
  }

  function requireState(r: AccessRecord, state: AccessState, kind?: GrantKind): void {
    if (r.state !== state || (kind && r.kind !== kind)) throw new AccessError('ERR_ACCESS_STATE', `Yêu cầu đang ở trạng thái "${r.state}" / the request is ${r.state}`);
  }

  async function approve(p: Principal, id: string, note: unknown): Promise<AccessRecord> {
    return mutate(id, async (r) => {
      if (p.nationalId === r.requester.nationalId) throw new AccessError('ERR_ACCESS_SELF_APPROVAL', 'Không được tự phê duyệt yêu cầu của chính mình / you cannot approve your own request');
      requireState(r, 'pending', 'access-request');
      if (!reviews(p, r)) throw new AccessError('ERR_ACCESS_NOT_REVIEWER', `Chỉ người duyệt (${config.approverRole}) của cơ quan chủ quản ${r.ownerAgency} được duyệt / only approvers of the owner agency ${r.ownerAgency} review this request`);
      if (r.approvals.some((a) => a.nationalId === p.nationalId)) throw new AccessError('ERR_ACCESS_STATE', 'Bạn đã duyệt yêu cầu này; cần người duyệt khác / you already approved; another approver is needed');
      r.approvals.push({ nationalId: p.nationalId, at: iso(now()), note: typeof note === 'string' && note.trim() ? note.trim().slice(0, 500) : null });
      if (r.approvals.length < r.requiredApprovals) {
        await write(r);
        emit(r, 'approval-recorded', p.nationalId);
        return r;
      }
      await refuseIfActive(r.requester.nationalId, r.routeId);
      const t = now();
      r.state = 'active';
      r.activatedAt = iso(t);
      r.expiresAt = iso(t + r.durationSeconds * 1000);
      await write(r);
      try {
        await setGrant(r, t + r.durationSeconds * 1000);
      } catch (err) {
        r.state = 'pending';
        r.approvals.pop();
        r.activatedAt = r.expiresAt = null;
        await write(r).catch(() => undefined);
        throw err;
      }
      emit(r, 'approved', p.nationalId);
      return r;
    });
  }

  async function end(id: string, by: string, reasonText: string, allowed: (r: AccessRecord) => void, state: AccessState, step: AccessStep): Promise<AccessRecord> {
    return mutate(id, async (r) => {
      allowed(r);
      r.state = state;
      r.endedAt = iso(now());
      r.endedBy = by;
      r.endReason = reasonText;
      await clearGrant(r);
      await write(r);
      await store.srem(LIVE, r.id);
      emit(r, step, by);
      return r;
    });
  }

  const deny = (p: Principal, id: string, reason: unknown) => {
    const why = text(reason, 'reason', 3, 500, 'cần nêu lý do từ chối / a reason is required');
    return end(
      id,
      p.nationalId,
      why,
      (r) => {
        requireState(r, 'pending', 'access-request');
        if (p.nationalId === r.requester.nationalId) throw new AccessError('ERR_ACCESS_STATE', 'Người yêu cầu hủy yêu cầu, không từ chối / the requester cancels, not denies');
        if (!reviews(p, r)) throw new AccessError('ERR_ACCESS_NOT_REVIEWER', `Chỉ người duyệt của cơ quan chủ quản ${r.ownerAgency} được từ chối / only approvers of ${r.ownerAgency} deny this request`);
      },
      'denied',
      'denied',
    );
  };

  const cancel = (p: Principal, id: string) =>
    end(
      id,
      p.nationalId,
      'người yêu cầu hủy / cancelled by the requester',
      (r) => {
        if (r.requester.nationalId !== p.nationalId) throw new AccessError('ERR_ACCESS_NOT_FOUND', `không có yêu cầu ${id} của bạn / no request ${id} of yours`);
        // A pending request is withdrawn; an active grant ends early.
        if (!LIVE_STATES.includes(r.state)) throw new AccessError('ERR_ACCESS_STATE', `Yêu cầu đã kết thúc (${r.state}) / the request already ended (${r.state})`);
      },
      'cancelled',
      'cancelled',
    );

  /** An admin or the SOC ends a live grant or request at once. */
  const revoke = (by: string, id: string, reason: unknown) => {
    const why = text(reason, 'reason', 3, 500, 'cần nêu lý do thu hồi / a reason is required');
    return end(
      id,
      by,
      why,
      (r) => {
        if (!LIVE_STATES.includes(r.state)) throw new AccessError('ERR_ACCESS_STATE', `Yêu cầu đã kết thúc (${r.state}) / the request already ended (${r.state})`);
      },
      'revoked',
      'revoked',
    );
  };

  function eligible(p: Principal): boolean {
    return p.roles.includes(config.breakGlass.eligibleRole);
  }

  /** The agency head answers for their officials' break-glass uses until each is reviewed. */
  function headsAgencyOf(p: Principal, r: AccessRecord): boolean {
    return p.roles.includes(config.agencyHeadRole) && p.agency !== null && r.requester.agency === p.agency;
  }

  async function openBreakGlass(p: Principal, input: BreakGlassInput): Promise<AccessRecord> {
    if (!eligible(p)) throw new AccessError('ERR_BREAK_GLASS_NOT_ELIGIBLE', `Chỉ cán bộ có vai trò ${config.breakGlass.eligibleRole} được mở truy cập khẩn cấp / only officials with role ${config.breakGlass.eligibleRole} may open break-glass`);
    const route = serviceOf(input.route);
    const role = checkRole('break-glass', route, input.role);
    const reason = text(input.reason, 'reason', 10, 500, 'lý do khẩn cấp là bắt buộc / the emergency reason is mandatory');
    const durationSeconds = seconds(input.durationSeconds, Math.min(config.breakGlass.maxMinutes, config.maxMinutesBySecurityLevel[level(route)]), 'durationSeconds');
    await refuseIfActive(p.nationalId, route.id);
    const t = now();
    const confirmByMs = t + config.breakGlass.confirmWindowSeconds * 1000;
    const expiresMs = t + durationSeconds * 1000;
    const r: AccessRecord = {
      id: randomUUID(),
      kind: 'break-glass',
      state: 'active',
      requester: { nationalId: p.nationalId, agency: p.agency },
      routeId: route.id,
      ownerAgency: route.ownerAgency,
      securityLevel: route.securityLevel,
      role,
      purpose: reason,
      caseRef: null,
      durationSeconds,
      requiredApprovals: 1,
      approvals: [],
      createdAt: iso(t),
      activatedAt: iso(t),
      expiresAt: iso(expiresMs),
      endedAt: null,
      endedBy: null,
      endReason: null,
      confirmBy: iso(Math.min(confirmByMs, expiresMs)),
      confirmedBy: null,
      review: null,
    };
    await write(r);
    await store.sadd(ALL, r.id);
    await store.sadd(LIVE, r.id);
    // Until a second official confirms, the grant lives only until the confirmation deadline.
    await setGrant(r, Math.min(confirmByMs, expiresMs));
    emit(r, 'break-glass-opened', p.nationalId);
    return r;
  }

  const confirm = (p: Principal, id: string) =>
    mutate(id, async (r) => {
      requireState(r, 'active', 'break-glass');
      if (p.nationalId === r.requester.nationalId) throw new AccessError('ERR_ACCESS_SELF_APPROVAL', 'Người thứ hai phải xác nhận, không phải người mở / a second official must confirm, not the one who opened it');
      if (!eligible(p)) throw new AccessError('ERR_BREAK_GLASS_NOT_ELIGIBLE', `Chỉ cán bộ có vai trò ${config.breakGlass.eligibleRole} được xác nhận / only officials with role ${config.breakGlass.eligibleRole} may confirm`);
      if (r.confirmedBy) throw new AccessError('ERR_ACCESS_STATE', 'Đã được xác nhận / already confirmed');
      if (Date.parse(r.confirmBy!) <= now()) throw new AccessError('ERR_ACCESS_STATE', 'Đã quá hạn xác nhận; truy cập đã tự kết thúc / the confirmation window has passed; the access ended');
      r.confirmedBy = { nationalId: p.nationalId, at: iso(now()) };
      await write(r);
      await setGrant(r, Date.parse(r.expiresAt!));
      emit(r, 'break-glass-confirmed', p.nationalId);
      return r;
    });

  const review = (by: string, id: string, note: unknown) => {
    const why = text(note, 'note', 10, 2000, 'cần nhận xét sau sự việc / a review note is required');
    return mutate(id, async (r) => {
      if (r.kind !== 'break-glass') throw new AccessError('ERR_ACCESS_STATE', 'Chỉ truy cập khẩn cấp cần xem xét sau / only break-glass uses are reviewed after the fact');
      if (r.review) throw new AccessError('ERR_ACCESS_STATE', 'Đã được xem xét / already reviewed');
      if (r.requester.nationalId === by) throw new AccessError('ERR_ACCESS_SELF_APPROVAL', 'Không được tự xem xét lần sử dụng của chính mình / you cannot review your own break-glass use');
      r.review = { by, at: iso(now()), note: why };
      await write(r);
      emit(r, 'break-glass-reviewed', by);
      return r;
    });
  };

  async function list(filter: { state?: 'pending' | 'active' | 'past'; requester?: string } = {}): Promise<AccessRecord[]> {
    const ids = await store.smembers(filter.state === 'pending' || filter.state === 'active' ? LIVE : ALL);
    const found: AccessRecord[] = [];
    for (const id of ids) {
      const r = await read(id);
      if (!r) {
        await store.srem(ALL, id);
        continue;
      }
      if (filter.requester && r.requester.nationalId !== filter.requester) continue;
      if (filter.state === 'past' ? LIVE_STATES.includes(r.state) : filter.state && r.state !== filter.state) continue;
      found.push(r);
    }
    return found.sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
  }

  /** Break-glass uses nobody has reviewed yet, for the agency heads. */
  async function unreviewed(): Promise<AccessRecord[]> {
    return (await list()).filter((r) => r.kind === 'break-glass' && r.review === null);
  }

  /** Ends what ran out of time: grants past their end, break-glass unconfirmed, requests nobody decided. */
  async function sweep(): Promise<void> {
    const t = now();
    for (const id of await store.smembers(LIVE)) {
      const r = await read(id);
      if (!r) {
        await store.srem(LIVE, id);
        continue;
      }
      const due = r.state === 'pending' ? Date.parse(r.createdAt) + config.pendingMaxMinutes * 60_000 <= t : r.kind === 'break-glass' && r.confirmedBy === null ? Date.parse(r.confirmBy!) <= t : r.state === 'active' && Date.parse(r.expiresAt!) <= t;
      if (!due) continue;
      // Only the instance that takes the mutex reports it; the grant key's TTL has already ended the access.
      if (!(await store.set(mutexKey(id), '1', { ttlMs: 5000, ifAbsent: true }))) continue;
      try {
        const fresh = await read(id);
        if (!fresh || !LIVE_STATES.includes(fresh.state)) continue;
        const unconfirmed = fresh.kind === 'break-glass' && fresh.confirmedBy === null && fresh.state === 'active';
        fresh.state = unconfirmed ? 'ended-unconfirmed' : 'expired';
        fresh.endedAt = iso(t);
        fresh.endedBy = 'system';
        fresh.endReason = unconfirmed ? 'không có người thứ hai xác nhận kịp / not confirmed by a second official in time' : fresh.activatedAt ? 'hết thời hạn / period ended' : 'không được duyệt kịp / not decided in time';
        await clearGrant(fresh);
        await write(fresh);
        await store.srem(LIVE, id);
        emit(fresh, unconfirmed ? 'break-glass-unconfirmed' : 'expired', 'system');
      } finally {
        await store.del(mutexKey(id)).catch(() => undefined);
      }
    }
  }

  let timer: NodeJS.Timeout | null = null;
  let sweeping: Promise<void> | null = null;
  function start(): void {
    timer ??= setInterval(() => {
      sweeping ??= sweep()
        .catch((err: unknown) => deps.onError?.(err))
        .finally(() => (sweeping = null));
    }, config.sweepIntervalMs);
    timer.unref();
  }

  return {
    create,
    approve,
    deny,
    cancel,
    revoke,
    openBreakGlass,
    confirm,
    review,
    get: read,
    list,
    unreviewed,
    activeGrant,
    reviews,
    eligible,
    headsAgencyOf,
    sweep,
    start,
    async close() {
      if (timer) clearInterval(timer);
      timer = null;
      await sweeping;
    },
  };
}

export type AccessService = ReturnType<typeof createAccessService>;
