import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CONFIG_SCHEMA, loadConfigFile } from '../gateway/config.js';
import { configuredFileProblems } from '../gateway/preflight.js';
import { ROOT } from './helpers/harness.js';
import { schemaKeys } from './helpers/schema-keys.js';
import { makeTlsMaterial } from './helpers/database.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

function configurationSection(): string {
  const start = readme.indexOf('\n## Configuration\n');
  expect(start, 'README has a "## Configuration" section').toBeGreaterThan(-1);
  return readme.slice(start + 1).split('\n## ')[0]!;
}

describe('the configuration reference in the README', () => {
  it('documents every key of the schema, by its full path', () => {
    const section = configurationSection();
    const documented = new Set([...section.matchAll(/`([A-Za-z0-9_.[\]]+)`/g)].map((m) => m[1]!));
    const missing = schemaKeys(CONFIG_SCHEMA).filter((k) => !documented.has(k));
    expect(missing, `keys missing from README "Configuration": ${missing.join(', ')}`).toEqual([]);
  });

  it('documents no key the schema does not have', () => {
    const keys = new Set(schemaKeys(CONFIG_SCHEMA));
    const rows = configurationSection()
      .split('\n')
      .filter((l) => l.startsWith('| `'));
    const named = rows.flatMap((r) => [...r.split('|')[1]!.matchAll(/`([A-Za-z0-9_.[\]]+)`/g)].map((m) => m[1]!));
    const unknown = named.filter((k) => !keys.has(k) && !/^state\.(sentinel|cluster|durable|checkIntervalMs)/.test(k));
    expect(unknown).toEqual([]);
  });
});

describe('the production example config (docs/ztgate.production.yaml)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'ztgate-prod-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('loads through the real config loader, and every file it names is checked, once laid out as docker-compose.yml lays it out', async () => {
    // /etc/ztgate and /run/secrets as the compose file mounts them, under a temporary root.
    const etc = join(tmp, 'etc/ztgate');
    const secrets = join(tmp, 'run/secrets');
    mkdirSync(join(etc, 'policy'), { recursive: true });
    mkdirSync(secrets, { recursive: true });
    writeFileSync(join(etc, 'policy/model.conf'), readFileSync(join(ROOT, 'policies/model.conf')));
    writeFileSync(join(etc, 'policy/policy.csv'), readFileSync(join(ROOT, 'deploy/ztgate/policy.csv')));
    writeFileSync(join(etc, 'roster.csv'), readFileSync(join(ROOT, 'demo/roster.csv')));
    const ec = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    writeFileSync(join(secrets, 'assertion-key.pem'), ec());
    writeFileSync(join(secrets, 'audit-key.pem'), ec());
    writeFileSync(join(secrets, 'session-key'), randomBytes(32).toString('hex'));
    writeFileSync(join(secrets, 'syslog-ca.pem'), '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
    // The database listener's TLS material and the device CA (synthetic), and the gateway's database password.
    const dbTls = makeTlsMaterial();
    writeFileSync(join(secrets, 'db-listener.crt'), readFileSync(dbTls.serverCert));
    writeFileSync(join(secrets, 'db-listener.key'), readFileSync(dbTls.serverKey));
    writeFileSync(join(etc, 'device-ca.crt'), readFileSync(dbTls.deviceCa));
    dbTls.remove();
    writeFileSync(join(secrets, 'hotich-db-password'), 'synthetic-password\n');
    const text = readFileSync(join(ROOT, 'docs/ztgate.production.yaml'), 'utf8').replaceAll('/etc/ztgate/', `${etc}/`).replaceAll('/run/secrets/', `${secrets}/`).replaceAll('/data/', `${tmp}/data/`);
    const file = join(etc, 'ztgate.yaml');
    writeFileSync(file, text);
    const config = loadConfigFile(file);
    expect(await configuredFileProblems(config)).toEqual([]);
    // What the gateway writes goes to the instance's volume.
    expect(config.audit.chain!.file.startsWith(`${tmp}/data/`)).toBe(true);
    expect(config.audit.spoolDir!.startsWith(`${tmp}/data/`)).toBe(true);
    // Every section of the configuration is there, so that the example is complete.
    const doc = readFileSync(join(ROOT, 'docs/ztgate.production.yaml'), 'utf8');
    for (const section of Object.keys((CONFIG_SCHEMA as any).properties)) expect(doc, `section ${section}`).toMatch(new RegExp(`^${section}:`, 'm'));
  });
});
