import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { ChainWriter, rotatedFiles } from '../gateway/audit/chain.js';
import { createCheckpointSigner } from '../gateway/audit/keys.js';
import { recordHash } from '../gateway/audit/canonical.js';
import { chainFiles, exportBundle, verifyBundle } from '../gateway/audit/export.js';
import { readFilesForVerify, verifyChain } from '../gateway/audit/verify.js';
import { ROOT } from './helpers/harness.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'ztgate-audit-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const signer = createCheckpointSigner({ alg: 'ES256' });

function event(i: number, at = new Date(Date.UTC(2026, 10, 23, 3, 0, i))): Record<string, unknown> {
  return { '@timestamp': at.toISOString(), event: { kind: 'event', action: 'access-decision', id: `ev-${i}` }, user: { id: '056085000001' }, ztgate: { decision: i % 3 ? 'allow' : 'deny', reasons: ['policy-allowed'] }, message: 'synthetic' };
}

/** A closed chain of `n` events with a checkpoint every `every` events. */
function writeChain(n: number, every = 5): string {
  const file = join(tmp(), 'decisions.log');
  const w = new ChainWriter({ file, signer, checkpointEvery: every, checkpointIntervalSeconds: 3600, rotation: 'none', compressRotated: false, timeZone: 'Asia/Ho_Chi_Minh', retentionMonths: 0 }).open();
  for (let i = 1; i <= n; i++) expect(w.append(event(i))).toBe(true);
  void w.close();
  return file;
}

const lines = (file: string) => readFileSync(file, 'utf8').trimEnd().split('\n');
const save = (file: string, ls: string[]) => writeFileSync(file, `${ls.join('\n')}\n`);
const verifyFile = (file: string) => verifyChain(readFilesForVerify([file]), { keys: [signer.publicJwk] });

describe('hash-chained local log', () => {
  it('an untouched log verifies, with every checkpoint signature checked', () => {
    const file = writeChain(12);
    const r = verifyFile(file);
    expect(r.problem).toBeNull();
    expect(r.ok).toBe(true);
    expect(r.events).toBe(12);
    // open + after 5 + after 10 + close
    expect(r.checkpoints).toBe(4);
    expect(r.keysUsed).toEqual([signer.kid]);
    expect(r.warnings).toEqual([]);
  });

  it('each record links to the one before by prev_hash, and its hash is over its canonical form', () => {
    const recs = lines(writeChain(3)).map((l) => JSON.parse(l));
    expect(recs[0].prev_hash).toBe('0'.repeat(64));
    for (let i = 1; i < recs.length; i++) expect(recs[i].prev_hash).toBe(recs[i - 1].hash);
    for (const r of recs) expect(recordHash(r)).toBe(r.hash);
  });

  it('attack: a field altered in place is caught at its line', () => {
    const file = writeChain(12);
    const ls = lines(file);
    const i = ls.findIndex((l, n) => n > 6 && l.includes('"type":"event"'));
    ls[i] = ls[i]!.replace('"056085000001"', '"056085000009"');
    save(file, ls);
    const r = verifyFile(file);
    expect(r.ok).toBe(false);
    expect(r.problem).toMatchObject({ kind: 'altered', line: i + 1 });
  });

  it('attack: an altered record whose hash was recomputed is caught at its line', () => {
    const file = writeChain(12);
    const ls = lines(file);
    const rec = JSON.parse(ls[3]!);
    rec.event.ztgate.decision = 'allow';
    rec.event.message = 'edited';
    rec.hash = recordHash(rec);
    ls[3] = JSON.stringify(rec);
    save(file, ls);
    expect(verifyFile(file).problem).toMatchObject({ kind: 'altered', line: 4 });
  });

  it('attack: a removed record is caught at the line where the gap shows', () => {
    const file = writeChain(12);
    const ls = lines(file);
    const removedSeq = JSON.parse(ls[4]!).seq;
    ls.splice(4, 1);
    save(file, ls);
    const r = verifyFile(file);
    expect(r.problem).toMatchObject({ kind: 'removed', line: 5 });
    expect(r.problem!.message).toContain(`seq ${removedSeq}`);
  });

  it('attack: an inserted line is caught at its line', () => {
    const file = writeChain(12);
    const ls = lines(file);
    ls.splice(3, 0, JSON.stringify({ ...JSON.parse(ls[2]!), event: event(99) }));
    save(file, ls);
    expect(verifyFile(file).problem).toMatchObject({ kind: 'inserted', line: 4 });
  });

  it('attack: a forged record linked into the chain with a recomputed hash is caught as inserted', () => {
    const file = writeChain(12);
    const ls = lines(file);
    const before = JSON.parse(ls[2]!);
    const forged: any = { seq: before.seq + 1, type: 'event', prev_hash: before.hash, event: event(77) };
    forged.hash = recordHash(forged);
    ls.splice(3, 0, JSON.stringify(forged));
    save(file, ls);
    expect(verifyFile(file).problem).toMatchObject({ kind: 'inserted', line: 4 });
  });

  it('attack: two records swapped are caught as reordered', () => {
    const file = writeChain(12);
    const ls = lines(file);
    [ls[5], ls[6]] = [ls[6]!, ls[5]!];
    save(file, ls);
    expect(verifyFile(file).problem).toMatchObject({ kind: 'reordered', line: 6 });
  });

  it('attack: a whole tail recomputed after an edit is caught by the next signed checkpoint', () => {
    const file = writeChain(12);
    const ls = lines(file);
    const recs = ls.map((l) => JSON.parse(l));
    recs[2].event.user.id = '056085000009';
    for (let i = 2; i < recs.length; i++) {
      if (i > 2) recs[i].prev_hash = recs[i - 1].hash;
      recs[i].hash = recordHash(recs[i]);
    }
    save(
      file,
      recs.map((r) => JSON.stringify(r)),
    );
    const r = verifyFile(file);
    expect(r.problem?.kind).toBe('rewritten');
    expect(recs[r.problem!.line - 1].type).toBe('checkpoint');
  });

  it('attack: a checkpoint signed with another key is refused', () => {
    const file = writeChain(4, 2);
    const other = createCheckpointSigner({ alg: 'ES256' });
    const r = verifyChain(readFilesForVerify([file]), { keys: [other.publicJwk] });
    expect(r.problem).toMatchObject({ kind: 'signature', line: 1 });
  });

  it('without trusted keys, the keys embedded in the log are used and the verifier is warned', () => {
    const file = writeChain(3);
    const r = verifyChain(readFilesForVerify([file]));
    expect(r.ok).toBe(true);
    expect(r.warnings.join('\n')).toContain('--keys');
  });

  it('crypto agility: EdDSA and ES384 checkpoints verify the same way', () => {
    for (const alg of ['EdDSA', 'ES384'] as const) {
      const s = createCheckpointSigner({ alg });
      const file = join(tmp(), 'd.log');
      const w = new ChainWriter({ file, signer: s, checkpointEvery: 2, checkpointIntervalSeconds: 3600, rotation: 'none', compressRotated: false, timeZone: 'UTC', retentionMonths: 0 }).open();
      for (let i = 0; i < 5; i++) w.append(event(i));
      void w.close();
      expect(verifyChain(readFilesForVerify([file]), { keys: [s.publicJwk] }).ok).toBe(true);
    }
  });

  it('continues the chain after a restart, and cuts a record torn by a crash (said so in the signed open checkpoint)', () => {
    const file = writeChain(3);
    writeFileSync(file, `${readFileSync(file, 'utf8')}{"seq":99,"type":"ev`);
    const w = new ChainWriter({ file, signer, checkpointEvery: 5, checkpointIntervalSeconds: 3600, rotation: 'none', compressRotated: false, timeZone: 'UTC', retentionMonths: 0 }).open();
    w.append(event(4));
    void w.close();
    const r = verifyFile(file);
    expect(r.ok).toBe(true);
    const open = lines(file)
      .map((l) => JSON.parse(l))
      .filter((x) => x.checkpoint?.reason === 'open');
    expect(open).toHaveLength(2);
    expect(open[1].checkpoint.truncated_bytes).toBe(Buffer.byteLength('{"seq":99,"type":"ev'));
  });

  it('a log it cannot write is reported unhealthy instead of throwing (/dev/full)', () => {
    const w = new ChainWriter({ file: '/dev/full', signer, checkpointEvery: 5, checkpointIntervalSeconds: 3600, rotation: 'none', compressRotated: false, timeZone: 'UTC', retentionMonths: 0 }).open();
    expect(w.healthy()).toBe(false);
    expect(w.append(event(1))).toBe(false);
    expect(w.healthy()).toBe(false);
  });
});

describe('rotation and retention', () => {
  it('rotates daily, gzips the day, continues the chain across files, deletes past retention with a signed record of it', async () => {
    const dir = tmp();
    const file = join(dir, 'decisions.log');
    let now = new Date('2026-01-10T03:00:00Z');
    const opts = { file, signer, checkpointEvery: 100, checkpointIntervalSeconds: 3600, rotation: 'daily' as const, compressRotated: true, timeZone: 'Asia/Ho_Chi_Minh', retentionMonths: 3, now: () => now };
    const w = new ChainWriter(opts).open();
    w.append(event(1, now));
    now = new Date('2026-01-11T03:00:00Z');
    w.append(event(2, now));
    now = new Date('2026-03-01T03:00:00Z');
    w.append(event(3, now));
    await Promise.all([...w.pending]);
    const rotated = rotatedFiles(file);
    expect(rotated.map((f) => f.day)).toEqual(['2026-01-10', '2026-01-11']);
    expect(rotated.every((f) => f.path.endsWith('.log.gz'))).toBe(true);
    expect(verifyChain(readFilesForVerify(chainFiles(file)), { keys: [signer.publicJwk] }).ok).toBe(true);

    // Five months on: both January days are past 3 months and go, recorded first.
    now = new Date('2026-06-02T03:00:00Z');
    w.append(event(4, now));
    await w.close();
    const left = chainFiles(file);
    expect(left.some((p) => p.includes('2026-01-1'))).toBe(false);
    const r = verifyChain(readFilesForVerify(left), { keys: [signer.publicJwk] });
    expect(r.ok).toBe(true);
    expect(r.warnings.join('\n')).toContain('deleted by retention');
    const retention = left
      .flatMap((p) => (p.endsWith('.gz') ? [] : lines(p)))
      .map((l) => JSON.parse(l))
      .find((x) => x.checkpoint?.reason === 'retention');
    expect(retention.checkpoint.deleted.map((d: any) => d.file)).toEqual(['decisions-2026-01-10.log.gz', 'decisions-2026-01-11.log.gz']);
  });
});

describe('evidence bundle', () => {
  it('exports a time range with its chain proof and keys, and the bundle verifies in another folder', () => {
    const file = writeChain(20, 4);
    const out = join(tmp(), 'bundle');
    const r = exportBundle({ files: [file], from: new Date(Date.UTC(2026, 10, 23, 3, 0, 6)), to: new Date(Date.UTC(2026, 10, 23, 3, 0, 9)), out, keys: [signer.publicJwk] });
    expect(r.events).toBe(4);
    expect(r.signedEnd).toBe(true);
    const elsewhere = join(tmp(), 'copied');
    cpSync(out, elsewhere, { recursive: true });
    expect(readdirSync(elsewhere).sort()).toEqual(['README.txt', 'chain.jsonl', 'events.jsonl', 'keys.jwks.json', 'manifest.json']);
    const v = verifyBundle(elsewhere);
    expect(v.manifestProblems).toEqual([]);
    expect(v.ok).toBe(true);
  });

  it('attack: an event edited inside a bundle is caught', () => {
    const file = writeChain(10, 4);
    const out = join(tmp(), 'bundle');
    exportBundle({ files: [file], from: new Date(Date.UTC(2026, 10, 23, 3, 0, 2)), to: new Date(Date.UTC(2026, 10, 23, 3, 0, 3)), out, keys: [signer.publicJwk] });
    const p = join(out, 'events.jsonl');
    writeFileSync(p, readFileSync(p, 'utf8').replace('056085000001', '056085000002'));
    const v = verifyBundle(out);
    expect(v.ok).toBe(false);
    expect(v.manifestProblems.join('\n')).toContain('events.jsonl');
  });

  it('refuses to export from a log that does not verify', () => {
    const file = writeChain(6);
    const ls = lines(file);
    ls.splice(2, 1);
    save(file, ls);
    expect(() => exportBundle({ files: [file], from: new Date(0), to: new Date(), out: join(tmp(), 'b'), keys: [signer.publicJwk] })).toThrow(/does not verify/);
  });
});

describe('ztgate audit (command line)', () => {
  const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'gateway/cli.ts'), 'audit', ...args], { cwd: ROOT, encoding: 'utf8' });

  it('verify exits 0 on an intact log and 1 with the line of the first tampered record', () => {
    const file = writeChain(8);
    const keysFile = join(tmp(), 'keys.json');
    writeFileSync(keysFile, JSON.stringify({ keys: [signer.publicJwk] }));
    const ok = cli(['verify', file, '--keys', keysFile]);
    expect(ok.stdout).toContain('OK');
    expect(ok.status).toBe(0);
    const ls = lines(file);
    ls[4] = ls[4]!.replace('"deny"', '"allow"').replace('"allow"', '"deny"');
    save(file, ls);
    const bad = cli(['verify', file, '--keys', keysFile]);
    expect(bad.stdout).toContain(`${file}:5`);
    expect(bad.stdout).toContain('[altered]');
    expect(bad.status).toBe(1);
  });

  it('export then verify --bundle round-trips through the CLI', () => {
    const file = writeChain(8);
    const out = join(tmp(), 'ev');
    const ex = cli(['export', '--chain', file, '--from', '2026-11-23T03:00:02Z', '--to', '2026-11-23T03:00:05Z', '--out', out]);
    expect(ex.stderr).toBe('');
    expect(ex.status).toBe(0);
    expect(existsSync(join(out, 'manifest.json'))).toBe(true);
    const v = cli(['verify', '--bundle', out]);
    expect(v.stdout).toContain('OK');
    expect(v.status).toBe(0);
  });

  it('usage errors exit 2', () => {
    expect(cli(['verify']).status).toBe(2);
    expect(cli(['export', '--from', 'x']).status).toBe(2);
  });
});
