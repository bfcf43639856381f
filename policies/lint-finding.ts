/** One thing `ztgate policy lint` reports, from the rules (lint.ts) or the masked samples (lint-samples.ts). */
export interface LintFinding {
  readonly level: 'error' | 'warning';
  /** file:line */
  readonly at: string;
  readonly message: string;
}
