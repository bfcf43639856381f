import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportPKCS8, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../gateway/config.js';
import { readDemoOfficials } from '../demo/idp.js';
import { keycloakRealmExport } from '../demo/keycloak-realm.js';
import { ROOT } from './helpers/harness.js';

/** docs/identity-providers.md stays true: its configuration examples load, its realm export matches the demo officials. */

const DOC = readFileSync(join(ROOT, 'docs/identity-providers.md'), 'utf8');
const REALM_FILE = join(ROOT, 'docs/keycloak-realm-so-tinh.json');

describe('docs/identity-providers.md', () => {
  it('the README identity section links it', () => {
    const identity = readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n## Identity\n')[1]!.split('\n## ')[0]!;
    expect(identity).toContain('(docs/identity-providers.md)');
  });

  it('every configuration example in it is accepted by the gateway', async () => {
    const blocks = [...DOC.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks.length).toBe(4);
    // The private_key_jwt example names a key file next to the configuration.
    const dir = mkdtempSync(join(tmpdir(), 'ztgate-docs-'));
    try {
      writeFileSync(join(dir, 'client-assertion-key.pem'), await exportPKCS8((await generateKeyPair('ES256', { extractable: true })).privateKey));
      for (const block of blocks) {
        const doc = parseYaml(block) as Record<string, any>;
        const policy = { model: join(ROOT, 'policies/model.conf'), policy: join(ROOT, 'test/fixtures/echo-policy.csv') };
        const config = parseConfig({ policy, routes: [], ...doc }, 'docs/identity-providers.md', dir);
        expect(config.identity.browser?.issuer).toBe(config.identity.issuers[0]!.issuer);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the Keycloak realm export is generated from the demo officials (UPDATE_DOCS=1 rewrites it)', async () => {
    const expected = keycloakRealmExport(await readDemoOfficials(), { gatewayUrl: 'https://ztgate.tinh.gov.vn', audience: 'urn:ztgate:data' });
    if (process.env.UPDATE_DOCS === '1') writeFileSync(REALM_FILE, `${JSON.stringify(expected, null, 2)}\n`);
    const realm = JSON.parse(readFileSync(REALM_FILE, 'utf8'));
    expect(realm).toEqual(expected);
    const officials = (await readDemoOfficials()).officials;
    expect(realm.users.map((u: any) => u.attributes.national_id[0])).toEqual(officials.map((o) => o.nationalId));
    expect(realm.clients[0].protocolMappers.map((m: any) => m.name)).toEqual(['national_id', 'agency', 'roles', 'audience']);
  });
});
