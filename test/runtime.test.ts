import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { MIN_NODE_MAJOR, unsupportedRuntime } from '../gateway/node-version.js';
import { ROOT } from './helpers/harness.js';

const run = promisify(execFile);
const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');

describe('Node.js 24 LTS', () => {
  it('the suite itself runs on Node.js 24 or later, with OpenSSL 3.5 or later', () => {
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(MIN_NODE_MAJOR);
    const [major, minor] = process.versions.openssl.split('.').map(Number);
    expect(major! * 100 + minor!, `OpenSSL ${process.versions.openssl}`).toBeGreaterThanOrEqual(305);
  });

  it('an older Node.js is refused with a message naming both versions', () => {
    expect(unsupportedRuntime('v20.20.2')).toMatch(/Node\.js 24 LTS.*v20\.20\.2/);
    expect(unsupportedRuntime('v22.12.0')).not.toBeNull();
    expect(unsupportedRuntime('garbage')).not.toBeNull();
    expect(unsupportedRuntime('v24.0.0')).toBeNull();
    expect(unsupportedRuntime('v26.1.0')).toBeNull();
  });

  it('the IdP library accepts the runtime: no "Unsupported runtime" warning from oidc-provider', async () => {
    const { stdout, stderr } = await run(process.execPath, ['--input-type=module', '-e', "await import('oidc-provider'); console.log('loaded')"], { cwd: ROOT });
    expect(stdout.trim()).toBe('loaded');
    expect(stderr).not.toMatch(/Unsupported runtime/);
    expect(stderr).toBe('');
  });

  it('package.json engines, the container base image and CI name the same release line', () => {
    expect(JSON.parse(read('package.json')).engines.node).toBe(`>=${MIN_NODE_MAJOR}`);
    const from = [...read('Dockerfile').matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(from.length).toBeGreaterThan(0);
    for (const image of from) expect(image).toMatch(new RegExp(`^node:${MIN_NODE_MAJOR}-`));
    expect(read('.ci/run')).toContain(`node-linux-$node_arch@${MIN_NODE_MAJOR}`);
  });
});
