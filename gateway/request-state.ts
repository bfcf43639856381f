import type { AssertionHeaders } from './assertion.js';
import type { DecisionContext } from './events.js';

/** What the gateway keeps on each request: its decision context (for the one decision event) and, once allowed, the assertion to forward. */
export interface RequestState {
  zt: DecisionContext;
  assertion: AssertionHeaders | null;
}

declare module 'fastify' {
  interface FastifyRequest extends RequestState {}
}
