import { GatewayError } from '../errors.js';
import { isAuditRequired, type AuditConfig } from '../audit/config.js';
import type { RouteConfig } from '../config.js';
import type { DecisionLog, ForwardEntry } from '../audit/log.js';

/**
 * Step 8, audit check, before forwarding: an audit-required route is served only once the local
 * audit log holds the record that this request is being forwarded, flushed to disk — better no
 * service than service without a record of it. A disk that filled since the last write is found here, not after.
 */
export async function requireAuditRecord(route: RouteConfig & { auditRequired?: boolean }, audit: AuditConfig, log: DecisionLog, entry: Omit<ForwardEntry, 'routeId'>): Promise<void> {
  if (!isAuditRequired(route, audit)) return;
  if (!log.healthy() || !(await log.recordForward({ ...entry, routeId: route.id }))) {
    throw new GatewayError('ZTG_ERR_AUDIT_UNAVAILABLE', 'audit-unavailable');
  }
}
