import type { Classification, DeviceTier } from '../core/levels.js';
import type { Principal } from '../core/principal.js';

/**
 * Everything the policy decision point needs about one request, in one typed value: who
 * (principal), what (route with its security level and classification, path, method), from
 * which device, why (purpose of access), from where and when. Built by gateway/steps/decide.ts;
 * the same value is kept (without any token) for what-if evaluation of drafts.
 */

/** The methods the gateway serves; the order is the Allow header's. */
export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/**
 * Statement kinds a database-plane decision names as its action (gateway/database/): policy
 * rules for a `db:<service>` object list these instead of HTTP methods.
 */
export const SQL_ACTIONS = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] as const;

/** Policy objects of database services are `db:<service id>`; their paths are `/<schema>.<table>`. */
export const DATABASE_OBJECT_PREFIX = 'db:';

/** Every service a policy may name: the HTTP routes and the database services (`db:<id>`). */
export function knownServices(config: { readonly routes: readonly { readonly id: string }[]; readonly databases?: { readonly services: readonly { readonly id: string }[] } }): Set<string> {
  return new Set([...config.routes.map((r) => r.id), ...(config.databases?.services ?? []).map((s) => `${DATABASE_OBJECT_PREFIX}${s.id}`)]);
}

/** Purpose of access (mục đích khai thác) as the client declared it: X-Purpose and X-Case-Ref. */
export interface Purpose {
  readonly code: string;
  readonly caseRef: string;
}

/** How a time-bound grant came about: an approved access request, or break-glass (emergency). */
export const GRANT_KINDS = ['access-request', 'break-glass'] as const;
export type GrantKind = (typeof GRANT_KINDS)[number];

/**
 * A time-bound grant of one role on one service, active for this official now (the gateway reads
 * it from the shared store on every request). The engine adds the role only where the policy's
 * `grants` section lets that kind of grant unlock it (policies/conditions.ts).
 */
export interface Grant {
  readonly id: string;
  readonly kind: GrantKind;
  readonly role: string;
}

export interface AccessRequest {
  readonly principal: Principal;
  readonly route: { readonly id: string; readonly securityLevel: number; readonly classification: Classification };
  /** Path inside the service, without its prefix and query. */
  readonly path: string;
  readonly method: string;
  readonly device: { readonly tier: DeviceTier } | null;
  /** null when the client sent none; an invalid one is refused before the engine sees it. */
  readonly purpose: Purpose | null;
  readonly sourceIp: string | null;
  /** Milliseconds since the epoch; time windows read it in Asia/Ho_Chi_Minh. */
  readonly timeMs: number;
  /** The official's active grant on this service, if any. */
  readonly grant?: Grant | null;
}

/**
 * The path the policy decides on: lower-cased, one trailing slash removed (not the root's).
 * Many upstreams (Express, Spring, ASP.NET) treat /Admin, /admin and /admin/ as one path, so a
 * deny rule matched exactly could be walked around; rule paths are written in this form
 * (parsePolicy refuses any other). The upstream still receives the path as sent.
 */
export function canonicalPolicyPath(path: string): string {
  // Upper then lower folds what a case-insensitive upstream equates: ſ→s, K (Kelvin)→k, ı→i.
  const lower = path.toUpperCase().toLowerCase();
  return lower.length > 1 && lower.endsWith('/') ? lower.slice(0, -1) : lower;
}
