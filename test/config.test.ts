import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfigFile, parseConfig, type GatewayConfig } from '../gateway/config.js';
import { ConfigError } from '../core/errors.js';
import { ROOT } from './helpers/harness.js';

const tmp = mkdtempSync(join(tmpdir(), 'ztgate-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const approval = { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-15' };

/** The smallest valid document: everything optional left out. A fresh copy each call. */
function minimalDoc(): Record<string, any> {
  return {
    publicUrl: 'https://gw.khanhhoa.gov.vn',
    identity: { issuers: [{ issuer: 'https://idp.khanhhoa.gov.vn', audience: 'urn:ztgate:data' }] },
    policy: { model: 'model.conf', policy: 'policy.csv' },
    routes: [
      { id: 'ho-tich', name: 'Hộ tịch', pathPrefix: '/ho-tich', upstream: 'http://127.0.0.1:9101', ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'personal-data', approval: { ...approval } },
      { id: 'dat-dai', name: 'Đất đai', pathPrefix: '/dat-dai', upstream: 'https://dat-dai.internal:8443/api', ownerAgency: 'so-nong-nghiep-moi-truong', securityLevel: 3, classification: 'personal-data', approval: { ...approval } },
    ],
  };
}

function parse(doc: unknown): GatewayConfig {
  return parseConfig(doc, 'test.yaml', '/etc/ztgate');
}

function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('ZTG_ERR_CONFIG_INVALID');
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError, but the configuration was accepted');
}

/** One of the problems is about exactly `key` and says `expected`. */
function expectProblem(problems: readonly string[], key: string, expected: RegExp): void {
  const about = problems.filter((p) => p.startsWith(`${key}: `));
  expect(about, `no problem names "${key}"; got:\n${problems.join('\n')}`).not.toHaveLength(0);
  expect(
    about.some((p) => expected.test(p)),
    `no problem about "${key}" matches ${expected}; got:\n${about.join('\n')}`,
  ).toBe(true);
}

function writeTmp(name: string, text: string): string {
  const path = join(tmp, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
  return path;
}

describe('a valid configuration', () => {
  it('the demo configuration loads, with its policy files resolved next to it', () => {
    const config = loadConfigFile(join(ROOT, 'demo/ztgate.demo.yaml'));
    expect(config.routes.map((r) => r.id)).toEqual(['ho-tich', 'dat-dai', 'y-te', 'cong-thuong']);
    expect(config.routes.find((r) => r.id === 'cong-thuong')!.approval.status).toBe('pending');
    expect(config.policy.model).toBe(join(ROOT, 'policies/model.conf'));
    expect(config.policy.policy).toBe(join(ROOT, 'policies/demo-policy.csv'));
    // A single audience is normalised to a list.
    expect(config.identity.issuers[0]!.audience).toEqual(['urn:ztgate:data']);
  });

  it('fills every omitted setting with its documented default', () => {
    const config = parse(minimalDoc());
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(config.limits).toEqual({ bodyLimitBytes: 1024 * 1024, requestTimeoutMs: 30_000, headersTimeoutMs: 10_000, idleTimeoutMs: 5_000, maxConnections: 4096 });
    expect(config.identity).toMatchObject({ clockSkewSeconds: 30, jwksCacheMaxAgeMs: 600_000, jwksCooldownMs: 1_000, jwksTimeoutMs: 5_000 });
    expect(config.identity.issuers[0]).toEqual({
      issuer: 'https://idp.khanhhoa.gov.vn',
      audience: ['urn:ztgate:data'],
      algorithms: ['ES256', 'RS256'],
      tokenTypes: ['at+jwt'],
      claimsPreset: 'ztgate-demo',
      claims: { nationalId: 'national_id', agency: 'agency', roles: 'roles', acr: 'acr', assuranceLevel: '' },
      assurance: { 'vneid-level-1': 1, 'vneid-level-2': 2 },
      defaultAssuranceLevel: 0,
    });
    expect(config.identity.session).toEqual({ absoluteLifetimeSeconds: 28_800, idleTimeoutSeconds: 1800, refreshLockTtlMs: 10_000 });
    expect(config.identity.roster).toEqual({ source: 'none' });
    expect(config.identity.browser).toBeUndefined();
    expect(config.assertion).toEqual({ ttlSeconds: 60, rotationIntervalSeconds: 0, algorithms: ['ES256'] });
    expect(config.routes[0]).toMatchObject({ forwardRequestHeaders: [], upstreamTimeoutMs: 15_000 });
  });

  it('fills the listen host when only the port is given, and keeps what is given', () => {
    const doc = minimalDoc();
    doc.listen = { port: 9000 };
    doc.identity.issuers[0].claims = { nationalId: 'so_dinh_danh' };
    const config = parse(doc);
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(config.identity.issuers[0]!.claims).toEqual({ nationalId: 'so_dinh_danh', agency: 'agency', roles: 'roles', acr: 'acr', assuranceLevel: '' });
  });

  it('drops a trailing slash from publicUrl', () => {
    const doc = minimalDoc();
    doc.publicUrl = 'https://gw.khanhhoa.gov.vn/';
    expect(parse(doc).publicUrl).toBe('https://gw.khanhhoa.gov.vn');
  });

  it('is deeply frozen, and the caller’s document is left untouched', () => {
    const doc = minimalDoc();
    const config = parse(doc);
    for (const part of [config, config.listen, config.identity, config.identity.issuers, config.identity.issuers[0], config.identity.issuers[0]!.claims, config.identity.issuers[0]!.audience, config.routes, config.routes[0], config.routes[0]!.approval, config.routes[0]!.forwardRequestHeaders, config.policy]) {
      expect(Object.isFrozen(part)).toBe(true);
    }
    expect(() => {
      (config.routes[0] as { upstream: string }).upstream = 'http://evil.example';
    }).toThrow(TypeError);
    expect(() => (config.routes as unknown as unknown[]).push({})).toThrow(TypeError);
    expect(Object.isFrozen(doc)).toBe(false);
    expect(doc.listen).toBeUndefined();
  });

  it('resolves relative policy and key paths against the config file’s folder, not the working directory', () => {
    const file = writeTmp(
      'etc/ztgate/gateway.yaml',
      ['publicUrl: https://gw.khanhhoa.gov.vn', 'identity:', '  issuers: [{ issuer: "https://idp.khanhhoa.gov.vn", audience: urn:ztgate:data }]', 'assertion: { keyFile: keys/assertion.jwk }', 'policy:', '  model: ../shared/model.conf', '  policy: /srv/policy/policy.csv', 'routes: []'].join('\n'),
    );
    const config = loadConfigFile(file);
    expect(config.policy.model).toBe(join(tmp, 'etc/shared/model.conf'));
    expect(config.policy.policy).toBe('/srv/policy/policy.csv');
    expect(config.assertion.keyFile).toBe(join(tmp, 'etc/ztgate/keys/assertion.jwk'));
  });

  it('accepts the same path prefix on different hosts, and a host-bound route beside a host-less one', () => {
    const doc = minimalDoc();
    doc.routes[1].pathPrefix = '/ho-tich';
    doc.routes[1].host = 'tinh.khanhhoa.gov.vn';
    doc.routes.push({ ...doc.routes[1], id: 'ho-tich-2', host: 'xa.khanhhoa.gov.vn' });
    expect(parse(doc).routes).toHaveLength(3);
  });

  it('accepts an upstream on the gateway host at another port', () => {
    const doc = minimalDoc();
    doc.routes[0].upstream = 'http://127.0.0.1:8081';
    expect(() => parse(doc)).not.toThrow();
  });
});

type Case = [name: string, mutate: (doc: Record<string, any>) => void, key: string, expected: RegExp];

const badDocuments: Case[] = [
  ['an unknown top-level key', (d) => (d.upstreams = []), '(root)', /unknown key "upstreams"/],
  ['an unknown key inside a route', (d) => (d.routes[0].upstreamUrl = 'http://127.0.0.1:9101'), 'routes[0]', /^routes\[0\]: unknown key "upstreamUrl"/],
  ['an unknown key inside an issuer', (d) => (d.identity.issuers[0].jwks_uri = 'https://x'), 'identity.issuers[0]', /unknown key "jwks_uri"/],
  ['a port written as a string', (d) => (d.listen = { port: '8080' }), 'listen.port', /must be integer/],
  ['a header timeout longer than the request timeout', (d) => (d.limits = { requestTimeoutMs: 5000, headersTimeoutMs: 10_000 }), 'limits.headersTimeoutMs', /must not exceed limits.requestTimeoutMs/],
  ['a missing required key', (d) => delete d.routes[1].ownerAgency, 'routes[1]', /missing required key "ownerAgency"/],
  ['security level 0', (d) => (d.routes[0].securityLevel = 0), 'routes[0].securityLevel', /must be >= 1/],
  ['security level 6', (d) => (d.routes[1].securityLevel = 6), 'routes[1].securityLevel', /must be <= 5/],
  ['a classification outside the list', (d) => (d.routes[0].classification = 'secret'), 'routes[0].classification', /must be one of "public", "internal", .*"tuyet-mat"/],
  ['an upstream that is not a URL', (d) => (d.routes[0].upstream = '127.0.0.1:9101/api'), 'routes[0].upstream', /is not an absolute URL/],
  ['an ftp: upstream', (d) => (d.routes[0].upstream = 'ftp://127.0.0.1/data'), 'routes[0].upstream', /must be an http\(s\) URL/],
  ['an upstream with credentials', (d) => (d.routes[1].upstream = 'https://svc:secret@dat-dai.internal/api'), 'routes[1].upstream', /must not embed credentials/],
  ['an upstream with a query', (d) => (d.routes[0].upstream = 'http://127.0.0.1:9101/api?token=x'), 'routes[0].upstream', /must not carry a query/],
  ['an upstream with a fragment', (d) => (d.routes[0].upstream = 'http://127.0.0.1:9101/api#x'), 'routes[0].upstream', /must not carry a query or fragment/],
  ['a plain-http issuer on a non-loopback host', (d) => (d.identity.issuers[0].issuer = 'http://idp.khanhhoa.gov.vn'), 'identity.issuers[0].issuer', /must use https/],
  ['a plain-http JWKS URI on a non-loopback host', (d) => (d.identity.issuers[0].jwksUri = 'http://idp.khanhhoa.gov.vn/jwks'), 'identity.issuers[0].jwksUri', /must use https/],
  ['HS256 among the token algorithms', (d) => (d.identity.issuers[0].algorithms = ['ES256', 'HS256']), 'identity.issuers[0].algorithms[1]', /"HS256" is not allowed; use asymmetric algorithms only/],
  ['"none" among the token algorithms', (d) => (d.identity.issuers[0].algorithms = ['none']), 'identity.issuers[0].algorithms[0]', /"none" is not allowed/],
  ['a duplicate route id', (d) => d.routes.push({ ...d.routes[0], pathPrefix: '/ho-tich-2' }), 'routes[2].id', /"ho-tich" is used by another route/],
  ['two host-less routes on one path prefix', (d) => (d.routes[1].pathPrefix = '/ho-tich'), 'routes[1].pathPrefix', /"\/ho-tich" is already served by route "ho-tich"/],
  [
    'two routes on one host and path prefix',
    (d) => {
      d.routes[0].host = 'tinh.khanhhoa.gov.vn';
      d.routes[1].host = 'tinh.khanhhoa.gov.vn';
      d.routes[1].pathPrefix = '/ho-tich';
    },
    'routes[1].pathPrefix',
    /is already served by route "ho-tich"/,
  ],
  ['a path prefix with a trailing slash', (d) => (d.routes[0].pathPrefix = '/ho-tich/'), 'routes[0].pathPrefix', /must match/],
  ['a path prefix in upper case', (d) => (d.routes[0].pathPrefix = '/Ho-Tich'), 'routes[0].pathPrefix', /must match/],
  ['a path prefix with a .. segment', (d) => (d.routes[0].pathPrefix = '/ho-tich/..'), 'routes[0].pathPrefix', /must match/],
  ['a path prefix with a . segment', (d) => (d.routes[0].pathPrefix = '/./ho-tich'), 'routes[0].pathPrefix', /must match/],
  ['an approved route without approvedBy', (d) => delete d.routes[0].approval.approvedBy, 'routes[0].approval', /approved service must record approvedBy and approvedAt/],
  ['an approved route without approvedAt', (d) => delete d.routes[1].approval.approvedAt, 'routes[1].approval', /approved service must record approvedBy and approvedAt/],
  ['forwarding the authorization header', (d) => (d.routes[0].forwardRequestHeaders = ['x-purpose', 'authorization']), 'routes[0].forwardRequestHeaders[1]', /"authorization" carries identity or credentials/],
  ['forwarding an x-ztgate- header', (d) => (d.routes[0].forwardRequestHeaders = ['x-ztgate-foo']), 'routes[0].forwardRequestHeaders[0]', /"x-ztgate-foo" carries identity or credentials/],
  ['forwarding a header in upper case', (d) => (d.routes[0].forwardRequestHeaders = ['X-Purpose']), 'routes[0].forwardRequestHeaders[0]', /must match/],
  [
    'an upstream that is the management listener',
    (d) => {
      d.admin = { listen: { host: '127.0.0.1', port: 8081 } };
      d.routes[0].upstream = 'http://127.0.0.1:8081';
    },
    'routes[0].upstream',
    /points back at the management listener/,
  ],
  ['a method-override header in forwardRequestHeaders', (d) => (d.routes[0].forwardRequestHeaders = ['x-http-method-override']), 'routes[0].forwardRequestHeaders[0]', /change the method, path, host or address/],
  ['a URL-rewrite header in forwardRequestHeaders', (d) => (d.routes[0].forwardRequestHeaders = ['x-original-url']), 'routes[0].forwardRequestHeaders[0]', /change the method, path, host or address/],
  ['a hop-by-hop header in forwardRequestHeaders', (d) => (d.routes[0].forwardRequestHeaders = ['transfer-encoding']), 'routes[0].forwardRequestHeaders[0]', /hop-by-hop/],
  ['an approval date that is not a date', (d) => (d.routes[0].approval.approvedAt = '2026-13-99'), 'routes[0].approval.approvedAt', /not a real date/],
  ['an approval date with trailing text', (d) => (d.routes[0].approval.approvedAt = '2026-01-15xyz'), 'routes[0].approval.approvedAt', /must match/],
  ['an upstream that is the gateway itself', (d) => (d.routes[0].upstream = 'http://127.0.0.1:8080/api'), 'routes[0].upstream', /points back at the gateway listener \(127\.0\.0\.1:8080\)/],
  ['an upstream that is the gateway itself, by another loopback name', (d) => (d.routes[0].upstream = 'http://localhost:8080'), 'routes[0].upstream', /points back at the gateway listener/],
  [
    'an upstream that is the gateway itself, on the default port',
    (d) => {
      d.listen = { port: 80 };
      d.routes[0].upstream = 'http://127.0.0.1/api';
    },
    'routes[0].upstream',
    /points back at the gateway listener/,
  ],
  [
    'an upstream on loopback while the gateway listens on every address',
    (d) => {
      d.listen = { host: '0.0.0.0', port: 8080 };
      d.routes[0].upstream = 'http://127.0.0.1:8080';
    },
    'routes[0].upstream',
    /points back at the gateway listener/,
  ],
  ['a duplicate issuer', (d) => d.identity.issuers.push({ issuer: 'https://idp.khanhhoa.gov.vn', audience: 'other' }), 'identity.issuers[1].issuer', /is configured twice/],
  ['an empty issuer list', (d) => (d.identity.issuers = []), 'identity.issuers', /must NOT have fewer than 1 items/],
  ['a publicUrl that is not a URL', (d) => (d.publicUrl = 'gw.khanhhoa.gov.vn'), 'publicUrl', /is not an absolute URL/],
];

describe('a bad configuration is refused, naming the key and what is expected', () => {
  it.each(badDocuments)('%s', (_name, mutate, key, expected) => {
    const doc = minimalDoc();
    mutate(doc);
    expectProblem(
      problemsOf(() => parse(doc)),
      key,
      expected,
    );
  });

  it('reports every schema problem at once, not just the first', () => {
    const doc = minimalDoc();
    doc.upstreams = [];
    doc.listen = { port: '8080' };
    doc.routes[1].securityLevel = 9;
    const problems = problemsOf(() => parse(doc));
    expectProblem(problems, '(root)', /unknown key "upstreams"/);
    expectProblem(problems, 'listen.port', /must be integer/);
    expectProblem(problems, 'routes[1].securityLevel', /must be <= 5/);
  });

  it('reports every cross-field problem at once, not just the first', () => {
    const doc = minimalDoc();
    doc.identity.issuers[0].algorithms = ['HS256'];
    doc.routes[0].upstream = 'http://svc:pw@127.0.0.1:9101';
    doc.routes.push({ ...doc.routes[1], pathPrefix: '/dat-dai-2' });
    const problems = problemsOf(() => parse(doc));
    expectProblem(problems, 'identity.issuers[0].algorithms[0]', /"HS256" is not allowed/);
    expectProblem(problems, 'routes[0].upstream', /must not embed credentials/);
    expectProblem(problems, 'routes[2].id', /used by another route/);
  });

  it('the error message names the source and lists each problem', () => {
    const doc = minimalDoc();
    doc.routes[0].securityLevel = 0;
    try {
      parse(doc);
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toMatch(/^test\.yaml: .*invalid configuration\n {2}- routes\[0\]\.securityLevel: must be >= 1/);
    }
  });
});

describe('a configuration file that cannot be read as a document is refused', () => {
  it('a YAML syntax error names its line', () => {
    // The flow map opened on line 4 is still open when line 5 starts at column 1.
    const file = writeTmp('syntax.yaml', 'publicUrl: https://gw.khanhhoa.gov.vn\nidentity:\n  issuers: [\n    { issuer: x\npolicy: {}\n');
    const problems = problemsOf(() => loadConfigFile(file));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^line 5: /);
  });

  it('every problem of a file names its line, and a mistyped key gets a "did you mean"', () => {
    const text = readFileSync(join(ROOT, 'demo/ztgate.demo.yaml'), 'utf8').replace('clockSkewSeconds: 30', 'clockSkewSecond: 30').replace('securityLevel: 4', 'securityLevel: 9').replaceAll('../', `${ROOT}/`).replace('file: roster.csv', `file: ${ROOT}/demo/roster.csv`);
    const lineOf = (needle: string) => text.split('\n').findIndex((l) => l.includes(needle)) + 1;
    const problems = problemsOf(() => loadConfigFile(writeTmp('typo.yaml', text)));
    expect(problems).toEqual(
      expect.arrayContaining([`line ${lineOf('clockSkewSecond: 30')}: identity: unknown key "clockSkewSecond" / khóa không được hỗ trợ — có phải ý bạn là / did you mean "clockSkewSeconds"?`, expect.stringMatching(new RegExp(`^line ${lineOf('securityLevel: 9')}: routes\\[\\d\\]\\.securityLevel: must be <= 5$`))]),
    );
    expect(problems).toHaveLength(2);
  });

  it('an unknown key far from any known one gets no guess', () => {
    const problems = problemsOf(() => parse({ ...minimalDoc(), upstreams: [] }));
    expect(problems.find((p) => p.includes('"upstreams"'))).not.toMatch(/did you mean/);
  });

  it('a duplicate YAML key names its line', () => {
    const file = writeTmp('dup.yaml', 'publicUrl: https://a.example\nlisten: { port: 8080 }\npublicUrl: https://b.example\n');
    const problems = problemsOf(() => loadConfigFile(file));
    expect(problems[0]).toMatch(/^line 3: .*unique/);
  });

  it('a JSON syntax error is reported', () => {
    const file = writeTmp('bad.json', '{ "publicUrl": "https://gw.khanhhoa.gov.vn", }');
    const problems = problemsOf(() => loadConfigFile(file));
    expect(problems[0]).toMatch(/^syntax: /);
  });

  it('a .json file is read as JSON, and validated like YAML', () => {
    const doc = minimalDoc();
    doc.routes[0].securityLevel = 7;
    const file = writeTmp('gateway.json', JSON.stringify(doc));
    expectProblem(
      problemsOf(() => loadConfigFile(file)),
      'routes[0].securityLevel',
      /must be <= 5/,
    );
  });

  it('a missing file', () => {
    const problems = problemsOf(() => loadConfigFile(join(tmp, 'no-such-file.yaml')));
    expect(problems[0]).toMatch(/cannot read the file: ENOENT/);
  });

  it('a document that is a list, not a mapping', () => {
    const file = writeTmp('list.yaml', '- publicUrl: https://gw.khanhhoa.gov.vn\n- routes: []\n');
    expectProblem(
      problemsOf(() => loadConfigFile(file)),
      '(root)',
      /must be a mapping/,
    );
  });

  it('an empty file', () => {
    const file = writeTmp('empty.yaml', '# nothing here\n');
    expectProblem(
      problemsOf(() => loadConfigFile(file)),
      '(root)',
      /must be a mapping/,
    );
  });
});

describe('identity.session.encryptionKeyFile', () => {
  const withKeyFile = (file: string) => {
    const doc = minimalDoc();
    doc.identity.session = { encryptionKeyFile: file };
    return doc;
  };

  it('32 bytes as hex or base64 load, the path resolved against the configuration', () => {
    const hex = writeTmp('keys/session-hex.key', `${'ab'.repeat(32)}\n`);
    expect(parse(withKeyFile(hex)).identity.session.encryptionKeyFile).toBe(hex);
    writeTmp('keys/session-b64.key', Buffer.alloc(32, 7).toString('base64'));
    const config = parseConfig(withKeyFile('keys/session-b64.key'), 'test.yaml', tmp);
    expect(config.identity.session.encryptionKeyFile).toBe(join(tmp, 'keys/session-b64.key'));
  });

  it('a key of the wrong length is refused, naming the key', () => {
    const short = writeTmp('keys/session-short.key', Buffer.alloc(16, 1).toString('base64'));
    expectProblem(
      problemsOf(() => parse(withKeyFile(short))),
      'identity.session.encryptionKeyFile',
      /exactly 32 random bytes/,
    );
    const long = writeTmp('keys/session-long.key', 'ab'.repeat(33));
    expectProblem(
      problemsOf(() => parse(withKeyFile(long))),
      'identity.session.encryptionKeyFile',
      /exactly 32 random bytes/,
    );
  });

  it('a key file that is missing or not hex/base64 is refused, naming the key', () => {
    expectProblem(
      problemsOf(() => parse(withKeyFile(join(tmp, 'keys/none.key')))),
      'identity.session.encryptionKeyFile',
      /cannot read .*ENOENT/,
    );
    const text = writeTmp('keys/session-text.key', 'not a key, just words!');
    expectProblem(
      problemsOf(() => parse(withKeyFile(text))),
      'identity.session.encryptionKeyFile',
      /exactly 32 random bytes/,
    );
  });
});
