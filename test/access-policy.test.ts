import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Principal } from '../core/principal.js';
import type { AccessRequest, Grant } from '../policies/access.js';
import { PolicyEngine, PolicyError } from '../policies/engine.js';
import { ROOT } from './helpers/harness.js';

/** Grants as inputs to the one decision: what the policy lets each kind unlock, and what it never does. */

const MODEL = readFileSync(join(ROOT, 'policies/model.conf'), 'utf8');
const NAMES = { model: 'model.conf', policy: 'policy.csv', conditions: 'conditions.yaml' };
const ROUTES = new Set(['ho-tich', 'kho-mat']);
const POLICY = `p, ho-tich-registrar, *, ho-tich, /records/:id, GET, allow
p, mat-reader, *, kho-mat, /records/:id, GET, allow
`;
const CONDITIONS = `
networks: { noi-bo: [10.56.0.0/16] }
stateSecretNetworks: [noi-bo]
purposes: { codes: [cap-cuu] }
grants:
  accessRequest: { ho-tich: [ho-tich-registrar], kho-mat: [mat-reader] }
  breakGlass: { ho-tich: [ho-tich-registrar] }
conditions:
  - name: khan-cap-can-muc-dich
    when: { grants: [break-glass] }
    require: { purpose: true }
`;

const official: Principal = { nationalId: '056085000001', agency: 'so-tu-phap', roles: ['ho-tich-reader'], clearance: 'none', assuranceLevel: 2, sessionId: null, acr: null, issuer: 'test', authTime: null };
const engine = () => PolicyEngine.fromSources({ model: MODEL, policy: POLICY, conditions: CONDITIONS }, NAMES, ROUTES);

function req(route: 'ho-tich' | 'kho-mat', grant: Grant | null, extra: Partial<AccessRequest> = {}): AccessRequest {
  return { principal: official, route: { id: route, securityLevel: route === 'kho-mat' ? 4 : 3, classification: route === 'kho-mat' ? 'mat' : 'personal-data' }, path: '/records/7', method: 'GET', device: null, purpose: null, sourceIp: '10.56.1.2', timeMs: Date.now(), grant, ...extra };
}

describe('grants in the policy decision', () => {
  it('an access-request grant adds its role where the policy lets it unlock; without a grant, no match', async () => {
    const e = await engine();
    expect(e.usesGrants).toBe(true);
    expect(e.decide(req('ho-tich', null)).reasons).toEqual(['policy-no-match']);
    const d = e.decide(req('ho-tich', { id: 'g1', kind: 'access-request', role: 'ho-tich-registrar' }));
    expect(d).toMatchObject({ effect: 'allow', rule: 'p, ho-tich-registrar, *, ho-tich, /records/:id, GET, allow' });
  });

  it('a grant of a role the policy does not let that kind unlock adds nothing', async () => {
    const e = await engine();
    expect(e.decide(req('kho-mat', { id: 'g2', kind: 'break-glass', role: 'mat-reader' })).reasons).toEqual(['policy-no-match']);
    expect(e.decide(req('ho-tich', { id: 'g3', kind: 'access-request', role: 'mat-reader' })).reasons).toEqual(['policy-no-match']);
  });

  it('attack: a grant never opens a state-secret service to an official without clearance', async () => {
    const e = await engine();
    const d = e.decide(req('kho-mat', { id: 'g4', kind: 'access-request', role: 'mat-reader' }));
    expect(d).toMatchObject({ effect: 'deny', reasons: ['clearance-insufficient'], condition: 'state-secret' });
    const cleared = e.decide(req('kho-mat', { id: 'g4', kind: 'access-request', role: 'mat-reader' }, { principal: { ...official, clearance: 'mat' } }));
    expect(cleared.effect).toBe('allow');
  });

  it('conditions can select requests by the kind of grant (when.grants): break-glass here must declare a purpose', async () => {
    const e = await engine();
    const bg: Grant = { id: 'g5', kind: 'break-glass', role: 'ho-tich-registrar' };
    expect(e.decide(req('ho-tich', bg))).toMatchObject({ effect: 'deny', reasons: ['purpose-required'], condition: 'khan-cap-can-muc-dich' });
    expect(e.decide(req('ho-tich', bg, { purpose: { code: 'cap-cuu', caseRef: 'CC-2026-01' } })).effect).toBe('allow');
    expect(e.decide(req('ho-tich', { ...bg, kind: 'access-request' })).effect).toBe('allow');
  });

  it('refuses a grants section naming an unknown service, with file and line', async () => {
    const bad = CONDITIONS.replace('breakGlass: { ho-tich:', 'breakGlass: { y-te:');
    const err = await PolicyEngine.fromSources({ model: MODEL, policy: POLICY, conditions: bad }, NAMES, ROUTES).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyError);
    expect((err as PolicyError).problems).toEqual([expect.stringMatching(/^conditions\.yaml:\d+: grants\.breakGlass: route "y-te" is not a configured route$/)]);
  });
});
