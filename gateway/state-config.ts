import Type from 'typebox';
import { NonEmpty, Section, type DeepReadonly, type Static } from '../core/schema.js';

/**
 * The `state` section: where shared state lives (memory for one process, Redis — single, Sentinel
 * or Cluster — for several instances) and the durable copy of the governance records
 * (PostgreSQL) that a lost Redis is rebuilt from. README "State, durability and high availability".
 */
export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

// host:port, so that a list of sentinels or cluster nodes reads like the Redis docs write it.
const Node = () => Type.String({ pattern: '^[A-Za-z0-9.:\\[\\]-]+:[0-9]{1,5}$' });
const Password = () => Type.Optional(Type.String({ minLength: 1, maxLength: 512 }));

export const STATE_SCHEMA = Section(
  {
    backend: Type.Enum(['memory', 'redis'], { default: 'memory' }),
    /** A single Redis. Exactly one of redisUrl, sentinel, cluster with backend redis. */
    redisUrl: Type.Optional(NonEmpty()),
    sentinel: Type.Optional(
      Section({
        masterName: Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$' }),
        sentinels: Type.Array(Node(), { minItems: 1, maxItems: 16 }),
        password: Password(),
      }),
    ),
    cluster: Type.Optional(Section({ nodes: Type.Array(Node(), { minItems: 1, maxItems: 64 }), password: Password() })),
    // A Cluster deployment starts the prefix with a hash tag, e.g. "{ztgate}:".
    keyPrefix: Type.String({ pattern: '^(\\{[a-z0-9:_-]{1,60}\\})?[a-z0-9:_-]{0,64}$', minLength: 1, maxLength: 64, default: 'ztgate:' }),
    commandTimeoutMs: Type.Integer({ minimum: 50, maximum: 10_000, default: 1000 }),
    /** How often each instance checks that the shared state marker is still there. */
    checkIntervalMs: Type.Integer({ minimum: 50, maximum: 60_000, default: 500 }),
    /** The durable copy of policy versions, locks, devices (and an imported roster). */
    durable: Type.Optional(
      Section({
        postgresUrl: Type.String({ pattern: '^postgres(ql)?://', maxLength: 2048 }),
        timeoutMs: Type.Integer({ minimum: 100, maximum: 60_000, default: 3000 }),
      }),
    ),
  },
  { default: {} },
);

type RawState = Static<typeof STATE_SCHEMA>;
type RawSentinel = NonNullable<RawState['sentinel']>;
type RawCluster = NonNullable<RawState['cluster']>;

/** The section as the program reads it: sentinels and cluster nodes parsed into host and port. */
export type StateConfig = DeepReadonly<
  Omit<RawState, 'sentinel' | 'cluster'> & {
    sentinel?: Omit<RawSentinel, 'sentinels'> & { sentinels: RedisNode[] };
    cluster?: Omit<RawCluster, 'nodes'> & { nodes: RedisNode[] };
  }
>;

/** Parses "host:port" (an IPv6 host in brackets). */
export function parseNode(text: string): RedisNode {
  const i = text.lastIndexOf(':');
  return { host: text.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(text.slice(i + 1)) };
}

/** Problems the schema cannot express; the raw section is turned into StateConfig by toStateConfig. */
export function checkStateSemantics(raw: { readonly state: RawState }): string[] {
  const state = raw.state;
  const problems: string[] = [];
  const where = (['redisUrl', 'sentinel', 'cluster'] as const).filter((k) => state[k] !== undefined);
  if (state.backend === 'redis') {
    if (where.length !== 1) problems.push(`state: with backend "redis" set exactly one of redisUrl, sentinel or cluster (found ${where.length === 0 ? 'none' : where.join(', ')})`);
    if (state.redisUrl !== undefined && !/^rediss?:\/\//.test(state.redisUrl)) problems.push(`state.redisUrl: "${String(state.redisUrl).replace(/:[^:@/]*@/, ':***@')}" must be a redis:// or rediss:// URL`);
    if (state.cluster && !/^\{[^{}]+\}/.test(state.keyPrefix ?? '')) problems.push(`state.keyPrefix: with state.cluster it must start with a hash tag such as "{ztgate}:" so that every key is in one slot (is "${state.keyPrefix}")`);
    for (const [k, list] of [
      ['sentinel.sentinels', state.sentinel?.sentinels],
      ['cluster.nodes', state.cluster?.nodes],
    ] as const) {
      list?.forEach((n, i) => {
        const port = parseNode(n).port;
        if (!(port >= 1 && port <= 65_535)) problems.push(`state.${k}[${i}]: "${n}" has no valid port`);
      });
    }
  } else {
    for (const k of where) problems.push(`state.${k}: set, but state.backend is "memory"; set backend: redis to use it`);
    if (state.durable) problems.push('state.durable: with state.backend "memory" nothing is shared; the durable store is for Redis deployments');
  }
  return problems;
}

export function toStateConfig(raw: RawState): StateConfig {
  return {
    ...raw,
    sentinel: raw.sentinel ? { ...raw.sentinel, sentinels: raw.sentinel.sentinels.map(parseNode) } : undefined,
    cluster: raw.cluster ? { ...raw.cluster, nodes: raw.cluster.nodes.map(parseNode) } : undefined,
  };
}
