import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parser } from '@prometheus-io/lezer-promql';
import { freePort, ROOT, startHarness, type Harness } from './helpers/harness.js';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { eventually, LogLines } from './helpers/ops.js';
import { Browser, startIdentityHarness, type IdentityHarness } from './helpers/browser.js';

const ALLOWED = '056085000001'; // synthetic official, ho-tich-reader, Sở Tư pháp
const OTHER_AGENCY_OFFICIAL = '056085000009'; // synthetic official of a commune not named in the configuration

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text exposition format 0.0.4: samples, and the metric names its # TYPE lines declare. */
function parseExposition(text: string): { samples: Sample[]; families: Map<string, string> } {
  const samples: Sample[] = [];
  const families = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) families.set(type[1]!, type[2]!);
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, families };
}

/** Every series name the gateway exports: histogram and summary families expand to their suffixes. */
function exportedNames(families: Map<string, string>): Set<string> {
  const names = new Set<string>();
  for (const [name, type] of families) {
    names.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${name}${s}`);
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(`${name}${s}`);
  }
  return names;
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return found.length === 0 ? undefined : found.reduce((n, s) => n + s.value, 0);
}

describe('Prometheus metrics on the ops listener', () => {
  let h: Harness;
  let dir: string;
  let sinkPort = 0;
  let receiver: TcpServer | null = null;
  const log = new LogLines();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ztgate-metrics-'));
    const nobodyListens = (sinkPort = await freePort());
    h = await startHarness({
      logDestination: log,
      configure: (doc) => {
        doc.ops = { listen: { host: '127.0.0.1', port: 0 } };
        doc.audit = {
          sinks: [
            { type: 'stdout' },
            // A SOC sink that is down: its spool grows, as the alert rules expect to see.
            { type: 'syslog', name: 'siem', host: '127.0.0.1', port: nobodyListens, transport: 'tcp', format: 'json', reconnectMaxMs: 200 },
          ],
          spoolDir: join(dir, 'spool'),
          chain: { file: join(dir, 'audit', 'decisions.log'), checkpointEvery: 5 },
        };
      },
    });
  });
  afterAll(async () => {
    await h?.close();
    receiver?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function scrape(): Promise<{ text: string; samples: Sample[]; families: Map<string, string> }> {
    const res = await fetch(`${h.gateway.opsUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    return { text, ...parseExposition(text) };
  }

  async function send(path: string, nationalId: string | null, agency = 'so-tu-phap'): Promise<number> {
    const now = Math.floor(Date.now() / 1000);
    const headers: Record<string, string> = {};
    if (nationalId) headers.authorization = `Bearer ${await h.testIssuer.sign({ iss: h.testIssuer.issuer, aud: 'urn:ztgate:data', sub: nationalId, national_id: nationalId, agency, roles: ['ho-tich-reader'], iat: now, exp: now + 300 })}`;
    const res = await fetch(`${h.gateway.url}${path}`, { headers });
    await res.arrayBuffer();
    await h.sink.forRequest(res.headers.get('x-request-id'));
    return res.status;
  }

  it('attack: /metrics is not on the data port', async () => {
    const res = await fetch(`${h.gateway.url}/metrics`);
    expect(res.status).toBe(404);
    const event = await h.sink.forRequest(res.headers.get('x-request-id'));
    expect(event.ztgate.reasons).toEqual(['route-not-found']);
  });

  it('counts requests and decisions by service, agency, decision, outcome and reason, with step and upstream latencies', async () => {
    for (let i = 0; i < 3; i++) expect(await send(`/echo/${ALLOWED}/records`, ALLOWED)).toBe(200);
    expect(await send('/echo/x', OTHER_AGENCY_OFFICIAL, 'ubnd-phuong-loc-tho')).toBe(200);
    expect(await send('/echo/x', null)).toBe(401);
    expect(await send('/echo/x', ALLOWED, 'so-tu-phap')).toBe(200);
    const { text, samples } = await scrape();

    expect(value(samples, 'ztgate_requests_total', { plane: 'data', service: 'echo', agency: 'so-tu-phap', decision: 'allow', outcome: 'success' })).toBe(4);
    // An agency the configuration does not name is counted, not named: labels stay bounded.
    expect(value(samples, 'ztgate_requests_total', { service: 'echo', agency: 'other', decision: 'allow' })).toBe(1);
    expect(samples.some((s) => s.labels.agency === 'ubnd-phuong-loc-tho')).toBe(false);
    expect(value(samples, 'ztgate_requests_total', { service: 'echo', agency: 'none', decision: 'deny', outcome: 'failure' })).toBe(1);
    expect(value(samples, 'ztgate_decision_reasons_total', { service: 'echo', decision: 'deny', reason: 'token-missing' })).toBe(1);
    expect(value(samples, 'ztgate_decision_reasons_total', { service: 'echo', decision: 'allow', reason: 'policy-allowed' })).toBe(5);
    expect(value(samples, 'ztgate_request_duration_seconds_count', { plane: 'data', service: 'echo', decision: 'allow' })).toBe(5);
    expect(value(samples, 'ztgate_step_duration_seconds_count', { step: 'identity', service: 'echo' })).toBe(6);
    for (const step of ['device', 'decision', 'upstream']) expect(value(samples, 'ztgate_step_duration_seconds_count', { step, service: 'echo' }), step).toBe(5);
    expect(value(samples, 'ztgate_upstream_responses_total', { service: 'echo', status_class: '2xx' })).toBe(5);
    // Never a national ID, a path or free text in a label.
    expect(text).not.toContain(ALLOWED);
    expect(text).not.toContain('/records');
  });

  it('reports upstream errors per service', async () => {
    await h.upstreams.recording.close();
    expect(await send('/echo/down', ALLOWED)).toBe(502);
    const { samples } = await scrape();
    expect(value(samples, 'ztgate_upstream_errors_total', { service: 'echo', reason: 'upstream-unavailable' })).toBe(1);
  });

  it('reports SOC sink health, spool depth and age, the audit chain, readiness, Redis and IdP health, locks, policy and the process', async () => {
    await h.gateway.runtime.locks.set({ kind: 'user', value: '056085000002', reason: 'metrics test (synthetic)', lockedBy: 'test', seconds: 60 });
    await eventually(() => h.gateway.runtime.observability.probes.last()?.ready === true, 5000, 'a readiness report');
    await new Promise((r) => setTimeout(r, 1100));
    const { samples } = await scrape();
    expect(value(samples, 'ztgate_audit_sink_up', { sink: 'siem', type: 'syslog' })).toBe(0);
    expect(value(samples, 'ztgate_audit_spool_backlog_bytes', { sink: 'siem' })).toBeGreaterThan(0);
    expect(value(samples, 'ztgate_audit_spool_oldest_age_seconds', { sink: 'siem' })).toBeGreaterThan(1);
    expect(value(samples, 'ztgate_audit_spool_max_bytes', { sink: 'siem' })).toBe(h.config.audit.spoolMaxBytes);
    expect(value(samples, 'ztgate_audit_sink_delivered_total', { sink: 'siem' })).toBe(0);
    expect(value(samples, 'ztgate_audit_chain_healthy')).toBe(1);
    expect(value(samples, 'ztgate_audit_chain_records')).toBeGreaterThan(8);
    expect(value(samples, 'ztgate_audit_chain_last_checkpoint_age_seconds')).toBeGreaterThanOrEqual(0);
    expect(value(samples, 'ztgate_ready')).toBe(1);
    expect(value(samples, 'ztgate_readiness_check', { check: 'issuer-keys' })).toBe(1);
    expect(value(samples, 'ztgate_state_store_up', { backend: 'memory' })).toBe(1);
    expect(value(samples, 'ztgate_idp_up', { issuer: h.idp.issuer })).toBe(1);
    expect(value(samples, 'ztgate_idp_jwks_keys', { issuer: h.testIssuer.issuer })).toBe(1);
    expect(value(samples, 'ztgate_locks_active', { kind: 'user' })).toBe(1);
    expect(value(samples, 'ztgate_locks_active', { kind: 'device' })).toBe(0);
    expect(value(samples, 'ztgate_sessions_active')).toBe(0);
    expect(value(samples, 'ztgate_policy_info', { version: h.gateway.runtime.policy().version })).toBe(1);
    expect(value(samples, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(value(samples, 'nodejs_eventloop_lag_seconds')).toBeDefined();
  });

  it('a SOC sink that comes up: one "unreachable" line for the whole outage, one "connected" line, the spool drains', async () => {
    const received: Buffer[] = [];
    receiver = createTcpServer((socket) => socket.on('data', (c: Buffer) => received.push(c)));
    await new Promise<void>((r) => receiver!.listen(sinkPort, '127.0.0.1', r));
    await eventually(async () => value((await scrape()).samples, 'ztgate_audit_sink_up', { sink: 'siem' }) === 1, 8000, 'the sink connected');
    await eventually(async () => value((await scrape()).samples, 'ztgate_audit_spool_oldest_age_seconds', { sink: 'siem' }) === 0, 8000, 'the spool drained');
    const { samples } = await scrape();
    expect(value(samples, 'ztgate_audit_sink_delivered_total', { sink: 'siem' })).toBeGreaterThan(8);
    expect(value(samples, 'ztgate_audit_spool_backlog_bytes', { sink: 'siem' })).toBe(0);
    // Many reconnection attempts (reconnectMaxMs 200) during the outage, one line.
    expect(log.withMessage('SOC sink unreachable; events wait in the spool')).toHaveLength(1);
    expect(log.withMessage('SOC sink connected')).toHaveLength(1);
    expect(Buffer.concat(received).toString('utf8')).toContain('"decision":"allow"');
  });

  it('reports the policy version in force and how long the last activation took to reach this instance', async () => {
    const policies = h.gateway.runtime.policies;
    const current = await policies.versions.get(policies.currentId());
    const draft = await policies.versions.createDraft({ author: '056179000006', comment: 'metrics test (synthetic)', sources: { ...current.sources, policy: `${current.sources.policy}\n# reviewed\n` } });
    await policies.versions.submit(draft.id, '056179000006');
    const active = await policies.versions.approve(draft.id, '056179000007', 'ok');
    const before = Date.now();
    await policies.announce(active);
    const { samples } = await scrape();
    expect(samples.filter((s) => s.name === 'ztgate_policy_info').map((s) => s.labels.version_id)).toEqual([active.id]);
    expect(value(samples, 'ztgate_policy_info', { version: h.gateway.runtime.policy().version })).toBe(1);
    const delay = value(samples, 'ztgate_policy_propagation_delay_seconds')!;
    expect(delay).toBeGreaterThanOrEqual(0);
    expect(delay).toBeLessThanOrEqual((Date.now() - Date.parse(active.activatedAt!)) / 1000);
    expect(value(samples, 'ztgate_policy_last_switch_timestamp_seconds')! * 1000).toBeGreaterThanOrEqual(before - 1);
  });

  it('the Grafana dashboard and the alert rules in docs/ reference only metrics the gateway exports, and the README documents each', async () => {
    const { families } = await scrape();
    const exported = exportedNames(families);
    const dashboard = JSON.parse(readFileSync(join(ROOT, 'docs/grafana-dashboard.json'), 'utf8'));
    const rules = parseYaml(readFileSync(join(ROOT, 'docs/prometheus-alerts.yml'), 'utf8'));
    const exprs: string[] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(walk);
      // A data-source variable's query names a plugin, not PromQL.
      else if (node && typeof node === 'object' && (node as { type?: unknown }).type !== 'datasource') for (const [k, v] of Object.entries(node)) (k === 'expr' || k === 'query') && typeof v === 'string' ? exprs.push(v) : walk(v);
    };
    walk(dashboard);
    expect(exprs.length).toBeGreaterThan(10);
    walk(rules);
    // Each expression parsed by the Prometheus project's PromQL grammar; the metric names are its vector selectors.
    const referenced = new Set<string>();
    const syntaxErrors: string[] = [];
    for (const expr of exprs) {
      // Grafana's template query label_values(metric, label) is not PromQL: its metric is checked alone.
      const promql = /^label_values\((\w+),\s*\w+\)$/.exec(expr)?.[1] ?? expr;
      parser.parse(promql).iterate({
        enter: (node) => {
          if (node.type.isError) syntaxErrors.push(expr);
          if (node.name === 'Identifier' && node.node.parent?.name === 'VectorSelector') referenced.add(promql.slice(node.from, node.to));
        },
      });
    }
    expect(syntaxErrors).toEqual([]);
    expect(referenced.size).toBeGreaterThan(10);
    expect([...referenced].filter((n) => !exported.has(n))).toEqual([]);

    const alerts = rules.groups.flatMap((g: any) => g.rules.map((r: any) => r.alert));
    for (const required of ['ZtgateSocSinkDown', 'ZtgateSocSpoolGrowing', 'ZtgateChainCheckpointStale', 'ZtgateStateStoreDown', 'ZtgateIdpUnavailable', 'ZtgateDenyBurst']) expect(alerts).toContain(required);

    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const undocumented = [...families.keys()].filter((n) => n.startsWith('ztgate_') && !readme.includes(`\`${n}\``));
    expect(undocumented).toEqual([]);
  });
});

describe('active sessions', () => {
  let ih: IdentityHarness;

  beforeAll(async () => {
    ih = await startIdentityHarness({ configure: (doc) => (doc.ops = { listen: { host: '127.0.0.1', port: 0 } }) });
  });
  afterAll(async () => {
    await ih?.close();
  });

  it('counts the browser sessions that made a request through the instance', async () => {
    const gateway = ih.gateways[0]!;
    const activeSessions = async () => value(parseExposition(await (await fetch(`${gateway.opsUrl}/metrics`)).text()).samples, 'ztgate_sessions_active');
    expect(await activeSessions()).toBe(0);
    for (const nationalId of ['056085000001', '056088000003']) {
      const page = await new Browser().signIn(`${gateway.url}/ho-tich/records?limit=1`, nationalId);
      expect(page.res.status).toBe(200);
      await page.res.arrayBuffer();
    }
    expect(await activeSessions()).toBe(2);
  });
});
