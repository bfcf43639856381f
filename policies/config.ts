import Type from 'typebox';
import { NonEmpty, Section, type DeepReadonly, type Static } from '../core/schema.js';
import type { Classification } from '../core/levels.js';

/**
 * The `policy` section of the gateway configuration (the Casbin model, the rules, the attribute
 * conditions and how versions are kept), and the part of the rest of the configuration the policy
 * engine reads: which services exist and how each is classified. gateway/config.ts composes the
 * schema into its one schema.
 */
export const POLICY_SCHEMA = Section({
  model: NonEmpty(),
  policy: NonEmpty(),
  /** Attribute conditions and obligations (policies/conditions.ts), versioned with the policy. */
  conditions: Type.Optional(NonEmpty()),
  /** Folder for policy versions when state is in memory (the demo); with Redis they live there. */
  versionsDir: Type.Optional(NonEmpty()),
  syncIntervalMs: Type.Integer({ minimum: 100, maximum: 60_000, default: 1000 }),
  whatIfRecentDecisions: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
  decisionCacheEntries: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 10_000 }),
  responseBufferLimitBytes: Type.Integer({ minimum: 1024, maximum: 256 * 1024 * 1024, default: 8 * 1024 * 1024 }), // 8 MiB
});

export type PolicyConfig = DeepReadonly<Static<typeof POLICY_SCHEMA>>;

/** What the policy engine, its linter and its test runner read of the whole configuration. */
export interface PolicyContext {
  readonly policy: PolicyConfig;
  readonly routes: readonly { readonly id: string; readonly securityLevel: number; readonly classification: Classification }[];
  readonly databases?: { readonly services: readonly { readonly id: string }[] };
}

/** Cross-field rule: where versions live follows where the shared state lives. */
export function checkPolicy(policy: Static<typeof POLICY_SCHEMA>, stateBackend: string): string[] {
  if (stateBackend === 'redis' && policy.versionsDir) {
    return ['policy.versionsDir: with state.backend "redis" policy versions live in Redis, shared by every instance; remove versionsDir'];
  }
  return [];
}

/** The policy files, absolute. */
export function resolvePolicyPaths(policy: Static<typeof POLICY_SCHEMA>, abs: (path: string) => string): PolicyConfig {
  return {
    ...policy,
    model: abs(policy.model),
    policy: abs(policy.policy),
    ...(policy.conditions ? { conditions: abs(policy.conditions) } : {}),
    ...(policy.versionsDir ? { versionsDir: abs(policy.versionsDir) } : {}),
  };
}
