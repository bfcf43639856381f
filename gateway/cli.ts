#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ConfigError } from './errors.js';
import { loadConfigFile } from './config.js';
import { startGateway } from './server.js';
import { PolicyEngine, PolicyError } from '../policies/engine.js';

const USAGE = `ztgate — cổng truy cập Zero Trust cho cơ sở dữ liệu dùng chung / Zero Trust gateway

Cách dùng / usage:
  ztgate start --config FILE      chạy cổng với tệp cấu hình / run the gateway
  ztgate check --config FILE      kiểm tra cấu hình và chính sách / validate config and policy, then exit
  ztgate demo                     chạy bản trình diễn nhúng / run the embedded demo
  ztgate token --user NATIONAL_ID [--issuer URL] [--password PASSWORD]
                                  lấy access token từ IdP demo (luồng OAuth chuẩn) / get a demo access token
`;

type Handler = (args: string[]) => Promise<number>;

function options(args: string[], spec: Record<string, { type: 'string' }>) {
  return parseArgs({ args, options: spec, strict: true, allowPositionals: false }).values as Record<string, string | undefined>;
}

function onSignal(close: () => Promise<void>): void {
  let closing = false;
  const stop = () => {
    if (closing) process.exit(130);
    closing = true;
    close().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

const commands: Record<string, Handler> = {
  async start(args) {
    const { config: file } = options(args, { config: { type: 'string' } });
    if (!file) throw new UsageError('start needs --config FILE');
    const gateway = await startGateway(loadConfigFile(file));
    process.stderr.write(`ztgate listening on ${gateway.url}\n`);
    onSignal(gateway.close);
    return -1;
  },
  async check(args) {
    const { config: file } = options(args, { config: { type: 'string' } });
    if (!file) throw new UsageError('check needs --config FILE');
    const config = loadConfigFile(file);
    const engine = await PolicyEngine.load(config.policy.model, config.policy.policy, new Set(config.routes.map((r) => r.id)));
    process.stdout.write(`${file}: OK — ${config.routes.length} routes, policy ${engine.version}\n`);
    return 0;
  },
  async demo(args) {
    options(args, {});
    const { startDemo, demoBanner } = await import('../demo/run.js');
    const demo = await startDemo();
    process.stderr.write(demoBanner(demo));
    onSignal(demo.close);
    return -1;
  },
  async token(args) {
    const { user, issuer, password } = options(args, { user: { type: 'string' }, issuer: { type: 'string' }, password: { type: 'string' } });
    if (!user) throw new UsageError('token needs --user NATIONAL_ID');
    const { obtainDemoToken } = await import('../demo/token.js');
    const tokens = await obtainDemoToken({ issuer: issuer ?? 'http://127.0.0.1:8090', nationalId: user, ...(password ? { password } : {}) });
    process.stdout.write(`${tokens.access_token}\n`);
    return 0;
  },
};

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  const handler = commands[command];
  if (!handler) throw new UsageError(`unknown command "${command}"`);
  return handler(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof PolicyError) {
      process.stderr.write(`ztgate: ${err.message}\n`);
      process.exitCode = 78; // EX_CONFIG (sysexits.h)
    } else if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`ztgate: ${(err as Error).message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else {
      const e = err as { code?: string; message?: string };
      process.stderr.write(`ztgate: ${e.code ? `[${e.code}] ` : ''}${e.message ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
