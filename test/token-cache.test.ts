import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './helpers/harness.js';
import { createTokenCache } from '../identity/token-cache.js';
import type { Principal } from '../core/principal.js';

const AN = '056085000001'; // on the demo roster, active; ho-tich-reader

let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    configure: (doc) => {
      doc.identity.clockSkewSeconds = 0;
      doc.identity.jwksCacheMaxAgeMs = 1000;
      doc.identity.roster = { source: 'file', file: 'demo/roster.csv' };
    },
  });
});
afterAll(async () => {
  await h?.close();
});

async function tokenFor(nationalId: string, lifetimeSeconds = 300) {
  const now = Math.floor(Date.now() / 1000);
  return h.testIssuer.sign({ iss: h.testIssuer.issuer, aud: 'urn:ztgate:data', sub: nationalId, national_id: nationalId, agency: 'so-tu-phap', roles: ['ho-tich-reader'], iat: now, exp: now + lifetimeSeconds });
}

async function call(token: string) {
  const res = await fetch(`${h.gateway.url}/ho-tich/records?limit=1`, { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  const event = await h.sink.forRequest(res.headers.get('x-request-id'));
  return { status: res.status, event };
}

describe('the verified-token cache never stands in for what may change', () => {
  it('attack: an official locked after the token was verified is refused on the next request with the same token', async () => {
    const token = await tokenFor(AN);
    expect((await call(token)).status).toBe(200);
    expect((await call(token)).status).toBe(200);
    await h.gateway.runtime.locks.set({ kind: 'user', value: AN, reason: 'kiểm thử', lockedBy: '056179000006', seconds: 60 });
    try {
      const { status, event } = await call(token);
      expect(status).toBe(403);
      expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['locked-user'] });
    } finally {
      await h.gateway.runtime.locks.lift('user', AN);
    }
    expect((await call(token)).status).toBe(200);
  });

  it('attack: an official suspended on the roster after the token was verified is refused on the next request', async () => {
    const token = await tokenFor(AN);
    expect((await call(token)).status).toBe(200);
    const roster = h.gateway.runtime.identity.roster!;
    await roster.setStatus(AN, 'suspended');
    try {
      const { status, event } = await call(token);
      expect(status).toBe(403);
      expect(event.ztgate).toMatchObject({ decision: 'deny', reasons: ['official-suspended'] });
    } finally {
      await roster.setStatus(AN, 'active');
    }
  });

  it('attack: a verified token is refused once its exp has passed', async () => {
    const token = await tokenFor(AN, 2);
    expect((await call(token)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 2100));
    const { status, event } = await call(token);
    expect(status).toBe(401);
    expect(event.ztgate.reasons).toEqual(['token-expired']);
  });

  it('attack: a verified token is refused once its signing key is withdrawn from the issuer key set', async () => {
    const token = await tokenFor(AN);
    expect((await call(token)).status).toBe(200);
    const jwk = h.testIssuer.publicJwk as { kid?: string };
    const kid = jwk.kid;
    jwk.kid = 'withdrawn-key';
    try {
      // The gateway's copy of the key set ages out (jwksCacheMaxAgeMs 1 s) and is fetched again.
      await new Promise((r) => setTimeout(r, 1100));
      const { status, event } = await call(token);
      expect(status).toBe(401);
      expect(event.ztgate.reasons).toEqual(['token-key-unknown']);
    } finally {
      jwk.kid = kid;
    }
  });
});

describe('the verified-token cache is bounded', () => {
  const principal = { nationalId: AN } as Principal;
  const key = new Uint8Array(1);
  const keySet = async () => key;

  it('keeps at most maxEntries, dropping the oldest, and nothing past its exp', async () => {
    let now = 1_000;
    const cache = createTokenCache({ maxEntries: 2, now: () => now });
    for (const t of ['a', 'b', 'c']) cache.set(cache.digest(t), { principal, expiresAt: 2_000, header: { alg: 'ES256' }, key, keySet });
    expect(cache.size).toBe(2);
    expect(await cache.get(cache.digest('a'))).toBeNull();
    expect(await cache.get(cache.digest('c'))).toBe(principal);
    now = 2_000;
    expect(await cache.get(cache.digest('c'))).toBeNull();
  });

  it('keys by a digest, never by the token itself', () => {
    const cache = createTokenCache();
    expect(cache.digest('eyJ.secret.token')).not.toContain('secret');
    expect(cache.digest('eyJ.secret.token')).toHaveLength(43);
  });
});
