/**
 * Where an issuer puts the national ID, agency, roles and assurance level. None of this is a
 * published standard: the national public-service portal's SSO and VNeID-style providers are seen
 * to use their own claim names, so the names and the level mapping are configuration, with these
 * presets as starting points (README "Identity"). Explicit `claims` keys override the preset.
 */
import type { AssuranceLevel } from '../core/principal.js';

export interface ClaimNames {
  readonly nationalId: string;
  readonly agency: string;
  readonly roles: string;
  readonly acr: string;
  /** A claim carrying the assurance level itself (e.g. VNeID-style `accountLevel`); '' when the issuer has none. */
  readonly assuranceLevel: string;
}

export interface ClaimsPreset {
  readonly claims: ClaimNames;
  /** Values of `acr`, of each `amr` entry and of the level claim, mapped to 0/1/2; anything else is 0. */
  readonly assurance: Readonly<Record<string, AssuranceLevel>>;
}

export const CLAIMS_PRESETS = {
  // The embedded demo IdP (demo/idp.ts).
  'ztgate-demo': {
    claims: { nationalId: 'national_id', agency: 'agency', roles: 'roles', acr: 'acr', assuranceLevel: '' },
    assurance: { 'vneid-level-1': 1, 'vneid-level-2': 2 },
  },
  // VNeID-style providers: the personal identification number and the account level (mức 1 / mức 2).
  vneid: {
    claims: { nationalId: 'citizenPid', agency: 'agency', roles: 'roles', acr: 'acr', assuranceLevel: 'accountLevel' },
    assurance: { '1': 1, '2': 2, 'vneid-level-1': 1, 'vneid-level-2': 2 },
  },
  // The national public-service portal's SSO (Cổng Dịch vụ công quốc gia).
  dvc: {
    claims: { nationalId: 'SoDinhDanh', agency: 'agency', roles: 'roles', acr: 'acr', assuranceLevel: 'LoaiTaiKhoan' },
    assurance: { '1': 1, '2': 2 },
  },
  // Keycloak: a user attribute `national_id` and a realm-role mapper named `roles`, both added to
  // the access token by protocol mappers; `acr` from the realm's ACR-to-LoA mapping.
  keycloak: {
    claims: { nationalId: 'national_id', agency: 'agency', roles: 'roles', acr: 'acr', assuranceLevel: '' },
    assurance: { 'vneid-level-1': 1, 'vneid-level-2': 2, '1': 1, '2': 2 },
  },
  // LemonLDAP::NG: `national_id` and `agency` exported from macros; `acr` is loa-<authentication level>
  // (Demo and password over http: 1, LDAP/password: 2, Kerberos/certificate: 3, with second factors
  // as configured up to 5). Its access tokens carry no acr: see issuers[].defaultAssuranceLevel.
  lemonldap: {
    claims: { nationalId: 'national_id', agency: 'agency', roles: 'roles', acr: 'acr', assuranceLevel: '' },
    assurance: { 'loa-1': 0, 'loa-2': 1, 'loa-3': 1, 'loa-4': 2, 'loa-5': 2 },
  },
} as const satisfies Record<string, ClaimsPreset>;

export type ClaimsPresetName = keyof typeof CLAIMS_PRESETS;
export const CLAIMS_PRESET_NAMES = Object.keys(CLAIMS_PRESETS) as ClaimsPresetName[];
