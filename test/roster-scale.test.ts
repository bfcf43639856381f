import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, TEST_AUDIENCE, type Harness } from './helpers/harness.js';
import { decodeRosterEntry, encodeRosterEntry, parseCsv, type RosterEntry } from '../identity/roster.js';

/**
 * A province's roster has tens of thousands of officials: the gateway must start with one of
 * 100,000 (synthetic) and decide on the last of them like the first. Loading it once spread every
 * national ID into one call and overflowed the stack, so the gateway could not start at all.
 */
const OFFICIALS = 100_000;
const idOf = (i: number) => `0010${String(90000000 + i).slice(-8)}`;

describe('a roster of 100,000 officials', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ztgate-roster-scale-'));
  let h: Harness;
  beforeAll(async () => {
    const lines = ['# synthetic roster, not real people / danh sách giả lập', 'nationalId,name,agency,unit,position,roles,clearance,status'];
    for (let i = 0; i < OFFICIALS; i++) lines.push(`${idOf(i)},Cán bộ giả lập ${i},so-tu-phap,Phòng ${i % 100},Chuyên viên,ho-tich-reader,none,${i === OFFICIALS - 2 ? 'suspended' : 'active'}`);
    writeFileSync(join(dir, 'roster.csv'), `${lines.join('\n')}\n`);
    h = await startHarness({ configure: (doc) => void (doc.identity.roster = { source: 'file', file: join(dir, 'roster.csv') }) });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = async (nationalId: string) => {
    const now = Math.floor(Date.now() / 1000);
    // The token claims another agency and no roles: what counts is the roster's entry.
    const token = await h.testIssuer.sign({ iss: h.testIssuer.issuer, aud: TEST_AUDIENCE, sub: nationalId, national_id: nationalId, agency: 'so-khac', roles: [], iat: now, exp: now + 300 });
    const res = await fetch(`${h.gateway.url}/echo/x`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, event: await h.sink.forRequest(res.headers.get('x-request-id')) };
  };

  it('starts, and the last official on it is allowed with the roster role', async () => {
    const { status, event } = await call(idOf(OFFICIALS - 1));
    expect(status).toBe(200);
    expect(event.ztgate).toMatchObject({ decision: 'allow' });
    expect(event.organization).toMatchObject({ id: 'so-tu-phap' });
  });

  it('an official suspended on it is refused, and someone not on it too', async () => {
    expect((await call(idOf(OFFICIALS - 2))).event.ztgate).toMatchObject({ decision: 'deny', reasons: ['official-suspended'] });
    expect((await call(idOf(OFFICIALS))).event.ztgate).toMatchObject({ decision: 'deny', reasons: ['official-not-on-roster'] });
  });
});

describe('the roster kept compact', () => {
  it('CSV rows without quotes and rows with them parse alike, with their line numbers', () => {
    const csv = 'a,b\r\n\n1,2\n"x, ""y""",3\n"multi\nline",4\n5,6\n';
    expect(parseCsv(csv)).toEqual({
      rows: [
        ['a', 'b'],
        ['1', '2'],
        ['x, "y"', '3'],
        ['multi\nline', '4'],
        ['5', '6'],
      ],
      lines: [1, 3, 4, 5, 7],
    });
  });

  const entry: RosterEntry = { nationalId: '056085000001', name: 'Nguyễn Thị Ánh 🌸 (giả lập)', agency: 'so-tu-phap', unit: 'Phòng Hộ tịch', position: 'Chuyên viên', roles: ['ho-tich-reader', 'b'], clearance: 'toi-mat', status: 'active' };
  it('an entry is stored as ASCII JSON and reads back the same; entries written as objects still read', () => {
    const stored = encodeRosterEntry(entry);
    expect(stored).toMatch(/^[\x20-\x7e]+$/);
    expect(decodeRosterEntry(stored)).toEqual(entry);
    expect(decodeRosterEntry(JSON.stringify(entry))).toEqual(entry);
  });
});
