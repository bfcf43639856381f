import { Type as T, type Static, type TObject } from 'typebox';
import type { Transport } from '../sinks.js';

/**
 * One kind of SOC sink (`audit.sinks[].type`): its config schema, its cross-field checks and what
 * it builds. gateway/audit/sink-kinds.ts lists every kind; config validation, path resolution and
 * the decision log read that table, so a new kind is one file here and one line there.
 */
export interface SinkKind<S extends TObject = TObject> {
  readonly type: string;
  /** One entry of `audit.sinks`, `type` included; defaulted keys are required (ajv fills defaults first). */
  readonly schema: S;
  /**
   * `direct`: written synchronously on the request path. `spooled`: appended to its own durable
   * spool (folder `audit.spoolDir/<name>`) and delivered by its own loop, never on the request path.
   */
  readonly delivery: 'direct' | 'spooled';
  /** Keys holding file paths, made absolute against the config file's folder. */
  readonly filePaths: readonly string[];
  /** What the schema cannot say; `at` is the sink's key path, `stateRedisUrl` the shared store's URL. */
  check(sink: Static<S>, at: string, env: { readonly stateRedisUrl?: string }): string[];
  create(sink: Static<S>, ctx: SinkContext): SinkOutput;
}

export interface SinkContext {
  /** Standard output (or what stands in for it). */
  readonly destination: { write(line: string): unknown };
  readonly stateRedisUrl?: string;
}

/** A direct sink writes each event line itself; a spooled one hands its spool loop a transport. */
export type SinkOutput = { readonly write: (line: string) => void } | { readonly name: string; readonly reconnectMaxMs: number; readonly transport: Transport };

/** Keeps each kind's own config type for its functions while the table holds them side by side. */
export function defineSinkKind<S extends TObject>(kind: SinkKind<S>): SinkKind<S> {
  return kind;
}

/** Names a spooled sink: its spool folder and its alerts. */
export const sinkName = T.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' });
export const filePath = T.String({ minLength: 1, maxLength: 4096 });
