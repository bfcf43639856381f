import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base64url, decodeProtectedHeader, generateKeyPair, SignJWT } from 'jose';
import { startHarness, type Harness } from './helpers/harness.js';

const ALLOWED = '056085000001'; // Nguyễn Văn An, Sở Tư pháp, ho-tich-reader
const COMMUNE = '056088000003'; // Lê Văn Cường, phường Nha Trang, ho-tich-reader
const NO_RULE = '056080000005'; // Hoàng Văn Em, Sở Tư pháp, van-thu
const HEALTH = '056190000002'; // Trần Thị Bình, Sở Y tế, y-te-reader

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

async function call(path: string, init: RequestInit & { token?: string } = {}) {
  const headers = new Headers(init.headers);
  if (init.token) headers.set('authorization', `Bearer ${init.token}`);
  const res = await fetch(`${h.gateway.url}${path}`, { ...init, headers, redirect: 'manual' });
  const text = await res.text();
  const event = await h.sink.forRequest(res.headers.get('x-request-id'));
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { res, body, event };
}

/** Sends a request target exactly as written: fetch would normalise away what these tests attack with. */
function rawCall(target: string, headers: Record<string, string> = {}, method = 'GET') {
  const url = new URL(h.gateway.url);
  return new Promise<{ status: number; body: any; requestId: string | null }>((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path: target, headers }, (res) => {
      let data = '';
      res.on('data', (c) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: data ? JSON.parse(data) : null, requestId: (res.headers['x-request-id'] as string) ?? null }));
    });
    req.on('error', reject);
    req.end();
  });
}

function claims(overrides: Record<string, unknown> = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { iss: h.testIssuer.issuer, aud: 'urn:ztgate:data', sub: ALLOWED, national_id: ALLOWED, agency: 'so-tu-phap', roles: ['ho-tich-reader'], iat: now, exp: now + 300, ...overrides };
}

describe('an allowed official', () => {
  it('gets the upstream body, and the upstream verified the gateway assertion', async () => {
    const { res, body, event } = await call('/ho-tich/records?limit=2', { token: await h.token(ALLOWED) });
    expect(res.status).toBe(200);
    expect(body.synthetic).toBe(true);
    expect(body.items).toHaveLength(2);
    // The demo data service refuses anything without a valid assertion; it echoes who it saw.
    expect(body.requestedBy).toEqual({ nationalId: ALLOWED, agency: 'so-tu-phap' });
    expect(event.ztgate.decision).toBe('allow');
    expect(event.ztgate.reasons).toEqual(['policy-allowed']);
    expect(event.ztgate.rule).toBe('p, ho-tich-reader, *, ho-tich, /records, GET|HEAD, allow');
    expect(event.ztgate.policy_version).toMatch(/^sha256:[0-9a-f]{16}$/);
    expect(event.user).toEqual({ id: ALLOWED, roles: ['ho-tich-reader'] });
    expect(event.organization).toEqual({ id: 'so-tu-phap' });
    expect(event.ztgate.route).toMatchObject({ id: 'ho-tich', security_level: 3 });
    expect(event.http).toEqual({ request: { id: res.headers.get('x-request-id'), method: 'GET' }, response: { status_code: 200 } });
    expect(event.url.path).toBe('/ho-tich/records');
    expect(event.source.ip).toBe('127.0.0.1');
    expect(event.source.port).toBeGreaterThan(0);
    expect(event.event.duration).toBeGreaterThan(0);
    expect(event['@timestamp']).toMatch(/^\d{4}-\d{2}-\d{2}T/);
  });

  it('reaches the upstream with a verifiable assertion naming the official, the rule and the decision', async () => {
    const before = h.upstreams.recording.received.length;
    const { res, event } = await call('/echo/things/1?x=1', { token: await h.token(ALLOWED) });
    expect(res.status).toBe(200);
    const got = h.upstreams.recording.received[before]!;
    expect(got.url).toBe('/api/things/1?x=1');
    expect(got.assertionError).toBeNull();
    expect(got.assertion!.payload).toMatchObject({ sub: ALLOWED, agency: 'so-tu-phap', roles: ['ho-tich-reader'], route: 'echo', jti: event.event.id, policy_version: event.ztgate.policy_version });
    expect(got.assertion!.payload.exp! - got.assertion!.payload.iat!).toBe(60);
    // Good for this request only: the method and the path the upstream received.
    expect(got.assertion!.payload.http).toEqual({ method: 'GET', path: '/api/things/1' });
    expect(decodeProtectedHeader(String(got.headers['x-ztgate-assertion'])).alg).toBe('ES256');
  });

  it('reads a record by id', async () => {
    const { res, body } = await call('/ho-tich/records/HT-2024-000001', { token: await h.token(ALLOWED) });
    expect(res.status).toBe(200);
    expect(body.item.id).toBe('HT-2024-000001');
  });
});

describe('denied by policy', () => {
  it('an official whom no rule allows gets 403 policy-no-match', async () => {
    const { res, body, event } = await call('/ho-tich/records', { token: await h.token(NO_RULE) });
    expect(res.status).toBe(403);
    expect(body.error).toMatchObject({ code: 'ZTG_ERR_FORBIDDEN', reason: 'policy-no-match' });
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['policy-no-match'], rule: null });
    expect(event.user.id).toBe(NO_RULE);
  });

  it('an official of another sector is refused the service', async () => {
    const { res, event } = await call('/ho-tich/records', { token: await h.token(HEALTH) });
    expect(res.status).toBe(403);
    expect(event.ztgate.reasons).toEqual(['policy-no-match']);
  });

  it('a deny rule overrides the allow rule that also matches (commune official adding a note)', async () => {
    const token = await h.token(COMMUNE);
    const read = await call('/ho-tich/records/HT-2024-000001', { token });
    expect(read.res.status).toBe(200);
    const { res, event } = await call('/ho-tich/records/HT-2024-000001/notes', {
      token,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ note: 'x' }),
    });
    expect(res.status).toBe(403);
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['policy-denied'], rule: 'p, ho-tich-reader, phuong-nha-trang, ho-tich, /records/:id/notes, POST, deny' });
  });

  it('a rule for one national ID applies to that official only', async () => {
    const { res, event } = await call('/echo/personal/1', { token: await h.token(NO_RULE) });
    expect(res.status).toBe(200);
    expect(event.ztgate.rule).toBe('p, 056080000005, so-tu-phap, echo, /personal/*, GET, allow');
  });

  it('DELETE is denied for everyone by the global deny rule', async () => {
    const { res, event } = await call('/echo/things/1', { token: await h.token(ALLOWED), method: 'DELETE' });
    expect(res.status).toBe(403);
    expect(event.ztgate.reasons).toEqual(['policy-denied']);
  });
});

describe('authentication attacks', () => {
  it('no token → 401 token-missing with a Bearer challenge', async () => {
    const { res, body, event } = await call('/ho-tich/records');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="ztgate"');
    expect(res.headers.get('x-ztgate-error')).toBe('ZTG_ERR_UNAUTHENTICATED');
    expect(body).toMatchObject({ error: { code: 'ZTG_ERR_UNAUTHENTICATED', reason: 'token-missing' }, requestId: res.headers.get('x-request-id') });
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['token-missing'], error_code: 'ZTG_ERR_UNAUTHENTICATED' });
    expect(event.user).toBeUndefined();
  });

  it('a non-Bearer scheme → 401 token-malformed', async () => {
    const { res, event } = await call('/ho-tich/records', { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    expect(res.status).toBe(401);
    expect(event.ztgate.reasons).toEqual(['token-malformed']);
  });

  it('garbage → 401 token-malformed', async () => {
    const { res, event } = await call('/ho-tich/records', { token: 'not.a.jwt' });
    expect(res.status).toBe(401);
    expect(event.ztgate.reasons).toEqual(['token-malformed']);
  });

  it('a real token with its payload altered → 401 token-signature-invalid', async () => {
    const [head, payload, sig] = (await h.token(NO_RULE)).split('.');
    const forged = { ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), roles: ['ho-tich-reader'] };
    const { res, event } = await call('/ho-tich/records', { token: `${head}.${base64url.encode(JSON.stringify(forged))}.${sig}` });
    expect(res.status).toBe(401);
    expect(event.ztgate.reasons).toEqual(['token-signature-invalid']);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('signed by a key the issuer never published (same kid) → 401 token-signature-invalid', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const token = await h.testIssuer.sign(claims(), {}, privateKey);
    const { res, event } = await call('/ho-tich/records', { token });
    expect(res.status).toBe(401);
    expect(event.ztgate.reasons).toEqual(['token-signature-invalid']);
  });

  it('an unknown kid → 401 token-key-unknown', async () => {
    const token = await h.testIssuer.sign(claims(), { kid: 'no-such-key' });
    const { res, event } = await call('/ho-tich/records', { token });
    expect(res.status).toBe(401);
    expect(event.ztgate.reasons).toEqual(['token-key-unknown']);
  });

  it('expired beyond the clock skew → 401 token-expired', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await h.testIssuer.sign(claims({ iat: now - 600, exp: now - 31 }));
    const { res, event } = await call('/ho-tich/records', { token });
    expect(res.status).toBe(401);
    expect(event.ztgate.reasons).toEqual(['token-expired']);
  });

  it('expired within the clock skew is still accepted', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await h.testIssuer.sign(claims({ iat: now - 600, exp: now - 10 }));
    const { res } = await call('/ho-tich/records', { token });
    expect(res.status).toBe(200);
  });

  it('not valid yet (nbf) beyond the clock skew → 401 token-not-yet-valid', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await h.testIssuer.sign(claims({ nbf: now + 120 }));
    const { res, event } = await call('/ho-tich/records', { token });
    expect(res.status).toBe(401);
    expect(event.ztgate.reasons).toEqual(['token-not-yet-valid']);
  });

  it('an issuer that is not configured → 401 token-issuer-untrusted', async () => {
    const token = await h.testIssuer.sign(claims({ iss: 'https://idp.attacker.example' }));
    const { res, event } = await call('/ho-tich/records', { token });
    expect(res.status).toBe(401);
    expect(event.ztgate.reasons).toEqual(['token-issuer-untrusted']);
  });

  it('a token for another audience → 401 token-audience-invalid', async () => {
    const token = await h.testIssuer.sign(claims({ aud: 'urn:other:api' }));
    const { res, event } = await call('/ho-tich/records', { token });
    expect(res.status).toBe(401);
    expect(event.ztgate.reasons).toEqual(['token-audience-invalid']);
  });

  it('alg: none → 401 token-algorithm-not-allowed', async () => {
    const head = base64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt' }));
    const body = base64url.encode(JSON.stringify(claims()));
    const { res, event } = await call('/ho-tich/records', { token: `${head}.${body}.` });
    expect(res.status).toBe(401);
    expect(event.ztgate.reasons).toEqual(['token-algorithm-not-allowed']);
  });

  it('HS256 signed with the issuer public key as the HMAC secret → 401 token-algorithm-not-allowed', async () => {
    const secret = new TextEncoder().encode(JSON.stringify(h.testIssuer.publicJwk));
    const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: h.testIssuer.kid, typ: 'at+jwt' }).sign(secret);
    const { res, event } = await call('/ho-tich/records', { token });
    expect(res.status).toBe(401);
    expect(event.ztgate.reasons).toEqual(['token-algorithm-not-allowed']);
  });

  it('an ID token (typ JWT) presented as an access token → 401 token-type-invalid', async () => {
    const token = await h.testIssuer.sign(claims(), { typ: 'JWT' });
    const { res, event } = await call('/ho-tich/records', { token });
    expect(res.status).toBe(401);
    expect(event.ztgate.reasons).toEqual(['token-type-invalid']);
  });

  it('a valid token without a national ID → 403 identity-national-id-missing', async () => {
    const { national_id: _n, ...rest } = claims();
    const { res, event } = await call('/ho-tich/records', { token: await h.testIssuer.sign(rest) });
    expect(res.status).toBe(403);
    expect(event.ztgate.reasons).toEqual(['identity-national-id-missing']);
  });

  it('attack: an agency claim that is not an agency id (it would split report rows) → 403 token-claim-invalid', async () => {
    const { res, event } = await call('/ho-tich/records', { token: await h.testIssuer.sign(claims({ agency: 'so-tu-phap|ho-tich|allow' })) });
    expect(res.status).toBe(403);
    expect(event.ztgate.reasons).toEqual(['token-claim-invalid']);
  });

  it('a national ID that is not 12 digits → 403 identity-national-id-invalid', async () => {
    const { res, event } = await call('/ho-tich/records', { token: await h.testIssuer.sign(claims({ national_id: '05608500000' })) });
    expect(res.status).toBe(403);
    expect(event.ztgate.reasons).toEqual(['identity-national-id-invalid']);
  });

  it('the token never appears in the decision event', async () => {
    const token = await h.token(ALLOWED);
    const { event } = await call('/ho-tich/records', { token, headers: { cookie: 'session=secret-cookie-value' } });
    const line = JSON.stringify(event);
    expect(line).not.toContain(token.split('.')[1]!);
    expect(line).not.toContain('secret-cookie-value');
  });
});

describe('routing', () => {
  it('an unknown route → 404 without upstream details', async () => {
    const { res, body, event } = await call('/khong-ton-tai/records', { token: await h.token(ALLOWED) });
    expect(res.status).toBe(404);
    expect(body.error).toMatchObject({ code: 'ZTG_ERR_ROUTE_NOT_FOUND', reason: 'route-not-found' });
    expect(JSON.stringify(body)).not.toMatch(/127\.0\.0\.1|upstream/);
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['route-not-found'], route: null });
  });

  it('a prefix that only starts like a route is not that route', async () => {
    const { res } = await call('/ho-tichX/records', { token: await h.token(ALLOWED) });
    expect(res.status).toBe(404);
  });

  it('an unapproved service is refused and never forwarded to', async () => {
    const before = h.upstreams.recording.received.length;
    const { res, body, event } = await call('/cong-thuong/records', { token: await h.token(ALLOWED) });
    expect(res.status).toBe(403);
    expect(body.error.reason).toBe('route-not-approved');
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['route-not-approved'] });
    expect(h.upstreams.recording.received.length).toBe(before);
  });

  it('publishes its assertion keys at /.well-known/jwks.json', async () => {
    const { res, body, event } = await call('/.well-known/jwks.json');
    expect(res.status).toBe(200);
    expect(body.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(body.keys[0].d).toBeUndefined();
    expect(event.ztgate).toMatchObject({ decision: 'allow', reasons: ['public-endpoint'] });
  });
});

describe('edge hygiene', () => {
  it('client-sent identity and assertion headers never reach the upstream', async () => {
    const before = h.upstreams.recording.received.length;
    const forged = {
      'x-ztgate-assertion': 'eyJhbGciOiJub25lIn0.eyJzdWIiOiIwMDAwMDAwMDAwMDAifQ.',
      'x-forwarded-user': '000000000000',
      'x-forwarded-email': 'giam-doc@example.gov.vn',
      'x-remote-user': 'admin',
      'remote-user': 'admin',
      'x-national-id': '000000000000',
      'x-user-id': 'admin',
      'x-auth-request-user': 'admin',
      'x-pomerium-jwt-assertion': 'x',
      'x-ssl-client-s-dn': 'CN=admin',
      'x-forwarded-for': '10.0.0.1',
      'x-request-id': 'client-chosen-id',
      'x-purpose': 'HS-2026-001',
    };
    const { res, event } = await call('/echo/headers', { token: await h.token(ALLOWED), headers: forged });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).not.toBe('client-chosen-id');
    const got = h.upstreams.recording.received[before]!;
    for (const name of Object.keys(forged)) {
      if (name === 'x-ztgate-assertion' || name === 'x-request-id' || name === 'x-purpose') continue;
      expect(got.headers[name], name).toBeUndefined();
    }
    expect(got.headers.authorization).toBeUndefined();
    expect(got.headers['x-request-id']).toBe(res.headers.get('x-request-id'));
    expect(got.headers['x-ztgate-assertion']).not.toBe(forged['x-ztgate-assertion']);
    expect(got.assertionError).toBeNull();
    expect(got.headers['x-purpose']).toBe('HS-2026-001'); // explicitly forwarded by this route
    expect(event.ztgate.stripped_headers).toEqual(expect.arrayContaining(['x-ztgate-assertion', 'x-forwarded-user', 'x-national-id']));
  });

  it.each([
    ['/ho-tich/records/..%2Fadmin', 'encoded slash'],
    ['/ho-tich/records%2f1', 'encoded slash, lower case'],
    ['/ho-tich/records/%5c..%5cadmin', 'encoded backslash'],
    ['/ho-tich/../echo/records', 'dot segment'],
    ['/ho-tich/./records', 'single dot segment'],
    ['/ho-tich/%2e%2e/echo', 'encoded dot segment'],
    ['/ho-tich/records/%252e%252e/admin', 'double encoding'],
    ['/ho-tich/records/%00', 'encoded NUL'],
    ['/ho-tich//records', 'empty segment'],
    ['/ho-tich/..;/echo', 'dot segment with parameter'],
    ['/ho-tich/records/%zz', 'malformed percent-encoding'],
    ['/ho-tich/records/%c0%ae', 'overlong UTF-8'],
    ['/echo/4%E2%80%A82', 'line separator that ".*" in a deny pattern would not match'],
  ])('%s (%s) → 400 path-ambiguous', async (target) => {
    const before = h.upstreams.recording.received.length;
    const { status, body, requestId } = await rawCall(target, { authorization: `Bearer ${await h.token(ALLOWED)}` });
    expect(status).toBe(400);
    expect(body.error.reason).toBe('path-ambiguous');
    const event = await h.sink.forRequest(requestId);
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['path-ambiguous'] });
    expect(h.upstreams.recording.received.length).toBe(before);
  });

  it('a declared body over the limit → 413 body-too-large, before authentication', async () => {
    const { res, event } = await call('/echo/upload', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.alloc(1024 * 1024 + 1) });
    expect(res.status).toBe(413);
    expect(event.ztgate.reasons).toEqual(['body-too-large']);
  });

  /** Sends the head only and waits, as a client that sent `Expect: 100-continue` does; sends `body` once 100 arrives. */
  function expectContinue(head: string, body: string) {
    const url = new URL(h.gateway.url);
    return new Promise<string>((resolve, reject) => {
      const socket = connect(Number(url.port), url.hostname, () => socket.write(head));
      let data = '';
      let bodySent = false;
      socket.on('data', (c) => {
        data += c.toString('latin1');
        if (!bodySent && data.startsWith('HTTP/1.1 100 ') && data.includes('\r\n\r\n')) {
          bodySent = true;
          socket.write(body);
        }
        // Done once a final response is complete (Content-Length or the last chunk).
        const final = /HTTP\/1\.1 [2-5]\d\d [^]*?\r\n\r\n/.exec(data);
        if (!final) return;
        const rest = data.slice(final.index + final[0].length);
        const length = /content-length: (\d+)/i.exec(final[0]);
        if (length ? Buffer.byteLength(rest, 'latin1') >= Number(length[1]) : rest.endsWith('0\r\n\r\n')) socket.destroy();
      });
      socket.on('close', () => resolve(data));
      socket.on('error', reject);
    });
  }
  const requestIdIn = (response: string) => /x-request-id: ([0-9a-f-]{36})/i.exec(response)?.[1] ?? null;

  it('attack: an anonymous upload announcing a huge body with Expect: 100-continue → 401 at once, never 100 Continue', async () => {
    const before = h.upstreams.recording.received.length;
    const response = await expectContinue('POST /echo/upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 10000000000\r\nExpect: 100-continue\r\n\r\n', '');
    expect(response).not.toContain('100 Continue');
    expect(response.startsWith('HTTP/1.1 401 ')).toBe(true);
    const event = await h.sink.forRequest(requestIdIn(response));
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['token-missing'] });
    expect(h.upstreams.recording.received.length).toBe(before);
  });

  it('an authorised upload with Expect: 100-continue gets 100 Continue, then its body reaches the upstream', async () => {
    const before = h.upstreams.recording.received.length;
    const body = JSON.stringify({ note: 'ghi chú tiếp tục' });
    const length = Buffer.byteLength(body);
    const response = await expectContinue(`POST /echo/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${await h.token(ALLOWED)}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\nExpect: 100-continue\r\n\r\n`, body);
    expect(response.startsWith('HTTP/1.1 100 Continue\r\n')).toBe(true);
    expect(response).toMatch(/\r\n\r\nHTTP\/1\.1 200 /);
    expect(h.upstreams.recording.received[before]!.body).toBe(body);
    const event = await h.sink.forRequest(requestIdIn(response));
    expect(event.ztgate).toMatchObject({ decision: 'allow', reasons: ['policy-allowed'] });
  });

  it('an authenticated upload announcing a body over the limit with Expect: 100-continue → 413 without 100 Continue', async () => {
    const response = await expectContinue(`POST /echo/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${await h.token(ALLOWED)}\r\nContent-Type: application/octet-stream\r\nContent-Length: 10000000000\r\nExpect: 100-continue\r\n\r\n`, '');
    expect(response).not.toContain('100 Continue');
    expect(response.startsWith('HTTP/1.1 413 ')).toBe(true);
    const event = await h.sink.forRequest(requestIdIn(response));
    expect(event.ztgate.reasons).toEqual(['body-too-large']);
  });

  it('an unsupported method → 405 method-not-allowed', async () => {
    const { status, body, requestId } = await rawCall('/echo/x', { authorization: `Bearer ${await h.token(ALLOWED)}` }, 'TRACE');
    expect(status).toBe(405);
    expect(body.error.reason).toBe('method-not-allowed');
    const event = await h.sink.forRequest(requestId);
    expect(event.ztgate.reasons).toEqual(['method-not-allowed']);
  });
});

describe('one event per request, whatever happens to the connection', () => {
  it.each(['application/json', 'application/x-www-form-urlencoded', 'application/octet-stream'])('an allowed upload (%s) streamed to the upstream writes exactly one event, with the client address', async (contentType) => {
    const before = h.upstreams.recording.received.length;
    const body = contentType === 'application/json' ? JSON.stringify({ note: 'ghi chú' }) : 'a=1&b=2';
    const { res, event } = await call('/echo/uploads', { token: await h.token(ALLOWED), method: 'POST', headers: { 'content-type': contentType }, body });
    expect(res.status).toBe(200);
    expect(h.upstreams.recording.received[before]!.body).toBe(body);
    expect(event.ztgate).toMatchObject({ decision: 'allow', reasons: ['policy-allowed'] });
    expect(event.source.ip).toBe('127.0.0.1');
    expect(event.source.port).toBeGreaterThan(0);
  });

  it('a client that gives up after the request was forwarded still leaves one event (client-aborted)', async () => {
    const before = h.upstreams.recording.received.length;
    const requestId = await new Promise<string>((resolve, reject) => {
      const url = new URL(`${h.gateway.url}/echo/slow/1`);
      h.token(ALLOWED).then((token) => {
        const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, headers: { authorization: `Bearer ${token}` } });
        req.on('error', () => undefined);
        req.end();
        // The gateway answers only after the upstream does; find the event by the upstream's copy of the request id.
        const started = Date.now();
        const poll = setInterval(() => {
          const got = h.upstreams.recording.received[before];
          if (got) {
            clearInterval(poll);
            req.destroy();
            resolve(String(got.headers['x-request-id']));
          } else if (Date.now() - started > 3000) {
            clearInterval(poll);
            reject(new Error('request never reached the upstream'));
          }
        }, 10);
      }, reject);
    });
    const event = await h.sink.forRequest(requestId, 3000);
    expect(event.ztgate.decision).toBe('allow');
    expect(event.ztgate.reasons).toEqual(['policy-allowed', 'client-aborted']);
    expect(event.source.ip).toBe('127.0.0.1');
  });
});

describe('requests the HTTP parser refuses are answered and recorded too', () => {
  function rawBytes(payload: Buffer | string) {
    const url = new URL(h.gateway.url);
    return new Promise<string>((resolve, reject) => {
      const socket = connect(Number(url.port), url.hostname, () => socket.end(payload));
      let data = '';
      socket.on('data', (c) => (data += c.toString('latin1')));
      socket.on('close', () => resolve(data));
      socket.on('error', reject);
    });
  }
  const requestIdOf = (response: string) => /x-request-id: ([0-9a-f-]{36})/i.exec(response)?.[1] ?? null;

  it.each([
    ['raw UTF-8 bytes in the request target', Buffer.concat([Buffer.from('GET /ho-tich/'), Buffer.from('hồ-sơ', 'utf8'), Buffer.from(' HTTP/1.1\r\nHost: x\r\n\r\n')]), 400, 'request-malformed'],
    ['headers larger than the parser allows', `GET /ho-tich/records HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'headers-too-large'],
    ['request smuggling: both Content-Length and Transfer-Encoding', 'POST /echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'request-malformed'],
  ])('attack: %s → %i in the gateway error shape, and one deny event', async (_what, payload, status, reason) => {
    const response = await rawBytes(payload);
    expect(response.startsWith(`HTTP/1.1 ${status} `)).toBe(true);
    expect(response).toContain('X-Ztgate-Error: ZTG_ERR_');
    const event = await h.sink.forRequest(requestIdOf(response));
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: [reason] });
    expect(event.http.response.status_code).toBe(status);
    expect(event.source.ip).toBe('127.0.0.1');
  });

  it.each([
    ['GET http://alice:S3cretPassw0rd@127.0.0.1/echo/x HTTP/1.1', 'S3cretPassw0rd'],
    ['GET /echo/x#access_token=eyJsecret HTTP/1.1', 'eyJsecret'],
    ['GET /echo/x;jsessionid=SECRETSESSION HTTP/1.1', 'SECRETSESSION'],
    ['GET /echo/x?national_id=056085000001 HTTP/1.1', '056085000001'],
  ])('the event of %s keeps its secret out of url.path', async (requestLine, secret) => {
    const response = await rawBytes(`${requestLine}\r\nHost: x\r\nConnection: close\r\n\r\n`);
    const event = await h.sink.forRequest(requestIdOf(response));
    expect(JSON.stringify(event)).not.toContain(secret);
  });
});

describe('failing closed', () => {
  it('an allowed request whose upstream is down → 502, details only in the log', async () => {
    const { startGateway } = await import('../gateway/server.js');
    const { parseConfig } = await import('../gateway/config.js');
    const { EventSink, freePort, ROOT } = await import('./helpers/harness.js');
    const port = await freePort();
    const dead = await freePort();
    const config = parseConfig(
      {
        ...structuredClone(h.config),
        listen: { host: '127.0.0.1', port },
        publicUrl: `http://127.0.0.1:${port}`,
        routes: h.config.routes.map((r) => (r.id === 'echo' ? { ...structuredClone(r), upstream: `http://127.0.0.1:${dead}` } : structuredClone(r))),
      },
      'test',
      ROOT,
    );
    const sink = new EventSink();
    const gw = await startGateway(config, { decisionLog: sink });
    try {
      const res = await fetch(`${gw.url}/echo/x`, { headers: { authorization: `Bearer ${await h.token(ALLOWED)}` } });
      const body = (await res.json()) as any;
      expect(res.status).toBe(502);
      expect(body.error).toMatchObject({ code: 'ZTG_ERR_UPSTREAM_UNAVAILABLE', reason: 'upstream-unavailable' });
      expect(JSON.stringify(body)).not.toContain(String(dead));
      const event = await sink.forRequest(res.headers.get('x-request-id'));
      expect(event.ztgate).toMatchObject({ decision: 'allow', reasons: ['policy-allowed', 'upstream-unavailable'] });
      expect(event.event.outcome).toBe('failure');
    } finally {
      await gw.close();
    }
  });

  it('an issuer whose keys cannot be fetched → 503, never trusted', async () => {
    const { startGateway } = await import('../gateway/server.js');
    const { parseConfig } = await import('../gateway/config.js');
    const { EventSink, freePort, ROOT } = await import('./helpers/harness.js');
    const port = await freePort();
    const deadIdp = `http://127.0.0.1:${await freePort()}`;
    const config = parseConfig(
      {
        ...structuredClone(h.config),
        listen: { host: '127.0.0.1', port },
        publicUrl: `http://127.0.0.1:${port}`,
        identity: { ...structuredClone(h.config.identity), jwksTimeoutMs: 500, issuers: [{ ...structuredClone(h.config.identity.issuers[1]!), issuer: deadIdp }] },
      },
      'test',
      ROOT,
    );
    const sink = new EventSink();
    const gw = await startGateway(config, { decisionLog: sink });
    try {
      const token = await h.testIssuer.sign(claims({ iss: deadIdp }));
      const res = await fetch(`${gw.url}/ho-tich/records`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(503);
      const event = await sink.forRequest(res.headers.get('x-request-id'));
      expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['identity-provider-unavailable'] });
    } finally {
      await gw.close();
    }
  });
});
