import { randomBytes, randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDecisionLog, type AuditEvent } from '../gateway/audit/log.js';
import type { DetectionConfig, DetectionRuleConfig } from '../gateway/audit/config.js';
import { createDetector, networkOf, officeHoursAt } from '../gateway/detect/detector.js';
import { createLocks } from '../gateway/lock-registry.js';
import { createMemoryStore } from '../gateway/store-backends.js';
import { parseConfig } from '../gateway/config.js';
import { startGateway, type RunningGateway } from '../gateway/server.js';
import { EventSink, ROOT, startHarness, type Harness } from './helpers/harness.js';
import { redisUrl } from './helpers/redis.js';

const ALLOWED = '056085000001'; // Nguyễn Văn An, ho-tich-reader
const NO_RULE = '056080000005'; // Hoàng Văn Em, van-thu: denied everywhere
const HEALTH = '056190000002'; // Trần Thị Bình, y-te-reader

function rule(kind: DetectionRuleConfig['kind'], over: Partial<DetectionRuleConfig> = {}): DetectionRuleConfig {
  return { id: kind, kind, threshold: 3, windowSeconds: 600, action: 'alert', lockSeconds: 60, enabled: true, ...over };
}

const OFFICE: DetectionConfig['officeHours'] = { timeZone: 'Asia/Ho_Chi_Minh', start: '07:30', end: '17:30', days: [1, 2, 3, 4, 5] };

/** A synthetic decision event, as gateway/events.ts writes them. */
function decision(o: { user?: string; allow?: boolean; reasons?: string[]; ip?: string; device?: string; records?: number; classification?: string; at?: string }): AuditEvent {
  return {
    '@timestamp': o.at ?? new Date().toISOString(),
    log: { level: 'info' },
    event: { kind: 'event', action: 'access-decision', outcome: o.allow ? 'success' : 'failure', id: randomUUID() },
    ztgate: {
      decision: o.allow ? 'allow' : 'deny',
      reasons: o.reasons ?? [o.allow ? 'policy-allowed' : 'policy-no-match'],
      route: { id: 'ho-tich', security_level: 3, classification: o.classification ?? 'personal-data', owner_agency: 'so-tu-phap' },
      ...(o.records !== undefined ? { records: o.records } : {}),
      ...(o.device ? { device: { id: o.device, tier: 'registered', status: 'active' } } : {}),
    },
    ...(o.user ? { user: { id: o.user, roles: [] } } : {}),
    source: { ip: o.ip ?? '10.1.2.3', port: 40000 },
    http: { request: { id: 'x', method: 'GET' }, response: { status_code: o.allow ? 200 : 403 } },
    url: { path: '/ho-tich/records' },
    message: o.allow ? 'allow' : 'deny',
  };
}

async function synthetic(rules: DetectionRuleConfig[], officeHours = OFFICE) {
  const sink = new EventSink();
  const log = createDecisionLog(sink);
  const store = createMemoryStore();
  const locks = createLocks(store);
  const detector = createDetector({ config: { officeHours, rules }, store, locks, log });
  return {
    locks,
    async feed(...events: AuditEvent[]) {
      for (const e of events) log.write(e);
      await detector.idle();
    },
    alerts: () => sink.events.filter((e) => e.event.kind === 'alert'),
    async close() {
      await detector.close();
      await store.close();
    },
  };
}

describe('detection rules on synthetic traffic', () => {
  it('bulk-extraction: records returned by one official add up to the threshold, and it fires once', async () => {
    const d = await synthetic([rule('bulk-extraction', { threshold: 1000 })]);
    await d.feed(decision({ user: ALLOWED, allow: true, records: 400 }), decision({ user: ALLOWED, allow: true, records: 400 }), decision({ user: HEALTH, allow: true, records: 900 }));
    expect(d.alerts()).toHaveLength(0);
    await d.feed(decision({ user: ALLOWED, allow: true, records: 250 }), decision({ user: ALLOWED, allow: true, records: 250 }));
    const [alert, ...more] = d.alerts();
    expect(more).toHaveLength(0);
    expect(alert).toMatchObject({ event: { kind: 'alert', action: 'detection-alert' }, rule: { id: 'bulk-extraction', ruleset: 'ztgate-detection' }, user: { id: ALLOWED }, ztgate: { alert: { count: 1050, threshold: 1000, subject: ALLOWED } } });
    await d.close();
  });

  it('denial-burst: denials of one official within the window; allows do not count', async () => {
    const d = await synthetic([rule('denial-burst', { threshold: 3 })]);
    await d.feed(decision({ user: NO_RULE }), decision({ user: NO_RULE, allow: true }), decision({ user: NO_RULE }));
    expect(d.alerts()).toHaveLength(0);
    await d.feed(decision({ user: NO_RULE }));
    expect(d.alerts()[0]).toMatchObject({ ztgate: { alert: { kind: 'denial-burst', count: 3 } } });
    await d.close();
  });

  it('denial-burst without an identity counts by source address', async () => {
    const d = await synthetic([rule('denial-burst', { threshold: 2 })]);
    await d.feed(decision({ ip: '10.9.9.9', reasons: ['token-missing'] }), decision({ ip: '10.9.9.9', reasons: ['token-expired'] }));
    expect(d.alerts()[0]!.ztgate.alert.subject).toBe('10.9.9.9');
    await d.close();
  });

  it('off-hours-personal-data: personal data read on a Sunday night fires; the same read on a Monday morning and internal data do not', async () => {
    const d = await synthetic([rule('off-hours-personal-data', { threshold: 1 })]);
    const mondayMorning = '2026-11-23T02:00:00Z'; // 09:00 in Hà Nội
    const sundayNight = '2026-11-22T15:00:00Z'; // 22:00 Sunday in Hà Nội
    await d.feed(decision({ user: ALLOWED, allow: true, at: mondayMorning }), decision({ user: ALLOWED, allow: true, at: sundayNight, classification: 'internal' }));
    expect(d.alerts()).toHaveLength(0);
    await d.feed(decision({ user: ALLOWED, allow: true, at: sundayNight }));
    expect(d.alerts()).toHaveLength(1);
    await d.close();
  });

  it('office hours are read in the configured time zone', () => {
    expect(officeHoursAt(new Date('2026-11-23T02:00:00Z'), OFFICE)).toBe(true);
    expect(officeHoursAt(new Date('2026-11-23T11:00:00Z'), OFFICE)).toBe(false); // 18:00 local
    expect(officeHoursAt(new Date('2026-11-23T11:00:00Z'), { ...OFFICE, timeZone: 'UTC', end: '17:30' })).toBe(true);
  });

  it('new-device: the first device is the baseline, a second one fires', async () => {
    const d = await synthetic([rule('new-device', { threshold: 1 })]);
    const dev1 = 'A'.repeat(43);
    const dev2 = 'B'.repeat(43);
    await d.feed(decision({ user: ALLOWED, allow: true, device: dev1 }), decision({ user: ALLOWED, allow: true, device: dev1 }));
    expect(d.alerts()).toHaveLength(0);
    await d.feed(decision({ user: ALLOWED, allow: true, device: dev2 }));
    expect(d.alerts()[0]).toMatchObject({ ztgate: { alert: { kind: 'new-device' }, device: { id: dev2 } } });
    await d.close();
  });

  it('concurrent-networks: the same official from two networks in one window; two addresses of one /24 are one network', async () => {
    const d = await synthetic([rule('concurrent-networks', { threshold: 2 })]);
    await d.feed(decision({ user: ALLOWED, allow: true, ip: '10.1.2.3' }), decision({ user: ALLOWED, allow: true, ip: '10.1.2.77' }));
    expect(d.alerts()).toHaveLength(0);
    await d.feed(decision({ user: ALLOWED, allow: true, ip: '172.16.5.5' }));
    expect(d.alerts()).toHaveLength(1);
    expect(networkOf('::ffff:10.1.2.3')).toBe('10.1.2.0/24');
    expect(networkOf('2001:db8:1:2:3::4')).toBe('2001:db8:1:2::/64');
    await d.close();
  });

  it('repeated-proof-failures: device proof, posture and assurance failures of one device; other denials do not count; lock-device locks it', async () => {
    const d = await synthetic([rule('repeated-proof-failures', { threshold: 3, action: 'lock-device', lockSeconds: 120 })]);
    const dev = 'C'.repeat(43);
    await d.feed(decision({ user: ALLOWED, device: dev, reasons: ['device-proof-invalid'] }), decision({ user: ALLOWED, device: dev, reasons: ['policy-no-match'] }), decision({ user: ALLOWED, device: dev, reasons: ['posture-stale'] }));
    expect(d.alerts()).toHaveLength(0);
    await d.feed(decision({ user: ALLOWED, device: dev, reasons: ['assurance-insufficient'] }));
    expect(d.alerts()[0]!.ztgate.alert.lock).toMatchObject({ kind: 'device', value: dev });
    expect(await d.locks.get('device', dev)).toMatchObject({ lockedBy: 'rule:repeated-proof-failures' });
    await d.close();
  });

  it('a disabled rule never fires', async () => {
    const d = await synthetic([rule('denial-burst', { threshold: 1, enabled: false })]);
    await d.feed(decision({ user: NO_RULE }), decision({ user: NO_RULE }));
    expect(d.alerts()).toHaveLength(0);
    await d.close();
  });
});

describe('a rule locks the official, and the lock holds on a second instance sharing Redis', () => {
  let h: Harness;
  let second: RunningGateway;
  let secondSink: EventSink;
  let redis: Redis;
  let prefix: string;

  beforeAll(async () => {
    const url = await redisUrl();
    prefix = `ztgate-test:${randomBytes(6).toString('hex')}:`;
    redis = new Redis(url);
    let doc: Record<string, any> = {};
    h = await startHarness({
      configure(d) {
        d.state = { backend: 'redis', redisUrl: url, keyPrefix: prefix };
        d.detection = {
          officeHours: { days: [] }, // every hour is off-hours: the personal-data rule fires on the first read
          rules: [
            { id: 'burst-lock', kind: 'denial-burst', threshold: 3, windowSeconds: 600, action: 'lock-user', lockSeconds: 600 },
            { id: 'after-hours', kind: 'off-hours-personal-data', threshold: 1, windowSeconds: 600, action: 'alert' },
            { id: 'two-networks', kind: 'concurrent-networks', threshold: 2, windowSeconds: 600, action: 'alert' },
          ],
        };
        doc = structuredClone(d);
      },
    });
    doc.listen = { host: '127.0.0.1', port: 0 };
    doc.admin = { listen: { host: '127.0.0.1', port: 0 } };
    secondSink = new EventSink();
    second = await startGateway(parseConfig(doc, 'second-instance', ROOT), { decisionLog: secondSink });
  });

  afterAll(async () => {
    await second?.close();
    await h?.close();
    if (redis) {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    }
  });

  async function call(base: string, sink: EventSink, path: string, token: string, localAddress?: string) {
    const url = new URL(path, base);
    const { status, id } = await new Promise<{ status: number; id: string }>((resolve, reject) => {
      const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname + url.search, headers: { authorization: `Bearer ${token}` }, ...(localAddress ? { localAddress } : {}) }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, id: String(res.headers['x-request-id']) }));
      });
      req.on('error', reject);
      req.end();
    });
    return { status, event: await sink.forRequest(id) };
  }

  async function alertFor(sink: EventSink, ruleId: string, user: string) {
    const deadline = Date.now() + 5000;
    for (;;) {
      const found = sink.events.find((e) => e.event.kind === 'alert' && e.rule?.id === ruleId && e.user?.id === user);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no ${ruleId} alert for ${user}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('three denials on instance A lock the official; the next request on instance B is refused 403 locked-user', async () => {
    const token = await h.token(NO_RULE);
    for (let i = 0; i < 3; i++) expect((await call(h.gateway.url, h.sink, '/ho-tich/records', token)).status).toBe(403);
    const alert = await alertFor(h.sink, 'burst-lock', NO_RULE);
    expect(alert.ztgate.alert).toMatchObject({ action: 'lock-user', count: 3, lock: { kind: 'user', value: NO_RULE } });
    // The alert is written after the lock is stored: from here on, every instance refuses.
    const { status, event } = await call(second.url, secondSink, '/echo/personal/1', token);
    expect(status).toBe(403);
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['locked-user'], error_code: 'ZTG_ERR_LOCKED' });
    // Other officials are not affected.
    expect((await call(second.url, secondSink, '/echo/things/1', await h.token(ALLOWED))).status).toBe(200);
  });

  it('personal data read after hours raises an alert to the SOC sinks', async () => {
    await call(h.gateway.url, h.sink, '/ho-tich/records?limit=1', await h.token(ALLOWED));
    const alert = await alertFor(h.sink, 'after-hours', ALLOWED);
    expect(alert.ztgate.route.classification).toBe('personal-data');
  });

  it('the same official from two networks at once (two instances, two source networks) raises an alert', async () => {
    const token = await h.token(HEALTH);
    await call(h.gateway.url, h.sink, '/ho-tich/records', token, '127.0.0.1');
    await call(second.url, secondSink, '/ho-tich/records', token, '127.0.9.1');
    const deadline = Date.now() + 5000;
    let alert;
    while (!(alert = [...h.sink.events, ...secondSink.events].find((e) => e.rule?.id === 'two-networks' && e.user?.id === HEALTH))) {
      if (Date.now() > deadline) throw new Error('no two-networks alert');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(alert.ztgate.alert.count).toBe(2);
  });
});
