import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../gateway/config.js';
import { ConfigError } from '../core/errors.js';
import { PolicyEngine, PolicyError } from '../policies/engine.js';
import { knownServices } from '../policies/access.js';
import { ROOT } from './helpers/harness.js';
import { makeTlsMaterial } from './helpers/database.js';

/** The `databases:` section: bad input is refused with every problem named, nothing half-applied. */

const tls = makeTlsMaterial();
afterAll(() => tls.remove());
const approval = { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-15' };

function doc(databases: Record<string, any>): Record<string, any> {
  return {
    publicUrl: 'https://gw.khanhhoa.gov.vn',
    identity: { issuers: [{ issuer: 'https://idp.khanhhoa.gov.vn', audience: 'urn:ztgate:data' }] },
    policy: { model: 'policies/model.conf', policy: 'test/fixtures/database-policy.csv' },
    routes: [{ id: 'ho-tich', name: 'Hộ tịch', pathPrefix: '/ho-tich', upstream: 'http://127.0.0.1:9101', ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'personal-data', approval }],
    databases,
  };
}

const service = (over: Record<string, any> = {}) => ({
  id: 'ho-tich-db',
  name: 'Hộ tịch (SQL)',
  upstream: { host: '127.0.0.1', database: 'hotich' },
  credentials: { user: 'ztgate' },
  ownerAgency: 'so-tu-phap',
  securityLevel: 3,
  classification: 'personal-data',
  approval,
  ...over,
});
const listen = () => ({ host: '127.0.0.1', port: 0, tls: { certFile: tls.serverCert, keyFile: tls.serverKey } });

function problems(d: Record<string, any>): readonly string[] {
  try {
    parseConfig(doc(d), 'test.yaml', ROOT);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('accepted');
}

describe('databases configuration', () => {
  it('accepts a listener with TLS and a service, with defaults written in', () => {
    const config = parseConfig(doc({ listen: listen(), services: [service()] }), 'test.yaml', ROOT);
    expect(config.databases!.maxMessageBytes).toBe(1024 * 1024);
    expect(config.databases!.services[0]!.upstream.port).toBe(5432);
    expect(knownServices(config)).toEqual(new Set(['ho-tich', 'db:ho-tich-db']));
  });

  it('refuses a listener without TLS, a password file that does not exist, two credential sources, a reused id, an approval without approver', () => {
    expect(problems({ listen: { port: 0 }, services: [service()] })).toEqual(['databases.listen: missing required key "tls" / thiếu khóa bắt buộc']);
    writeFileSync(join(tls.dir, 'pw'), 'x');
    const p = problems({
      listen: listen(),
      services: [service({ credentials: { user: 'z', passwordFile: '/nonexistent/pw' } }), service({ id: 'ho-tich', credentials: { user: 'z', passwordFile: join(tls.dir, 'pw'), passwordEnv: 'PW' } }), service({ id: 'ho-tich-db', approval: { status: 'approved' } })],
    });
    expect(p).toEqual(
      expect.arrayContaining([
        expect.stringContaining('databases.services[0].credentials.passwordFile: /nonexistent/pw does not exist'),
        expect.stringContaining('databases.services[1].id: "ho-tich" is also a route id'),
        expect.stringContaining('databases.services[1].credentials: passwordFile or passwordEnv, not both'),
        expect.stringContaining('databases.services[2].id: "ho-tich-db" is used by another database service'),
        expect.stringContaining('databases.services[2].approval: an approved service must record approvedBy and approvedAt'),
      ]),
    );
  });

  it('policy rules on db: objects take statement kinds, never HTTP methods, and name configured services', async () => {
    const known = new Set(['ho-tich', 'db:ho-tich-db']);
    const model = `${ROOT}/policies/model.conf`;
    const build = (policy: string) => PolicyEngine.fromSources({ model: readFileSync(model, 'utf8'), policy, conditions: null }, { model, policy: 'p.csv', conditions: 'c.yaml' }, known);
    await expect(build('p, r, *, db:ho-tich-db, /public.citizens, SELECT|INSERT, allow\n')).resolves.toBeInstanceOf(PolicyEngine);
    const errors = async (policy: string) => ((await build(policy).catch((e: unknown) => e)) as PolicyError).problems;
    expect(await errors('p, r, *, db:ho-tich-db, /public.citizens, GET, allow\n')).toEqual([expect.stringContaining('statement kinds "GET" must be * or SELECT, INSERT, UPDATE, DELETE')]);
    expect(await errors('p, r, *, db:dat-dai-db, /public.thua_dat, SELECT, allow\n')).toEqual([expect.stringContaining('service "db:dat-dai-db" is not a configured route')]);
  });
  it('upstream TLS: verify-full by default; a CA that does not exist, a CA with mode require, an unknown mode are refused', () => {
    const config = parseConfig(doc({ listen: listen(), services: [service({ tls: { caFile: tls.serverCa } })] }), 'test.yaml', ROOT);
    expect(config.databases!.services[0]!.tls).toEqual({ mode: 'verify-full', caFile: tls.serverCa });
    const p = problems({
      listen: listen(),
      services: [service({ tls: { caFile: '/nonexistent/ca.crt' } }), service({ id: 'b', tls: { mode: 'require', caFile: tls.serverCa } })],
    });
    expect(p).toEqual(expect.arrayContaining([expect.stringContaining('databases.services[0].tls.caFile: /nonexistent/ca.crt does not exist'), expect.stringContaining('databases.services[1].tls.caFile: only verify-full checks the certificate')]));
    // libpq's prefer would fall back to plain TCP: only modes that insist on TLS exist.
    expect(problems({ listen: listen(), services: [service({ tls: { mode: 'prefer' } })] })).toEqual([expect.stringContaining('databases.services[0].tls.mode')]);
  });
});
