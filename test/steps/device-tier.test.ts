import { describe, expect, it } from 'vitest';
import { deviceError, requireDeviceTier, type DeviceTrust } from '../../gateway/steps/device.js';
import { inProcessConfig, inProcessIssuer, refusalOf } from '../helpers/in-process.js';

/** Step 4's verdict alone (requireDeviceTier in gateway/steps/device.ts): the device's tier against what the service asks for. */

const { devices } = inProcessConfig(await inProcessIssuer());
const device = (tier: DeviceTrust['tier'], extra: Partial<DeviceTrust> = {}): DeviceTrust => ({ id: 'thumbprint', tier, status: 'approved', via: 'dpop', postureFailures: null, refusal: null, shortfall: null, ...extra });

describe('device tier', () => {
  it('allows a device at or above the service minimum', () => {
    expect(() => requireDeviceTier(device('registered'), { minDeviceTier: 'registered', securityLevel: 3 }, devices)).not.toThrow();
    expect(() => requireDeviceTier(device('compliant'), { minDeviceTier: 'registered', securityLevel: 3 }, devices)).not.toThrow();
  });

  it('refuses a device below the minimum with why it falls short (403), device-tier-insufficient when nothing more is known', async () => {
    const plain = await refusalOf(() => requireDeviceTier(device('unknown'), { minDeviceTier: 'registered', securityLevel: 3 }, devices));
    expect([plain.statusCode, plain.code, plain.reason]).toEqual([403, 'ZTG_ERR_DEVICE_UNTRUSTED', 'device-tier-insufficient']);
    const stale = await refusalOf(() => requireDeviceTier(device('registered', { shortfall: 'posture-stale' }), { minDeviceTier: 'compliant', securityLevel: 3 }, devices));
    expect(stale.reason).toBe('posture-stale');
  });

  it('refuses a device refused outright whatever the service asks (a bad proof: 401 with a DPoP challenge)', async () => {
    const err = await refusalOf(() => requireDeviceTier(device('unknown', { refusal: deviceError('device-proof-replayed') }), { minDeviceTier: 'unknown', securityLevel: 1 }, devices));
    expect([err.statusCode, err.reason]).toEqual([401, 'device-proof-replayed']);
    expect(err.headers['www-authenticate']).toContain('error="invalid_dpop_proof"');
  });
});
