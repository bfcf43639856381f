import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { randomBytes } from 'node:crypto';
import { DeviceRegistry } from '../identity/devices.js';
import { createSessionManager } from '../identity/sessions.js';
import { maskValue } from '../gateway/steps/obligations.js';
import { monthOf } from '../gateway/audit/decision-feed.js';
import { assertEventMatchesSchema, startHarness, TEST_AUDIENCE, type Harness } from './helpers/harness.js';
import { createTestDatabase, makeTlsMaterial, psql, type TestDatabase, type TlsMaterial } from './helpers/database.js';

/**
 * The database plane against the real PostgreSQL with real clients (psql, node-postgres):
 * TLS and tokens at startup, one decision and one event per statement, masking, row limits,
 * row-level security fed by the gateway's ztgate.* settings, cancel requests, revocation.
 * Officials, citizens and devices are synthetic.
 */

const READER = '056085000101'; // commune official (phuong-nha-trang), ho-tich-reader
const REGISTRAR = '056179000102'; // province department (so-tu-phap), ho-tich-registrar
const QUOTA_READER = '056085000103'; // commune official (xa-cam-lam), ho-tich-reader
const INSPECTOR = '056085000104'; // thanh-tra-vien: needs a purpose of access
const LOCKED = '056085000105';
const EXPIRING = '056085000106';
const SIGNED_OUT = '056085000107';

let h: Harness;
let db: TestDatabase;
let tls: TlsMaterial;
let port: number;
let device: { cert: string; key: string; id: string; jwk: import('jose').JWK };

const SETUP = (role: string) => `
  CREATE TABLE citizens (id int PRIMARY KEY, ho_ten text, so_dinh_danh text, so_dien_thoai text, noi_dang_ky text NOT NULL);
  INSERT INTO citizens SELECT g, 'Công dân giả lập ' || g, '0560850' || lpad(g::text, 5, '0'), '09' || lpad(g::text, 8, '0'),
    CASE WHEN g % 2 = 0 THEN 'phuong-nha-trang' ELSE 'xa-cam-lam' END FROM generate_series(1, 120) g;
  -- The example RLS policy of the README: commune officials see their commune; the province department all.
  ALTER TABLE citizens ENABLE ROW LEVEL SECURITY;
  CREATE POLICY citizens_read ON citizens FOR SELECT
    USING (noi_dang_ky = current_setting('ztgate.commune', true) OR current_setting('ztgate.agency', true) = 'so-tu-phap');
  CREATE POLICY citizens_write ON citizens FOR INSERT WITH CHECK (current_setting('ztgate.agency', true) = 'so-tu-phap');
  CREATE POLICY citizens_update ON citizens FOR UPDATE USING (current_setting('ztgate.agency', true) = 'so-tu-phap');
  GRANT SELECT, INSERT, UPDATE, DELETE ON citizens TO ${role};
  CREATE TABLE secret_notes (id int, note text);
  INSERT INTO secret_notes VALUES (1, 'ghi chú mật giả lập');
  GRANT SELECT ON secret_notes TO ${role};
`;

const claims = (nationalId: string, agency: string, roles: string[], ttl = 300) => {
  const now = Math.floor(Date.now() / 1000);
  return { iss: h.testIssuer.issuer, aud: TEST_AUDIENCE, sub: nationalId, national_id: nationalId, agency, roles, iat: now, exp: now + ttl };
};
const tokenFor = (nationalId: string, agency: string, roles: string[], ttl = 300) => h.testIssuer.sign(claims(nationalId, agency, roles, ttl));
const readerToken = () => tokenFor(READER, 'phuong-nha-trang', ['ho-tich-reader']);
const registrarToken = () => tokenFor(REGISTRAR, 'so-tu-phap', ['ho-tich-registrar']);

function conninfo(user: string, opts: { database?: string; cert?: boolean; sslmode?: string; extra?: string } = {}): string {
  const cert = opts.cert === false ? '' : ` sslcert=${device.cert} sslkey=${device.key}`;
  return `host=127.0.0.1 port=${port} dbname=${opts.database ?? 'ho-tich-db'} user=${user} sslmode=${opts.sslmode ?? 'verify-full'} sslrootcert=${tls.serverCa}${cert}${opts.extra ? ' ' + opts.extra : ''}`;
}

function client(user: string, password: string, extra: Partial<pg.ClientConfig> = {}): pg.Client {
  return new pg.Client({
    host: '127.0.0.1',
    port,
    database: 'ho-tich-db',
    user,
    password,
    ssl: { ca: readFileSync(tls.serverCa), cert: readFileSync(device.cert), key: readFileSync(device.key), servername: 'localhost' },
    ...extra,
  });
}

/** Events of the database plane (db.*) written since `from`, each checked against the published schema. */
const dbEvents = (from = 0) => {
  const events = h.sink.events.slice(from).filter((e) => e.db);
  events.forEach(assertEventMatchesSchema);
  return events;
};

async function eventsSettle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 60));
}

beforeAll(async () => {
  tls = makeTlsMaterial();
  device = await tls.device('analyst-laptop');
  db = await createTestDatabase(SETUP);
  h = await startHarness({
    configure: (doc) => {
      doc.identity.clockSkewSeconds = 0;
      doc.policy = { model: 'policies/model.conf', policy: 'test/fixtures/database-policy.csv', conditions: 'test/fixtures/database-conditions.yaml' };
      const approval = { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-01' };
      const common = { upstream: { host: '127.0.0.1', port: 5432, database: db.name }, credentials: { user: db.role }, ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'personal-data', approval };
      doc.databases = {
        listen: { host: '127.0.0.1', port: 0, tls: { certFile: tls.serverCert, keyFile: tls.serverKey, clientCaFile: tls.deviceCa, requestClientCertificate: 'optional' } },
        maxMessageBytes: 64 * 1024,
        revocationCheckIntervalMs: 200,
        services: [
          { id: 'ho-tich-db', name: 'Hộ tịch (SQL)', ...common, tables: { 'public.secret_notes': { classification: 'mat' } } },
          { id: 'ho-tich-device', name: 'Hộ tịch (SQL, thiết bị đăng ký)', ...common, minDeviceTier: 'registered' },
          { id: 'ho-tich-pending', name: 'Hộ tịch (chưa duyệt)', ...common, approval: { status: 'pending' } },
        ],
      };
    },
  });
  port = h.gateway.database!.port;
}, 60_000);

afterAll(async () => {
  await h?.close();
  await db?.drop();
  tls?.remove();
});

describe('an official with psql (sslmode=verify-full, client certificate, token as password)', () => {
  it('sees only the rows RLS allows for their commune, with national ID and phone masked; each statement is one event', async () => {
    const from = h.sink.events.length;
    const r = await psql(conninfo(READER), ['-F', '|', '-c', 'SELECT id, ho_ten, so_dinh_danh, so_dien_thoai, noi_dang_ky FROM citizens WHERE id <= 6 ORDER BY id'], await readerToken());
    expect(r.stderr).toBe('');
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('|'));
    expect(rows.map((x) => x[0])).toEqual(['2', '4', '6']); // RLS: only phuong-nha-trang
    // The masking rules of the HTTP side: national IDs keep the province code, phone numbers their ends.
    expect(rows[0]).toEqual(['2', 'Công dân giả lập 2', maskValue('056085000002'), maskValue('0900000002'), 'phuong-nha-trang']);
    expect(rows[0]![2]).toBe('056*******02');
    await eventsSettle();
    const events = dbEvents(from);
    expect(events).toHaveLength(1);
    const e = events[0]!;
    expect(e.ztgate.decision).toBe('allow');
    expect(e.user.id).toBe(READER);
    expect(e.db).toMatchObject({ system: 'postgresql', name: 'ho-tich-db', operation: 'SELECT', tables: ['public.citizens'], rows: 3 });
    expect(e.db.statement).toBe('SELECT id , ho_ten , so_dinh_danh , so_dien_thoai , noi_dang_ky FROM citizens WHERE id <= ? ORDER BY id');
    expect(e.db.bytes).toBeGreaterThan(0);
    expect(e.ztgate.route).toMatchObject({ id: 'db:ho-tich-db', classification: 'personal-data' });
    // The admin live feed shows it like an HTTP decision: the statement kind and its normalised text.
    const live = h.gateway.runtime.decisionFeed.recent({ service: 'db:ho-tich-db', official: READER }, 50).find((d) => d.id === e.event.id);
    expect(live).toMatchObject({ decision: 'allow', method: 'SELECT', path: e.db.statement, agency: 'phuong-nha-trang' });
    // And the per-agency statistics for the yearly report count it.
    await h.gateway.runtime.decisionFeed.flush();
    const month = monthOf(e['@timestamp']);
    const counts = await h.gateway.runtime.decisionFeed.counts({ fromMonth: month, toMonth: month });
    expect(counts.find((x) => x.agency === 'phuong-nha-trang' && x.service === 'db:ho-tich-db')?.allowed).toBeGreaterThan(0);
  });

  it('is refused DDL with SQLSTATE 42501 and a message naming the reason', async () => {
    const from = h.sink.events.length;
    const r = await psql(conninfo(READER), ['-c', 'DROP TABLE citizens'], await readerToken());
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('ztgate: statement-ddl');
    await eventsSettle();
    const [e] = dbEvents(from);
    expect(e!.ztgate).toMatchObject({ decision: 'deny', reasons: ['statement-ddl'], error_code: 'ZTG_ERR_STATEMENT_REFUSED' });
    const check = await psql(conninfo(REGISTRAR), ['-c', 'SELECT count(*) FROM citizens'], await registrarToken());
    expect(check.stdout.trim()).toBe('120');
  });

  it('a registrar (need-to-know) reads unmasked and all communes; writes go through RLS with the gateway-set agency', async () => {
    const token = await registrarToken();
    const r = await psql(conninfo(REGISTRAR), ['-F', '|', '-c', 'SELECT so_dinh_danh, noi_dang_ky FROM citizens WHERE id IN (1, 2) ORDER BY id'], token);
    expect(r.stdout.trim().split('\n')).toEqual(['056085000001|xa-cam-lam', '056085000002|phuong-nha-trang']);
    const w = await psql(conninfo(REGISTRAR), ['-c', "INSERT INTO citizens VALUES (1000, 'Công dân giả lập mới', '056085001000', '0900001000', 'xa-cam-lam')"], token);
    expect(w.stderr).toBe('');
    const del = await psql(conninfo(REGISTRAR), ['-c', 'DELETE FROM citizens WHERE id = 1000'], token);
    expect(del.stderr).toContain('ztgate: policy-denied');
  });

  it('the settings RLS reads are the official’s, set by the gateway in every transaction', async () => {
    const r = await psql(conninfo(READER), ['-F', '|', '-c', "SELECT current_setting('ztgate.national_id', true), current_setting('ztgate.agency', true), current_setting('ztgate.commune', true)"], await readerToken());
    expect(r.stdout.trim()).toBe(`${READER}|phuong-nha-trang|phuong-nha-trang`);
    // Inside the client's own transaction too.
    const t = await psql(conninfo(READER), ['-F', '|'], await readerToken(), "BEGIN;\nSELECT current_setting('ztgate.national_id', true);\nCOMMIT;\n");
    expect(t.stdout).toContain(READER);
  });

  it('refuses a plaintext startup (sslmode=disable) with a clear error and an event', async () => {
    const from = h.sink.events.length;
    const r = await psql(conninfo(READER, { sslmode: 'disable', cert: false }), ['-c', 'SELECT 1'], await readerToken());
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('ztgate: database-tls-required');
    await eventsSettle();
    expect(dbEvents(from)[0]!.ztgate.reasons).toEqual(['database-tls-required']);
  });

  it('refuses a token of another official than the user name, a forged token, and an unapproved service', async () => {
    const other = await psql(conninfo(REGISTRAR), ['-c', 'SELECT 1'], await readerToken());
    expect(other.stderr).toContain('ztgate: database-user-mismatch');
    const forged = await psql(conninfo(READER), ['-c', 'SELECT 1'], (await readerToken()).slice(0, -4) + 'AAAA');
    expect(forged.stderr).toContain('ztgate: token-signature-invalid');
    const pending = await psql(conninfo(READER, { database: 'ho-tich-pending' }), ['-c', 'SELECT 1'], await readerToken());
    expect(pending.stderr).toContain('ztgate: route-not-approved');
  });
});

describe('node-postgres: simple and extended protocol', () => {
  it('parameterised queries, named prepared statements and portals are decided, masked and evented once per execution', async () => {
    const c = client(READER, await readerToken());
    await c.connect();
    try {
      const from = h.sink.events.length;
      const q1 = await c.query('SELECT id, so_dinh_danh FROM citizens WHERE id = $1', [4]);
      expect(q1.rows).toEqual([{ id: 4, so_dinh_danh: maskValue('056085000004') }]);
      const prepared = { name: 'by-id', text: 'SELECT id, so_dinh_danh AS cccd, so_dien_thoai FROM citizens WHERE id = $1' };
      for (const id of [6, 8]) {
        const r = await c.query({ ...prepared, values: [id] });
        // An alias does not unmask: the masked column is masked whatever it is called.
        expect(r.rows[0]).toEqual({ id, cccd: maskValue(`0560850000${String(id).padStart(2, '0')}`), so_dien_thoai: maskValue(`09000000${String(id).padStart(2, '0')}`) });
      }
      const odd = await c.query({ ...prepared, values: [5] });
      expect(odd.rows).toEqual([]); // RLS: another commune
      await eventsSettle();
      const events = dbEvents(from);
      expect(events.map((e) => e.db.rows)).toEqual([1, 1, 1, 0]);
      expect(new Set(events.map((e) => e.db.fingerprint)).size).toBe(2);
      // Values are never logged: not the parameters, not the rows.
      expect(JSON.stringify(events)).not.toMatch(/0560850000\d\d|09000000\d\d/);
    } finally {
      await c.end();
    }
  });

  it('ends a statement past the per-response row limit with an error', async () => {
    const c = client(READER, await readerToken());
    await c.connect();
    try {
      await expect(c.query('SELECT id FROM citizens')).rejects.toThrow(/records-per-response-exceeded/);
      // The connection stays usable after the refusal.
      expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await c.end();
    }
  });

  it('counts the daily quota per official across statements and ends the one that crosses it', async () => {
    const token = await tokenFor(QUOTA_READER, 'xa-cam-lam', ['ho-tich-reader']);
    const c = client(QUOTA_READER, token);
    await c.connect();
    try {
      expect((await c.query('SELECT id FROM citizens WHERE id <= 80')).rowCount).toBe(40);
      const from = h.sink.events.length;
      await expect(c.query('SELECT id FROM citizens WHERE id <= 80')).rejects.toThrow(/quota-exceeded/);
      await eventsSettle();
      expect(dbEvents(from)[0]!.ztgate).toMatchObject({ decision: 'deny', reasons: ['policy-allowed', 'quota-exceeded'] });
      await expect(c.query('SELECT id FROM citizens WHERE id = 1')).rejects.toThrow(/quota-exceeded/);
    } finally {
      await c.end();
    }
  });

  it('a refusal inside a transaction fails the transaction as PostgreSQL would: COMMIT does not commit', async () => {
    const c = client(REGISTRAR, await registrarToken());
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query("INSERT INTO citizens VALUES (2000, 'Giả lập', '056085002000', '0900002000', 'xa-cam-lam')");
      await expect(c.query('DROP TABLE citizens')).rejects.toThrow(/statement-ddl/);
      await c.query('COMMIT');
      expect((await c.query('SELECT count(*)::int AS n FROM citizens WHERE id = 2000')).rows[0].n).toBe(0);
    } finally {
      await c.end();
    }
  });

  it('purpose of access: required where policy says so, given by application_name or SET ztgate.purpose', async () => {
    const token = await tokenFor(INSPECTOR, 'thanh-tra-tinh', ['thanh-tra-vien']);
    const none = client(INSPECTOR, token);
    await none.connect();
    try {
      await expect(none.query('SELECT id FROM citizens WHERE id = 1')).rejects.toThrow(/purpose-required/);
      await none.query("SET ztgate.purpose = 'thanh-tra/HS-2026-017'");
      const r = await none.query("SELECT current_setting('ztgate.purpose', true) AS p, current_setting('ztgate.case_ref', true) AS c");
      expect(r.rows[0]).toEqual({ p: 'thanh-tra', c: 'HS-2026-017' });
      await expect(none.query("SET ztgate.purpose = 'du-lich/HS-2026-017'")).rejects.toThrow(/purpose-invalid/);
    } finally {
      await none.end();
    }
    const named = client(INSPECTOR, token, { application_name: 'purpose:giai-quyet-thu-tuc/HS-2026-018' });
    await named.connect();
    try {
      const from = h.sink.events.length;
      await named.query('SELECT id FROM citizens WHERE id = 1');
      await eventsSettle();
      expect(dbEvents(from)[0]!.ztgate.purpose).toEqual({ code: 'giai-quyet-thu-tuc', case_ref: 'HS-2026-018' });
    } finally {
      await named.end();
    }
  });

  it('a cancel request stops a running statement', async () => {
    const c = client(READER, await readerToken());
    await c.connect();
    try {
      const running = c.query('SELECT pg_sleep(10)');
      await new Promise((r) => setTimeout(r, 300));
      const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
      // libpq (before 17) sends the CancelRequest in plaintext on a new connection.
      const s = netConnect({ host: '127.0.0.1', port }, () => s.end(serialize.cancel(processID, secretKey)));
      const started = Date.now();
      await expect(running).rejects.toThrow(/cancel/);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await c.end();
    }
  });
});

describe('device: TLS client certificate bound to the device registry', () => {
  it('a service that requires a registered device refuses a connection without a certificate and admits the approved device', async () => {
    const token = await readerToken();
    const without = await psql(conninfo(READER, { database: 'ho-tich-device', cert: false }), ['-c', 'SELECT 1'], token);
    expect(without.stderr).toContain('ztgate: device-proof-missing');
    const unregistered = await psql(conninfo(READER, { database: 'ho-tich-device' }), ['-c', 'SELECT 1'], token);
    expect(unregistered.stderr).toContain('ztgate: device-unregistered');
    const registry = new DeviceRegistry(h.gateway.runtime.store);
    const enrolled = await registry.enrol({ jwk: device.jwk, name: 'Máy trạm giả lập', ownerNationalId: READER });
    expect(enrolled.id).toBe(device.id);
    await registry.approve(device.id, '056179000006');
    const from = h.sink.events.length;
    const ok = await psql(conninfo(READER, { database: 'ho-tich-device' }), ['-c', 'SELECT 1'], token);
    expect(ok.stdout.trim()).toBe('1');
    await eventsSettle();
    expect(dbEvents(from)[0]!.ztgate.device).toMatchObject({ id: device.id, tier: 'registered', via: 'mtls' });
    const rogue = await tls.device('rogue-laptop', 'rogue-ca');
    const foreign = await psql(`host=127.0.0.1 port=${port} dbname=ho-tich-device user=${READER} sslmode=verify-full sslrootcert=${tls.serverCa} sslcert=${rogue.cert} sslkey=${rogue.key}`, ['-c', 'SELECT 1'], token);
    expect(foreign.stderr).toContain('ztgate: device-proof-missing');
  });
});

describe('revocation mid-connection', () => {
  async function connected(nationalId: string, ttl = 300): Promise<{ c: pg.Client; closed: Promise<number> }> {
    // No client certificate: the test device belongs to another official.
    const c = client(nationalId, await tokenFor(nationalId, 'phuong-nha-trang', ['ho-tich-reader'], ttl), { ssl: { ca: readFileSync(tls.serverCa), servername: 'localhost' } });
    c.on('error', () => undefined);
    await c.connect();
    await c.query('SELECT 1');
    const closed = new Promise<number>((resolve) => c.on('end', () => resolve(Date.now())));
    return { c, closed };
  }

  it('a lock closes the connection within one second', async () => {
    const { c, closed } = await connected(LOCKED);
    const from = h.sink.events.length;
    const at = Date.now();
    await h.gateway.runtime.locks.set({ kind: 'user', value: LOCKED, reason: 'kiểm thử / test', lockedBy: '056179000006', seconds: 60 });
    expect((await closed) - at).toBeLessThan(1000);
    await expect(c.query('SELECT 1')).rejects.toThrow();
    await eventsSettle();
    expect(dbEvents(from).some((e) => e.ztgate.reasons.includes('connection-revoked') && e.ztgate.reasons.includes('locked-user'))).toBe(true);
  });

  it('an expired token closes the connection', async () => {
    const { closed } = await connected(EXPIRING, 2);
    const from = h.sink.events.length;
    const at = await closed;
    expect(at).toBeGreaterThan(0);
    await eventsSettle();
    expect(dbEvents(from).some((e) => e.ztgate.reasons.includes('token-expired'))).toBe(true);
  });

  it('signing the official out everywhere closes the connection', async () => {
    const { closed } = await connected(SIGNED_OUT);
    const at = Date.now();
    // The session manager's "end every session of this official" (admin revocation, sign-out everywhere).
    const sessions = createSessionManager(h.gateway.runtime.store, { absoluteLifetimeSeconds: 3600, idleTimeoutSeconds: 600, refreshLockTtlMs: 1000, secure: true, tokenKey: randomBytes(32) });
    expect(await sessions.endAllOf(SIGNED_OUT)).toBe(0); // no browser session; the database connection is indexed beside them
    expect((await closed) - at).toBeLessThan(1000);
  });
});

describe('attacks (named)', () => {
  let c: pg.Client;
  beforeAll(async () => {
    c = client(READER, await readerToken());
    await c.connect();
  });
  afterAll(async () => {
    await c.end();
  });

  const refusedWith = async (sql: string, reason: string) => {
    const from = h.sink.events.length;
    await expect(c.query(sql)).rejects.toMatchObject({ code: '42501', message: expect.stringContaining(`ztgate: ${reason}`) });
    await eventsSettle();
    const events = dbEvents(from);
    expect(events).toHaveLength(1);
    expect(events[0]!.ztgate.reasons).toContain(reason);
    // Literals never reach the event.
    expect(JSON.stringify(events[0])).not.toMatch(/sh -c|\/etc\/passwd|056085000001|056179000102|056085%|xa-cam-lam|dbname=/);
  };

  it('stacked statements', () => refusedWith("SELECT 1; DELETE FROM citizens WHERE so_dinh_danh = '056085000001'", 'statement-multiple'));
  it('comment tricks: a line comment hiding a second statement', () => refusedWith('SELECT 1 --\n; DROP TABLE citizens', 'statement-multiple'));
  it('comment tricks: a nested block comment is read as PostgreSQL reads it (one statement, no DROP)', async () => {
    // PostgreSQL nests block comments: the "; DROP TABLE" is inside the comment, for the gateway's parser as for the server.
    const r = await c.query('SELECT /* /* */ 1; DROP TABLE citizens */ 2 AS n');
    expect(r.rows).toEqual([{ n: 2 }]);
    expect((await c.query('SELECT count(*)::int AS n FROM citizens WHERE id <= 4')).rows).toEqual([{ n: 2 }]);
  });
  it('comment tricks: an unterminated comment', () => refusedWith('SELECT 1 /* ; DROP TABLE citizens', 'statement-unparseable'));
  it('COPY … TO PROGRAM', () => refusedWith("COPY citizens TO PROGRAM 'sh -c id'", 'statement-escape'));
  it('COPY … FROM a server file', () => refusedWith("COPY citizens FROM '/etc/passwd'", 'statement-escape'));
  it('function escape: pg_read_file', () => refusedWith("SELECT pg_read_file('/etc/passwd')", 'statement-escape'));
  it('function escape: large objects', () => refusedWith("SELECT lo_import('/etc/passwd')", 'statement-escape'));
  it('function escape: dblink', () => refusedWith("SELECT * FROM dblink('dbname=postgres', 'SELECT 1') AS t(x int)", 'statement-escape'));
  it('function escape: SQL as text (query_to_xml)', () => refusedWith("SELECT query_to_xml('SELECT so_dinh_danh FROM citizens', true, false, '')", 'statement-escape'));
  it('function escape: set_config of the RLS settings', () => refusedWith("SELECT set_config('ztgate.commune', 'xa-cam-lam', false)", 'statement-escape'));
  it('role switching: SET ROLE', () => refusedWith('SET ROLE postgres', 'statement-escape'));
  it('role switching: SET SESSION AUTHORIZATION', () => refusedWith('SET SESSION AUTHORIZATION postgres', 'statement-escape'));
  it('spoofing the RLS settings: SET ztgate.national_id', () => refusedWith("SET ztgate.national_id = '056179000102'", 'statement-escape'));
  it('search_path change', () => refusedWith('SET search_path = pg_temp, public', 'statement-escape'));
  it('masked column inside an expression', () => refusedWith('SELECT upper(so_dinh_danh) FROM citizens WHERE id = 2', 'masked-column-in-expression'));
  it('masked column as a condition (an oracle)', () => refusedWith("SELECT id FROM citizens WHERE so_dinh_danh LIKE '056085%'", 'masked-column-in-expression'));
  it('whole-row value carrying masked columns', () => refusedWith('SELECT c FROM citizens c WHERE id = 2', 'masked-column-in-expression'));
  it('a state-secret table without clearance', () => refusedWith('SELECT * FROM secret_notes', 'clearance-insufficient'));
  it('SQL-level PREPARE/EXECUTE', () => refusedWith('PREPARE p AS DELETE FROM citizens', 'statement-not-allowed'));
  it('DO blocks', () => refusedWith("DO $$BEGIN PERFORM pg_read_file('/etc/passwd'); END$$", 'statement-not-allowed'));

  async function rawSession(): Promise<import('node:tls').TLSSocket> {
    const plain = netConnect({ host: '127.0.0.1', port });
    await new Promise((r) => plain.once('connect', r));
    plain.write(Buffer.from([0, 0, 0, 8, 4, 210, 22, 47]));
    await new Promise((r) => plain.once('data', r));
    const s = tlsConnect({ socket: plain, ca: readFileSync(tls.serverCa), servername: 'localhost' });
    // The gateway may close while a refused message is still being sent.
    s.on('error', () => undefined);
    await new Promise((r) => s.once('secureConnect', r));
    s.write(serialize.startup({ user: READER, database: 'ho-tich-db' }));
    await new Promise((r) => s.once('data', r));
    s.write(serialize.password(await readerToken()));
    await new Promise<void>((resolve) => {
      let seen = Buffer.alloc(0);
      const on = (d: Buffer) => {
        seen = Buffer.concat([seen, d]);
        if (seen.includes(Buffer.from([0x5a, 0, 0, 0, 5]))) {
          s.off('data', on);
          resolve();
        }
      };
      s.on('data', on);
    });
    return s;
  }

  const answer = (s: import('node:tls').TLSSocket) =>
    new Promise<string>((resolve) => {
      let text = '';
      s.on('data', (d: Buffer) => (text += d.toString('latin1')));
      s.on('close', () => resolve(text));
    });

  it('huge messages: a statement over databases.maxMessageBytes closes the connection with 08P01', async () => {
    const s = await rawSession();
    const closed = answer(s);
    s.write(serialize.query(`SELECT '${'x'.repeat(70 * 1024)}'`));
    const text = await closed;
    expect(text).toContain('08P01');
    expect(text).toContain('database-protocol-violation');
  });

  it('malformed frames: a length word below 4', async () => {
    const s = await rawSession();
    const closed = answer(s);
    s.write(Buffer.from([0x51, 0, 0, 0, 2]));
    expect(await closed).toContain('database-protocol-violation');
  });

  it('malformed frames: an unknown message type', async () => {
    const s = await rawSession();
    const closed = answer(s);
    s.write(Buffer.from([0x7a, 0, 0, 0, 4]));
    expect(await closed).toContain('database-protocol-violation');
  });

  it('startup without TLS', async () => {
    const plain = netConnect({ host: '127.0.0.1', port });
    await new Promise((r) => plain.once('connect', r));
    const text = new Promise<string>((resolve) => {
      let t = '';
      plain.on('data', (d: Buffer) => (t += d.toString('latin1')));
      plain.on('close', () => resolve(t));
    });
    plain.write(serialize.startup({ user: READER, database: 'ho-tich-db' }));
    expect(await text).toContain('database-tls-required');
  });

  it('plaintext injected after SSLRequest, ahead of the handshake', async () => {
    const plain = netConnect({ host: '127.0.0.1', port });
    await new Promise((r) => plain.once('connect', r));
    const text = new Promise<string>((resolve) => {
      let t = '';
      plain.on('data', (d: Buffer) => (t += d.toString('latin1')));
      plain.on('close', () => resolve(t));
    });
    plain.write(Buffer.concat([Buffer.from([0, 0, 0, 8, 4, 210, 22, 47]), serialize.query('SELECT 1')]));
    expect(await text).toContain('database-protocol-violation');
  });
});

// Last: it changes the active policy for the rest of the file.
describe('revocation by a policy change', () => {
  it('a new policy version that no longer allows what a connection did closes it within one second', async () => {
    const c = client(READER, await readerToken());
    c.on('error', () => undefined);
    await c.connect();
    await c.query('SELECT id FROM citizens WHERE id = 2');
    const closed = new Promise<number>((resolve) => c.on('end', () => resolve(Date.now())));
    const { policies } = h.gateway.runtime;
    const current = policies.current().sources;
    const sources = { ...current, policy: current.policy.replace('p, ho-tich-reader, *, db:ho-tich-db, /public.citizens, SELECT, allow\n', '') };
    expect(sources.policy).not.toBe(current.policy);
    const draft = await policies.versions.createDraft({ author: '056179000006', comment: 'rút quyền đọc công dân / withdraw', sources });
    await policies.versions.submit(draft.id, '056179000006');
    const from = h.sink.events.length;
    const at = Date.now();
    await policies.announce(await policies.versions.approve(draft.id, '056179000007', 'đồng ý / approved'));
    expect((await closed) - at).toBeLessThan(1000);
    await eventsSettle();
    expect(dbEvents(from).some((e) => e.ztgate.reasons.includes('connection-revoked') && e.ztgate.reasons.includes('policy-no-match'))).toBe(true);
  });
});
