import { knownServices } from './access.js';
import { existsSync, readFileSync } from 'node:fs';
import { PolicyEngine } from './engine.js';
import { lintPolicy } from './lint.js';
import type { LintFinding } from './lint-finding.js';
import { ConfigError, UsageError } from '../core/errors.js';
import { didYouMean } from '../core/suggest.js';
import type { PolicyContext } from './config.js';
import { readPolicySources } from './active-policy.js';
import { CasesError, runPolicyCases } from './test-runner.js';

/**
 * `ztgate policy lint --config FILE` and `ztgate policy test --config FILE [--cases FILE]`.
 * Both exit 0 when all is well and 1 when not (78 for a configuration that does not load), so
 * CI can gate a policy change on them. `loadConfig` is the gateway's configuration loader: it
 * throws a ConfigError listing every problem of the file.
 */
export async function policyCommand(sub: string | undefined, opts: { config?: string; cases?: string; samples?: string }, out: NodeJS.WritableStream, err: NodeJS.WritableStream, loadConfig: (file: string) => PolicyContext): Promise<number> {
  if (sub !== 'lint' && sub !== 'test') throw new UsageError(`policy needs "lint" or "test"${sub ? `, not "${sub}"${didYouMean(sub, ['lint', 'test'])}` : ''}`);
  if (!opts.config) throw new UsageError(`policy ${sub} needs --config FILE`);
  const write = (f: LintFinding) => err.write(`${f.at}: ${f.level === 'error' ? 'lỗi / error' : 'cảnh báo / warning'}: ${f.message}\n`);
  let config;
  try {
    config = loadConfig(opts.config);
  } catch (e) {
    if (!(sub === 'lint' && e instanceof ConfigError)) throw e;
    // Every problem of the configuration, each at its file:line, in the linter's own format.
    for (const p of e.problems) {
      const m = /^line (\d+): (.*)$/s.exec(p);
      write({ level: 'error', at: m ? `${opts.config}:${m[1]}` : opts.config, message: m ? m[2]! : p });
    }
    out.write(`${opts.config}: FAILED — ${e.problems.length} lỗi / errors in the configuration; the policy needs a valid configuration to be checked\n`);
    return 78;
  }
  const names = { model: config.policy.model, policy: config.policy.policy, conditions: config.policy.conditions ?? 'conditions' };
  const sources = readPolicySources(config.policy);
  if (sub === 'lint') {
    const findings = await lintPolicy(config, sources, names, { samplesDir: opts.samples });
    for (const f of findings) write(f);
    const errors = findings.filter((f) => f.level === 'error').length;
    out.write(`${opts.config}: ${errors === 0 ? 'OK' : 'FAILED'} — ${errors} lỗi / errors, ${findings.length - errors} cảnh báo / warnings\n`);
    return errors === 0 ? 0 : 1;
  }
  const casesFile = opts.cases ?? config.policy.policy.replace(/\.csv$/, '.test.yaml');
  if (!existsSync(casesFile)) throw new UsageError(`no test table: ${casesFile} (use --cases FILE)`);
  const engine = await PolicyEngine.fromSources(sources, names, knownServices(config), { cacheEntries: 0 });
  let results;
  try {
    results = runPolicyCases(engine, config, readFileSync(casesFile, 'utf8'), casesFile);
  } catch (e) {
    if (e instanceof CasesError) {
      err.write(`ztgate: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  for (const r of results) out.write(r.ok ? `  ✓ ${r.name}\n` : `  ✗ ${r.name}: ${r.problem}\n`);
  const failed = results.filter((r) => !r.ok).length;
  out.write(`${casesFile}: ${results.length - failed}/${results.length} đạt / passed, policy ${engine.version}\n`);
  return failed === 0 ? 0 : 1;
}
