import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../gateway/config.js';
import { runCli } from '../gateway/cli-main.js';
import { runDemoCli } from '../demo/cli-main.js';
import { PolicyEngine } from '../policies/engine.js';
import { freePort, ROOT } from './helpers/harness.js';
import { ChainWriter } from '../gateway/audit/chain.js';
import { createCheckpointSigner } from '../gateway/audit/keys.js';

/**
 * The command line. What it says and which status it exits with is decided by runCli, which these
 * tests run in-process: no process to start, nothing to wait for. The compiled CLI (dist/, what
 * `npm start` and the `ztgate` bin run) is built once and run as a process only where the process
 * itself is the point: that it starts at all, and the exit status it hands the shell.
 */

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, done: () => void) {
    this.text += chunk.toString('utf8');
    done();
  }
}

async function cli(args: string[], program: typeof runCli = runCli): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = new Capture();
  const err = new Capture();
  const code = await program(args, { out, err });
  return { code, stdout: out.text, stderr: err.text };
}

/** `ztgate-demo`: the demo's commands added to the product's (demo/cli-main.ts). */
const demoCli = (args: string[]) => cli(args, runDemoCli);

const tmp = mkdtempSync(join(tmpdir(), 'ztgate-cli-'));
const MODEL = join(ROOT, 'policies/model.conf');
const COMPILED = join(ROOT, 'dist/gateway/cli.js');
const COMPILED_DEMO = join(ROOT, 'dist/demo/cli.js');

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
  idp = createHttpServer((req, res) => {
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
}, 120_000);

afterAll(async () => {
  rmSync(tmp, { recursive: true, force: true });
  await new Promise((r) => idp?.close(r));
});

describe('ztgate check', () => {
  it('a valid config exits 0 and prints OK with the policy version', async () => {
    const run = await cli(['check', '--config', 'demo/ztgate.demo.yaml', '--offline']);
    const config = loadConfigFile(join(ROOT, 'demo/ztgate.demo.yaml'));
    const { version } = await PolicyEngine.load(config.policy.model, config.policy.policy, new Set(config.routes.map((r) => r.id)), { conditionsFile: config.policy.conditions });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`demo/ztgate.demo.yaml: OK — ${config.routes.length} routes, policy ${version}, IdPs not asked (--offline)\n`);
  });

  it('every file the config names is checked: a missing roster file exits 78 and names the key', async () => {
    const run = await cli(['check', '--config', missingRosterConfig, '--offline']);
    expect(run.code).toBe(78);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`identity.roster.file: ${join(tmp, 'no-such-roster.csv')}: cannot read the file (ENOENT)`);
  });

  it('the IdP is asked for its discovery document and keys: unreachable exits 69 and names the issuer; --offline skips it', async () => {
    const down = await cli(['check', '--config', idpDownConfig]);
    expect(down.code).toBe(69);
    expect(down.stderr).toMatch(/identity\.issuers\[0\] \(http:\/\/127\.0\.0\.1:\d+\): not reachable \(ECONNREFUSED\)/);
    expect((await cli(['check', '--config', idpDownConfig, '--offline'])).code).toBe(0);
    const up = await cli(['check', '--config', idpUpConfig]);
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    expect(up.stdout).toContain('1 IdP(s) answered');
  });

  it('a bad config exits 78 (EX_CONFIG) and names the key and its line', async () => {
    const run = await cli(['check', '--config', badConfig]);
    expect(run.code).toBe(78);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`${badConfig}: `);
    expect(run.stderr).toMatch(/line 15: routes\[0\]\.securityLevel: must be <= 5/);
  });

  it('a policy naming an unknown route exits 78 and names file:line', async () => {
    const run = await cli(['check', '--config', badPolicyConfig]);
    expect(run.code).toBe(78);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`${unknownRoutePolicy}:3: service "thue" is not a configured route`);
  });
});

describe('usage errors exit 2 with the usage text', () => {
  it('an unknown command, with the command it resembles', async () => {
    const run = await cli(['frobnicate']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('unknown command "frobnicate"');
    expect(run.stderr).not.toContain('did you mean');
    expect(run.stderr).toMatch(/usage[\s\S]*ztgate check --config FILE/);
    const typo = await cli(['chekc', '--config', 'demo/ztgate.demo.yaml', '--offline']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('unknown command "chekc" — có phải ý bạn là / did you mean "check"?');
  });

  it('unknown subcommands of policy, device and audit, with the one they resemble', async () => {
    for (const [args, said] of [
      [['policy', 'lnit', '--config', 'demo/ztgate.demo.yaml'], 'did you mean "lint"?'],
      [['device', 'enrl', '--user', '056190000002'], 'unknown device command "enrl" — có phải ý bạn là / did you mean "enrol"?'],
      [['audit', 'verfy', 'x.log'], 'did you mean "verify"?'],
    ] as const) {
      const run = await demoCli([...args]);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stderr, args.join(' ')).toContain(said);
    }
  });

  it('check without --config', async () => {
    const run = await cli(['check']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('check needs --config FILE');
    expect(run.stderr).toMatch(/usage[\s\S]*ztgate start --config FILE/);
  });
});

describe('runtime failures exit 1', () => {
  it('a typed error prints its message first, then its stable code (ztgate audit export, --from after --to)', async () => {
    const run = await cli(['audit', 'export', '--chain', chainFile, '--from', '2026-02-01T00:00:00Z', '--to', '2026-01-01T00:00:00Z', '--out', join(tmp, 'bundle')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe('ztgate: --from phải trước --to / --from must be before --to [ERR_AUDIT_EXPORT_RANGE_INVALID]\n');
  });
});

describe('option values', () => {
  it('regression: a value that starts with "-" is the option\'s value (one device id in 64 does), not an ambiguous option', async () => {
    const verify = await cli(['audit', 'verify', '--keys', '-Xk3-keys.json', join(tmp, 'no-chain.log')]);
    expect(verify.stderr).not.toContain('ambiguous');
    expect(verify.stderr).toContain('-Xk3-keys.json');
    const device = await demoCli(['device', 'posture', '--device', '-Xk3fV0pq']);
    expect(device.stderr).not.toContain('ambiguous');
    expect(device.stderr).toContain('-Xk3fV0pq');
  });
});

describe('help and version', () => {
  it('regression: ztgate-demo device --help prints the device usage and exits 0 (it was an error)', async () => {
    for (const args of [
      ['device', '--help'],
      ['device', '-h'],
      ['device', 'enrol', '--help'],
    ]) {
      const run = await demoCli(args);
      expect(run.code, args.join(' ')).toBe(0);
      expect(run.stderr).toBe('');
      expect(run.stdout).toContain('ztgate-demo device enrol --user NATIONAL_ID');
    }
  });

  it('ztgate --version prints the version of package.json', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V', 'version']) {
      const run = await cli([flag]);
      expect(run.code).toBe(0);
      expect(run.stdout).toBe(`ztgate ${version} (Node.js ${process.versions.node})\n`);
    }
  });

  it('--help on a command prints the usage and exits 0', async () => {
    const run = await cli(['check', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/usage[\s\S]*ztgate --version/);
  });
});

describe("the product and the demo: ztgate carries no demo command, ztgate-demo adds them to the product's", () => {
  it('ztgate --help lists no demo command', async () => {
    const run = await cli(['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('ztgate start --config FILE');
    expect(run.stdout).not.toMatch(/ztgate (demo|token|device)\b/);
  });

  it('ztgate demo, token and device say where they are (npm start, ztgate-demo), Vietnamese first, and exit 2', async () => {
    for (const [command, where] of [
      ['demo', 'npx ztgate-demo start'],
      ['token', 'npx ztgate-demo token'],
      ['device', 'npx ztgate-demo device'],
    ] as const) {
      const run = await cli([command, '--user', '056085000001']);
      expect(run.code, command).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr, command).toMatch(/^ztgate: "\w+" thuộc bản trình diễn, không thuộc sản phẩm: .* \/ "\w+" belongs to the demo, not to the product/);
      expect(run.stderr, command).toContain('npm start');
      expect(run.stderr, command).toContain(where);
      expect(run.stderr, command).not.toContain('unknown command');
    }
  });

  it("ztgate-demo --help lists the demo's commands and then the product's", async () => {
    const run = await demoCli(['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/ztgate-demo \[start\][\s\S]*ztgate-demo token --user[\s\S]*ztgate-demo device init[\s\S]*ztgate start --config FILE[\s\S]*ztgate audit verify/);
  });

  it("ztgate-demo runs the product's commands as ztgate does", async () => {
    const run = await demoCli(['check', '--config', 'demo/ztgate.demo.yaml', '--offline']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe((await cli(['check', '--config', 'demo/ztgate.demo.yaml', '--offline'])).stdout);
  });

  it('"did you mean" covers both the demo\'s commands and the product\'s', async () => {
    const demoTypo = await demoCli(['tokne', '--user', '056085000001']);
    expect(demoTypo.code).toBe(2);
    expect(demoTypo.stderr).toContain('ztgate-demo: unknown command "tokne" — có phải ý bạn là / did you mean "token"?');
    const productTypo = await demoCli(['chekc', '--config', 'demo/ztgate.demo.yaml']);
    expect(productTypo.code).toBe(2);
    expect(productTypo.stderr).toContain('did you mean "check"?');
  });

  it('ztgate-demo start takes no --config and names the product command that does', async () => {
    const run = await demoCli(['start', '--config', 'demo/ztgate.demo.yaml']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('ztgate start --config FILE');
  });
});

describe('ztgate start refuses a bad config without ever listening', () => {
  it('a config whose roster file is missing exits 78 and leaves the audit chain exactly as it was', async () => {
    const run = await cli(['start', '--config', missingRosterConfig]);
    expect(run.code).toBe(78);
    expect(run.stderr).toContain('identity.roster.file');
    expect(readFileSync(chainFile, 'utf8')).toBe(chainBefore);
  });

  it('a config whose policy is bad exits 78, and its port was never taken', async () => {
    const run = await cli(['start', '--config', badPolicyConfig]);
    expect(run.code).toBe(78);
    expect(run.stderr).toContain(`${unknownRoutePolicy}:3:`);
    expect(run.stderr).not.toContain('listening');
    // Had the gateway bound the port (even for a moment, and still held), this would fail.
    const probe = createServer();
    await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(badPolicyPort, '127.0.0.1', resolve));
    await new Promise((resolve) => probe.close(resolve));
  });
});

describe('the compiled command line (dist/)', () => {
  beforeAll(() => {
    // Incremental (dist/.tsbuildinfo): after `npm ci` built it, only what changed is compiled.
    execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
  }, 180_000);

  const run = promisify(execFile);
  const status = (err: unknown) => (err as { code?: number }).code;

  it('runs as a process and hands the shell its exit status: 0, 2, 78', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const ok = await run(process.execPath, [COMPILED, '--version'], { cwd: ROOT });
    expect(ok.stdout).toBe(`ztgate ${version} (Node.js ${process.versions.node})\n`);
    const [usage, config] = await Promise.all([run(process.execPath, [COMPILED, 'frobnicate'], { cwd: ROOT }).then(() => 0, status), run(process.execPath, [COMPILED, 'check', '--config', badConfig], { cwd: ROOT }).then(() => 0, status)]);
    expect(usage).toBe(2);
    expect(config).toBe(78);
  });

  it('ztgate-demo (dist/demo/cli.js, the bin npm start runs) runs as a process; the ztgate bin is the product alone', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string>; scripts: Record<string, string> };
    expect(pkg.bin).toEqual({ ztgate: 'dist/gateway/cli.js', 'ztgate-demo': 'dist/demo/cli.js' });
    expect(pkg.scripts.start).toBe('node dist/demo/cli.js');
    const ok = await run(process.execPath, [COMPILED_DEMO, '--version'], { cwd: ROOT });
    expect(ok.stdout).toBe(`ztgate-demo ${pkg.version} (Node.js ${process.versions.node})\n`);
    const help = await run(process.execPath, [COMPILED_DEMO, 'device', '--help'], { cwd: ROOT });
    expect(help.stdout).toContain('ztgate-demo device init --name NAME');
    expect(await run(process.execPath, [COMPILED, 'demo'], { cwd: ROOT }).then(() => 0, status)).toBe(2);
  });
});
