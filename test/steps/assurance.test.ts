import { describe, expect, it } from 'vitest';
import { requireRouteAssurance } from '../../gateway/steps/assurance.js';
import type { Principal } from '../../core/principal.js';
import { inProcessConfig, inProcessIssuer, refusalOf } from '../helpers/in-process.js';

/** After authenticate (gateway/steps/assurance.ts): the service's demands on how, and how recently, the official authenticated. */

const { identity } = inProcessConfig(await inProcessIssuer());
const now = Date.parse('2026-06-01T08:00:00Z');
const official = (assuranceLevel: 0 | 1 | 2, authAgeSeconds: number | null): Principal => ({
  nationalId: '056080000001',
  agency: 'so-tu-phap',
  roles: [],
  clearance: 'none',
  assuranceLevel,
  sessionId: null,
  acr: null,
  issuer: identity.issuers[0]!.issuer,
  authTime: authAgeSeconds === null ? null : now / 1000 - authAgeSeconds,
});
const api = { identity, browser: false, returnTo: '/echo/x', nowMs: now };

describe('assurance', () => {
  it('allows an official at the level and within the age the service asks for', () => {
    expect(() => requireRouteAssurance(official(2, 60), { minAssuranceLevel: 2, maxAuthAgeSeconds: 300 }, api)).not.toThrow();
    expect(() => requireRouteAssurance(official(0, null), { minAssuranceLevel: 0 }, api)).not.toThrow();
  });

  it('tells an API client to come back stronger: 401 assurance-insufficient, RFC 9470 challenge with acr_values', async () => {
    const err = await refusalOf(() => requireRouteAssurance(official(1, 60), { minAssuranceLevel: 2 }, api));
    expect([err.statusCode, err.code, err.reason]).toEqual([401, 'ZTG_ERR_STEP_UP_REQUIRED', 'assurance-insufficient']);
    expect(err.headers['www-authenticate']).toMatch(/error="insufficient_user_authentication".*acr_values="/);
  });

  it('refuses an authentication older than the service allows, or of unknown age: authentication-too-old with max_age', async () => {
    for (const age of [301 + identity.clockSkewSeconds, null]) {
      const err = await refusalOf(() => requireRouteAssurance(official(2, age), { minAssuranceLevel: 0, maxAuthAgeSeconds: 300 }, api));
      expect(err.reason).toBe('authentication-too-old');
      expect(err.headers['www-authenticate']).toContain('max_age=300');
    }
  });

  it('sends a browser with a session to sign in again with what is asked (302), back to a safe path', async () => {
    const err = await refusalOf(() => requireRouteAssurance(official(1, 60), { minAssuranceLevel: 2 }, { ...api, browser: true, returnTo: '//evil.example/x' }));
    expect([err.statusCode, err.reason]).toEqual([302, 'assurance-insufficient']);
    expect(err.headers.location).toBe('/.ztgate/auth/login?return=%2F&level=2');
  });
});
