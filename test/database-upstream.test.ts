import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../gateway/config.js';
import { startGateway, type RunningGateway } from '../gateway/server.js';
import { assertEventMatchesSchema, ROOT, startTestIssuer, TEST_AUDIENCE, type TestIssuer } from './helpers/harness.js';
import { makeTlsMaterial, PG, type TlsMaterial } from './helpers/database.js';
import { startOwnCluster, type OwnCluster } from './helpers/pg-cluster.js';

/**
 * The gateway's own login to the database, against a PostgreSQL cluster of this suite's own
 * (password authentication, TLS on): SCRAM-SHA-256 and MD5 with the password from a file, a
 * wrong password, and TLS from the gateway to the database (verify-full, a wrong CA, a server
 * without TLS). Officials and data are synthetic.
 */

const OFFICIAL = '056085000201'; // synthetic
const SCRAM_PASSWORD = 'mat-khau-scram-gia-lap';
const MD5_PASSWORD = 'mat-khau-md5-gia-lap';

let cluster: OwnCluster;
let tls: TlsMaterial;
let issuer: TestIssuer;
let gw: RunningGateway;
let work: string;
const operatorLog: string[] = [];
const events: Record<string, any>[] = [];

beforeAll(async () => {
  cluster = await startOwnCluster('host all gw_scram 127.0.0.1/32 scram-sha-256\nhost all gw_md5 127.0.0.1/32 md5\n');
  cluster.sql(`SET password_encryption = 'scram-sha-256'; CREATE ROLE gw_scram LOGIN PASSWORD '${SCRAM_PASSWORD}';
    SET password_encryption = 'md5'; CREATE ROLE gw_md5 LOGIN PASSWORD '${MD5_PASSWORD}';`);
  cluster.sql('CREATE DATABASE so_lieu');
  cluster.sql(
    `CREATE TABLE danh_muc (id int, ten text); INSERT INTO danh_muc VALUES (1, 'Danh mục giả lập');
    GRANT SELECT ON danh_muc TO gw_scram, gw_md5;`,
    'so_lieu',
  );
  // The password hashes are what the server checks: SCRAM for one role, MD5 for the other.
  expect(cluster.sql("SELECT rolname || ' ' || left(rolpassword, 5) FROM pg_authid WHERE rolname LIKE 'gw_%' ORDER BY 1").trim().split('\n')).toEqual([expect.stringMatching(/^gw_md5 md5/), 'gw_scram SCRAM']);

  tls = makeTlsMaterial();
  issuer = await startTestIssuer();
  work = mkdtempSync(join(tmpdir(), 'ztgate-db-upstream-'));
  writeFileSync(join(work, 'scram.pw'), `${SCRAM_PASSWORD}\n`, { mode: 0o600 });
  writeFileSync(join(work, 'md5.pw'), `${MD5_PASSWORD}\n`, { mode: 0o600 });
  writeFileSync(join(work, 'wrong.pw'), 'khong-dung\n', { mode: 0o600 });
  const services = [
    ['own-scram', 'gw_scram', 'scram.pw', undefined],
    ['own-md5', 'gw_md5', 'md5.pw', undefined],
    ['own-wrong', 'gw_scram', 'wrong.pw', undefined],
    ['own-tls', 'gw_scram', 'scram.pw', { caFile: cluster.caFile }],
    ['own-tls-name', 'gw_md5', 'md5.pw', { mode: 'verify-full', caFile: cluster.caFile, servername: 'localhost' }],
    ['own-tls-wrong-ca', 'gw_scram', 'scram.pw', { caFile: cluster.otherCaFile }],
    ['own-tls-wrong-name', 'gw_scram', 'scram.pw', { caFile: cluster.caFile, servername: 'db.khac.example' }],
    ['own-tls-require', 'gw_md5', 'md5.pw', { mode: 'require' }],
  ] as const;
  const policy = [...services.map(([id]) => id), 'plain-db'].map((id) => `p, analyst, *, db:${id}, /public.danh_muc, SELECT, allow`).join('\n');
  writeFileSync(join(work, 'policy.csv'), `${policy}\n`);
  const approval = { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-01' };
  const common = { ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'internal', approval };
  const config = parseConfig(
    {
      listen: { host: '127.0.0.1', port: 0 },
      publicUrl: 'http://127.0.0.1:1',
      identity: { clockSkewSeconds: 30, issuers: [{ issuer: issuer.issuer, audience: TEST_AUDIENCE, algorithms: ['ES256'] }] },
      policy: { model: join(ROOT, 'policies/model.conf'), policy: join(work, 'policy.csv') },
      devices: { defaultMinTierBySecurityLevel: { '3': 'unknown' } },
      routes: [],
      databases: {
        listen: { host: '127.0.0.1', port: 0, tls: { certFile: tls.serverCert, keyFile: tls.serverKey } },
        upstreamConnectTimeoutMs: 5000,
        services: [
          ...services.map(([id, user, file, upstreamTls]) => ({
            id,
            name: `${id} (synthetic)`,
            upstream: { host: '127.0.0.1', port: cluster.port, database: 'so_lieu' },
            credentials: { user, passwordFile: join(work, file) },
            ...common,
            ...(upstreamTls ? { tls: upstreamTls } : {}),
          })),
          // The machine's PostgreSQL does not speak TLS: a service that requires it must not fall back to plain TCP.
          { id: 'plain-db', name: 'no TLS (synthetic)', upstream: { host: PG.host, port: PG.port, database: 'postgres' }, credentials: { user: PG.user }, ...common, tls: { mode: 'require' } },
        ],
      },
    },
    'database-upstream-test',
    ROOT,
  );
  gw = await startGateway(config, {
    decisionLog: new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line.includes('"db":')) events.push(JSON.parse(line));
        done();
      },
    }),
    logDestination: new Writable({
      write(chunk: Buffer, _enc, done) {
        operatorLog.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    }),
  });
}, 90_000);

afterAll(async () => {
  await gw?.close();
  await issuer?.close();
  await cluster?.stop();
  tls?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function connectAs(database: string): Promise<pg.Client> {
  const now = Math.floor(Date.now() / 1000);
  const token = await issuer.sign({ iss: issuer.issuer, aud: TEST_AUDIENCE, sub: OFFICIAL, national_id: OFFICIAL, agency: 'so-tu-phap', roles: ['analyst'], iat: now, exp: now + 300 });
  const c = new pg.Client({ host: '127.0.0.1', port: gw.database!.port, database, user: OFFICIAL, password: token, ssl: { ca: readFileSync(tls.serverCa), servername: 'localhost' } });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** Whether the gateway's upstream session behind client `c` is encrypted, as the server sees it. */
async function upstreamSsl(c: pg.Client): Promise<string> {
  const { pid } = (await c.query('SELECT pg_backend_pid() AS pid FROM danh_muc')).rows[0];
  return cluster.sql(`SELECT ssl::text FROM pg_stat_ssl WHERE pid = ${Number(pid)}`).trim();
}

const refusal = async (database: string) => {
  const before = events.length;
  const err = await connectAs(database).then(
    async (c) => {
      await c.end();
      return null;
    },
    (e: Error & { code?: string }) => e,
  );
  await new Promise((r) => setTimeout(r, 50));
  return { err, events: events.slice(before).filter((e) => e.db?.name === database) };
};

describe('the gateway logs in to the database with credentials only it holds', () => {
  it('SCRAM-SHA-256 with the password from a file', async () => {
    const c = await connectAs('own-scram');
    try {
      expect((await c.query('SELECT ten FROM danh_muc')).rows).toEqual([{ ten: 'Danh mục giả lập' }]);
      expect((await c.query('SELECT current_user AS u FROM danh_muc')).rows).toEqual([{ u: 'gw_scram' }]);
      expect(await upstreamSsl(c)).toBe('false');
    } finally {
      await c.end();
    }
  });

  it('MD5 with the password from a file', async () => {
    const c = await connectAs('own-md5');
    try {
      expect((await c.query('SELECT current_user AS u, ten FROM danh_muc')).rows).toEqual([{ u: 'gw_md5', ten: 'Danh mục giả lập' }]);
    } finally {
      await c.end();
    }
  });

  it("a wrong password: the client is told the database refused the gateway, the operator log has the database's words", async () => {
    const { err, events: evs } = await refusal('own-wrong');
    expect(err?.code).toBe('08006');
    expect(err?.message).toContain('upstream-unavailable');
    expect(err?.message).toContain("refused the gateway's own credentials");
    // The client never sees the password or the database's own message.
    expect(err?.message).not.toContain('khong-dung');
    const line = operatorLog.map((l) => JSON.parse(l)).find((l) => l.service === 'own-wrong');
    expect(line).toMatchObject({ msg: 'database service refused the gateway credentials', failure: 'credentials' });
    expect(JSON.stringify(line.err)).toContain('28P01');
    expect(evs).toHaveLength(1);
    evs.forEach(assertEventMatchesSchema);
    expect(evs[0]).toMatchObject({ ztgate: { decision: 'deny', reasons: expect.arrayContaining(['upstream-unavailable']) } });
  });
});

describe('TLS from the gateway to the database', () => {
  it('verify-full against the configured CA and the upstream address; the server sees an encrypted session', async () => {
    const c = await connectAs('own-tls');
    try {
      expect((await c.query('SELECT ten FROM danh_muc')).rows).toEqual([{ ten: 'Danh mục giả lập' }]);
      expect(await upstreamSsl(c)).toBe('true');
    } finally {
      await c.end();
    }
    const named = await connectAs('own-tls-name');
    try {
      expect((await named.query('SELECT current_user AS u FROM danh_muc')).rows).toEqual([{ u: 'gw_md5' }]);
      expect(await upstreamSsl(named)).toBe('true');
    } finally {
      await named.end();
    }
  });

  it('require encrypts without checking the certificate (no CA configured)', async () => {
    const c = await connectAs('own-tls-require');
    try {
      expect((await c.query('SELECT current_user AS u FROM danh_muc')).rows).toEqual([{ u: 'gw_md5' }]);
      expect(await upstreamSsl(c)).toBe('true');
    } finally {
      await c.end();
    }
  });

  it('a certificate from another CA is refused', async () => {
    const { err, events: evs } = await refusal('own-tls-wrong-ca');
    expect(err?.code).toBe('08006');
    expect(err?.message).toContain('TLS to the database own-tls-wrong-ca could not be established');
    const line = operatorLog.map((l) => JSON.parse(l)).find((l) => l.service === 'own-tls-wrong-ca');
    expect(line).toMatchObject({ msg: 'TLS to the database service failed', failure: 'tls' });
    expect(JSON.stringify(line.err)).toMatch(/certificate/i);
    expect(evs).toHaveLength(1);
  });

  it('a certificate for another name is refused', async () => {
    const { err } = await refusal('own-tls-wrong-name');
    expect(err?.message).toContain('TLS to the database own-tls-wrong-name could not be established');
    const line = operatorLog.map((l) => JSON.parse(l)).find((l) => l.service === 'own-tls-wrong-name');
    expect(JSON.stringify(line.err)).toMatch(/db\.khac\.example/);
  });

  it('a database that does not speak TLS is refused when TLS is required, never used in the clear', async () => {
    const { err, events: evs } = await refusal('plain-db');
    expect(err?.code).toBe('08006');
    expect(err?.message).toContain('TLS to the database plain-db could not be established');
    const line = operatorLog.map((l) => JSON.parse(l)).find((l) => l.service === 'plain-db');
    expect(JSON.stringify(line.err)).toContain('does not accept TLS');
    expect(evs).toHaveLength(1);
  });
});
