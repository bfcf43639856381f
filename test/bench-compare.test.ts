import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatCompare, runCompare, type CompareOptions } from '../bench/compare.js';
import { formatStartup, runStartup } from '../bench/startup.js';
import { redisUrl } from './helpers/redis.js';

/** The side-by-side HTTP comparison of `npm run bench` still runs end to end, with tiny counts. */
const dir = mkdtempSync(join(tmpdir(), 'ztgate-bench-smoke-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tiny = async (extra: Partial<CompareOptions>): Promise<CompareOptions> => ({ dir, seconds: 1, warmupSeconds: 0, connections: 4, threads: 1, rules: 50, tokens: 10, workers: 2, redisUrl: await redisUrl(), log: () => undefined, ...extra });

describe('npm run bench: the side-by-side comparison (smoke run)', () => {
  it('measures every set-up, with ratios to the bare proxy, and no errors', async () => {
    const r = await runCompare(await tiny({}));
    const measured = r.setups.filter((s) => !s.skipped);
    expect(measured.map((s) => s.setup)).toEqual(expect.arrayContaining(['direct', 'bare-proxy', 'gateway-warm', 'gateway-cold', 'gateway-device-proof', 'gateway-redis-chain', 'gateway-multi-core']));
    for (const s of measured) {
      expect(s.requests, s.setup).toBeGreaterThan(0);
      expect(s.errors, s.setup).toBe(0);
      expect(s.ratioToBare, s.setup).toBeGreaterThan(0);
      expect(s.serverCores, s.setup).toBeGreaterThan(0);
      expect(s.peakRssMiB.max, s.setup).toBeGreaterThan(0);
    }
    expect(measured.find((s) => s.setup === 'bare-proxy')!.ratioToBare).toBe(1);
    const table = formatCompare(r);
    expect(table).toContain('(e) gateway, cold: distinct tokens in rotation');
    // (g): every request carried a fresh proof the gateway accepted (a reused one would be refused).
    expect(table).toContain('(g) gateway, a fresh device proof (DPoP) per request');
    expect(table).toContain(`${r.machine.cores} cores`);
    // The open-loop run at half of (b)'s rate: both set-ups answered, the added latency stated.
    const fr = r.fixedRate!;
    expect(fr.rate).toBe(Math.round(measured.find((s) => s.setup === 'bare-proxy')!.requestsPerSecond / 2));
    for (const run of [fr.bare, fr.gateway]) {
      expect(run.scheduled).toBeGreaterThan(0);
      expect(run.errors).toBe(0);
      expect(run.latencyMs.p99).toBeGreaterThan(0);
    }
    expect(fr.addedMs.p99).toBe(Math.round((fr.gateway.latencyMs.p99 - fr.bare.latencyMs.p99) * 100) / 100);
    expect(table).toContain('Fixed rate (open loop');
  }, 120_000);

  it('measures cold start and memory of the compiled gateway with a synthetic roster', async () => {
    const r = await runStartup({ dir: join(dir, 'startup'), rules: 50, roster: 200, starts: 1, loadSeconds: 1, connections: 2, tokens: 20, log: () => undefined });
    expect(r.coldStartMs.runs).toHaveLength(1);
    expect(r.coldStartCpuMs.median).toBeGreaterThan(0);
    expect(r.memoryMiB.afterLoadRss).toBeGreaterThan(0);
    expect(r.requests).toBeGreaterThan(0);
    expect(r.errors).toBe(0);
    expect(formatStartup([r])).toContain('dist/gateway/cli.js start');
  }, 120_000);

  it('runs without wrk too (the closed loop in process)', async () => {
    const r = await runCompare(await tiny({ generator: 'node', setups: ['direct', 'gateway-cold', 'gateway-device-proof'] }));
    expect(r.loadgen).toMatch(/^node closed loop/);
    for (const s of r.setups) expect(s.requests, s.setup).toBeGreaterThan(0);
    expect(r.setups.every((s) => s.errors === 0)).toBe(true);
  }, 60_000);
});
