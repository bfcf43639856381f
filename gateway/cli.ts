#!/usr/bin/env node
import { knownServices } from '../policies/access.js';
import { parseArgs } from 'node:util';
import { ConfigError } from './errors.js';
import { loadConfigFile } from './config.js';
import { startGateway } from './server.js';
import { PolicyEngine, PolicyError } from '../policies/engine.js';
import { AUDIT_USAGE } from './audit/cli.js';
import { unsupportedRuntime } from './node-version.js';
import { configuredFileProblems, identityProviderProblems } from './preflight.js';
import type { GatewayConfig } from './config.js';
import { ACCESS_USAGE } from './access/cli.js';

const USAGE = `ztgate — cổng truy cập Zero Trust cho cơ sở dữ liệu dùng chung / Zero Trust gateway

Cách dùng / usage:
  ztgate start --config FILE      chạy cổng với tệp cấu hình / run the gateway
  ztgate check --config FILE [--offline]
                                  kiểm tra cấu hình, tệp, chính sách và IdP / validate config, files, policy and
                                  the IdPs (--offline: without asking the IdPs), then exit
  ztgate policy lint --config FILE
                                  rà soát chính sách: lỗi cú pháp, vai trò lạ, luật bị che / lint the policy
  ztgate policy test --config FILE [--cases FILE]
                                  chạy bảng quyết định mong đợi / run the expected-decision table
  ztgate demo                     chạy bản trình diễn nhúng / run the embedded demo
  ztgate token --user NATIONAL_ID [--issuer URL] [--password PASSWORD]
                                  lấy access token từ IdP demo (luồng OAuth chuẩn) / get a demo access token
  ztgate device init|enrol|approve|quarantine|posture|curl …
                                  thiết bị giả lập: khóa, đăng ký, báo cáo tình trạng, DPoP / demo device
${AUDIT_USAGE}${ACCESS_USAGE}`;

type Handler = (args: string[]) => Promise<number>;

function options(args: string[], spec: Record<string, { type: 'string' | 'boolean' }>) {
  return parseArgs({ args, options: spec, strict: true, allowPositionals: false }).values as Record<string, string | undefined>;
}

/** Loads the config and checks every file it names, before anything is opened or written. */
async function loadChecked(file: string): Promise<GatewayConfig> {
  const config = loadConfigFile(file);
  const problems = await configuredFileProblems(config);
  if (problems.length > 0) throw new ConfigError(file, problems);
  return config;
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
    const gateway = await startGateway(await loadChecked(file));
    process.stderr.write(`ztgate listening on ${gateway.url}\n`);
    onSignal(gateway.shutdown);
    return -1;
  },
  async check(args) {
    const { config: file, offline } = options(args, { config: { type: 'string' }, offline: { type: 'boolean' } });
    if (!file) throw new UsageError('check needs --config FILE');
    const config = await loadChecked(file);
    const engine = await PolicyEngine.load(config.policy.model, config.policy.policy, knownServices(config), { conditionsFile: config.policy.conditions });
    if (!offline) {
      const problems = await identityProviderProblems(config);
      if (problems.length > 0) {
        process.stderr.write(`ztgate: ${file}: IdP không trả lời đúng / identity provider check failed\n  - ${problems.join('\n  - ')}\n  (--offline: check without asking the IdPs)\n`);
        return 69; // EX_UNAVAILABLE (sysexits.h)
      }
    }
    const idps = offline ? 'IdPs not asked (--offline)' : `${config.identity.issuers.length} IdP(s) answered`;
    process.stdout.write(`${file}: OK — ${config.routes.length} routes, policy ${engine.version}, ${idps}\n`);
    return 0;
  },
  async policy(args) {
    const [sub, ...rest] = args;
    const { config, cases, samples } = options(rest, { config: { type: 'string' }, cases: { type: 'string' }, samples: { type: 'string' } });
    const { policyCommand, UsageError: PolicyUsageError } = await import('../policies/cli.js');
    try {
      return await policyCommand(sub, { config, cases, samples }, process.stdout, process.stderr);
    } catch (err) {
      throw err instanceof PolicyUsageError ? new UsageError(err.message) : err;
    }
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
  async audit(args) {
    const { runAuditCommand, AuditUsageError } = await import('./audit/cli.js');
    try {
      return await runAuditCommand(args);
    } catch (err) {
      throw err instanceof AuditUsageError ? new UsageError(err.message) : err;
    }
  },
  async access(args) {
    const { runAccessCommand, AccessUsageError } = await import('./access/cli.js');
    try {
      return await runAccessCommand(args);
    } catch (err) {
      throw err instanceof AccessUsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? new UsageError((err as Error).message) : err;
    }
  },
  async device(args) {
    const { runDeviceCommand, CliUsageError } = await import('../demo/device-cli.js');
    try {
      return await runDeviceCommand(args);
    } catch (err) {
      throw err instanceof CliUsageError ? new UsageError(err.message) : err;
    }
  },
};

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const unsupported = unsupportedRuntime();
  if (unsupported) {
    process.stderr.write(`ztgate: ${unsupported}\n`);
    return 69; // EX_UNAVAILABLE (sysexits.h)
  }
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
