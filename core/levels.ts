/** Ordered scales shared by the configuration schema, the steps, the policy engine and the admin UI. */

/** Data classification of a shared database service, lowest first (phân loại dữ liệu / độ mật). */
export const CLASSIFICATIONS = [
  'public', // công khai
  'internal', // nội bộ
  'personal-data', // dữ liệu cá nhân
  'sensitive-personal-data', // dữ liệu cá nhân nhạy cảm
  'mat', // Mật
  'toi-mat', // Tối mật
  'tuyet-mat', // Tuyệt mật
] as const;
export type Classification = (typeof CLASSIFICATIONS)[number];

export const APPROVAL_STATUSES = ['approved', 'pending', 'rejected', 'suspended'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];

/** State-secret clearance, lowest first (Mật < Tối mật < Tuyệt mật). */
export const CLEARANCES = ['none', 'mat', 'toi-mat', 'tuyet-mat'] as const;
export type Clearance = (typeof CLEARANCES)[number];

/**
 * Device trust tiers, lowest first (README "Device trust"); an absent or unverified device is
 * `unknown`.
 */
export const DEVICE_TIERS = ['unknown', 'registered', 'compliant', 'high-assurance'] as const;
export type DeviceTier = (typeof DEVICE_TIERS)[number];
