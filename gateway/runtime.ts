import type { DestinationStream, Logger } from 'pino';
import type { GatewayConfig } from './config.js';
import { createAssertionSigner, type AssertionSigner } from './assertion.js';
import { createDecisionLog } from './events.js';
import { createAuthenticator, type Authenticator } from './steps/authenticate.js';
import { createMemoryStore, createRedisStore, type Store } from './store.js';
import { PolicyEngine } from '../policies/engine.js';

/**
 * The parts both planes share — the data-plane pipeline and the management API read the same
 * policy, state and keys. Built once per process from the configuration; closed once.
 */
export interface Runtime {
  readonly config: GatewayConfig;
  readonly store: Store;
  readonly decisionLog: Logger;
  readonly signer: AssertionSigner;
  /** The policy engine in force; a function because the active version can change at run time. */
  readonly policy: () => PolicyEngine;
  readonly authenticator: Authenticator;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  /** Where decision events go; stdout by default. */
  readonly decisionLog?: DestinationStream;
  readonly fetch?: typeof fetch;
  /** Shared state; by default built from `config.state` and closed with the runtime. */
  readonly store?: Store;
}

export async function createRuntime(config: GatewayConfig, opts: RuntimeOptions = {}): Promise<Runtime> {
  const decisionLog = createDecisionLog(opts.decisionLog ?? process.stdout);
  const signer = await createAssertionSigner({ issuer: config.publicUrl, ttlSeconds: config.assertion.ttlSeconds, keyFile: config.assertion.keyFile });
  const engine = await PolicyEngine.load(config.policy.model, config.policy.policy, new Set(config.routes.map((r) => r.id)));
  const store = opts.store ?? (await openStore(config.state));
  return {
    config,
    store,
    decisionLog,
    signer,
    policy: () => engine,
    authenticator: createAuthenticator(config.identity, opts.fetch),
    async close() {
      if (!opts.store) await store.close();
    },
  };
}

function openStore(state: GatewayConfig['state']): Promise<Store> | Store {
  return state.backend === 'redis'
    ? createRedisStore({ url: state.redisUrl!, keyPrefix: state.keyPrefix, commandTimeoutMs: state.commandTimeoutMs })
    : createMemoryStore();
}
