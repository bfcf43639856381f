import type { ApprovalStatus, Classification, RouteConfig } from './config.js';
import type { RouteTable } from './steps/route.js';
import type { Store } from './store.js';

/**
 * The registry of shared database services as they stand now: the routes of the configuration,
 * with the attributes security admins may change at run time (security level, classification,
 * owner agency, approval) applied on top. Overrides live in the shared Store, so every instance
 * sees the same truth; a change is announced on a channel and each instance re-reads the key
 * from the Store (the message names the route, it never carries the data). A periodic resync
 * closes the gap a lost pub/sub message could leave.
 *
 * New routes still come from the configuration: the data plane registers one proxy per upstream
 * at start, so adding a service needs a configuration change and a restart.
 */

export interface ServiceApproval {
  readonly status: ApprovalStatus;
  readonly approvedBy?: string;
  readonly approvedAt?: string;
  readonly reason?: string;
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

export class ServiceChangeError extends Error {
  constructor(
    readonly code: 'ERR_SERVICE_UNKNOWN' | 'ERR_APPROVAL_REASON_REQUIRED',
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
  /** A route table whose matches carry the current attributes. */
  table(base: RouteTable): RouteTable;
  close(): Promise<void>;
}

const KEY = (id: string) => `services:override:${id}`;
const CHANNEL = 'services:changed';
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
    async update(id, patch, by, now = new Date()) {
      const base = byId.get(id);
      if (!base) throw new ServiceChangeError('ERR_SERVICE_UNKNOWN', `Không có dịch vụ "${id}" / no service "${id}"`);
      const reason = patch.approval?.reason?.trim();
      if (patch.approval && !reason) {
        throw new ServiceChangeError('ERR_APPROVAL_REASON_REQUIRED', 'Thay đổi trạng thái phê duyệt phải nêu lý do / an approval change needs a reason');
      }
      const previous = parseOverride(await store.get(KEY(id)));
      const at = now.toISOString();
      const next: ServiceOverride = {
        ...previous,
        ...(patch.securityLevel !== undefined ? { securityLevel: patch.securityLevel } : {}),
        ...(patch.classification !== undefined ? { classification: patch.classification } : {}),
        ...(patch.ownerAgency !== undefined ? { ownerAgency: patch.ownerAgency } : {}),
        ...(patch.approval ? { approval: { status: patch.approval.status, approvedBy: by, approvedAt: at, reason: reason! } } : {}),
        updatedBy: by,
        updatedAt: at,
      };
      await store.set(KEY(id), JSON.stringify(next));
      apply(id, next);
      await store.publish(CHANNEL, id);
      return merged.get(id)!.route;
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
