import { knownServices } from './access.js';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { PolicyContext } from './config.js';
import type { Store } from '../core/store.js';
import { PolicyEngine, PolicyError, type PolicySources } from './engine.js';
import { ACTIVATED_CHANNEL, createFileKv, createPolicyVersions, storeKv, type PolicyVersion, type PolicyVersions } from './versions.js';
import { createRecentDecisions, type RecentDecisions } from './what-if.js';

/**
 * The policy in force on this instance, and how it follows the shared active version.
 *
 * At start the active version comes from the version store (the configured files seed it when
 * the store is empty). An activation is announced on the store's pub/sub and also noticed by a
 * poll of the active pointer (every policy.syncIntervalMs), so every instance sharing Redis
 * switches within about a second even if a message is lost. The new engine is built completely
 * before it replaces the old one in a single assignment; requests already past their start
 * keep the engine they began with (gateway/pipeline.ts reads it once per request).
 */
export interface PolicyService {
  current(): PolicyEngine;
  /** Id of the version in force here (e.g. "v3"). */
  currentId(): string;
  readonly versions: PolicyVersions;
  readonly recent: RecentDecisions;
  readonly knownRoutes: ReadonlySet<string>;
  /** Builds an engine from texts (a draft), or throws PolicyError naming file:line. */
  build(sources: PolicySources, label: string): Promise<PolicyEngine>;
  /** Makes this instance follow the active version now (also what a pub/sub message triggers). */
  sync(): Promise<void>;
  /** Announces an activation to every instance. */
  announce(version: PolicyVersion): Promise<void>;
  /** The last switch to a newly activated version here: when it was activated, and when this instance followed. */
  lastSwitch(): { readonly id: string; readonly activatedAtMs: number | null; readonly switchedAtMs: number } | null;
  close(): Promise<void>;
}

/** Where the policy texts are: the files named in the configuration. */
export interface PolicyFiles {
  readonly model: string;
  readonly policy: string;
  readonly conditions?: string;
}

export function readPolicySources(settings: PolicyFiles): PolicySources {
  try {
    return {
      model: readFileSync(settings.model, 'utf8'),
      policy: readFileSync(settings.policy, 'utf8'),
      conditions: settings.conditions ? readFileSync(settings.conditions, 'utf8') : null,
    };
  } catch (err) {
    throw new PolicyError([`cannot read policy files: ${(err as Error).message}`]);
  }
}

export async function createPolicyService(config: PolicyContext, store: Store, log?: Logger): Promise<PolicyService> {
  const settings = config.policy;
  const knownRoutes = knownServices(config);
  const cacheEntries = settings.decisionCacheEntries;
  const build = (sources: PolicySources, label: string) => PolicyEngine.fromSources(sources, { model: `${label}/model.conf`, policy: `${label}/policy.csv`, conditions: `${label}/conditions.yaml` }, knownRoutes, { cacheEntries });

  const fileSources = readPolicySources(settings);
  // The files are checked even when the store already has an active version: a broken file never starts.
  const fromFiles = await PolicyEngine.fromSources(fileSources, { model: settings.model, policy: settings.policy, conditions: settings.conditions ?? 'conditions' }, knownRoutes, { cacheEntries });
  const kv = settings.versionsDir ? createFileKv(resolve(settings.versionsDir)) : storeKv(store);
  const versions = createPolicyVersions(kv);
  const active = await versions.bootstrap(fileSources);
  let engine = active.hash === fromFiles.version ? fromFiles : await build(active.sources, active.id);
  let engineId = active.id;
  let lastSwitch: ReturnType<PolicyService['lastSwitch']> = null;
  if (active.hash !== fromFiles.version) log?.warn({ active: active.id, files: fromFiles.version }, 'policy: the active version differs from the configured files; the active version is in force');

  const follow = async (): Promise<void> => {
    try {
      const id = await versions.activeId();
      if (!id || id === engineId) return;
      const v = await versions.get(id);
      const next = v.hash === engine.version ? engine : await build(v.sources, v.id);
      // One assignment: a request reads either the old engine or the new one, never a mix.
      engine = next;
      engineId = v.id;
      lastSwitch = { id: v.id, activatedAtMs: v.activatedAt ? Date.parse(v.activatedAt) : null, switchedAtMs: Date.now() };
      log?.info({ version: v.id, hash: v.hash }, 'policy: switched to the active version');
    } catch (err) {
      // Keep deciding with the version in force; the next poll or message retries.
      log?.error({ err }, 'policy: cannot load the active version; keeping the current one');
    }
  };
  let syncing: Promise<void> | null = null;
  let again = false;
  const sync = (): Promise<void> => {
    if (syncing) {
      // An activation announced while loading another: look again once this one is done.
      again = true;
      return syncing;
    }
    syncing = follow().finally(() => {
      syncing = null;
      if (again) {
        again = false;
        void sync();
      }
    });
    return syncing;
  };

  const unsubscribe = await store.subscribe(ACTIVATED_CHANNEL, () => void sync());
  const timer = setInterval(() => void sync(), settings.syncIntervalMs);
  timer.unref();

  return {
    current: () => engine,
    currentId: () => engineId,
    lastSwitch: () => lastSwitch,
    versions,
    recent: createRecentDecisions(store, settings.whatIfRecentDecisions),
    knownRoutes,
    build,
    sync,
    async announce(version) {
      await store.publish(ACTIVATED_CHANNEL, version.id);
      await sync();
    },
    async close() {
      clearInterval(timer);
      await unsubscribe().catch(() => undefined);
    },
  };
}
