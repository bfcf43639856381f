import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Store } from '../core/store.js';
import { policyVersionOf, type PolicySources } from './engine.js';
import { CodedError } from '../core/errors.js';

/**
 * Policy versions: every change is a new version whose texts never change afterwards (model,
 * policy, conditions), with its author (national ID), time, comment and diff against its parent.
 *
 *   draft ──submit──▶ submitted ──approve (another admin)──▶ active ──(next activation)──▶ superseded
 *                         └──────reject──────▶ rejected
 *
 * A draft becomes active only when a security admin other than its author approves it
 * (four-eyes, ERR_POLICY_SAME_APPROVER). Rolling back creates a new version with the texts of
 * an earlier one that was active before — already approved by two people — and activates it.
 *
 * Kept in the shared store (Redis in production, so every instance sees the same versions) or,
 * for the embedded demo, in a folder of JSON files; one small key-value port serves both.
 */

export type VersionState = 'draft' | 'submitted' | 'active' | 'superseded' | 'rejected';

export interface PolicyVersion {
  readonly id: string;
  /** Content hash, the `policy_version` of decision events and assertions. */
  readonly hash: string;
  readonly parent: string | null;
  readonly author: string;
  readonly createdAt: string;
  readonly comment: string;
  readonly sources: PolicySources;
  readonly diff: string;
  readonly state: VersionState;
  readonly rollbackOf?: string;
  readonly submittedAt?: string;
  readonly review?: { readonly by: string; readonly at: string; readonly comment: string; readonly outcome: 'approved' | 'rejected' };
  readonly activatedAt?: string;
  readonly supersededAt?: string;
}

export type VersionErrorCode = 'ERR_POLICY_VERSION_NOT_FOUND' | 'ERR_POLICY_STATE' | 'ERR_POLICY_SAME_APPROVER' | 'ERR_POLICY_BUSY';

export class PolicyVersionError extends CodedError {
  constructor(
    readonly code: VersionErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'PolicyVersionError';
  }
}

/** The few operations versions need; the Store port (memory, Redis) and a folder both provide them. */
export interface VersionKv {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, opts?: { ttlMs?: number; ifAbsent?: boolean }): Promise<boolean>;
  del(...keys: string[]): Promise<number>;
  incr(key: string, by?: number): Promise<number>;
  sadd(key: string, ...members: string[]): Promise<void>;
  smembers(key: string): Promise<string[]>;
}

/** Channel on which an activation is announced to every instance sharing the store. */
export const ACTIVATED_CHANNEL = 'policy:activated';

const K = {
  seq: 'policy:seq',
  ids: 'policy:versions',
  active: 'policy:active',
  lock: 'policy:lock',
  version: (id: string) => `policy:version:${id}`,
};

/** Versions, their approvals and the active pointer are governance records, kept durably (not the short activation lock). */
export const isPolicyVersionKey = (k: string): boolean => k === K.seq || k === K.ids || k === K.active || k.startsWith('policy:version:');

/** A folder of JSON files (the demo's .data/policies/): one file per key, written atomically. */
export function createFileKv(dir: string): VersionKv {
  mkdirSync(dir, { recursive: true });
  const file = (key: string) => join(dir, `${key.replaceAll(':', '__')}.json`);
  const read = (key: string): unknown => {
    try {
      return JSON.parse(readFileSync(file(key), 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  };
  const write = (key: string, value: unknown) => {
    const tmp = `${file(key)}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(value, null, 2));
    renameSync(tmp, file(key));
  };
  return {
    async get(key) {
      const v = read(key);
      return typeof v === 'string' ? v : null;
    },
    async set(key, value, opts = {}) {
      // One process owns a file store: "if absent" needs no lock, and locks need no expiry.
      if (opts.ifAbsent && read(key) !== null) return false;
      write(key, value);
      return true;
    },
    async del(...keys) {
      let n = 0;
      for (const k of keys) {
        if (read(k) === null) continue;
        write(k, null);
        n++;
      }
      return n;
    },
    async incr(key, by = 1) {
      const next = Number(read(key) ?? 0) + by;
      write(key, next);
      return next;
    },
    async sadd(key, ...members) {
      const set = new Set((read(key) as string[] | null) ?? []);
      members.forEach((m) => set.add(m));
      write(key, [...set]);
    },
    async smembers(key) {
      return (read(key) as string[] | null) ?? [];
    },
  };
}

/** A line diff: removed and added lines per text, in order; good enough to review a policy change. */
export function diffSources(before: PolicySources | null, after: PolicySources): string {
  const out: string[] = [];
  for (const part of ['model', 'policy', 'conditions'] as const) {
    const a = (before?.[part] ?? '').split('\n');
    const b = (after[part] ?? '').split('\n');
    const count = (lines: string[]) => lines.reduce((m, l) => m.set(l, (m.get(l) ?? 0) + 1), new Map<string, number>());
    const inA = count(a);
    const inB = count(b);
    const removed = a.filter((l) => {
      const n = inB.get(l) ?? 0;
      if (n > 0) {
        inB.set(l, n - 1);
        return false;
      }
      return l.trim() !== '';
    });
    const added = b.filter((l) => {
      const n = inA.get(l) ?? 0;
      if (n > 0) {
        inA.set(l, n - 1);
        return false;
      }
      return l.trim() !== '';
    });
    if (removed.length === 0 && added.length === 0) continue;
    out.push(`--- ${part}`, `+++ ${part}`, ...removed.map((l) => `- ${l}`), ...added.map((l) => `+ ${l}`));
  }
  return out.join('\n');
}

export interface PolicyVersions {
  list(): Promise<PolicyVersion[]>;
  get(id: string): Promise<PolicyVersion>;
  activeId(): Promise<string | null>;
  /** Imports the configured files as the first active version when the store holds none. */
  bootstrap(sources: PolicySources): Promise<PolicyVersion>;
  createDraft(input: { author: string; comment: string; sources: PolicySources }): Promise<PolicyVersion>;
  submit(id: string, by: string): Promise<PolicyVersion>;
  approve(id: string, by: string, comment: string): Promise<PolicyVersion>;
  reject(id: string, by: string, comment: string): Promise<PolicyVersion>;
  rollback(toId: string, by: string, comment: string): Promise<PolicyVersion>;
}

export function createPolicyVersions(kv: VersionKv, now: () => Date = () => new Date()): PolicyVersions {
  const read = async (id: string): Promise<PolicyVersion> => {
    const raw = await kv.get(K.version(id));
    if (!raw) throw new PolicyVersionError('ERR_POLICY_VERSION_NOT_FOUND', `không có phiên bản chính sách "${id}" / no policy version "${id}"`);
    return JSON.parse(raw) as PolicyVersion;
  };
  const write = (v: PolicyVersion) => kv.set(K.version(v.id), JSON.stringify(v));
  const create = async (fields: Omit<PolicyVersion, 'id' | 'hash' | 'createdAt' | 'diff' | 'parent'>, parent: PolicyVersion | null): Promise<PolicyVersion> => {
    const id = `v${await kv.incr(K.seq)}`;
    const version: PolicyVersion = { id, hash: policyVersionOf(fields.sources), parent: parent?.id ?? null, createdAt: now().toISOString(), diff: diffSources(parent?.sources ?? null, fields.sources), ...fields };
    await write(version);
    await kv.sadd(K.ids, id);
    return version;
  };
  const active = async (): Promise<PolicyVersion | null> => {
    const id = await kv.get(K.active);
    return id ? read(id) : null;
  };
  /** Activation moves two versions and a pointer: one at a time, across instances. */
  const exclusively = async <T>(fn: () => Promise<T>): Promise<T> => {
    if (!(await kv.set(K.lock, String(process.pid), { ttlMs: 10_000, ifAbsent: true }))) {
      throw new PolicyVersionError('ERR_POLICY_BUSY', 'một thay đổi chính sách khác đang được áp dụng, hãy thử lại / another policy change is being applied, retry');
    }
    try {
      return await fn();
    } finally {
      await kv.del(K.lock);
    }
  };
  const activate = async (version: PolicyVersion, extra: Partial<PolicyVersion>): Promise<PolicyVersion> => {
    const at = now().toISOString();
    const previous = await active();
    const next: PolicyVersion = { ...version, ...extra, state: 'active', activatedAt: at };
    await write(next);
    if (previous && previous.id !== next.id) await write({ ...previous, state: 'superseded', supersededAt: at });
    await kv.set(K.active, next.id);
    return next;
  };
  const expectState = (v: PolicyVersion, ...states: VersionState[]) => {
    if (!states.includes(v.state)) throw new PolicyVersionError('ERR_POLICY_STATE', `phiên bản ${v.id} đang ở trạng thái "${v.state}", cần "${states.join('" hoặc "')}" / version ${v.id} is ${v.state}, expected ${states.join(' or ')}`);
  };

  return {
    async list() {
      const ids = await kv.smembers(K.ids);
      const versions = await Promise.all(ids.map(read));
      return versions.sort((a, b) => Number(a.id.slice(1)) - Number(b.id.slice(1)));
    },
    get: read,
    activeId: () => kv.get(K.active),
    async bootstrap(sources) {
      return exclusively(async () => {
        const current = await active();
        if (current) return current;
        const v = await create({ author: 'config', comment: 'Nạp từ tệp cấu hình / imported from the configuration files', sources, state: 'draft' }, null);
        return activate(v, {});
      });
    },
    async createDraft({ author, comment, sources }) {
      return create({ author, comment, sources, state: 'draft' }, await active());
    },
    async submit(id, by) {
      const v = await read(id);
      expectState(v, 'draft');
      if (v.author !== by) throw new PolicyVersionError('ERR_POLICY_STATE', `chỉ người soạn (${v.author}) gửi duyệt bản nháp / only the author submits a draft`);
      const next: PolicyVersion = { ...v, state: 'submitted', submittedAt: now().toISOString() };
      await write(next);
      return next;
    },
    async approve(id, by, comment) {
      return exclusively(async () => {
        const v = await read(id);
        expectState(v, 'submitted');
        if (v.author === by) throw new PolicyVersionError('ERR_POLICY_SAME_APPROVER', 'người soạn không tự phê duyệt bản nháp của mình (nguyên tắc bốn mắt) / the author cannot approve their own draft (four-eyes)');
        return activate(v, { review: { by, at: now().toISOString(), comment, outcome: 'approved' } });
      });
    },
    async reject(id, by, comment) {
      const v = await read(id);
      expectState(v, 'draft', 'submitted');
      const next: PolicyVersion = { ...v, state: 'rejected', review: { by, at: now().toISOString(), comment, outcome: 'rejected' } };
      await write(next);
      return next;
    },
    async rollback(toId, by, comment) {
      return exclusively(async () => {
        const target = await read(toId);
        // Only texts that were once approved and active: a rollback needs no second approval.
        if (!target.activatedAt) throw new PolicyVersionError('ERR_POLICY_STATE', `phiên bản ${toId} chưa từng được áp dụng / version ${toId} was never active`);
        const current = await active();
        if (current?.id === toId) throw new PolicyVersionError('ERR_POLICY_STATE', `phiên bản ${toId} đang được áp dụng / version ${toId} is already active`);
        const v = await create({ author: by, comment, sources: target.sources, state: 'draft', rollbackOf: toId }, current);
        return activate(v, {});
      });
    },
  };
}

/** Versions in the shared store: the Store port already namespaces keys by deployment. */
export function storeKv(store: Store): VersionKv {
  return store;
}
