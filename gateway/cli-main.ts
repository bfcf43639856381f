import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCommandLine } from './cli-args.js';
import { knownServices } from '../policies/access.js';
import { didYouMean } from '../core/suggest.js';
import { ConfigError, UsageError } from '../core/errors.js';
import { startGateway } from './server.js';
import { PolicyEngine, PolicyError } from '../policies/engine.js';
import { AUDIT_USAGE } from './audit/cli.js';
import { unsupportedRuntime } from './node-version.js';
import { configuredFileProblems, identityProviderProblems } from './preflight.js';
import { loadConfigFile, type GatewayConfig } from './config.js';
import { ACCESS_USAGE } from './access/cli.js';
import { checkWorkers, MAX_WORKERS, resolveWorkers } from './workers.js';

const USAGE = `ztgate — cổng truy cập Zero Trust cho cơ sở dữ liệu dùng chung / Zero Trust gateway

Cách dùng / usage:
  ztgate start --config FILE [--workers N]
                                  chạy cổng với tệp cấu hình / run the gateway (N processes on one port;
                                  default: config "workers", auto = one per core with Redis state)
  ztgate check --config FILE [--offline]
                                  kiểm tra cấu hình, tệp, chính sách và IdP / validate config, files, policy and
                                  the IdPs (--offline: without asking the IdPs), then exit
  ztgate policy lint --config FILE [--samples DIR]
                                  rà soát chính sách: mọi lỗi kèm tệp:dòng, vai trò lạ, luật bị che, mặt nạ bị lộ
                                  trong dữ liệu mẫu / lint the policy: every error with file:line, unknown roles,
                                  shadowed rules, masks leaking through other fields of sample data (DIR/<route>.json)
  ztgate policy test --config FILE [--cases FILE]
                                  chạy bảng quyết định mong đợi / run the expected-decision table
  ztgate --version                phiên bản / version
${AUDIT_USAGE}${ACCESS_USAGE}`;

/** Where the command line writes: the process's streams, or a test's. */
export interface CliIo {
  readonly out: NodeJS.WritableStream;
  readonly err: NodeJS.WritableStream;
}

/** Runs one command with the arguments after its name; resolves to the exit status, -1 for one that keeps running. */
export type CliHandler = (args: string[], io: CliIo) => Promise<number>;

/**
 * Commands a program built on the product adds to its command line (the demo's `ztgate-demo`):
 * they are looked up before the product's, `--help` lists them above the product's usage, and
 * "did you mean" suggests from both.
 */
export interface CliExtension {
  /** The program's name in messages (`ztgate-demo: …`). */
  readonly program: string;
  /** Usage of the added commands, printed above the product's. */
  readonly usage: string;
  readonly commands: Readonly<Record<string, CliHandler>>;
  /** Added commands that print their own usage for --help. */
  readonly ownHelp?: readonly string[];
  /** The command run when none is given (the product prints its usage and exits 2). */
  readonly defaultCommand?: string;
}

/**
 * The demo's commands, which the product no longer carries (a production install has no demo IdP):
 * asked of `ztgate`, they answer where to find them instead of "unknown command".
 */
const DEMO_COMMANDS = new Set(['demo', 'token', 'device']);
const DEMO_MOVED = (command: string) =>
  `"${command}" thuộc bản trình diễn, không thuộc sản phẩm: chạy \`npm start\` (bản trình diễn nhúng) hoặc \`npx ztgate-demo ${command === 'demo' ? 'start' : command} …\` trong thư mục mã nguồn / ` +
  `"${command}" belongs to the demo, not to the product: run \`npm start\` (the embedded demo) or \`npx ztgate-demo ${command === 'demo' ? 'start' : command} …\` from the source folder`;

function options(args: string[], spec: Record<string, { type: 'string' | 'boolean' }>) {
  return parseCommandLine({ args, options: spec, strict: true, allowPositionals: false }).values as Record<string, string | undefined>;
}

/** Loads the config and checks every file it names, before anything is opened or written. */
async function loadChecked(file: string): Promise<GatewayConfig> {
  const config = loadConfigFile(file);
  const problems = await configuredFileProblems(config);
  if (problems.length > 0) throw new ConfigError(file, problems);
  return config;
}

/** Closes on SIGINT/SIGTERM (a second signal exits at once); for every command that keeps running. */
export function onSignal(close: () => Promise<void>): void {
  let closing = false;
  const stop = () => {
    if (closing) process.exit(130);
    closing = true;
    close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

const commands: Record<string, CliHandler> = {
  async start(args, io) {
    const { config: file, workers: workersArg } = options(args, { config: { type: 'string' }, workers: { type: 'string' } });
    if (!file) throw new UsageError('start needs --config FILE');
    const { isWorker, runWorker, startPrimary } = await import('./cluster.js');
    if (isWorker()) {
      runWorker(() => loadChecked(file));
      return -1;
    }
    let override: number | undefined;
    if (workersArg !== undefined) {
      if (!/^\d{1,3}$/.test(workersArg) || Number(workersArg) < 1 || Number(workersArg) > MAX_WORKERS) throw new UsageError(`--workers: "${workersArg}" must be a whole number from 1 to ${MAX_WORKERS}`);
      override = Number(workersArg);
    }
    const config = await loadChecked(file);
    const workers = resolveWorkers(config.workers, { stateBackend: config.state.backend, override });
    if (workers > 1) {
      const problems = checkWorkers({ ...config, workers });
      if (problems.length > 0) throw new ConfigError(file, problems);
      const primary = await startPrimary(config, workers);
      io.err.write(`ztgate listening on ${primary.url} (${workers} workers)\n`);
      let restarting: Promise<void> | null = null;
      process.on('SIGHUP', () => {
        restarting ??= primary
          .restart()
          .catch((err: Error) => void io.err.write(`ztgate: restart stopped: ${err.message}\n`))
          .finally(() => (restarting = null));
      });
      onSignal(primary.close);
      return -1;
    }
    const gateway = await startGateway(config);
    io.err.write(`ztgate listening on ${gateway.url}\n`);
    onSignal(gateway.shutdown);
    return -1;
  },
  async check(args, io) {
    const { config: file, offline } = options(args, { config: { type: 'string' }, offline: { type: 'boolean' } });
    if (!file) throw new UsageError('check needs --config FILE');
    const config = await loadChecked(file);
    const engine = await PolicyEngine.load(config.policy.model, config.policy.policy, knownServices(config), { conditionsFile: config.policy.conditions });
    if (!offline) {
      const problems = await identityProviderProblems(config);
      if (problems.length > 0) {
        io.err.write(`ztgate: ${file}: IdP không trả lời đúng / identity provider check failed\n  - ${problems.join('\n  - ')}\n  (--offline: check without asking the IdPs)\n`);
        return 69; // EX_UNAVAILABLE (sysexits.h)
      }
    }
    const idps = offline ? 'IdPs not asked (--offline)' : `${config.identity.issuers.length} IdP(s) answered`;
    io.out.write(`${file}: OK — ${config.routes.length} routes, policy ${engine.version}, ${idps}\n`);
    return 0;
  },
  async policy(args, io) {
    const [sub, ...rest] = args;
    const { config, cases, samples } = options(rest, { config: { type: 'string' }, cases: { type: 'string' }, samples: { type: 'string' } });
    const { policyCommand } = await import('../policies/cli.js');
    return policyCommand(sub, { config, cases, samples }, io.out, io.err, loadConfigFile);
  },
  async audit(args, io) {
    const { runAuditCommand } = await import('./audit/cli.js');
    return runAuditCommand(args, io.out);
  },
  async access(args, io) {
    const { runAccessCommand } = await import('./access/cli.js');
    return runAccessCommand(args, { out: io.out, err: io.err, env: process.env });
  },
};

/** The version in package.json, found above this file (gateway/cli.ts, or dist/gateway/cli.js when built). */
function version(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) return String((JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version);
    if (dirname(dir) === dir) return 'unknown';
  }
}

/** The usage `--help` prints: the added commands' first, then the product's. */
const usageOf = (extension: CliExtension | undefined) => (extension ? `${extension.usage}\n${USAGE}` : USAGE);

async function main(argv: string[], io: CliIo, extension: CliExtension | undefined): Promise<number> {
  const program = extension?.program ?? 'ztgate';
  const unsupported = unsupportedRuntime();
  if (unsupported) {
    io.err.write(`${program}: ${unsupported}\n`);
    return 69; // EX_UNAVAILABLE (sysexits.h)
  }
  const [command = extension?.defaultCommand, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    io.out.write(usageOf(extension));
    return command ? 0 : 2;
  }
  if (command === '--version' || command === '-V' || command === 'version') {
    io.out.write(`${program} ${version()} (Node.js ${process.versions.node})\n`);
    return 0;
  }
  const added = extension && Object.hasOwn(extension.commands, command) ? extension.commands[command] : undefined;
  const handler = added ?? (Object.hasOwn(commands, command) ? commands[command] : undefined);
  if (!handler) {
    if (DEMO_COMMANDS.has(command)) {
      io.err.write(`${program}: ${DEMO_MOVED(command)}\n`);
      return 2;
    }
    throw new UsageError(`unknown command "${command}"${didYouMean(command, [...Object.keys(extension?.commands ?? {}), ...Object.keys(commands), 'help', 'version'])}`);
  }
  const ownHelp = added !== undefined && (extension?.ownHelp ?? []).includes(command);
  if (!ownHelp && (rest.includes('--help') || rest.includes('-h'))) {
    io.out.write(usageOf(extension));
    return 0;
  }
  return handler(rest, io);
}

/**
 * Runs one command line; resolves to the exit status (0 success, 1 runtime failure, 2 usage
 * error, 69 a Node.js too old, 78 invalid configuration or policy), or -1 for a command that keeps
 * running (start). `extension` adds a program's own commands (demo/cli.ts: `ztgate-demo`).
 */
export async function runCli(argv: string[], io: CliIo = { out: process.stdout, err: process.stderr }, extension?: CliExtension): Promise<number> {
  const program = extension?.program ?? 'ztgate';
  try {
    return await main(argv, io, extension);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof PolicyError) {
      io.err.write(`${program}: ${err.message}\n`);
      return 78; // EX_CONFIG (sysexits.h)
    }
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err.write(`${program}: ${(err as Error).message}\n\n${usageOf(extension)}`);
      return 2;
    }
    // The message first, for the official reading it; the stable code after it, for whoever searches the logs or the docs.
    const e = err as { code?: string; message?: string };
    io.err.write(`${program}: ${e.message ?? String(err)}${e.code ? ` [${e.code}]` : ''}\n`);
    return 1;
  }
}
