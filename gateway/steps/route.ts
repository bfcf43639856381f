import type { RouteConfig } from '../config.js';
import { GatewayError } from '../errors.js';

/**
 * Step 2, route: which registered shared database service is asked for. The longest
 * matching prefix wins; a host-bound route beats a host-less one with the same prefix.
 * A service that is not approved is never forwarded to (Directive 57: a system not yet
 * safe is not put into use).
 */
export interface RouteMatch {
  readonly route: RouteConfig;
  /** Path inside the service (prefix removed), decoded, for policy evaluation. */
  readonly innerPath: string;
}

export interface RouteTable {
  match(host: string | undefined, path: string): RouteMatch;
}

export function requireApproved(route: RouteConfig): void {
  if (route.approval.status !== 'approved') throw new GatewayError('ZTG_ERR_ROUTE_NOT_APPROVED', 'route-not-approved');
}

export function createRouteTable(routes: readonly RouteConfig[]): RouteTable {
  const ordered = [...routes].sort((a, b) => b.pathPrefix.length - a.pathPrefix.length || Number(b.host !== undefined) - Number(a.host !== undefined));
  return {
    match(host, path) {
      const hostname = host?.toLowerCase();
      for (const route of ordered) {
        if (route.host !== undefined && route.host !== hostname) continue;
        if (path !== route.pathPrefix && !path.startsWith(route.pathPrefix + '/')) continue;
        return { route, innerPath: path.slice(route.pathPrefix.length) || '/' };
      }
      throw new GatewayError('ZTG_ERR_ROUTE_NOT_FOUND', 'route-not-found');
    },
  };
}
