import type { Clearance } from './levels.js';
import type { Reason } from './reasons.js';

/**
 * The values every part passes along a request: who is asking (built by identity/, read by the
 * policy engine and the steps) and what was decided (made by policies/, carried out by the
 * gateway and written in the decision event).
 */

/** Identity assurance: 0 = unknown (treated as below every level), 1 and 2 = VNeID levels. */
export type AssuranceLevel = 0 | 1 | 2;

/** Who is asking, as established by authentication. Keyed by the national ID. */
export interface Principal {
  readonly nationalId: string;
  readonly agency: string | null;
  /** Unit inside the agency (phòng, or the commune), from the official roster when one is configured. */
  readonly unit?: string | null;
  readonly roles: readonly string[];
  readonly clearance: Clearance;
  readonly assuranceLevel: AssuranceLevel;
  /** Where assuranceLevel came from: the token's acr/amr/level claim, the session's ID token, or the issuer's defaultAssuranceLevel because the token said nothing. */
  readonly assuranceFrom?: 'token' | 'session' | 'issuer-default';
  /** The browser session, when the request came with one. */
  readonly sessionId: string | null;
  /** Authentication context class (OIDC Core §2), e.g. "vneid-level-2"; null when absent. */
  readonly acr: string | null;
  readonly issuer: string;
  /** Seconds since the epoch (OIDC auth_time), when the IdP said. */
  readonly authTime: number | null;
}

export type Effect = 'allow' | 'deny';

export type Obligation =
  /** Replace these JSON fields in the response, wherever they occur (national IDs keep the province code). */
  | { readonly type: 'mask-fields'; readonly fields: readonly string[] }
  /** Refuse a response carrying more records than this. */
  | { readonly type: 'max-records-per-response'; readonly max: number }
  /** Records delivered to one official per day (Asia/Ho_Chi_Minh), counted in the shared store. */
  | { readonly type: 'max-records-per-day'; readonly max: number }
  /** Only records of the official's commune: told to the upstream in the assertion, checked in the response. */
  | { readonly type: 'commune-scope'; readonly commune: string; readonly recordField: string };

/** What the policy decision point decided for one request or statement. */
export interface Decision {
  readonly effect: Effect;
  readonly reasons: readonly Reason[];
  /** The matched rule as written in the policy file, e.g. "p, ho-tich-reader, *, ho-tich, /records, GET|HEAD, allow". */
  readonly rule: string | null;
  readonly policyVersion: string;
  /** What the gateway must do with an allowed request's response (decide() only; authorize() has none). */
  readonly obligations: readonly Obligation[];
  /** The attribute condition that denied an allowed rule, by name (policies/conditions.ts). */
  readonly condition?: string;
}
