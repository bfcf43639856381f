import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, jwtVerify, EmbeddedJWK } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../gateway/config.js';
import { ConfigError } from '../core/errors.js';
import { minimumTier } from '../gateway/steps/device.js';
import { complianceFailures, deviceTier, tierAtLeast, type PostureReport } from '../identity/posture.js';
import { createDemoDevice, createDpopProof, loadDemoDevice, runDeviceCommand } from '../demo/device-cli.js';
import { ROOT } from './helpers/harness.js';

const approval = { status: 'approved', approvedBy: '056179000006', approvedAt: '2026-01-01' };
function doc(devices?: Record<string, unknown>) {
  return {
    publicUrl: 'http://127.0.0.1:8080',
    identity: { issuers: [{ issuer: 'http://127.0.0.1:8090', audience: 'urn:ztgate:data' }] },
    policy: { model: 'policies/model.conf', policy: 'policies/demo-policy.csv' },
    ...(devices ? { devices } : {}),
    routes: [1, 2, 3, 4, 5].map((level) => ({ id: `r${level}`, name: `Cấp độ ${level}`, pathPrefix: `/r${level}`, upstream: `http://127.0.0.1:${9200 + level}`, ownerAgency: 'so-test', securityLevel: level, classification: 'internal', approval })),
  };
}
function problems(devices: Record<string, unknown>): string[] {
  try {
    parseConfig(doc(devices), 'test', ROOT);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('device configuration', () => {
  it('defaults: the minimum tier rises with the security level', () => {
    const config = parseConfig(doc(), 'test', ROOT);
    expect(config.devices).toMatchObject({ proofAlgorithms: ['ES256', 'EdDSA'], proofMaxAgeSeconds: 60, postureMaxAgeSeconds: 14_400, postureSigners: [] });
    expect(config.routes.map((r) => minimumTier(r, config.devices))).toEqual(['unknown', 'unknown', 'registered', 'compliant', 'compliant']);
  });

  it('a route minimum overrides its level default', () => {
    const d = doc();
    (d.routes[4] as any).minDeviceTier = 'high-assurance';
    (d.routes[2] as any).minDeviceTier = 'unknown';
    const config = parseConfig(d, 'test', ROOT);
    expect(minimumTier(config.routes[4]!, config.devices)).toBe('high-assurance');
    expect(minimumTier(config.routes[2]!, config.devices)).toBe('unknown');
  });

  it('refuses a signer with both or neither of jwks and jwksUri, a private key, an http JWKS off loopback, a symmetric algorithm, a duplicate', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const priv = await exportJWK(privateKey);
    const found = problems({
      postureSigners: [
        { issuer: 'urn:a', jwks: { keys: [priv] }, jwksUri: 'https://edr.example/jwks.json' },
        { issuer: 'urn:b' },
        { issuer: 'urn:c', jwks: { keys: [priv] } },
        { issuer: 'urn:d', jwksUri: 'http://edr.example/jwks.json', algorithms: ['HS256'] },
        { issuer: 'urn:d', jwksUri: 'https://edr.example/jwks.json' },
      ],
    });
    expect(found).toEqual(
      expect.arrayContaining([
        'devices.postureSigners[0]: set exactly one of jwks (the keys) or jwksUri (where to fetch them)',
        'devices.postureSigners[1]: set exactly one of jwks (the keys) or jwksUri (where to fetch them)',
        "devices.postureSigners[2].jwks.keys[0]: is a private or symmetric key; configure the signer's public keys only",
        expect.stringMatching(/^devices\.postureSigners\[3\]\.jwksUri: .* must use https/),
        expect.stringMatching(/^devices\.postureSigners\[3\]\.algorithms\[0\]: "HS256" is not allowed/),
        'devices.postureSigners[4].issuer: "urn:d" is configured twice',
      ]),
    );
  });

  it('refuses unknown tiers, RSA proof algorithms and unknown keys, naming the key', () => {
    const found = problems({ defaultMinTierBySecurityLevel: { '3': 'trusted' }, proofAlgorithms: ['RS256'], proofMaxAgeSecond: 5 });
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^devices\.defaultMinTierBySecurityLevel\[3\]: must be one of "unknown", "registered", "compliant", "high-assurance"/),
        expect.stringMatching(/^devices\.proofAlgorithms\[0\]: must be one of "ES256", "EdDSA"/),
        'devices: unknown key "proofMaxAgeSecond" / khóa không được hỗ trợ — có phải ý bạn là / did you mean "proofMaxAgeSeconds"?',
      ]),
    );
  });
});

describe('tiers and compliance', () => {
  const compliance = parseConfig(doc(), 'test', ROOT).devices.compliance;
  const now = 1_800_000_000;
  const report = (over: Partial<PostureReport> = {}): PostureReport => ({
    issuer: 'urn:edr',
    deviceId: 'd',
    issuedAt: now,
    expiresAt: now + 600,
    jti: 'j',
    os: { name: 'Linux', version: '6.8' },
    patchAgeDays: 30,
    diskEncrypted: true,
    screenLock: true,
    edrRunning: true,
    lastMalwareScan: now - 7 * 86_400,
    riskScore: 40,
    ...over,
  });

  it('a report exactly at every threshold is compliant; one step beyond each fails that claim', () => {
    expect(complianceFailures(report(), compliance, now)).toEqual([]);
    expect(complianceFailures(report({ patchAgeDays: 31 }), compliance, now)).toEqual(['patch_age_days']);
    expect(complianceFailures(report({ lastMalwareScan: now - 7 * 86_400 - 1 }), compliance, now)).toEqual(['last_malware_scan']);
    expect(complianceFailures(report({ riskScore: 41, screenLock: false }), compliance, now)).toEqual(['screen_lock', 'risk_score']);
  });

  it('tiers are ordered and computed from registry and posture', () => {
    expect(deviceTier({ approved: false, compliant: true, hardwareBound: true })).toBe('unknown');
    expect(deviceTier({ approved: true, compliant: false, hardwareBound: true })).toBe('registered');
    expect(deviceTier({ approved: true, compliant: true, hardwareBound: false })).toBe('compliant');
    expect(deviceTier({ approved: true, compliant: true, hardwareBound: true })).toBe('high-assurance');
    expect(tierAtLeast('compliant', 'registered')).toBe(true);
    expect(tierAtLeast('registered', 'compliant')).toBe(false);
  });
});

describe('demo device material', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ztgate-devices-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a demo device key is written owner-only, marked synthetic, and loads back to make verifiable proofs', async () => {
    const device = await createDemoDevice('Máy thử (giả lập)', dir);
    const file = join(dir, `${device.id}.json`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))._note).toMatch(/GIẢ LẬP.*DEMO ONLY/);
    const loaded = await loadDemoDevice(device.id, dir);
    const proof = await createDpopProof(loaded, 'GET', 'http://127.0.0.1:8080/y-te/records?limit=1', 'token');
    const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt' });
    expect(payload).toMatchObject({ htm: 'GET', htu: 'http://127.0.0.1:8080/y-te/records' });
    expect(protectedHeader.jwk).toEqual(device.publicJwk);
    await expect(importJWK(protectedHeader.jwk!, 'ES256')).resolves.toBeDefined();
  });

  it('refuses an unknown device id and an unknown subcommand with a usage error', async () => {
    await expect(loadDemoDevice('x'.repeat(43), dir)).rejects.toThrow(/no demo device/);
    await expect(runDeviceCommand(['frobnicate'], { out: () => undefined })).rejects.toThrow(/unknown device command/);
  });
});
