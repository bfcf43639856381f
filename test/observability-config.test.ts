import { describe, expect, it } from 'vitest';
import { parseConfig, type GatewayConfig } from '../gateway/config.js';
import { ConfigError } from '../core/errors.js';

const approval = { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-15' };

function doc(extra: Record<string, unknown> = {}): Record<string, any> {
  return {
    publicUrl: 'https://gw.khanhhoa.gov.vn',
    identity: { issuers: [{ issuer: 'https://idp.khanhhoa.gov.vn', audience: 'urn:ztgate:data' }] },
    policy: { model: 'model.conf', policy: 'policy.csv' },
    routes: [{ id: 'ho-tich', name: 'Hộ tịch', pathPrefix: '/ho-tich', upstream: 'http://127.0.0.1:9101', ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'personal-data', approval }],
    ...extra,
  };
}

const parse = (d: unknown): GatewayConfig => parseConfig(d, 'test.yaml', '/etc/ztgate');

function problemsOf(d: unknown): readonly string[] {
  try {
    parse(d);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError, but the configuration was accepted');
}

describe('ops, probes, tracing and log configuration', () => {
  it('defaults: no ops listener unless configured; probes, tracing off, log at info', () => {
    const config = parse(doc());
    expect(config.ops).toBeUndefined();
    expect(config.probes).toEqual({ checkIntervalMs: 5000, checkTimeoutMs: 2000, issuerKeysMaxAgeMs: 60_000, drainDelayMs: 5000 });
    expect(config.tracing).toEqual({ serviceName: 'ztgate', sampleRatio: 1, exportTimeoutMs: 5000, trustedProxies: [] });
    expect(config.log).toEqual({ level: 'info' });
  });

  it('ops: {} listens on 127.0.0.1:9464', () => {
    expect(parse(doc({ ops: {} })).ops).toEqual({ listen: { host: '127.0.0.1', port: 9464 } });
  });

  it('refuses an ops listener on the data or management address', () => {
    expect(problemsOf(doc({ listen: { host: '127.0.0.1', port: 9464 }, ops: {} }))).toEqual(['ops.listen: the ops listener must not share the gateway address 127.0.0.1:9464']);
    expect(problemsOf(doc({ admin: { listen: { port: 9000 } }, ops: { listen: { port: 9000 } } }))).toEqual(['ops.listen: the ops listener must not share the management address 127.0.0.1:9000']);
  });

  it('names each bad tracing setting', () => {
    expect(problemsOf(doc({ tracing: { otlpEndpoint: 'collector:4318', trustedProxies: ['10.0.0.0/33', 'lb.khanhhoa', '10.1.2.3', '2001:db8::/32'] } }))).toEqual([
      'tracing.otlpEndpoint: "collector:4318" must be an http(s) URL (OTLP/HTTP)',
      'tracing.trustedProxies[0]: "10.0.0.0/33" is not an IP address or CIDR range (e.g. 10.0.0.5, 10.0.0.0/8, 2001:db8::/32)',
      'tracing.trustedProxies[1]: "lb.khanhhoa" is not an IP address or CIDR range (e.g. 10.0.0.5, 10.0.0.0/8, 2001:db8::/32)',
    ]);
    expect(problemsOf(doc({ tracing: { otlpEndpoint: 'http://u:p@collector:4318/v1/traces' } }))).toEqual(['tracing.otlpEndpoint: must not embed credentials']);
    expect(problemsOf(doc({ tracing: { sampleRatio: 2 } }))).toEqual(['tracing.sampleRatio: must be <= 1']);
    expect(problemsOf(doc({ log: { level: 'verbose' } }))[0]).toMatch(/^log\.level: must be one of "fatal", "error", "warn", "info"/);
    expect(problemsOf(doc({ probes: { drainDelayMs: -1 } }))).toEqual(['probes.drainDelayMs: must be >= 0']);
    expect(problemsOf(doc({ ops: { port: 9464 } }))).toEqual(['ops: unknown key "port" / khóa không được hỗ trợ']);
  });
});
