import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, ROOT, startRecordingUpstream, startTestIssuer, TEST_AUDIENCE, type RecordingUpstream, type TestIssuer } from './helpers/harness.js';
import { deleteKeysWithPrefix, redisUrl } from './helpers/redis.js';
import { createRedisStore } from '../gateway/store-backends.js';
import type { Store } from '../core/store.js';
import { createLocks } from '../gateway/lock-registry.js';
import { runAuditCommand } from '../gateway/audit/cli.js';
import { parseConfig } from '../gateway/config.js';
import { resolveWorkers } from '../gateway/workers.js';
import { createAssertionSigner } from '../gateway/assertion.js';
import { GatewayError } from '../gateway/errors.js';

const AN = '056085000001';
const prefix = `ztgate-mc-${randomBytes(4).toString('hex')}:`;
const dir = mkdtempSync(join(tmpdir(), 'ztgate-mc-'));
const configFile = join(dir, 'ztgate.yaml');
const chainFile = join(dir, 'audit', 'chain.log');

let issuer: TestIssuer;
let upstream: RecordingUpstream;
let gatewayUrl = '';
let child: ChildProcess;
let stderr = '';
let store: Store;
let token = '';

beforeAll(async () => {
  issuer = await startTestIssuer();
  upstream = await startRecordingUpstream(() => gatewayUrl, 'echo');
  const port = await freePort();
  gatewayUrl = `http://127.0.0.1:${port}`;
  const url = await redisUrl();
  writeFileSync(
    configFile,
    JSON.stringify({
      listen: { host: '127.0.0.1', port },
      publicUrl: gatewayUrl,
      identity: { issuers: [{ issuer: issuer.issuer, audience: TEST_AUDIENCE, algorithms: ['ES256'] }] },
      policy: { model: join(ROOT, 'policies/model.conf'), policy: join(ROOT, 'test/fixtures/gateway-policy.csv') },
      state: { backend: 'redis', redisUrl: url, keyPrefix: prefix },
      audit: { chain: { file: chainFile, checkpointEvery: 5 } },
      devices: { defaultMinTierBySecurityLevel: { '3': 'unknown' } },
      routes: [
        { id: 'ho-tich', name: 'Hộ tịch', pathPrefix: '/ho-tich', upstream: `${upstream.url}/api`, ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'personal-data', approval: { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-01' } },
        { id: 'echo', name: 'Dịch vụ ghi nhận (kiểm thử)', pathPrefix: '/echo', upstream: `${upstream.url}/api`, ownerAgency: 'so-tu-phap', securityLevel: 3, classification: 'internal', approval: { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-01' } },
      ],
    }),
  );
  const now = Math.floor(Date.now() / 1000);
  token = await issuer.sign({ iss: issuer.issuer, aud: TEST_AUDIENCE, sub: AN, national_id: AN, agency: 'so-tu-phap', roles: ['ho-tich-reader'], iat: now, exp: now + 600 });
  store = await createRedisStore({ url, keyPrefix: prefix, commandTimeoutMs: 2000 });
  child = spawn(process.execPath, ['--import', 'tsx', 'gateway/cli.ts', 'start', '--config', configFile, '--workers', '2'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (c: Buffer) => (stderr += c));
  await waitFor(
    () => stderr.includes('listening on') || child.exitCode !== null,
    30_000,
    () => `gateway did not start: ${stderr}`,
  );
  if (child.exitCode !== null) throw new Error(`gateway exited: ${stderr}`);
}, 40_000);

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await store?.close();
  await Promise.all([issuer?.close(), upstream?.close()]);
  await deleteKeysWithPrefix(prefix);
  rmSync(dir, { recursive: true, force: true });
});

async function waitFor(condition: () => boolean, timeoutMs: number, message: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(message());
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One request on a connection of its own, so that the workers share them out. */
function get(path: string): Promise<{ status: number; body: string }> {
  const url = new URL(path, gatewayUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, agent: false, headers: { authorization: `Bearer ${token}`, connection: 'close' } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

interface HeldConnection {
  /** Sends the rest of the request; resolves with the whole answer once the gateway closes the connection. */
  finish(): Promise<{ status: number; requestId: string | null; text: string }>;
  /** Resolves when the gateway closes the connection, answered or not. */
  readonly closed: Promise<void>;
}

/**
 * A connection the gateway has taken whose request it has not heard in full: `sent` says how much
 * of the request is written at once, finish() writes the rest.
 */
async function holdConnection(sent: 'nothing' | 'half the headers'): Promise<HeldConnection> {
  const url = new URL(gatewayUrl);
  const request = `GET /echo/records HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`;
  const split = sent === 'nothing' ? 0 : request.indexOf('Authorization');
  const socket: Socket = connect(Number(url.port), url.hostname);
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (c: string) => (text += c));
  socket.on('error', () => undefined); // a reset is seen as a close with no answer
  const closed = once(socket, 'close').then(() => undefined);
  await once(socket, 'connect');
  if (split > 0) socket.write(request.slice(0, split));
  return {
    closed,
    async finish() {
      if (!socket.destroyed) socket.write(request.slice(split));
      await closed;
      return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), requestId: /^x-request-id: (.+)\r$/im.exec(text)?.[1] ?? null, text };
    },
  };
}

const chainEvents = (): Array<Record<string, unknown>> =>
  ['chain.worker-1.log', 'chain.worker-2.log'].flatMap((name) => {
    const file = join(dir, 'audit', name);
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.includes('"type":"event"'))
      .map((l) => (JSON.parse(l) as { event: Record<string, unknown> }).event);
  });
const eventOf = (requestId: string) => chainEvents().find((e) => (e.http as { request?: { id?: string } } | undefined)?.request?.id === requestId);

const eventsIn = (file: string) =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.includes('"type":"event"')).length
    : 0;

describe('multi-core mode: workers on one port, state in Redis, one hash chain per worker', () => {
  it('every worker serves the port, each writes its own chain, and all sign with one key', async () => {
    const before = upstream.received.length;
    const results = await Promise.all(Array.from({ length: 24 }, () => get('/echo/records')));
    expect(results.map((r) => r.status)).toEqual(results.map(() => 200));
    const received = upstream.received.slice(before);
    // The upstream fetched the JWKS once, from whichever worker answered: every assertion verifies.
    expect(received.filter((r) => r.assertion === null).map((r) => r.assertionError)).toEqual([]);
    await waitFor(
      () => eventsIn(join(dir, 'audit', 'chain.worker-1.log')) > 0 && eventsIn(join(dir, 'audit', 'chain.worker-2.log')) > 0,
      5000,
      () => 'both workers should have written events to their own chains',
    );
    expect(existsSync(chainFile)).toBe(false);
  });

  it('attack: a lock set once holds on every worker at the next request', async () => {
    const locks = createLocks(store);
    await locks.set({ kind: 'user', value: AN, reason: 'kiểm thử đa tiến trình', lockedBy: '056179000006', seconds: 60 });
    try {
      const results = await Promise.all(Array.from({ length: 12 }, () => get('/echo/records')));
      for (const r of results) {
        expect(r.status).toBe(403);
        expect(JSON.parse(r.body).error.reason).toBe('locked-user');
      }
    } finally {
      await locks.lift('user', AN);
    }
  });

  it('SIGHUP restarts the workers one at a time while the port keeps answering', async () => {
    // Connections the workers have taken when the restart begins, whose requests come only after
    // the first worker has been told to stop: two sent nothing yet, two half their headers. The
    // workers take new connections in turn, so each worker holds one of each kind.
    const held = [await holdConnection('nothing'), await holdConnection('nothing'), await holdConnection('half the headers'), await holdConnection('half the headers')];
    // Answered only once the primary has handed every earlier connection to a worker.
    expect((await get('/echo/records')).status).toBe(200);
    const statuses: number[] = [];
    const errors: string[] = [];
    let running = true;
    const load = (async () => {
      while (running) {
        try {
          statuses.push((await get('/echo/records')).status);
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
    })();
    const stopping = new Promise<void>((resolve) => {
      const seen = () => stderr.includes('closing: no new connections are taken') && (child.stderr!.off('data', seen), resolve());
      child.stderr!.on('data', seen);
    });
    try {
      child.kill('SIGHUP');
      // The held requests are sent once the first worker's listener is closing, or at once if the
      // gateway drops one of them first.
      await Promise.race([stopping, ...held.map((h) => h.closed)]);
      const answers = await Promise.all(held.map((h) => h.finish()));
      expect(
        answers.map((a) => a.status),
        answers.map((a) => a.text || '(closed without an answer)').join('\n'),
      ).toEqual([200, 200, 200, 200]);
      await waitFor(
        () => answers.every((a) => eventOf(a.requestId!)),
        10_000,
        () => 'each held request should have its decision event',
      );
      for (const a of answers) expect(eventOf(a.requestId!)).toMatchObject({ ztgate: { decision: 'allow' }, http: { response: { status_code: 200 } } });
      await waitFor(
        () => stderr.includes('worker 2 restarted'),
        30_000,
        () => `rolling restart did not finish: ${stderr}`,
      );
    } finally {
      running = false;
      await load;
    }
    expect(errors).toEqual([]);
    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
  }, 40_000);

  it('SIGTERM stops every worker; audit verify --config verifies each worker chain on its own', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    let text = '';
    const out = new Writable({ write: (c, _e, done) => ((text += c), done()) });
    expect(await runAuditCommand(['verify', '--config', configFile], out)).toBe(0);
    expect(text).toMatch(/^worker-1: OK: /m);
    expect(text).toMatch(/^worker-2: OK: /m);
  }, 40_000);

  it('attack: an altered record in one worker chain fails verification, naming that worker', async () => {
    const file = join(dir, 'audit', 'chain.worker-2.log');
    const lines = readFileSync(file, 'utf8').split('\n');
    const i = lines.findIndex((l) => l.includes('"type":"event"'));
    lines[i] = lines[i]!.replace('"allow"', '"deny"');
    writeFileSync(file, lines.join('\n'));
    let text = '';
    const out = new Writable({ write: (c, _e, done) => ((text += c), done()) });
    expect(await runAuditCommand(['verify', '--config', configFile], out)).toBe(1);
    expect(text).toMatch(/^worker-1: OK: /m);
    expect(text).toMatch(/^worker-2: KHÔNG HỢP LỆ \/ TAMPERED \[altered\]/m);
  });
});

describe('the workers setting', () => {
  const base = () => JSON.parse(readFileSync(configFile, 'utf8'));

  it('refuses several workers with in-memory state, naming the fix', () => {
    const doc = { ...base(), workers: 2, state: { backend: 'memory' } };
    expect(() => parseConfig(doc, 'ztgate.yaml', ROOT)).toThrow(/workers: 2 processes share locks, quotas, sessions and replay records only through Redis; set state.backend: redis or workers: 1/);
  });

  it('auto is one per core with Redis, one with in-memory state or under tests; --workers wins', () => {
    expect(resolveWorkers('auto', { stateBackend: 'redis', env: {} })).toBeGreaterThanOrEqual(1);
    expect(resolveWorkers('auto', { stateBackend: 'redis', env: { NODE_ENV: 'test' } })).toBe(1);
    expect(resolveWorkers('auto', { stateBackend: 'memory', env: {} })).toBe(1);
    expect(resolveWorkers(3, { stateBackend: 'redis', env: {} })).toBe(3);
    expect(resolveWorkers(3, { stateBackend: 'redis', override: 2 })).toBe(2);
  });

  it('--workers takes a whole number from 1 to 256, and says so otherwise', async () => {
    const run = spawn(process.execPath, ['--import', 'tsx', 'gateway/cli.ts', 'start', '--config', configFile, '--workers', 'many'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    run.stderr!.on('data', (c: Buffer) => (err += c));
    const code = await new Promise<number | null>((resolve) => run.once('exit', resolve));
    expect(code).toBe(2);
    expect(err).toContain('--workers: "many" must be a whole number from 1 to 256');
  }, 20_000);

  it('a key rotation asked of one worker of several is refused, the keys stay', async () => {
    const signer = await createAssertionSigner({ issuer: 'http://gw.invalid', ttlSeconds: 60, oneOfWorkers: true });
    const kid = signer.currentKid;
    const err = await signer.rotate().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe('ZTG_ERR_KEY_ROTATION_REFUSED');
    expect(signer.currentKid).toBe(kid);
  });
});
