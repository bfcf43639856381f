import { readFileSync } from 'node:fs';
import { UsageError } from '../../core/errors.js';
import { didYouMean } from '../../core/suggest.js';
import { parseCommandLine } from '../cli-args.js';
import { loadConfigFile } from '../config.js';
import { chainFiles, exportBundle, verifyBundle } from './export.js';
import type { PublicJwk } from './keys.js';
import { chainBases } from '../workers.js';
import { readFilesForVerify, verifyChain, type VerifyResult } from './verify.js';

/**
 * `ztgate audit verify` and `ztgate audit export`: evidence work on the local hash-chained log.
 * Exit status: 0 verified / exported, 1 the log does not verify or has gaps (events not written), 2 usage error.
 */

export const AUDIT_USAGE = `  ztgate audit verify FILE… [--keys JWKS]     kiểm tra chuỗi băm nhật ký / verify hash-chained log files (oldest first)
  ztgate audit verify --config FILE [--keys JWKS]   kiểm tra mọi tệp nhật ký của cấu hình / every chain file of a config
                                  (với nhiều tiến trình: từng chuỗi của mỗi tiến trình / with workers: each worker's chain)
  ztgate audit verify --bundle DIR [--keys JWKS]    kiểm tra gói chứng cứ / verify an evidence bundle
  ztgate audit export --from ISO --to ISO --out DIR (--config FILE | --chain FILE) [--keys JWKS]
                                  xuất gói chứng cứ / write an evidence bundle
`;

function readKeys(path: string | undefined): PublicJwk[] | undefined {
  if (!path) return undefined;
  const doc = JSON.parse(readFileSync(path, 'utf8'));
  const keys = Array.isArray(doc.keys) ? doc.keys : [doc];
  return keys as PublicJwk[];
}

function report(result: VerifyResult, out: NodeJS.WritableStream, extra: string[] = []): number {
  for (const w of result.warnings) out.write(`cảnh báo / warning: ${w}\n`);
  if (result.ok && extra.length === 0 && result.gaps.length > 0) {
    for (const g of result.gaps) out.write(`THIẾU / GAP ${g.message}\n`);
    const missing = result.gaps.reduce((n, g) => n + g.events, 0);
    out.write(`KHÔNG ĐẦY ĐỦ / INCOMPLETE: chuỗi toàn vẹn nhưng thiếu ${missing} sự kiện / the chain is intact but ${missing} event(s) are missing (${result.gaps.length} gap(s))\n`);
    return 1;
  }
  if (result.ok && extra.length === 0) {
    out.write(`OK: ${result.records} bản ghi / records (${result.events} events, ${result.checkpoints} signed checkpoints), seq ${result.firstSeq ?? '-'}…${result.lastSeq ?? '-'}, keys ${result.keysUsed.join(', ') || '-'}\n`);
    return 0;
  }
  if (result.problem) out.write(`KHÔNG HỢP LỆ / TAMPERED [${result.problem.kind}] ${result.problem.message}\n`);
  for (const p of extra) out.write(`KHÔNG HỢP LỆ / INVALID ${p}\n`);
  return 1;
}

export async function runAuditCommand(args: string[], out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const [sub, ...rest] = args;
  // Before the options: a mistyped subcommand is named as such, not as an unexpected argument.
  if (sub !== 'verify' && sub !== 'export') throw new UsageError(`audit: unknown subcommand "${sub ?? ''}" (verify, export)${sub ? didYouMean(sub, ['verify', 'export']) : ''}`);
  const { values, positionals } = parseCommandLine({
    args: rest,
    strict: true,
    allowPositionals: sub === 'verify',
    options: { keys: { type: 'string' }, bundle: { type: 'string' }, config: { type: 'string' }, chain: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, out: { type: 'string' } },
  });
  const keys = readKeys(values.keys);
  /** Every chain of the config: the configured file and one per worker (gateway/workers.ts), each with its rotated files. */
  const configuredChains = () => {
    if (values.chain) return [{ name: values.chain, files: chainFiles(values.chain) }];
    if (!values.config) return null;
    const chain = loadConfigFile(values.config).audit.chain;
    if (!chain) throw new UsageError(`${values.config}: audit.chain is not configured`);
    return chainBases(chain.file)
      .map((b) => ({ name: b.name, files: chainFiles(b.file) }))
      .filter((c, i) => i === 0 || c.files.length > 0);
  };
  const configuredFiles = () => {
    const chains = configuredChains();
    if (!chains) return null;
    const nonEmpty = chains.filter((c) => c.files.length > 0);
    if (nonEmpty.length > 1) throw new UsageError(`${values.config}: one chain per worker (${nonEmpty.map((c) => c.name).join(', ')}); export each with --chain FILE`);
    return nonEmpty[0]?.files ?? [];
  };
  if (sub === 'verify') {
    if (values.bundle) {
      const result = verifyBundle(values.bundle, keys ? { keys } : {});
      return report(result, out, result.manifestProblems);
    }
    if (positionals.length > 0) return report(verifyChain(readFilesForVerify(positionals), keys ? { keys } : {}), out);
    const chains = configuredChains()?.filter((c) => c.files.length > 0);
    if (!chains || chains.length === 0) throw new UsageError('audit verify needs FILE…, --config FILE or --bundle DIR');
    if (chains.length === 1) return report(verifyChain(readFilesForVerify(chains[0]!.files), keys ? { keys } : {}), out);
    // One independent chain per worker: each must verify on its own.
    let status = 0;
    for (const c of chains) {
      // Each line names its chain.
      const named = { write: (text: string) => out.write(text.replace(/^(?=.)/gm, `${c.name}: `)) } as NodeJS.WritableStream;
      status = Math.max(status, report(verifyChain(readFilesForVerify(c.files), keys ? { keys } : {}), named));
    }
    return status;
  }
  if (sub === 'export') {
    const from = new Date(values.from ?? '');
    const to = new Date(values.to ?? '');
    if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) throw new UsageError('audit export needs --from and --to as ISO 8601 times');
    if (!values.out) throw new UsageError('audit export needs --out DIR');
    const files = configuredFiles();
    if (!files || files.length === 0) throw new UsageError('audit export needs --config FILE or --chain FILE');
    const r = exportBundle({ files, from, to, out: values.out, ...(keys ? { keys } : {}) });
    out.write(`${r.dir}: ${r.events} sự kiện / events, chain seq ${r.firstSeq}…${r.lastSeq}${r.signedEnd ? '' : ' (cuối chưa có điểm kiểm tra ký / end not yet signed)'}\n`);
    return 0;
  }
  throw new UsageError(`audit: unknown subcommand "${sub ?? ''}" (verify, export)${sub ? didYouMean(sub, ['verify', 'export']) : ''}`);
}
