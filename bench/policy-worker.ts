/**
 * Child process: measures PolicyEngine for one policy size, in a fresh process so its load
 * time is a cold start and its heap figures belong to that policy alone. Run with --expose-gc.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { parsePolicy, PolicyEngine } from '../policies/engine.js';
import { childArg } from './child.js';
import { generatePolicy, generateRequests, writePolicy, type GeneratedPolicy } from './policy-gen.js';
import type { PolicyWorkerArg, PolicyWorkerResult } from './policy-bench.js';
import { Samples, summarise } from './stats.js';

const arg = childArg<PolicyWorkerArg>();
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('policy-worker needs --expose-gc');

function fullGc(): void {
  gc!();
  gc!();
}

const genStart = process.hrtime.bigint();
let generated: GeneratedPolicy | null = generatePolicy({ rules: arg.rules, seed: arg.seed });
const file = writePolicy(generated, arg.dir);
const requests = generateRequests(generated, arg.warmupMax + arg.decisions);
const knownRoutes = new Set(generated.routes);
const policyInfo = {
  rules: generated.rules.length,
  denyRules: generated.rules.filter((r) => r[5] === 'deny').length,
  groupings: generated.groupings.length,
  roles: generated.roles.length,
  agencies: generated.agencies.length,
  routes: generated.routes.length,
  bytes: statSync(file).size,
  generateMs: Number(process.hrtime.bigint() - genStart) / 1e6,
};
generated = null;

fullGc();
const heapBefore = process.memoryUsage().heapUsed;
const loadStart = process.hrtime.bigint();
const engine = await PolicyEngine.load(arg.model, file, knownRoutes);
const loadNs = process.hrtime.bigint() - loadStart;
fullGc();
const memAfter = process.memoryUsage();

// Warm-up: the first requests of the stream, until warmupMax calls or warmupMs (at least 3).
let warmupCalls = 0;
const warmupDeadline = process.hrtime.bigint() + BigInt(arg.warmupMs) * 1_000_000n;
while (warmupCalls < arg.warmupMax && (warmupCalls < 3 || process.hrtime.bigint() < warmupDeadline)) {
  const r = requests[warmupCalls++]!;
  engine.authorize(r.principal, r.resource, r.method);
}

// Measured: one hrtime pair per authorize() call.
const samples = new Samples();
const mix = { allow: 0, deny: 0, noMatch: 0 };
let subjects = 0;
const digestEffects = createHash('sha256');
const digestRules = createHash('sha256');
const DIGEST_N = 100;
const measureStart = process.hrtime.bigint();
const budgetEnd = arg.budgetMs > 0 ? measureStart + BigInt(arg.budgetMs) * 1_000_000n : null;
let capped = false;
for (let i = arg.warmupMax; i < requests.length; i++) {
  const r = requests[i]!;
  const t0 = process.hrtime.bigint();
  const d = engine.authorize(r.principal, r.resource, r.method);
  const t1 = process.hrtime.bigint();
  samples.push(Number(t1 - t0) / 1000);
  subjects += 1 + r.principal.roles.length;
  if (d.effect === 'allow') mix.allow++;
  else if (d.reasons[0] === 'policy-denied') mix.deny++;
  else mix.noMatch++;
  if (samples.length <= DIGEST_N) {
    digestEffects.update(`${d.effect}\n`);
    digestRules.update(`${d.effect} ${d.rule ?? '-'}\n`);
  }
  if (budgetEnd !== null && t1 >= budgetEnd && samples.length >= arg.minDecisions && samples.length < arg.decisions) {
    capped = true;
    break;
  }
}
const measureMs = Number(process.hrtime.bigint() - measureStart) / 1e6;

// Strict CSV parse/validate alone, measured separately (JIT-warm: the load above ran it once).
const parseStart = process.hrtime.bigint();
parsePolicy(readFileSync(file, 'utf8'), file, knownRoutes);
const parseMs = Number(process.hrtime.bigint() - parseStart) / 1e6;

const result: PolicyWorkerResult = {
  policy: policyInfo,
  load: {
    ms: Number(loadNs) / 1e6,
    parseMsWarm: parseMs,
    heapUsedBefore: heapBefore,
    heapUsedAfter: memAfter.heapUsed,
    heapDelta: memAfter.heapUsed - heapBefore,
    rssAfter: memAfter.rss,
  },
  decisions: {
    warmupCalls,
    measured: samples.length,
    target: arg.decisions,
    cappedByBudget: capped,
    measureMs,
    latencyMicros: summarise(samples.view()),
    meanSubjectsPerRequest: subjects / samples.length,
    mix,
    digestOver: Math.min(DIGEST_N, samples.length),
    digestEffects: digestEffects.digest('hex').slice(0, 16),
    digestEffectsAndRules: digestRules.digest('hex').slice(0, 16),
  },
};
process.send!({ type: 'result', result }, () => process.exit(0));
