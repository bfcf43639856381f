import { describe, expect, it } from 'vitest';
import { checkBody, checkMethod, checkPath, stripForgeableIdentityHeaders } from '../../gateway/steps/edge.js';
import { refusalOf } from '../helpers/in-process.js';

/** Step 1 alone (gateway/steps/edge.ts): what passes the edge, and the reason of what does not. */

describe('edge hygiene', () => {
  it('lets a plain path, method and body through, decoded for the policy', () => {
    expect(checkPath('/echo/h%E1%BB%99-t%E1%BB%8Bch?page=2')).toEqual({ rawPath: '/echo/h%E1%BB%99-t%E1%BB%8Bch', path: '/echo/hộ-tịch' });
    expect(() => checkMethod('GET')).not.toThrow();
    expect(() => checkBody({ 'content-length': '10' }, 100)).not.toThrow();
  });

  it('refuses paths that parsers read two ways: 400 path-ambiguous', async () => {
    for (const url of ['/echo/../admin', '/echo/%2e%2e/admin', '/echo/a%2fb', '/echo//x', '/echo/a;b', '/echo/%252e', 'echo/x']) {
      const err = await refusalOf(() => checkPath(url));
      expect([url, err.statusCode, err.reason]).toEqual([url, 400, 'path-ambiguous']);
    }
  });

  it('refuses a method it does not forward (405 method-not-allowed, with Allow)', async () => {
    const err = await refusalOf(() => checkMethod('TRACE'));
    expect([err.statusCode, err.reason]).toEqual([405, 'method-not-allowed']);
    expect(err.headers.allow).toContain('GET');
  });

  it('refuses a body over the limit (413), a chunked body (411) and a Content-Length that is not a number (400)', async () => {
    expect((await refusalOf(() => checkBody({ 'content-length': '101' }, 100))).reason).toBe('body-too-large');
    expect((await refusalOf(() => checkBody({ 'transfer-encoding': 'chunked' }, 100))).reason).toBe('length-required');
    expect((await refusalOf(() => checkBody({ 'content-length': '1e3' }, 100))).reason).toBe('request-malformed');
  });

  it('strips every identity header a client could forge, and names them for the event', () => {
    const headers = { 'x-ztgate-assertion': 'forged', 'x-forwarded-user': 'admin', 'x-national-id': '056080000001', accept: 'application/json' };
    expect(stripForgeableIdentityHeaders(headers).sort()).toEqual(['x-forwarded-user', 'x-national-id', 'x-ztgate-assertion']);
    expect(headers).toEqual({ accept: 'application/json' });
  });
});
