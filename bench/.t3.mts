import { readFileSync } from 'node:fs';
import { PolicyEngine } from '../policies/engine.ts';
import { generatePolicy, generateRequests } from './policy-gen.ts';
const model = readFileSync('policies/model.conf','utf8');
for (const n of [10000, 100000]) {
  const policy = generatePolicy({ rules: n, seed: 20260101 });
  const reqs = generateRequests(policy, 20000);
  const h0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  const e = await PolicyEngine.fromSources({model, policy: policy.csv, conditions: null}, {model:'m',policy:'p',conditions:'c'}, new Set(policy.routes), {cacheEntries: 0});
  const t1 = performance.now();
  const lat: number[] = [];
  for (const r of reqs) { const a = performance.now(); e.authorize(r.principal, r.resource, r.method); lat.push((performance.now()-a)*1000); }
  lat.sort((a,b)=>a-b);
  console.log(n, 'load ms', (t1-t0).toFixed(0), 'heap MB', ((process.memoryUsage().heapUsed-h0)/1e6).toFixed(0), 'p50', lat[10000].toFixed(1), 'p99', lat[19800].toFixed(1), 'max', lat[19999].toFixed(1));
}
