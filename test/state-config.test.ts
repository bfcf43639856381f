import { describe, expect, it } from 'vitest';
import { parseConfig } from '../gateway/config.js';
import { ConfigError } from '../core/errors.js';

const approval = { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-15' };
const doc = (state: Record<string, unknown>) => ({
  publicUrl: 'https://gw.khanhhoa.gov.vn',
  identity: { issuers: [{ issuer: 'https://idp.khanhhoa.gov.vn', audience: 'urn:ztgate:data' }] },
  policy: { model: 'model.conf', policy: 'policy.csv' },
  routes: [{ id: 'ho-tich', name: 'Hộ tịch', pathPrefix: '/ho-tich', upstream: 'http://127.0.0.1:9101', ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'personal-data', approval }],
  state,
});

function problemsOf(state: Record<string, unknown>): readonly string[] {
  try {
    parseConfig(doc(state), 'test.yaml', '/etc/ztgate');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('accepted');
}

describe('state configuration', () => {
  it('Sentinel and Cluster are parsed into host and port; the durable store gets its default timeout', () => {
    const s = parseConfig(doc({ backend: 'redis', sentinel: { masterName: 'ztgate', sentinels: ['10.0.0.11:26379', '[::1]:26380'] }, durable: { postgresUrl: 'postgres://ztgate@db/ztgate' } }), 't', '/').state;
    expect(s.sentinel!.sentinels).toEqual([
      { host: '10.0.0.11', port: 26379 },
      { host: '::1', port: 26380 },
    ]);
    expect(s.durable).toEqual({ postgresUrl: 'postgres://ztgate@db/ztgate', timeoutMs: 3000 });
    expect(s.checkIntervalMs).toBe(500);
    const c = parseConfig(doc({ backend: 'redis', cluster: { nodes: ['10.0.0.21:6379'] }, keyPrefix: '{ztgate}:' }), 't', '/').state;
    expect(c.cluster!.nodes).toEqual([{ host: '10.0.0.21', port: 6379 }]);
  });

  it('exactly one of redisUrl, sentinel, cluster with backend redis', () => {
    expect(problemsOf({ backend: 'redis' })).toEqual(['state: with backend "redis" set exactly one of redisUrl, sentinel or cluster (found none)']);
    expect(problemsOf({ backend: 'redis', redisUrl: 'redis://r:6379', cluster: { nodes: ['r:7000'] }, keyPrefix: '{z}:' })[0]).toContain('found redisUrl, cluster');
  });

  it('a Cluster prefix without a hash tag is refused, naming the key', () => {
    expect(problemsOf({ backend: 'redis', cluster: { nodes: ['10.0.0.21:6379'] } })).toEqual([expect.stringContaining('state.keyPrefix: with state.cluster it must start with a hash tag')]);
  });

  it('a durable store or a Redis location with the memory backend is refused', () => {
    expect(problemsOf({ durable: { postgresUrl: 'postgres://db/z' } })).toEqual([expect.stringContaining('state.durable: with state.backend "memory"')]);
    expect(problemsOf({ sentinel: { masterName: 'm', sentinels: ['s:26379'] } })).toEqual([expect.stringContaining('state.sentinel: set, but state.backend is "memory"')]);
  });

  it('a bad node, port or URL is named', () => {
    expect(problemsOf({ backend: 'redis', sentinel: { masterName: 'm', sentinels: ['s:99999'] } })).toEqual(['state.sentinel.sentinels[0]: "s:99999" has no valid port']);
    expect(problemsOf({ backend: 'redis', redisUrl: 'http://r' })).toEqual([expect.stringContaining('must be a redis:// or rediss:// URL')]);
    expect(problemsOf({ backend: 'redis', redisUrl: 'redis://r', durable: { postgresUrl: 'mysql://db' } }).join()).toContain('postgresUrl');
  });
});
