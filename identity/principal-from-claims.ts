import type { JWTPayload } from 'jose';
import type { IssuerConfig } from './config.js';
import { isNationalId } from '../core/national-id.js';
import type { Principal } from '../core/principal.js';
import { CodedError } from '../core/errors.js';

export class PrincipalError extends CodedError {
  constructor(
    readonly code: 'ERR_NATIONAL_ID_MISSING' | 'ERR_NATIONAL_ID_INVALID' | 'ERR_CLAIM_INVALID',
    readonly claim: string,
    message: string,
  ) {
    super(message);
    this.name = 'PrincipalError';
  }
}

// A role starts with a letter, so no role can pass for a national ID in a policy rule.
const ROLE = /^[a-z][a-z0-9_.:-]{0,63}$/;

function optionalString(payload: JWTPayload, claim: string): string | null {
  const value = payload[claim];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value.length === 0 || value.length > 256) {
    throw new PrincipalError('ERR_CLAIM_INVALID', claim, `claim "${claim}" must be a non-empty string`);
  }
  return value;
}

// Agencies are ids (so-tu-phap, phuong-nha-trang): they key policy domains, counts and CSV reports.
const AGENCY = /^[a-z0-9][a-z0-9-]{0,62}$/;

function agencyOf(payload: JWTPayload, claim: string): string | null {
  const value = optionalString(payload, claim);
  if (value !== null && !AGENCY.test(value)) throw new PrincipalError('ERR_CLAIM_INVALID', claim, `claim "${claim}" must be an agency id (a-z, 0-9, -)`);
  return value;
}

/** Builds the principal from verified access-token claims, using the issuer's claim names. */
export function principalFromClaims(payload: JWTPayload, issuer: IssuerConfig): Principal {
  const { claims } = issuer;
  const nationalId = payload[claims.nationalId];
  if (nationalId === undefined || nationalId === null || nationalId === '') {
    throw new PrincipalError('ERR_NATIONAL_ID_MISSING', claims.nationalId, `claim "${claims.nationalId}" is missing`);
  }
  if (!isNationalId(nationalId)) {
    throw new PrincipalError('ERR_NATIONAL_ID_INVALID', claims.nationalId, `claim "${claims.nationalId}" is not a 12-digit national ID`);
  }
  const rawRoles = payload[claims.roles] ?? [];
  const roleList = typeof rawRoles === 'string' ? rawRoles.split(' ').filter(Boolean) : rawRoles;
  if (!Array.isArray(roleList) || roleList.length > 64 || !roleList.every((r) => typeof r === 'string' && ROLE.test(r))) {
    throw new PrincipalError('ERR_CLAIM_INVALID', claims.roles, `claim "${claims.roles}" must be a list of role names`);
  }
  const authTime = payload.auth_time;
  return Object.freeze({
    nationalId,
    agency: agencyOf(payload, claims.agency),
    roles: Object.freeze([...new Set(roleList as string[])]),
    clearance: 'none',
    assuranceLevel: 0,
    sessionId: null,
    acr: optionalString(payload, claims.acr),
    issuer: issuer.issuer,
    authTime: typeof authTime === 'number' && Number.isFinite(authTime) ? authTime : null,
  });
}
