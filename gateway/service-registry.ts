import { randomUUID } from 'node:crypto';
import { CLASSIFICATIONS, type ApprovalStatus, type Classification } from '../core/levels.js';
import type { RouteConfig } from './config.js';
import type { RouteTable } from './steps/route.js';
import type { Store } from '../core/store.js';
import { CodedError } from '../core/errors.js';

/**
 * The registry of shared database services as they stand now: the routes of the configuration,
 * with the attributes security admins may change at run time (security level, classification,
 * owner agency, approval) applied on top. Overrides live in the shared Store, so every instance
 * sees the same truth; a change is announced on a channel and each instance re-reads the key
 * from the Store (the message names the route, it never carries the data). A periodic resync
 * closes the gap a lost pub/sub message could leave.
 *
 * Four-eyes: a change that weakens protection (classification or security level lowered, or the
 * service approved for use) is not applied by the admin who asks for it. It is stored as a
 * pending change, and a DIFFERENT security admin confirms it (then it applies) or rejects it.
 * Changes that strengthen protection apply at once: nobody needs a second pair of eyes to lock
 * a door. Pending changes live in the Store too, so any instance can confirm them.
 *
 * New routes still come from the configuration: the data plane registers one proxy per upstream
 * at start, so adding a service needs a configuration change and a restart.
 */

export interface ServiceApproval {
  readonly status: ApprovalStatus;
  readonly approvedBy?: string;
  readonly approvedAt?: string;
  readonly reason?: string;
  /** Four-eyes: the admin who proposed the approval, when another (approvedBy) confirmed it. */
  readonly proposedBy?: string;
}

/** A change that weakens protection, waiting for a second security admin. */
export interface PendingServiceChange {
  readonly id: string;
  readonly serviceId: string;
  readonly patch: ServicePatch;
  readonly proposedBy: string;
  readonly proposedAt: string;
  /** Why the proposer wants it: the approval reason or, for other changes, the comment sent with it. */
  readonly reason: string | null;
}

/** What an admin changed, and who did it when. */
export interface ServiceOverride {
  readonly securityLevel?: RouteConfig['securityLevel'];
  readonly classification?: Classification;
  readonly ownerAgency?: string;
  readonly approval?: ServiceApproval;
  readonly updatedBy: string;
  readonly updatedAt: string;
}

export interface ServicePatch {
  readonly securityLevel?: RouteConfig['securityLevel'];
  readonly classification?: Classification;
  readonly ownerAgency?: string;
  readonly approval?: { readonly status: ApprovalStatus; readonly reason?: string };
}

export class ServiceChangeError extends CodedError {
  constructor(
    readonly code: 'ERR_SERVICE_UNKNOWN' | 'ERR_APPROVAL_REASON_REQUIRED' | 'ERR_CHANGE_UNKNOWN' | 'ERR_FOUR_EYES_REQUIRED',
    message: string,
  ) {
    super(message);
    this.name = 'ServiceChangeError';
  }
}

export interface ServiceRegistry {
  /** The route as it stands now (configuration plus override); synchronous, for the data path. */
  current(route: RouteConfig): RouteConfig;
  list(): { route: RouteConfig; override: ServiceOverride | null }[];
  get(id: string): { route: RouteConfig; override: ServiceOverride | null } | null;
  /** Applies a change, stores it, and tells every instance. Resolves with the new route. */
  update(id: string, patch: ServicePatch, by: string, now?: Date): Promise<RouteConfig>;
  /** True when the change weakens the service's protection as it stands now (needs a second admin). */
  weakens(id: string, patch: ServicePatch): boolean;
  /** Stores a weakening change as pending; nothing applies until another admin confirms it. */
  propose(id: string, patch: ServicePatch, by: string, now?: Date): Promise<PendingServiceChange>;
  pending(serviceId?: string): Promise<PendingServiceChange[]>;
  /**
   * Applies a pending change for a DIFFERENT admin than its proposer; of two concurrent
   * confirmations (or a confirmation and a rejection) exactly one wins.
   */
  confirm(serviceId: string, changeId: string, by: string, now?: Date): Promise<{ change: PendingServiceChange; route: RouteConfig }>;
  /** Drops a pending change (another admin refusing it, or its proposer withdrawing it). */
  reject(serviceId: string, changeId: string): Promise<PendingServiceChange>;
  /** A route table whose matches carry the current attributes. */
  table(base: RouteTable): RouteTable;
  close(): Promise<void>;
}

const KEY = (id: string) => `services:override:${id}`;
const CHANGE_KEY = (changeId: string) => `services:change:${changeId}`;
const CHANGES = 'services:changes';
const CHANNEL = 'services:changed';
const rank = (c: Classification) => CLASSIFICATIONS.indexOf(c);
/** Bounds how long a lost change message can leave an instance on the old values. */
const RESYNC_INTERVAL_MS = 30_000;

function merge(route: RouteConfig, o: ServiceOverride | undefined): RouteConfig {
  if (!o) return route;
  return Object.freeze({
    ...route,
    securityLevel: o.securityLevel ?? route.securityLevel,
    classification: o.classification ?? route.classification,
    ownerAgency: o.ownerAgency ?? route.ownerAgency,
    approval: Object.freeze({ ...(o.approval ?? route.approval) }),
  });
}

function parseChange(raw: string | null): PendingServiceChange | null {
  if (raw === null) return null;
  const value = JSON.parse(raw) as PendingServiceChange;
  if (typeof value !== 'object' || value === null || typeof value.proposedBy !== 'string' || typeof value.serviceId !== 'string') throw new TypeError('malformed pending service change');
  return value;
}

function parseOverride(raw: string | null): ServiceOverride | undefined {
  if (raw === null) return undefined;
  const value = JSON.parse(raw) as ServiceOverride;
  if (typeof value !== 'object' || value === null || typeof value.updatedBy !== 'string') throw new TypeError('malformed service override');
  return value;
}

export async function createServiceRegistry(routes: readonly RouteConfig[], store: Store): Promise<ServiceRegistry> {
  const byId = new Map(routes.map((r) => [r.id, r]));
  // The merged routes this instance serves with; rebuilt only from what the Store holds.
  const merged = new Map<string, { route: RouteConfig; override: ServiceOverride | null }>();
  const apply = (id: string, override: ServiceOverride | undefined) => {
    const base = byId.get(id);
    if (base) merged.set(id, { route: merge(base, override), override: override ?? null });
  };

  async function reload(id: string): Promise<void> {
    apply(id, parseOverride(await store.get(KEY(id))));
  }
  async function reloadAll(): Promise<void> {
    await Promise.all([...byId.keys()].map(reload));
  }

  for (const route of routes) apply(route.id, undefined);
  await reloadAll();
  const unsubscribe = await store.subscribe(CHANNEL, (id) => {
    if (byId.has(id)) reload(id).catch(() => undefined);
  });
  const resync = setInterval(() => void reloadAll().catch(() => undefined), RESYNC_INTERVAL_MS);
  resync.unref();

  function check(id: string, patch: ServicePatch): void {
    if (!byId.has(id)) throw new ServiceChangeError('ERR_SERVICE_UNKNOWN', `Không có dịch vụ "${id}" / no service "${id}"`);
    if (patch.approval && !patch.approval.reason?.trim()) {
      throw new ServiceChangeError('ERR_APPROVAL_REASON_REQUIRED', 'Thay đổi trạng thái phê duyệt phải nêu lý do / an approval change needs a reason');
    }
  }
  async function write(id: string, patch: ServicePatch, by: string, now: Date, proposedBy?: string): Promise<RouteConfig> {
    check(id, patch);
    const reason = patch.approval?.reason?.trim();
    const previous = parseOverride(await store.get(KEY(id)));
    const at = now.toISOString();
    const next: ServiceOverride = {
      ...previous,
      ...(patch.securityLevel !== undefined ? { securityLevel: patch.securityLevel } : {}),
      ...(patch.classification !== undefined ? { classification: patch.classification } : {}),
      ...(patch.ownerAgency !== undefined ? { ownerAgency: patch.ownerAgency } : {}),
      ...(patch.approval ? { approval: { status: patch.approval.status, approvedBy: by, approvedAt: at, reason: reason!, ...(proposedBy && proposedBy !== by ? { proposedBy } : {}) } } : {}),
      updatedBy: by,
      updatedAt: at,
    };
    await store.set(KEY(id), JSON.stringify(next));
    apply(id, next);
    await store.publish(CHANNEL, id);
    return merged.get(id)!.route;
  }
  async function readChange(serviceId: string, changeId: string): Promise<PendingServiceChange> {
    const change = parseChange(await store.get(CHANGE_KEY(changeId)));
    if (!change || change.serviceId !== serviceId) {
      throw new ServiceChangeError('ERR_CHANGE_UNKNOWN', `Không có thay đổi đang chờ "${changeId}" cho dịch vụ "${serviceId}" / no pending change "${changeId}" for service "${serviceId}"`);
    }
    return change;
  }
  /** DEL answers 1 to exactly one caller: the one confirmation or rejection that takes the change. */
  async function claim(change: PendingServiceChange): Promise<void> {
    if ((await store.del(CHANGE_KEY(change.id))) !== 1) {
      throw new ServiceChangeError('ERR_CHANGE_UNKNOWN', `Thay đổi "${change.id}" đã được xử lý / change "${change.id}" was already confirmed or rejected`);
    }
    await store.srem(CHANGES, change.id);
  }

  return {
    current(route) {
      return merged.get(route.id)?.route ?? route;
    },
    list() {
      return routes.map((r) => merged.get(r.id)!);
    },
    get(id) {
      return merged.get(id) ?? null;
    },
    update: (id, patch, by, now = new Date()) => write(id, patch, by, now),
    weakens(id, patch) {
      const route = merged.get(id)?.route;
      if (!route) return false;
      return (patch.classification !== undefined && rank(patch.classification) < rank(route.classification)) || (patch.securityLevel !== undefined && patch.securityLevel < route.securityLevel) || patch.approval?.status === 'approved';
    },
    async propose(id, patch, by, now = new Date()) {
      check(id, patch);
      const change: PendingServiceChange = {
        id: randomUUID(),
        serviceId: id,
        patch,
        proposedBy: by,
        proposedAt: now.toISOString(),
        reason: patch.approval?.reason?.trim() ?? null,
      };
      await store.set(CHANGE_KEY(change.id), JSON.stringify(change));
      await store.sadd(CHANGES, change.id);
      return change;
    },
    async pending(serviceId) {
      const ids = await store.smembers(CHANGES);
      const changes = await Promise.all(ids.map(async (cid) => parseChange(await store.get(CHANGE_KEY(cid)))));
      return changes.filter((c): c is PendingServiceChange => c !== null && (!serviceId || c.serviceId === serviceId)).sort((a, b) => a.proposedAt.localeCompare(b.proposedAt) || a.id.localeCompare(b.id));
    },
    async confirm(serviceId, changeId, by, now = new Date()) {
      const change = await readChange(serviceId, changeId);
      if (change.proposedBy === by) {
        throw new ServiceChangeError('ERR_FOUR_EYES_REQUIRED', 'Người xác nhận phải khác người đề xuất / the confirming admin must not be the proposer');
      }
      await claim(change);
      return { change, route: await write(serviceId, change.patch, by, now, change.proposedBy) };
    },
    async reject(serviceId, changeId) {
      const change = await readChange(serviceId, changeId);
      await claim(change);
      return change;
    },
    table(base) {
      return {
        match: (host, path) => {
          const m = base.match(host, path);
          return { route: merged.get(m.route.id)?.route ?? m.route, innerPath: m.innerPath };
        },
      };
    },
    async close() {
      clearInterval(resync);
      await unsubscribe();
    },
  };
}

/** Removes every override (back to the configuration). For tests and `ztgate` maintenance. */
export async function clearServiceOverrides(store: Store, ids: readonly string[]): Promise<void> {
  if (ids.length > 0) await store.del(...ids.map(KEY));
}
