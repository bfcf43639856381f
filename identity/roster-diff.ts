import type { RosterEntry } from './roster.js';

/**
 * What a roster import changes, official by official, for the audit event: the SOC must see
 * every role and clearance an import grants, not only how many rows it had. Only the attributes
 * that decide access are named (roles, clearance, agency, unit, status); names, positions and
 * other personal data stay out of the event.
 */

/** The attributes that decide what an official may reach; a change to one's own is four-eyes. */
const ACCESS_FIELDS = ['clearance', 'agency', 'unit', 'status'] as const;

export type RosterChange =
  | { readonly nationalId: string; readonly change: 'added'; readonly roles: readonly string[]; readonly clearance: string; readonly agency: string; readonly status: string }
  | { readonly nationalId: string; readonly change: 'removed' }
  | {
      readonly nationalId: string;
      readonly change: 'changed';
      readonly roles?: { readonly added: readonly string[]; readonly removed: readonly string[] };
      readonly clearance?: { readonly from: string; readonly to: string };
      readonly agency?: { readonly from: string; readonly to: string };
      readonly unit?: { readonly from: string; readonly to: string };
      readonly status?: { readonly from: string; readonly to: string };
    };

export interface RosterDiff {
  readonly added: number;
  readonly removed: number;
  readonly changed: number;
  /** The first `limit` changes, in national ID order; `truncated` says when there were more. */
  readonly changes: readonly RosterChange[];
  readonly truncated: boolean;
}

/** The changes to one official, or null when what decides their access stays the same. */
export function entryChange(before: RosterEntry | undefined, after: RosterEntry | undefined): RosterChange | null {
  if (!before && !after) return null;
  if (!before) return { nationalId: after!.nationalId, change: 'added', roles: after!.roles, clearance: after!.clearance, agency: after!.agency, status: after!.status };
  if (!after) return { nationalId: before.nationalId, change: 'removed' };
  const fields: Record<string, unknown> = {};
  const added = after.roles.filter((r) => !before.roles.includes(r));
  const removed = before.roles.filter((r) => !after.roles.includes(r));
  if (added.length > 0 || removed.length > 0) fields.roles = { added, removed };
  for (const f of ACCESS_FIELDS) if (before[f] !== after[f]) fields[f] = { from: before[f], to: after[f] };
  return Object.keys(fields).length === 0 ? null : ({ nationalId: after.nationalId, change: 'changed', ...fields } as RosterChange);
}

export function diffRoster(before: readonly RosterEntry[], after: readonly RosterEntry[], limit = 200): RosterDiff {
  const old = new Map(before.map((e) => [e.nationalId, e]));
  const next = new Map(after.map((e) => [e.nationalId, e]));
  const ids = [...new Set([...old.keys(), ...next.keys()])].sort();
  const counts = { added: 0, removed: 0, changed: 0 };
  const changes: RosterChange[] = [];
  for (const id of ids) {
    const c = entryChange(old.get(id), next.get(id));
    if (!c) continue;
    counts[c.change]++;
    if (changes.length < limit) changes.push(c);
  }
  return { ...counts, changes, truncated: counts.added + counts.removed + counts.changed > changes.length };
}
