import { describe, expect, it } from 'vitest';
import { GatewayError } from '../gateway/errors.js';
import { checkPath } from '../gateway/steps/edge.js';
import { isNationalId, maskNationalId } from '../core/national-id.js';

describe('checkPath accepts paths every parser reads the same way', () => {
  it.each([
    ['a plain path', '/a/b', '/a/b', '/a/b'],
    ['the root', '/', '/', '/'],
    ['a trailing slash, kept as sent', '/a/b/', '/a/b/', '/a/b/'],
    ['an encoded slash in the query: the query is not the path', '/a/b?x=%2F', '/a/b', '/a/b'],
    ['dot segments in the query', '/a/b?next=../../admin', '/a/b', '/a/b'],
    ['a fragment-like # in the query', '/a/b?x=1#frag', '/a/b', '/a/b'],
    ['Vietnamese in UTF-8 percent-encoding, decoded for policy', '/a/%C3%A1', '/a/%C3%A1', '/a/á'],
    ['a file extension', '/a/b.json', '/a/b.json', '/a/b.json'],
    ['a hidden-file name', '/a/.well-known', '/a/.well-known', '/a/.well-known'],
    // Three dots are no dot segment (RFC 3986 §5.2.4 removes only "." and ".."): a literal name.
    ['three dots, a legal segment name', '/a/...', '/a/...', '/a/...'],
    ['dots inside a name', '/a/..b', '/a/..b', '/a/..b'],
    ['an encoded space', '/a/b%20c', '/a/b%20c', '/a/b c'],
  ])('%s: %s', (_what, target, rawPath, path) => {
    expect(checkPath(target)).toEqual({ rawPath, path });
  });
});

describe('checkPath refuses paths that could be read two ways', () => {
  it.each([
    ['a relative request target', 'a/b', /absolute path/],
    ['an absolute-form target', 'http://upstream.internal/a', /absolute path/],
    ['the asterisk form', '*', /absolute path/],
    ['a fragment in the path', '/a/b#x', /fragment/],
    ['a backslash', '/a\\b', /backslash/],
    ['an empty segment', '/a//b', /empty path segment/],
    ['a leading empty segment', '//upstream.internal/a', /empty path segment/],
    ['a raw control character', '/a/\u0001b', /control character/],
    ['a raw DEL', '/a/\u007fb', /control character/],
    ['a lone %', '/a/%', /malformed percent-encoding/],
    ['a % with one hex digit', '/a/%2', /malformed percent-encoding/],
    ['a % with non-hex digits', '/a/%zz', /malformed percent-encoding/],
    ['an encoded slash', '/a/..%2Fadmin', /encoded slash/],
    ['an encoded slash in lower case', '/records%2f..%2fadmin', /encoded slash/],
    ['an encoded backslash', '/a/%5Cb', /encoded backslash/],
    ['double encoding', '/a/%252e%252e/b', /double encoding/],
    ['an encoded NUL', '/a/b%00.json', /encoded control character or NUL/],
    ['an encoded newline', '/a/b%0A', /encoded control character or NUL/],
    ['an encoded DEL', '/a/b%7F', /encoded control character or NUL/],
    ['a truncated UTF-8 sequence', '/a/%C3', /not valid UTF-8/],
    ['an overlong UTF-8 dot', '/a/%C0%AE%C0%AE/b', /not valid UTF-8/],
    ['a ".." segment', '/x/../records', /dot segment/],
    ['a "." segment', '/a/./b', /dot segment/],
    ['a trailing ".." segment', '/a/..', /dot segment/],
    ['an encoded ".." segment', '/a/%2e%2e/b', /dot segment/],
    ['a half-encoded ".." segment', '/a/.%2E/b', /dot segment/],
    ['an encoded "." segment', '/a/%2E/b', /dot segment/],
    ['a ".." segment with a path parameter (Tomcat)', '/a/..;/admin', /path parameter/],
    ['a ".." segment with an encoded path parameter', '/a/..%3Bx/admin', /path parameter/],
    ['a path parameter that servlet containers strip: /admin;x → /admin', '/admin;x', /path parameter/],
    ['an encoded LINE SEPARATOR (U+2028), which ".*" does not match', '/echo/4%E2%80%A82', /separator/],
    ['an encoded PARAGRAPH SEPARATOR (U+2029)', '/echo/4%E2%80%A92', /separator/],
    ['an encoded ZERO WIDTH SPACE format character (U+200B)', '/echo/admin%E2%80%8B', /format/],
  ])('%s: %s', (_what, target, detail) => {
    let error: unknown;
    try {
      checkPath(target);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(GatewayError);
    expect(error).toMatchObject({ code: 'ZTG_ERR_PATH_AMBIGUOUS', statusCode: 400, reason: 'path-ambiguous' });
    expect((error as Error).message).toMatch(detail);
  });
});

describe('isNationalId: the 12-digit personal identification number', () => {
  it.each([
    ['a Khánh Hòa number', '056085000001'],
    ['a Hà Nội number', '001203004567'],
    ['an unknown prefix (birth registered abroad)', '999300000001'],
    ['all zeros', '000000000000'],
  ])('accepts %s', (_what, value) => {
    expect(isNationalId(value)).toBe(true);
  });

  it.each([
    ['11 digits', '05608500000'],
    ['13 digits', '0560850000011'],
    ['a letter', '05608500000A'],
    ['spaces', '056 085 000 001'],
    ['a trailing newline', '056085000001\n'],
    ['full-width digits', '０５６０８５０００００１'],
    ['Arabic-Indic digits', '٠٥٦٠٨٥٠٠٠٠٠١'],
    ['the number as a number', 56085000001],
    ['a 12-digit number as a number', 156085000001],
    ['a bigint', 56085000001n],
    ['an array holding the string', ['056085000001']],
    ['an empty string', ''],
    ['null', null],
    ['undefined', undefined],
  ])('rejects %s', (_what, value) => {
    expect(isNationalId(value)).toBe(false);
  });
});

describe('maskNationalId', () => {
  it('keeps only the province code and the last two digits', () => {
    expect(maskNationalId('056085000001')).toBe('056*******01');
    expect(maskNationalId('056085000001')).toHaveLength(12);
  });

  it('hides the century-and-sex digit: two officials differing only there mask alike', () => {
    expect(maskNationalId('056185000001')).toBe(maskNationalId('056085000001'));
  });

  it('reveals nothing of a value that is not a national ID', () => {
    expect(maskNationalId('05608500000')).toBe('************');
    expect(maskNationalId('056085000001x')).toBe('************');
  });
});
