/**
 * The base of the project's typed errors: a stable `code` that callers branch on, never the
 * message text (as jose's JOSEError and Node's system errors do). Each module declares its own
 * subclass with its closed list of codes; a published code is never renamed or reused. The
 * gateway step that calls a module maps its codes to a GatewayError and a reason
 * (docs/architecture.md, "One request, top to bottom").
 */
export abstract class CodedError extends Error {
  abstract readonly code: string;
}

/** Thrown while loading configuration or policy files; each problem names what is wrong. */
export class ConfigError extends CodedError {
  readonly code = 'ZTG_ERR_CONFIG_INVALID';
  readonly problems: readonly string[];

  constructor(source: string, problems: string[]) {
    super(`${source}: cấu hình không hợp lệ / invalid configuration\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = Object.freeze([...problems]);
  }
}

/** A command line that cannot be run as written: the CLI prints the message and its usage, and exits 2. */
export class UsageError extends CodedError {
  readonly code = 'ERR_USAGE';

  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
