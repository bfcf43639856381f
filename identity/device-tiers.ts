/**
 * Device trust tiers, lowest first (README "Device trust"); an absent or unverified device is
 * `unknown`. One list for the configuration schema, the device step and the policy engine.
 */
export const DEVICE_TIERS = ['unknown', 'registered', 'compliant', 'high-assurance'] as const;
export type DeviceTier = (typeof DEVICE_TIERS)[number];
