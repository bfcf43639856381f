import { readFileSync } from 'node:fs';
import { PolicyEngine } from '../policies/engine.ts';
import { RuleIndex } from '../policies/fast-match.ts';
import { generatePolicy, generateRequests } from './policy-gen.ts';
const model = readFileSync('policies/model.conf','utf8');
let calls = 0;
const orig = (RuleIndex.prototype as any).matches;
(RuleIndex.prototype as any).matches = function (...a: any[]) { calls++; return orig.apply(this, a); };
const policy = generatePolicy({ rules: 100000, seed: 20260101 });
const reqs = generateRequests(policy, 5000);
const e = await PolicyEngine.fromSources({model, policy: policy.csv, conditions: null}, {model:'m',policy:'p',conditions:'c'}, new Set(policy.routes), {cacheEntries: 0});
const per: number[] = [];
for (const r of reqs) { calls = 0; e.authorize(r.principal, r.resource, r.method); per.push(calls); }
per.sort((a,b)=>a-b);
console.log('matches per authorize p50', per[2500], 'p99', per[4950], 'max', per[4999]);
