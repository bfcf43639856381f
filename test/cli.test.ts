import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../gateway/config.js';
import { PolicyEngine } from '../policies/engine.js';
import { freePort, ROOT } from './helpers/harness.js';
import { ChainWriter } from '../gateway/audit/chain.js';
import { createCheckpointSigner } from '../gateway/audit/keys.js';

/**
 * The CLI as an operator runs it, through tsx. Each spawn costs about a second, so they all
 * start together in beforeAll and each test awaits its own.
 */

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** At most this many CLI processes at once: each compiles TypeScript on start, and the machine is shared. */
const PARALLEL = 3;
let running = 0;
const queue: (() => void)[] = [];

async function cli(args: string[], whileRunning?: (done: () => boolean) => Promise<void>): Promise<Run> {
  if (running >= PARALLEL) await new Promise<void>((r) => queue.push(r));
  running++;
  try {
    return await spawnCli(args, whileRunning);
  } finally {
    running--;
    queue.shift()?.();
  }
}

function spawnCli(args: string[], whileRunning?: (done: () => boolean) => Promise<void>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/cli.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let exited = false;
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    // A CLI that should have refused but started serving would never exit: stop it and say so.
    const guard = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      exited = true;
      clearTimeout(guard);
      resolve({ code, signal, stdout, stderr });
    });
    whileRunning?.(() => exited).catch(reject);
  });
}

/** Tries to connect to the port until `done()`; resolves to how many connections were accepted. */
async function probeConnections(port: number, done: () => boolean): Promise<number> {
  let accepted = 0;
  while (!done()) {
    accepted += await new Promise<number>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(1);
      });
      socket.once('error', () => resolve(0));
    });
    await new Promise((r) => setTimeout(r, 10));
  }
  return accepted;
}

const tmp = mkdtempSync(join(tmpdir(), 'ztgate-cli-'));
const MODEL = join(ROOT, 'policies/model.conf');

function configYaml(port: number, policyFile: string, securityLevel = 3, extra: { issuer?: string; lines?: string[] } = {}): string {
  return [
    `listen: { host: 127.0.0.1, port: ${port} }`,
    `publicUrl: http://127.0.0.1:${port}`,
    'identity:',
    '  issuers:',
    `    - { issuer: "${extra.issuer ?? 'http://127.0.0.1:8090'}", audience: urn:ztgate:data, algorithms: [ES256] }`,
    ...(extra.lines ?? []),
    'policy:',
    `  model: ${MODEL}`,
    `  policy: ${policyFile}`,
    'routes:',
    '  - id: ho-tich',
    '    name: Hộ tịch',
    '    pathPrefix: /ho-tich',
    '    upstream: http://127.0.0.1:9101',
    '    ownerAgency: so-tu-phap',
    `    securityLevel: ${securityLevel}`,
    '    classification: personal-data',
    '    approval: { status: approved, approvedBy: "056179000006", approvedAt: "2026-01-15" }',
    '',
  ].join('\n');
}

const goodPolicy = join(tmp, 'good.csv');
const unknownRoutePolicy = join(tmp, 'unknown-route.csv');
const badConfig = join(tmp, 'bad.yaml');
const badPolicyConfig = join(tmp, 'bad-policy.yaml');
let badPolicyPort = 0;
const missingRosterConfig = join(tmp, 'missing-roster.yaml');
const idpDownConfig = join(tmp, 'idp-down.yaml');
const idpUpConfig = join(tmp, 'idp-up.yaml');
const chainFile = join(tmp, 'audit', 'decisions.log');
let chainBefore = '';
let idp: Server;

const runs: Record<string, Promise<Run>> = {};
const accepted: Record<string, Promise<number>> = {};

function startWatched(name: string, args: string[], port: number): void {
  const { promise, resolve } = Promise.withResolvers<number>();
  accepted[name] = promise;
  runs[name] = cli(args, async (done) => resolve(await probeConnections(port, done)));
}

beforeAll(async () => {
  badPolicyPort = await freePort();
  writeFileSync(goodPolicy, 'p, ho-tich-reader, *, ho-tich, /records, GET, allow\n');
  writeFileSync(unknownRoutePolicy, '# one good rule, then one for a service that is not configured\np, ho-tich-reader, *, ho-tich, /records, GET, allow\np, thue-reader, *, thue, /records, GET, allow\n');
  // Schema-invalid: security level 9.
  writeFileSync(badConfig, configYaml(await freePort(), goodPolicy, 9));
  // Schema-valid, with a free port to listen on; only its policy is wrong, so the refusal comes
  // after the config has loaded — the last moment a careless start could already be listening.
  writeFileSync(badPolicyConfig, configYaml(badPolicyPort, unknownRoutePolicy));

  // An IdP that answers discovery and JWKS, and one that is not there.
  idp = createServer((req, res) => {
    const issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(req.url === '/.well-known/openid-configuration' ? { issuer, jwks_uri: `${issuer}/jwks` } : { keys: [{ kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0', kid: 'k1' }] }));
  });
  await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
  writeFileSync(idpUpConfig, configYaml(await freePort(), goodPolicy, 3, { issuer: `http://127.0.0.1:${(idp.address() as AddressInfo).port}` }));
  writeFileSync(idpDownConfig, configYaml(await freePort(), goodPolicy, 3, { issuer: `http://127.0.0.1:${await freePort()}` }));
  // A roster file that is not there, and an audit chain that already holds records.
  writeFileSync(missingRosterConfig, configYaml(await freePort(), goodPolicy, 3, { lines: [`  roster: { source: file, file: ${join(tmp, 'no-such-roster.csv')} }`, 'audit:', `  chain: { file: ${chainFile} }`] }));
  const writer = new ChainWriter({ file: chainFile, signer: createCheckpointSigner({ alg: 'ES256' }), checkpointEvery: 10, checkpointIntervalSeconds: 3600, rotation: 'none', compressRotated: false, timeZone: 'UTC', retentionMonths: 0 }).open();
  writer.append({ event: { id: 'e1', kind: 'event', action: 'access-decision' } });
  await writer.close();
  chainBefore = readFileSync(chainFile, 'utf8');

  runs.checkDemo = cli(['check', '--config', 'demo/ztgate.demo.yaml', '--offline']);
  runs.checkMissingRoster = cli(['check', '--config', missingRosterConfig, '--offline']);
  runs.checkIdpDown = cli(['check', '--config', idpDownConfig]);
  runs.checkIdpDownOffline = cli(['check', '--config', idpDownConfig, '--offline']);
  runs.checkIdpUp = cli(['check', '--config', idpUpConfig]);
  runs.startMissingRoster = cli(['start', '--config', missingRosterConfig]);
  runs.checkBad = cli(['check', '--config', badConfig]);
  runs.checkBadPolicy = cli(['check', '--config', badPolicyConfig]);
  runs.unknownCommand = cli(['frobnicate']);
  runs.missingConfig = cli(['check']);
  startWatched('startBadPolicy', ['start', '--config', badPolicyConfig], badPolicyPort);
  await Promise.allSettled(Object.values(runs));
}, 180_000);

afterAll(async () => {
  rmSync(tmp, { recursive: true, force: true });
  await new Promise((r) => idp?.close(r));
});

describe('ztgate check', () => {
  it('a valid config exits 0 and prints OK with the policy version', async () => {
    const run = await runs.checkDemo!;
    const config = loadConfigFile(join(ROOT, 'demo/ztgate.demo.yaml'));
    const { version } = await PolicyEngine.load(config.policy.model, config.policy.policy, new Set(config.routes.map((r) => r.id)), { conditionsFile: config.policy.conditions });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`demo/ztgate.demo.yaml: OK — ${config.routes.length} routes, policy ${version}, IdPs not asked (--offline)\n`);
  });

  it('every file the config names is checked: a missing roster file exits 78 and names the key', async () => {
    const run = await runs.checkMissingRoster!;
    expect(run.code).toBe(78);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`identity.roster.file: ${join(tmp, 'no-such-roster.csv')}: cannot read the file (ENOENT)`);
  });

  it('the IdP is asked for its discovery document and keys: unreachable exits 69 and names the issuer; --offline skips it', async () => {
    const down = await runs.checkIdpDown!;
    expect(down.code).toBe(69);
    expect(down.stderr).toMatch(/identity\.issuers\[0\] \(http:\/\/127\.0\.0\.1:\d+\): not reachable \(ECONNREFUSED\)/);
    expect((await runs.checkIdpDownOffline!).code).toBe(0);
    const up = await runs.checkIdpUp!;
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    expect(up.stdout).toContain('1 IdP(s) answered');
  });

  it('a bad config exits 78 (EX_CONFIG) and names the key', async () => {
    const run = await runs.checkBad!;
    expect(run.code).toBe(78);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`${badConfig}: `);
    expect(run.stderr).toMatch(/routes\[0\]\.securityLevel: must be <= 5/);
  });

  it('a policy naming an unknown route exits 78 and names file:line', async () => {
    const run = await runs.checkBadPolicy!;
    expect(run.code).toBe(78);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`${unknownRoutePolicy}:3: service "thue" is not a configured route`);
  });
});

describe('usage errors exit 2 with the usage text', () => {
  it('an unknown command', async () => {
    const run = await runs.unknownCommand!;
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('unknown command "frobnicate"');
    expect(run.stderr).toMatch(/usage[\s\S]*ztgate check --config FILE/);
  });

  it('check without --config', async () => {
    const run = await runs.missingConfig!;
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('check needs --config FILE');
    expect(run.stderr).toMatch(/usage[\s\S]*ztgate start --config FILE/);
  });
});

describe('ztgate start refuses a bad config without ever listening', () => {
  it('a config whose roster file is missing exits 78 and leaves the audit chain exactly as it was', async () => {
    const run = await runs.startMissingRoster!;
    expect(run.code).toBe(78);
    expect(run.stderr).toContain('identity.roster.file');
    expect(readFileSync(chainFile, 'utf8')).toBe(chainBefore);
  });

  it('a config whose policy is bad exits 78, and its port never accepted a connection', async () => {
    const run = await runs.startBadPolicy!;
    expect(run.signal).toBeNull();
    expect(run.code).toBe(78);
    expect(run.stderr).toContain(`${unknownRoutePolicy}:3:`);
    expect(run.stderr).not.toContain('listening');
    expect(await accepted.startBadPolicy!).toBe(0);
  });
});
