import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startHarness, type Harness } from './helpers/harness.js';
import { mountSmallDisk, type SmallDisk } from './helpers/full-disk.js';
import { SyslogReceiver, until } from './helpers/syslog-receiver.js';
import { readFilesForVerify, verifyChain } from '../gateway/audit/verify.js';
import { runAuditCommand } from '../gateway/audit/cli.js';
import { frameRecord, Spool } from '../gateway/audit/spool.js';
import { RemoteSink, type Transport } from '../gateway/audit/sinks.js';
import { syslogTransport } from '../gateway/audit/kinds/syslog.js';
import { ChainWriter } from '../gateway/audit/chain.js';
import { createCheckpointSigner } from '../gateway/audit/keys.js';

const OFFICIAL = '056085000001'; // Nguyễn Văn An, ho-tich-reader

let h: Harness;
// Mounted when the file loads, so that the suite's title says which kind of full disk it tests.
const disk: SmallDisk = mountSmallDisk(512 * 1024);
let receiver: SyslogReceiver;
const chainFile = () => join(disk.dir, 'chain', 'decisions.log');

beforeAll(async () => {
  receiver = new SyslogReceiver(await freePort());
  await receiver.start();
  h = await startHarness({
    configure(doc) {
      doc.admin = undefined;
      doc.audit = {
        chain: { file: chainFile(), checkpointEvery: 1000, rotation: 'none' },
        spoolDir: join(disk.dir, 'spool'),
        sinks: [{ type: 'stdout' }, { type: 'syslog', name: 'siem', host: '127.0.0.1', port: receiver.port, transport: 'tcp', format: 'json', confirmAfterMs: 100, reconnectMaxMs: 200 }],
      };
      doc.routes.find((r: any) => r.id === 'echo').auditRequired = true;
    },
  });
});
afterAll(async () => {
  await h?.close();
  await receiver?.stop().catch(() => undefined);
  disk?.close();
});

async function call(path: string) {
  const res = await fetch(`${h.gateway.url}${path}`, { headers: { authorization: `Bearer ${await h.token(OFFICIAL)}` } });
  await res.arrayBuffer();
  return { status: res.status, id: res.headers.get('x-request-id')!, event: await h.sink.forRequest(res.headers.get('x-request-id')) };
}

const chainRecords = () =>
  readFileSync(chainFile(), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));

describe(`a full disk under the audit chain and the SOC spool (${disk.injected ? 'INJECTED ENOSPC: tmpfs could not be mounted' : 'a real tmpfs of 512 KiB'})`, () => {
  it('before: served, recorded, delivered', async () => {
    const r = await call('/echo/warm');
    expect(r.status).toBe(200);
    await until('the event at the SOC', () => receiver.ids().includes(r.event.event.id));
  });

  it('an audit-required request is forwarded only once its own record is on disk: nothing reaches the upstream without one, and once the disk is full it is refused 503 audit-unavailable', async () => {
    disk.fill();
    const results: Awaited<ReturnType<typeof call>>[] = [];
    for (let i = 0; i < 25; i++) results.push(await call(`/echo/full/${i}`));
    const refused = results.filter((r) => r.status === 503);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect(r.event.ztgate.reasons).toContain('audit-unavailable');
    // Every request the upstream saw is in the chain: its forward record was written before it was sent.
    const inChain = new Set(chainRecords().map((rec) => rec.forward?.request_id ?? rec.event?.http?.request?.id));
    const forwarded = h.upstreams.recording.received.map((r) => String(r.headers['x-request-id'])).filter((id) => results.some((r) => r.id === id));
    for (const id of forwarded) expect(inChain.has(id), `request ${id} reached the upstream with no record in the audit chain`).toBe(true);
    // Routes that are not audit-required are still served while the disk is full.
    for (let i = 0; i < 5; i++) expect((await call('/ho-tich/records?limit=1')).status).toBe(200);
  });

  it('after the disk is freed: SOC delivery continues past what the full disk did to the spool, and the SOC is told what was lost', async () => {
    disk.free();
    const after: Awaited<ReturnType<typeof call>>[] = [];
    for (let i = 0; i < 5; i++) after.push(await call('/ho-tich/records?limit=1'));
    await until('events written after the disk was freed, at the SOC', () => after.every((r) => receiver.ids().includes(r.event.event.id)));
    const alerts = receiver.messages
      .map((m) => m.event)
      .filter((e) => e.event.kind === 'alert')
      .map((e) => e.rule.id);
    expect(alerts).toContain('audit-spool-write-failed');
    expect(alerts).toContain('audit-chain-gap');
    expect(h.gateway.runtime.decisionLog.status().sinks[0]!.failed).toBeGreaterThan(0);
  });

  it('audit verify reports the events that could not be written as a gap (the chain itself still verifies)', async () => {
    const r = verifyChain(readFilesForVerify([chainFile()]));
    expect(r.ok).toBe(true);
    expect(r.complete).toBe(false);
    expect(r.gaps.reduce((n, g) => n + g.events, 0)).toBeGreaterThan(0);
    const out: string[] = [];
    const code = await runAuditCommand(['verify', chainFile()], new Writable({ write: (c, _e, cb) => (out.push(String(c)), cb()) }));
    expect(code).toBe(1);
    expect(out.join('')).toMatch(/GAP .*could not be written/);
    expect(out.join('')).toContain('INCOMPLETE');
  });
});

describe('spool records torn by a crash or a full disk', () => {
  it('a torn record is detected, skipped and reported; the records after it are delivered, in order', async () => {
    const dir = join(disk.dir, 'torn');
    mkdirSync(dir, { recursive: true });
    const ev = (n: number) => JSON.stringify({ '@timestamp': new Date().toISOString(), event: { id: `torn-test-${n}`, kind: 'event', action: 'access-decision' }, ztgate: { decision: 'allow' } });
    // Two records, then one cut off mid-write (as a full disk or a crash leaves it), then one whose bytes changed.
    const corrupted = frameRecord(ev(4)).replace('torn-test-4', 'torn-test-X');
    writeFileSync(join(dir, '000000000001.jsonl'), frameRecord(ev(1)) + frameRecord(ev(2)) + frameRecord(ev(3)).slice(0, 40) + corrupted);
    const spool = new Spool(dir, { maxBytes: 1024 * 1024, segmentBytes: 64 * 1024 }).open();
    // Appended after restart: starts on a line of its own even though the file ends mid-record.
    expect(spool.append(ev(5))).toBe('ok');
    const skipped: number[] = [];
    const warnings: string[] = [];
    const cfg = { type: 'syslog', name: 'torn', host: '127.0.0.1', port: receiver.port, transport: 'tcp', format: 'json', facility: 13, connectTimeoutMs: 1000, confirmAfterMs: 50, reconnectMaxMs: 200 } as const;
    const sink = new RemoteSink(cfg, spool, syslogTransport(cfg) as Transport, { warn: (_o: unknown, msg: string) => void warnings.push(msg), info: () => undefined } as never, (_s, d) => void skipped.push(d.records));
    sink.start();
    try {
      await until('records after the torn ones delivered', () => receiver.ids().includes('torn-test-5'));
      const delivered = receiver.ids().filter((id) => id.startsWith('torn-test-'));
      expect(delivered).toEqual(['torn-test-1', 'torn-test-2', 'torn-test-5']);
      expect(skipped.reduce((a, b) => a + b, 0)).toBe(2);
      expect(warnings.join('\n')).toMatch(/torn or corrupted records/);
      expect(sink.status().skipped).toBe(2);
    } finally {
      await sink.close();
    }
    expect(readdirSync(dir)).toContain('cursor');
  });
});

describe('forward records of audit-required requests', () => {
  it('a request forwarded just before the gateway died, whose event was never written, is reported by audit verify', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ztgate-fwd-')), 'decisions.log');
    const signer = createCheckpointSigner({ alg: 'ES256' });
    const opts = { file, signer, checkpointEvery: 100, checkpointIntervalSeconds: 3600, rotation: 'none' as const, compressRotated: false, timeZone: 'UTC', retentionMonths: 0 };
    const forward = (id: string) => ({ request_id: id, route: 'y-te', user_id: OFFICIAL, method: 'GET', path: '/y-te/records', rule: 'p, y-te-reader, so-y-te, y-te, /records, GET, allow', policy_version: 'v1' });
    const event = (id: string) => ({ event: { id, kind: 'event', action: 'access-decision' }, http: { request: { id } } });
    const before = new ChainWriter(opts).open();
    expect(await before.forward(forward('served'))).toBe(true);
    before.append(event('served'));
    expect(await before.forward(forward('in-flight'))).toBe(true);
    // SIGKILL here: no event, no closing checkpoint. The next start continues the chain.
    const after = new ChainWriter(opts).open();
    after.append(event('later'));
    await after.close();
    const r = verifyChain(readFilesForVerify([file]), { keys: [signer.publicJwk] });
    expect(r.ok).toBe(true);
    expect(r.complete).toBe(false);
    expect(r.gaps.map((g) => g.message)).toEqual([expect.stringMatching(/request in-flight was forwarded but has no event \(the gateway stopped before writing it\)/)]);
    const fwd = readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .find((rec) => rec.type === 'forward');
    expect(fwd.forward).toMatchObject({ request_id: 'served', route: 'y-te', user_id: OFFICIAL, method: 'GET', policy_version: 'v1' });
  });
});
