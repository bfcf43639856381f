import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../gateway/config.js';
import { PolicyEngine } from '../policies/engine.js';
import { freePort, ROOT } from './helpers/harness.js';

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

function cli(args: string[], whileRunning?: (done: () => boolean) => Promise<void>): Promise<Run> {
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

function configYaml(port: number, policyFile: string, securityLevel = 3): string {
  return [
    `listen: { host: 127.0.0.1, port: ${port} }`,
    `publicUrl: http://127.0.0.1:${port}`,
    'identity:',
    '  issuers:',
    '    - { issuer: "http://127.0.0.1:8090", audience: urn:ztgate:data, algorithms: [ES256] }',
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

  runs.checkDemo = cli(['check', '--config', 'demo/ztgate.demo.yaml']);
  runs.checkBad = cli(['check', '--config', badConfig]);
  runs.checkBadPolicy = cli(['check', '--config', badPolicyConfig]);
  runs.unknownCommand = cli(['frobnicate']);
  runs.missingConfig = cli(['check']);
  startWatched('startBadPolicy', ['start', '--config', badPolicyConfig], badPolicyPort);
  await Promise.allSettled(Object.values(runs));
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('ztgate check', () => {
  it('a valid config exits 0 and prints OK with the policy version', async () => {
    const run = await runs.checkDemo!;
    const config = loadConfigFile(join(ROOT, 'demo/ztgate.demo.yaml'));
    const { version } = await PolicyEngine.load(config.policy.model, config.policy.policy, new Set(config.routes.map((r) => r.id)), { conditionsFile: config.policy.conditions });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`demo/ztgate.demo.yaml: OK — ${config.routes.length} routes, policy ${version}\n`);
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
  it('a config whose policy is bad exits 78, and its port never accepted a connection', async () => {
    const run = await runs.startBadPolicy!;
    expect(run.signal).toBeNull();
    expect(run.code).toBe(78);
    expect(run.stderr).toContain(`${unknownRoutePolicy}:3:`);
    expect(run.stderr).not.toContain('listening');
    expect(await accepted.startBadPolicy!).toBe(0);
  });
});
