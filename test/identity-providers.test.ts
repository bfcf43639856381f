import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, exportPKCS8, generateKeyPair } from 'jose';
import { pino } from 'pino';
import { parseConfig } from '../gateway/config.js';
import { ConfigError } from '../core/errors.js';
import { startGateway, type RunningGateway } from '../gateway/server.js';
import { toCef } from '../gateway/audit/syslog.js';
import { DEMO_GATEWAY_CLIENT_ID, DEMO_GATEWAY_CLIENT_SECRET, startDemoIdp, type DemoIdp } from '../demo/idp.js';
import { Browser } from './helpers/browser.js';
import { EventSink, freePort, ROOT, startHarness, startRecordingUpstream, TEST_AUDIENCE, type Harness, type RecordingUpstream } from './helpers/harness.js';

/**
 * What the gateway needs to work with IdPs other than its demo one (docs/identity-providers.md):
 * access tokens typed plain `JWT` told apart from ID tokens, client authentication methods at the
 * token endpoint, the cause of a failed sign-in, and assurance when tokens say nothing about it.
 */

const AN = '056085000001'; // Nguyễn Văn An (synthetic), ho-tich-reader

describe('access tokens typed JWT (RFC 9068 §4): an ID token never passes as one', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      configure(doc) {
        const test = doc.identity.issuers[1];
        test.tokenTypes = ['at+jwt', 'JWT'];
        test.defaultAssuranceLevel = 1;
        test.stepUpAcrValues = { '2': ['urn:example:loa:high'] };
        doc.routes.push({ ...doc.routes[1], id: 'strong', name: 'Cấp độ 2 (kiểm thử)', pathPrefix: '/strong', minAssuranceLevel: 2 });
      },
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  const now = () => Math.floor(Date.now() / 1000);
  const base = () => ({ iss: h.testIssuer.issuer, aud: TEST_AUDIENCE, sub: AN, national_id: AN, roles: ['ho-tich-reader'], iat: now(), exp: now() + 300 });
  async function present(token: string, path = '/echo/x') {
    const res = await fetch(`${h.gateway.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    return { res, event: await h.sink.forRequest(res.headers.get('x-request-id')) };
  }

  it('a typ JWT access token with client_id and scope (RFC 9068 §2.2) is accepted', async () => {
    const { res, event } = await present(await h.testIssuer.sign({ ...base(), client_id: 'app-ho-tich', scope: 'openid ho-tich' }, { typ: 'JWT' }));
    expect(res.status).toBe(200);
    expect(event.ztgate).toMatchObject({ decision: 'allow', reasons: ['policy-allowed'] });
  });

  it('attack: an ID token (typ JWT, nonce, at_hash, azp, the API audience) presented as an access token is refused', async () => {
    const idToken = await h.testIssuer.sign({ ...base(), azp: 'ztgate-gateway', nonce: 'n-0S6_WzA2Mj', at_hash: 'HK6E_P6Dh8Y93mRNtsDB1Q', auth_time: now() }, { typ: 'JWT' });
    const { res, event } = await present(idToken);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['token-id-token-presented'] });
  });

  it('attack: an ID token stripped of nonce and at_hash still has azp without client_id: refused', async () => {
    const { res, event } = await present(await h.testIssuer.sign({ ...base(), azp: 'ztgate-gateway' }, { typ: 'JWT' }));
    expect(res.status).toBe(401);
    expect(event.ztgate.reasons).toEqual(['token-id-token-presented']);
  });

  it('attack: a typ JWT token without client_id is refused; so is one with no typ at all', async () => {
    expect((await present(await h.testIssuer.sign(base(), { typ: 'JWT' }))).event.ztgate.reasons).toEqual(['token-id-token-presented']);
    // No typ is not in tokenTypes here: refused by type first.
    expect((await present(await h.testIssuer.sign({ ...base(), client_id: 'x' }, { typ: undefined }))).event.ztgate.reasons).toEqual(['token-type-invalid']);
  });

  it('a Keycloak-shaped access token (typ JWT, azp, no client_id, its typ claim Bearer) is accepted; a Keycloak ID token (typ claim ID) is not', async () => {
    const at = await present(await h.testIssuer.sign({ ...base(), azp: 'app-ho-tich', typ: 'Bearer', scope: 'openid' }, { typ: 'JWT' }));
    expect(at.res.status).toBe(200);
    const id = await present(await h.testIssuer.sign({ ...base(), azp: 'app-ho-tich', typ: 'ID' }, { typ: 'JWT' }));
    expect(id.event.ztgate.reasons).toEqual(['token-id-token-presented']);
  });

  it('attack: even typed at+jwt, a token carrying an ID token claim (c_hash) is refused', async () => {
    expect((await present(await h.testIssuer.sign({ ...base(), client_id: 'x', c_hash: 'LDktKdoQak3Pk0cnXxCltA' }))).event.ztgate.reasons).toEqual(['token-id-token-presented']);
  });

  it("a token that says nothing about assurance gets its issuer's defaultAssuranceLevel; one that does, the mapped level", async () => {
    const silent = await present(await h.testIssuer.sign({ ...base(), client_id: 'x' }, { typ: 'JWT' }));
    expect(silent.event.ztgate.assurance).toEqual({ level: 1, acr: null });
    const said = await present(await h.testIssuer.sign({ ...base(), client_id: 'x', acr: 'vneid-level-2' }, { typ: 'JWT' }));
    expect(said.event.ztgate.assurance).toEqual({ level: 2, acr: 'vneid-level-2' });
    // An acr the mapping does not know is evidence of the lowest level, not silence.
    const unknown = await present(await h.testIssuer.sign({ ...base(), client_id: 'x', acr: 'urn:other' }, { typ: 'JWT' }));
    expect(unknown.event.ztgate.assurance).toEqual({ level: 0, acr: 'urn:other' });
  });

  it('a step-up challenge (RFC 9470) names the configured acr_values', async () => {
    const { res, event } = await present(await h.testIssuer.sign({ ...base(), client_id: 'x' }, { typ: 'JWT' }), '/strong/x');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('acr_values="urn:example:loa:high"');
    expect(event.ztgate.reasons).toEqual(['assurance-insufficient']);
  });
});

/** Operator log lines (pino JSON). */
class LogSink extends Writable {
  readonly lines: Record<string, any>[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) this.lines.push(JSON.parse(line));
    done();
  }
}

describe('client authentication at the token endpoint (identity.browser.tokenEndpointAuthMethod)', () => {
  let dir: string;
  let recording: RecordingUpstream;
  const running: { idp: DemoIdp; gateway: RunningGateway }[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ztgate-client-auth-'));
    recording = await startRecordingUpstream(() => 'http://127.0.0.1:1', 'echo');
  });
  afterAll(async () => {
    for (const r of running) {
      await r.gateway.close();
      await r.idp.close();
    }
    await recording?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(idpAuth: NonNullable<Parameters<typeof startDemoIdp>[0]>['gatewayTokenEndpointAuth'], browser: Record<string, unknown>) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const idp = await startDemoIdp({ port: 0, audience: TEST_AUDIENCE, gatewayRedirectUris: [`${url}/.ztgate/auth/callback`], gatewayTokenEndpointAuth: idpAuth });
    const sink = new EventSink();
    const log = new LogSink();
    const config = parseConfig(
      {
        listen: { host: '127.0.0.1', port },
        publicUrl: url,
        identity: {
          issuers: [{ issuer: idp.issuer, audience: TEST_AUDIENCE, algorithms: ['ES256'] }],
          browser: { issuer: idp.issuer, clientId: DEMO_GATEWAY_CLIENT_ID, clientSecret: DEMO_GATEWAY_CLIENT_SECRET, ...browser },
        },
        policy: { model: join(ROOT, 'policies/model.conf'), policy: join(ROOT, 'test/fixtures/echo-policy.csv') },
        devices: { defaultMinTierBySecurityLevel: { '3': 'unknown' } },
        routes: [{ id: 'echo', name: 'Echo', pathPrefix: '/echo', upstream: `${recording.url}/api`, ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'internal', approval: { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-01' } }],
      },
      'client-auth',
      dir,
    );
    const gateway = await startGateway(config, { decisionLog: sink, logger: pino({ level: 'info' }, log) });
    running.push({ idp, gateway });
    return { url, sink, log };
  }

  async function signIn(url: string) {
    const b = new Browser();
    await b.signIn(`${url}/echo/x`, AN);
    return b.hops.find((x) => x.url.includes('/.ztgate/auth/callback'))!;
  }

  it('private_key_jwt: the gateway signs a client assertion with its key; the IdP knows only the public key', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    writeFileSync(join(dir, 'client-key.pem'), await exportPKCS8(privateKey));
    const jwk = { ...(await exportJWK(publicKey)), kid: 'ztgate-client-1', alg: 'ES256', use: 'sig' };
    const g = await start({ method: 'private_key_jwt', jwks: { keys: [jwk] } }, { tokenEndpointAuthMethod: 'private_key_jwt', clientAssertionKeyFile: 'client-key.pem', clientAssertionKeyId: 'ztgate-client-1' });
    const callback = await signIn(g.url);
    expect(callback.status).toBe(303);
    expect((await g.sink.forRequest(callback.requestId)).ztgate).toMatchObject({ decision: 'allow', reasons: ['session-created'] });
  });

  it('client_secret_post: the secret goes in the form body, as IdPs that compare it raw need', async () => {
    const g = await start({ method: 'client_secret_post' }, { tokenEndpointAuthMethod: 'client_secret_post' });
    const callback = await signIn(g.url);
    expect(callback.status).toBe(303);
    expect((await g.sink.forRequest(callback.requestId)).ztgate.reasons).toEqual(['session-created']);
  });

  it('regression: a method the IdP does not accept fails sign-in as auth-client-authentication-failed, not auth-id-token-invalid, and the operator log says why', async () => {
    const { publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'ztgate-client-2', alg: 'ES256', use: 'sig' };
    // The IdP expects a signed client assertion; the gateway still sends its default, client_secret_basic.
    const g = await start({ method: 'private_key_jwt', jwks: { keys: [jwk] } }, {});
    const callback = await signIn(g.url);
    expect(callback.status).toBe(400);
    const event = await g.sink.forRequest(callback.requestId);
    expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['auth-client-authentication-failed'], error_code: 'ZTG_ERR_SIGN_IN_FAILED' });
    const line = g.log.lines.find((l) => l.reason === 'auth-client-authentication-failed')!;
    expect(line.level).toBe(40);
    expect(line.msg).toContain("the token endpoint refused the gateway's client authentication (client_secret_basic): 401 invalid_client");
    expect(JSON.stringify(g.log.lines)).not.toContain(DEMO_GATEWAY_CLIENT_SECRET);
  });
});

describe('an identity presented but not accepted, as the SOC receives it', () => {
  it('CEF marks suser as unverified; a verified official carries no such mark', () => {
    const base = { '@timestamp': '2026-12-06T01:00:00.000Z', event: { kind: 'event', action: 'access-decision', id: 'e1' }, ztgate: { decision: 'deny', reasons: ['official-not-on-roster'] } };
    const unverified = toCef({ ...base, user: { id: '056088009003', verified: false, id_type: 'national-id', issuer: 'https://sso.example' } });
    expect(unverified).toContain('suser=056088009003 flexString1Label=userVerified flexString1=false ');
    expect(toCef({ ...base, user: { id: '056085000001', roles: [] } })).not.toContain('userVerified');
  });
});

describe('configuration of client authentication and assurance', () => {
  const doc = (browser: Record<string, unknown> = {}, issuer: Record<string, unknown> = {}) => ({
    publicUrl: 'https://gw.khanhhoa.gov.vn',
    identity: {
      issuers: [{ issuer: 'https://sso.khanhhoa.gov.vn', audience: 'urn:ztgate:data', ...issuer }],
      browser: { issuer: 'https://sso.khanhhoa.gov.vn', clientId: 'ztgate', clientSecret: 's', ...browser },
    },
    policy: { model: 'policies/model.conf', policy: 'test/fixtures/gateway-policy.csv' },
    routes: [],
  });
  const problems = (d: unknown) => {
    try {
      parseConfig(d, 'test', ROOT);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).problems;
    }
    throw new Error('accepted');
  };

  it('defaults: client_secret_basic, front-channel logout by sid, assurance level 0 for silent tokens', () => {
    const config = parseConfig(doc(), 'test', ROOT);
    expect(config.identity.browser).toMatchObject({ tokenEndpointAuthMethod: 'client_secret_basic', frontchannelLogout: 'sid' });
    expect(config.identity.issuers[0]!.defaultAssuranceLevel).toBe(0);
  });

  it('the lemonldap preset maps loa-1 … loa-5', () => {
    const config = parseConfig(doc({}, { claimsPreset: 'lemonldap' }), 'test', ROOT);
    expect(config.identity.issuers[0]!.assurance).toEqual({ 'loa-1': 0, 'loa-2': 1, 'loa-3': 1, 'loa-4': 2, 'loa-5': 2 });
  });

  it('refuses an unknown method, private_key_jwt without a key, a key that is not PKCS#8, a key without private_key_jwt, and bad step-up values', () => {
    expect(problems(doc({ tokenEndpointAuthMethod: 'client_secret_jwt' }))[0]).toMatch(/identity\.browser\.tokenEndpointAuthMethod/);
    expect(problems(doc({ tokenEndpointAuthMethod: 'private_key_jwt' }))).toEqual(['identity.browser.clientAssertionKeyFile: required when tokenEndpointAuthMethod is private_key_jwt']);
    expect(problems(doc({ tokenEndpointAuthMethod: 'private_key_jwt', clientAssertionKeyFile: 'package.json' }))).toEqual(['identity.browser.clientAssertionKeyFile: must be a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)']);
    expect(problems(doc({ tokenEndpointAuthMethod: 'private_key_jwt', clientAssertionKeyFile: 'no-such.pem' }))[0]).toMatch(/clientAssertionKeyFile: cannot read .*no-such\.pem: ENOENT/);
    expect(problems(doc({ clientAssertionKeyFile: 'package.json' }))[0]).toMatch(/set, but tokenEndpointAuthMethod is client_secret_basic/);
    expect(problems(doc({ frontchannelLogout: 'any' }))[0]).toMatch(/identity\.browser\.frontchannelLogout/);
    expect(problems(doc({}, { stepUpAcrValues: { '3': ['x'] } }))[0]).toMatch(/stepUpAcrValues/);
    expect(problems(doc({}, { defaultAssuranceLevel: 3 }))[0]).toMatch(/defaultAssuranceLevel/);
  });
});
