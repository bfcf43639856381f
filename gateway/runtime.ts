import { pino, type DestinationStream, type Logger } from 'pino';
import type { GatewayConfig } from './config.js';
import { createAssertionSigner, type AssertionSigner, type SharedAssertionKeys } from './assertion.js';
import { createDecisionLog, type DecisionLog } from './events.js';
import { createLocks, isLockKey, type Locks } from './lock-registry.js';
import { auditAlert } from './audit/log.js';
import { openDurableRecords } from './durable.js';
import { createStateKeeper, type StateKeeper } from './state-keeper.js';
import { isDeviceRecordKey } from '../identity/devices.js';
import { isRosterKey, readRosterFile } from '../identity/roster.js';
import { isPolicyVersionKey } from '../policies/versions.js';
import { createDetector } from './detect/detector.js';
import { createAuthenticator, type Authenticator } from './steps/authenticate.js';
import { createIdentityServices, type IdentityServices } from '../identity/identity-services.js';
import { createMemoryStore, createRedisStore } from './store-backends.js';
import type { Store } from '../core/store.js';
import type { PolicyEngine } from '../policies/engine.js';
import { createPolicyService, type PolicyService } from '../policies/active-policy.js';
import { createServiceRegistry, type ServiceRegistry } from './service-registry.js';
import { createDecisionFeed, teeToFeed, type DecisionFeed } from './audit/decision-feed.js';
import { createObservability, type Observability } from './observability/index.js';
import { createAccessService, isAccessKey, type AccessService } from './access/requests.js';
import { createAccessWebhooks, type AccessWebhooks } from './access/webhooks.js';

/**
 * The parts both planes share — the data-plane pipeline and the management API read the same
 * policy, state and keys. Built once per process from the configuration; closed once.
 */
export interface Runtime {
  readonly config: GatewayConfig;
  readonly store: Store;
  /** Whether the shared state is intact, and its rebuild after a loss (gateway/state-keeper.ts). */
  readonly state: StateKeeper;
  /** Every event: local hash chain, stdout, SOC sinks (gateway/audit/log.ts). */
  readonly decisionLog: DecisionLog;
  /** Locks by the SOC, admins and detection rules (gateway/lock-registry.ts). */
  readonly locks: Locks;
  readonly signer: AssertionSigner;
  /** The policy engine in force; a function because the active version can change at run time. */
  readonly policy: () => PolicyEngine;
  /** Policy versions, the instance-wide switch and what-if (policies/active-policy.ts). */
  readonly policies: PolicyService;
  readonly authenticator: Authenticator;
  /** Roster, browser sessions and the OIDC relying party (identity/identity-services.ts). */
  readonly identity: IdentityServices;
  /** Shared database services with their run-time attributes (gateway/service-registry.ts). */
  readonly services: ServiceRegistry;
  /** Recent decisions and per-agency counts, read by the admin screens (gateway/admin/decisions-routes.ts). */
  readonly decisionFeed: DecisionFeed;
  /** Metrics, traces and probes (gateway/observability/). */
  readonly observability: Observability;
  /** Just-in-time access requests, break-glass and the grants the pipeline reads (gateway/access/). */
  readonly access: AccessService;
  readonly accessWebhooks: AccessWebhooks;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  /** Where decision events go; stdout by default. */
  readonly decisionLog?: DestinationStream;
  readonly fetch?: typeof fetch;
  /** Shared state; by default built from `config.state` and closed with the runtime. */
  readonly store?: Store;
  /** Operational log: lifecycle changes, audit sink outages, detection failures; by default stderr at `log.level`. */
  readonly logger?: Logger;
  /** Where the default operator log writes (stderr by default). */
  readonly logDestination?: DestinationStream;
  /** Assertion keys shared by the workers of one instance (gateway/cluster.ts). */
  readonly sharedAssertionKeys?: SharedAssertionKeys;
  /** This process is worker `slot` of `count` serving one port (gateway/cluster.ts). */
  readonly worker?: { readonly slot: number; readonly count: number };
}

/** The operator log a process gets when none is given: pino JSON lines at the configured level. */
export function operatorLogger(config: GatewayConfig, destination: DestinationStream = process.stderr): Logger {
  return pino({ level: config.log.level }, destination);
}

export async function createRuntime(config: GatewayConfig, opts: RuntimeOptions = {}): Promise<Runtime> {
  const decisionFeed = createDecisionFeed();
  const opLog = opts.logger ?? operatorLogger(config, opts.logDestination);
  const decisionLog = createDecisionLog(teeToFeed(opts.decisionLog ?? process.stdout, decisionFeed), {
    audit: config.audit,
    stateRedisUrl: config.state.redisUrl,
    assertionKeyFile: config.assertion.keyFile,
    maxSecurityLevel: Math.max(1, ...config.routes.map((r) => r.securityLevel)),
    log: opLog,
  });
  const signer = await createAssertionSigner({ issuer: config.publicUrl, ...config.assertion, sharedKeys: opts.sharedAssertionKeys, oneOfWorkers: (opts.worker?.count ?? 1) > 1, log: opLog });
  const baseStore = opts.store ?? (await openStore(config.state));
  let state: StateKeeper;
  let policies: PolicyService;
  try {
    const durable = config.state.durable ? await openDurableRecords({ url: config.state.durable.postgresUrl, keyPrefix: config.state.keyPrefix, timeoutMs: config.state.durable.timeoutMs }) : null;
    // An imported roster is a governance record; a roster from a file is read from the file again.
    const rosterFromFile = config.identity.roster.source === 'file';
    state = createStateKeeper({
      store: baseStore,
      durable,
      governed: (k) => isLockKey(k) || isDeviceRecordKey(k) || isPolicyVersionKey(k) || isAccessKey(k) || (!rosterFromFile && isRosterKey(k)),
      checkIntervalMs: config.state.checkIntervalMs,
      log: opLog,
      alert: (rule, message, detail) => void decisionLog.write(auditAlert(rule, message, detail)),
    });
    await state.start();
    policies = await createPolicyService(config, state.store, opLog);
  } catch (err) {
    if (!opts.store) await baseStore.close();
    throw err;
  }
  const store = state.store;
  decisionFeed.attachStore(store);
  const services = await createServiceRegistry(config.routes, store);
  const identity = await createIdentityServices(config, store, opts.fetch);
  const locks = createLocks(store);
  const rosterFile = config.identity.roster.source === 'file' ? config.identity.roster.file! : null;
  if (rosterFile && identity.roster) {
    const roster = identity.roster;
    // After a loss the roster comes back from its source, without a restart.
    state.onRebuild(async () => void (await roster.replace(await readRosterFile(rosterFile))));
  }
  const detector = createDetector({ config: config.detection, store, locks, log: decisionLog, opLog });
  const accessWebhooks = createAccessWebhooks(config.access, opLog);
  const access = createAccessService({ store, config: config.access, route: (id) => services.get(id)?.route ?? null, policy: policies.current, log: decisionLog, notifier: accessWebhooks, onError: (err) => opLog.error({ err }, 'access requests: the periodic check of ended grants failed') });
  decisionLog.start();
  const observability = await createObservability({ config, store, decisionLog, policies, locks, log: opLog, fetch: opts.fetch });
  access.start();
  accessWebhooks.start();
  return {
    observability,
    config,
    store,
    state,
    decisionLog,
    locks,
    signer,
    policy: policies.current,
    policies,
    authenticator: createAuthenticator({
      bearer: identity.bearer,
      browser: identity.browserSessions && identity.sessions ? { sessions: identity.browserSessions, cookieName: identity.sessions.cookieName, secure: identity.sessions.secure } : null,
    }),
    identity,
    services,
    decisionFeed,
    access,
    accessWebhooks,
    async close() {
      await observability.close();
      signer.close();
      await access.close();
      await accessWebhooks.close();
      await services.close();
      await detector.close();
      await decisionLog.close();
      await decisionFeed.close().catch(() => undefined);
      await policies.close();
      await state.close();
      if (!opts.store) await store.close();
    },
  };
}

function openStore(state: GatewayConfig['state']): Promise<Store> | Store {
  return state.backend === 'redis' ? createRedisStore({ url: state.redisUrl, sentinel: state.sentinel, cluster: state.cluster, keyPrefix: state.keyPrefix, commandTimeoutMs: state.commandTimeoutMs }) : createMemoryStore();
}
