/**
 * The demo's command line (`ztgate-demo`, run by demo/cli.ts): the demo's commands — `start`
 * (also with no command), `token`, `device …` — added to the product's command line, which runs
 * every other command. The product itself never imports demo/: a production install carries no
 * demo IdP.
 */
import { onSignal, runCli, type CliExtension, type CliIo } from '../gateway/cli-main.js';
import { parseCommandLine } from '../gateway/cli-args.js';
import { UsageError } from '../core/errors.js';

const DEMO_USAGE = `ztgate-demo — bản trình diễn nhúng (DỮ LIỆU GIẢ LẬP) / the embedded demo (synthetic data)

Cách dùng / usage:
  ztgate-demo [start]             chạy bản trình diễn: IdP, dịch vụ dữ liệu giả lập, cổng / run the embedded demo
                                  (npm start: giống vậy / the same)
  ztgate-demo token --user NATIONAL_ID [--issuer URL] [--password PASSWORD]
                                  lấy access token từ IdP demo (luồng OAuth chuẩn) / get a demo access token
  ztgate-demo device init|enrol|approve|quarantine|posture|curl …
                                  thiết bị giả lập: khóa, đăng ký, báo cáo tình trạng, DPoP / demo device
                                  (ztgate-demo device --help: chi tiết / details)
Mọi lệnh khác là lệnh của sản phẩm / every other command is the product's (ztgate-demo check … = ztgate check …):
`;

function options(args: string[], spec: Record<string, { type: 'string' | 'boolean' }>) {
  return parseCommandLine({ args, options: spec, strict: true, allowPositionals: false }).values as Record<string, string | undefined>;
}

export const DEMO_CLI: CliExtension = {
  program: 'ztgate-demo',
  usage: DEMO_USAGE,
  defaultCommand: 'start',
  ownHelp: ['device'],
  commands: {
    async start(args: string[], io: CliIo) {
      // The product's `start --config FILE` is shadowed here: say where it is rather than "unknown option".
      if (args.includes('--config')) throw new UsageError('ztgate-demo start chạy bản trình diễn, không nhận --config; cổng với cấu hình của bạn: ztgate start --config FILE / ztgate-demo start runs the demo and takes no --config; the gateway with your configuration: ztgate start --config FILE');
      options(args, {});
      const { startDemo, demoBanner } = await import('./run.js');
      const demo = await startDemo();
      io.err.write(demoBanner(demo));
      onSignal(demo.close);
      return -1;
    },
    async token(args: string[], io: CliIo) {
      const { user, issuer, password } = options(args, { user: { type: 'string' }, issuer: { type: 'string' }, password: { type: 'string' } });
      if (!user) throw new UsageError('token needs --user NATIONAL_ID');
      const { obtainDemoToken } = await import('./token.js');
      const tokens = await obtainDemoToken({ issuer: issuer ?? 'http://127.0.0.1:8090', nationalId: user, ...(password ? { password } : {}) });
      io.out.write(`${tokens.access_token}\n`);
      return 0;
    },
    async device(args: string[], io: CliIo) {
      const { runDeviceCommand } = await import('./device-cli.js');
      return runDeviceCommand(args, { out: (t) => io.out.write(t) });
    },
  },
};

/** Runs one `ztgate-demo` command line (tests run it in-process); resolves as the product's runCli does. */
export function runDemoCli(argv: string[], io?: CliIo): Promise<number> {
  return runCli(argv, io, DEMO_CLI);
}
