import { describe, expect, it } from 'vitest';
import { LOCK_KINDS } from '../gateway/lock-registry.js';
import { DEVICE_STATUSES } from '../identity/devices.js';
import { OFFICIAL_STATUSES } from '../identity/roster.js';
import { APPROVAL_STATUSES, DEVICE_TIERS, CLEARANCES } from '../core/levels.js';
import { ACCESS_STATES } from '../gateway/access/requests.js';
// @ts-expect-error -- a browser module of the admin UI, plain JavaScript without declarations
import { ENUMS, nameOf, REASON_VI } from '../admin-ui/labels.js';
// @ts-expect-error -- idem
import { DICTIONARY } from '../admin-ui/i18n.js';

/**
 * The admin UI names every code the gateway can send it in Vietnamese (the code stays on hover):
 * a reason or status added to the gateway without a name here fails this test, instead of
 * showing up in English inside the Vietnamese screens.
 */

const VIETNAMESE = /[ăâđêôơưàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ]/i;

// Reasons: test/reasons.test.ts.
describe('admin UI labels', () => {
  const lists: [string, readonly string[]][] = [
    ['outcome', ['allow', 'deny']],
    ['approval', APPROVAL_STATUSES],
    ['deviceStatus', DEVICE_STATUSES],
    ['officialStatus', OFFICIAL_STATUSES],
    ['tier', DEVICE_TIERS],
    ['lockKind', LOCK_KINDS],
    ['clearance', CLEARANCES],
    ['policyState', ['draft', 'submitted', 'active', 'superseded', 'rejected']],
    ['accessState', ACCESS_STATES],
  ];
  for (const [kind, codes] of lists) {
    it(`every ${kind} has a Vietnamese and an English name`, () => {
      expect(Object.keys(ENUMS[kind]).sort()).toEqual([...codes].sort());
      for (const code of codes) {
        expect(nameOf(kind, code, 'vi'), `${kind} ${code}`).not.toBe(code);
        expect(nameOf(kind, code, 'en'), `${kind} ${code}`).toBeTruthy();
      }
    });
  }

  it('the Vietnamese names are Vietnamese (written with its letters), most of them at least', () => {
    const names = [...Object.values(REASON_VI), ...Object.values(ENUMS).flatMap((e: any) => Object.values(e).map((n: any) => n.vi))] as string[];
    const without = names.filter((n) => !VIETNAMESE.test(n));
    // Short names may be loanwords (e.g. "Token"), never more than a few.
    expect(without.length, without.join(' | ')).toBeLessThan(names.length / 20);
  });

  it('every interface string exists in both languages', () => {
    expect(Object.keys(DICTIONARY.en).sort()).toEqual(Object.keys(DICTIONARY.vi).sort());
  });
});
