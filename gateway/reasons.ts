/**
 * The closed list of decision reasons. Every decision event carries one or more of these;
 * SOC rules and dashboards branch on them, so a published reason is never renamed or reused.
 * Documented in README.md ("Reason codes"); test/reasons.test.ts keeps the two in step.
 */
export const REASONS = {
  // allow
  'policy-allowed': 'A policy rule allowed the request and no deny rule matched.',
  'public-endpoint': 'A gateway endpoint that is public by design (JWKS, health).',
  // edge hygiene
  'path-ambiguous': 'The path has encoded separators, dot segments, double encoding, NUL or other forms that upstreams may read differently.',
  'request-malformed': 'The request line or headers could not be parsed.',
  'method-not-allowed': 'The HTTP method is not one the gateway forwards.',
  'body-too-large': 'The declared body is larger than the configured limit.',
  'length-required': 'A request body was sent without Content-Length.',
  // route
  'route-not-found': 'No registered shared database service matches the host and path.',
  'route-not-approved': 'The service is registered but not approved for use.',
  // authenticate
  'token-missing': 'No bearer access token was presented.',
  'token-malformed': 'The Authorization header or the token is not a well-formed JWT.',
  'token-issuer-untrusted': 'The token was issued by an issuer that is not configured.',
  'token-algorithm-not-allowed': 'The token uses a signing algorithm outside the issuer allow-list (e.g. none, HS256).',
  'token-key-unknown': "No key in the issuer's JWKS matches the token.",
  'token-signature-invalid': 'The token signature does not verify.',
  'token-expired': 'The token has expired (exp), beyond the allowed clock skew.',
  'token-not-yet-valid': 'The token is not valid yet (nbf in the future), beyond the allowed clock skew.',
  'token-audience-invalid': 'The token audience is not this gateway.',
  'token-type-invalid': 'The token type (typ) is not an accepted access token type.',
  'token-claim-invalid': 'A required claim is missing or malformed.',
  'identity-national-id-missing': 'The token carries no national ID claim.',
  'identity-national-id-invalid': 'The national ID claim is not a 12-digit personal identification number.',
  'identity-provider-unavailable': "The issuer's keys could not be fetched; the request is refused rather than trusted.",
  // decide
  'policy-denied': 'A deny rule matched; deny overrides allow.',
  'policy-no-match': 'No rule allows the request (deny by default).',
  'policy-error': 'The policy engine failed; the request is refused.',
  'admin-role-required': 'A management request from an official without a security-admin role.',
  // forward
  'upstream-unavailable': 'The request was allowed but the upstream could not be reached.',
  'upstream-timeout': 'The request was allowed but the upstream did not answer in time.',
  // catch-all
  'gateway-error': 'An unexpected gateway fault; details are in the operational log.',
} as const;

export type Reason = keyof typeof REASONS;

export function isReason(value: string): value is Reason {
  return Object.hasOwn(REASONS, value);
}
