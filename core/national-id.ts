/**
 * The 12-digit personal identification number (số định danh cá nhân).
 * Digits 1–3: province or country code of birth registration; digit 4: century and sex;
 * digits 5–6: birth year; 7–12: random. There is no check digit, and unknown prefixes are
 * legitimate (births registered abroad), so the format is all that can be checked here.
 */
/** The same format as a JSON-schema `pattern`, for request schemas. */
export const NATIONAL_ID_PATTERN = '^\\d{12}$';
const NATIONAL_ID = new RegExp(NATIONAL_ID_PATTERN);

export function isNationalId(value: unknown): value is string {
  return typeof value === 'string' && NATIONAL_ID.test(value);
}

/**
 * For display where need-to-know is absent: keeps the province code (digits 1–3) and the last
 * two digits. Digit 4 (century and sex) is personal data and stays hidden.
 */
export function maskNationalId(value: string): string {
  return isNationalId(value) ? `${value.slice(0, 3)}*******${value.slice(10)}` : '************';
}
