import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { CONFIG_SCHEMA, parseConfig } from '../gateway/config.js';
import { ConfigError } from '../core/errors.js';
import { createDecisionLog, type AuditEvent } from '../gateway/audit/log.js';
import { SINK_KINDS } from '../gateway/audit/sink-kinds.js';
import { ROOT } from './helpers/harness.js';

/**
 * SOC sinks are a table of kinds (gateway/audit/sink-kinds.ts): each kind's schema validates its
 * entries of `audit.sinks`, its factory builds them, and the README documents it with an example.
 */

const tmp = mkdtempSync(join(tmpdir(), 'ztgate-sink-kinds-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const approval = { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-15' };

function doc(audit: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    publicUrl: 'https://gw.khanhhoa.gov.vn',
    identity: { issuers: [{ issuer: 'https://idp.khanhhoa.gov.vn', audience: 'urn:ztgate:data' }] },
    policy: { model: 'model.conf', policy: 'policy.csv' },
    routes: [{ id: 'ho-tich', name: 'Hộ tịch', pathPrefix: '/ho-tich', upstream: 'http://127.0.0.1:9101', ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'personal-data', approval }],
    audit,
    ...extra,
  };
}

function problemsOf(audit: Record<string, unknown>, extra?: Record<string, unknown>): readonly string[] {
  try {
    parseConfig(doc(audit, extra), 'test.yaml', '/etc/ztgate');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError, but the configuration was accepted');
}

/** The `audit:` example of README "Sinks". */
function documentedAudit(): { sinks: Record<string, unknown>[] } & Record<string, unknown> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n### Sinks\n')).split('\n### ')[1]!;
  const yaml = /```yaml\n([\s\S]*?)```/.exec(section)![1]!;
  return parseYaml(yaml).audit;
}

describe('the table of sink kinds', () => {
  const sinkEntry = (CONFIG_SCHEMA as unknown as { properties: { audit: { properties: { sinks: { items: { properties: { type: { enum: string[] } }; allOf: { then: unknown }[] } } } } } }).properties.audit.properties.sinks.items;

  it('drives validation: `type` takes exactly the kinds of the table, and each kind checks its entries with its own schema', () => {
    expect(sinkEntry.properties.type.enum).toEqual(SINK_KINDS.map((k) => k.type));
    expect(sinkEntry.allOf.map((branch) => branch.then)).toEqual(SINK_KINDS.map((k) => k.schema));
    for (const kind of SINK_KINDS) expect(kind.schema.properties.type.const, kind.type).toBe(kind.type);
  });

  it('every kind has a documented example in README "Sinks", and that example loads through the config loader', () => {
    const audit = documentedAudit();
    for (const kind of SINK_KINDS)
      expect(
        audit.sinks.map((s) => s.type),
        `README "Sinks" has no example of ${kind.type}`,
      ).toContain(kind.type);
    const config = parseConfig(doc(audit), 'README.md', '/etc/ztgate');
    expect(config.audit.sinks.map((s) => s.type).sort()).toEqual(SINK_KINDS.map((k) => k.type).sort());
    // Defaults come from the kind's schema.
    expect(config.audit.sinks.find((s) => s.type === 'syslog')).toMatchObject({ connectTimeoutMs: 5000, reconnectMaxMs: 30_000 });
    expect(config.audit.sinks.find((s) => s.type === 'redis-stream')).toMatchObject({ commandTimeoutMs: 2000 });
  });

  it('every kind is named in the configuration reference', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const row = readme.split('\n').find((l) => l.startsWith('| `audit.sinks[].type`'))!;
    for (const kind of SINK_KINDS) expect(row, kind.type).toContain(`\`${kind.type}\``);
  });

  it('drives construction: the decision log builds each configured sink with its kind, stdout written directly and the others through their own spool', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    // Nothing listens on port 9 of loopback: the spooled sinks are built but never deliver.
    const config = parseConfig(
      doc({
        sinks: [{ type: 'stdout' }, { type: 'syslog', name: 'siem', host: '127.0.0.1', port: 9, transport: 'tcp' }, { type: 'redis-stream', name: 'soc', redisUrl: 'redis://127.0.0.1:9' }],
        spoolDir: join(tmp, 'spool'),
      }),
      'test.yaml',
      tmp,
    );
    const log = createDecisionLog(destination, { audit: config.audit });
    const event: AuditEvent = { event: { id: 'e-1', kind: 'event', action: 'access' } };
    log.write(event);
    expect(log.status().sinks.map((s) => [s.name, s.type])).toEqual([
      ['siem', 'syslog'],
      ['soc', 'redis-stream'],
    ]);
    expect(lines).toEqual([`${JSON.stringify(event)}\n`]);
    expect(SINK_KINDS.filter((k) => k.delivery === 'spooled').map((k) => k.type)).toEqual(['syslog', 'redis-stream']);
    await log.close();
  });
});

describe('the messages of sink validation name the entry and what is wrong', () => {
  it.each([
    ['an unknown kind', { sinks: [{ type: 'kafka' }] }, ['audit.sinks[0].type: must be one of "stdout", "syslog", "redis-stream"']],
    // Regression: without `type` every kind's schema was applied at once (a dozen messages about keys of other kinds).
    ['an entry without a type', { sinks: [{ name: 'soc', host: 'siem' }], spoolDir: '/var/spool' }, ['audit.sinks[0]: missing required key "type" / thiếu khóa bắt buộc']],
    ['a key of another kind', { sinks: [{ type: 'stdout', host: 'x' }] }, ['audit.sinks[0]: unknown key "host" / khóa không được hỗ trợ', 'audit.sinks[0]: must match "then" schema']],
    ['a misspelt key', { sinks: [{ type: 'syslog', name: 'siem', host: 'siem', port: 6514, tranport: 'tls' }], spoolDir: '/var/spool' }, ['audit.sinks[0]: unknown key "tranport" / khóa không được hỗ trợ — có phải ý bạn là / did you mean "transport"?', 'audit.sinks[0]: must match "then" schema']],
    ['a missing required key', { sinks: [{ type: 'syslog', name: 'siem', host: 'siem' }], spoolDir: '/var/spool' }, ['audit.sinks[0]: missing required key "port" / thiếu khóa bắt buộc', 'audit.sinks[0]: must match "then" schema']],
    ['a value outside its list', { sinks: [{ type: 'syslog', name: 'siem', host: 'siem', port: 6514, format: 'leef' }], spoolDir: '/var/spool' }, ['audit.sinks[0].format: must be one of "cef", "json"', 'audit.sinks[0]: must match "then" schema']],
    ['a bad name', { sinks: [{ type: 'redis-stream', name: 'SOC', redisUrl: 'redis://r' }], spoolDir: '/var/spool' }, ['audit.sinks[0].name: must match ^[a-z0-9][a-z0-9-]{0,62}$', 'audit.sinks[0]: must match "then" schema']],
    ['stdout twice', { sinks: [{ type: 'stdout' }, { type: 'stdout' }] }, ['audit.sinks[1]: stdout is listed twice']],
    [
      'one name for two sinks',
      {
        sinks: [
          { type: 'syslog', name: 'soc', host: 'siem', port: 6514 },
          { type: 'redis-stream', name: 'soc', redisUrl: 'redis://r' },
        ],
        spoolDir: '/var/spool',
      },
      ['audit.sinks[1].name: "soc" is used by another sink'],
    ],
    [
      'TLS files on a TCP syslog sink, a certificate without its key',
      { sinks: [{ type: 'syslog', name: 'siem', host: 'siem', port: 514, transport: 'tcp', certFile: 'c.pem' }], spoolDir: '/var/spool' },
      ['audit.sinks[0]: caFile, certFile, keyFile and servername need transport "tls"', 'audit.sinks[0]: certFile and keyFile go together (client certificate and its key)'],
    ],
    ['a Redis stream with no Redis', { sinks: [{ type: 'redis-stream', name: 'soc' }], spoolDir: '/var/spool' }, ['audit.sinks[0].redisUrl: required unless state.redisUrl is set']],
    ['a Redis stream with another URL scheme', { sinks: [{ type: 'redis-stream', name: 'soc', redisUrl: 'http://r' }], spoolDir: '/var/spool' }, ['audit.sinks[0].redisUrl: must be a redis:// or rediss:// URL']],
    ['a spooled sink without a spool', { sinks: [{ type: 'syslog', name: 'siem', host: 'siem', port: 6514 }] }, ['audit.spoolDir: required with a syslog or redis-stream sink (events wait there while the SOC is unreachable)']],
  ])('%s', (_what, audit, expected) => {
    expect(problemsOf(audit)).toEqual(expected);
  });

  it('a Redis stream sink without a URL of its own uses state.redisUrl, and its TLS file paths are resolved against the config folder', () => {
    const config = parseConfig(
      doc(
        {
          sinks: [
            { type: 'redis-stream', name: 'soc' },
            { type: 'syslog', name: 'siem', host: 'siem', port: 6514, caFile: 'soc-ca.pem' },
          ],
          spoolDir: 'spool',
        },
        { state: { backend: 'redis', redisUrl: 'redis://127.0.0.1:6379' } },
      ),
      'test.yaml',
      '/etc/ztgate',
    );
    expect(config.audit.sinks[1]).toMatchObject({ caFile: '/etc/ztgate/soc-ca.pem' });
    expect(config.audit.spoolDir).toBe('/etc/ztgate/spool');
  });
});
