import { writeFileSync } from 'node:fs';
import { PolicyEngine } from '/work/main/policies/engine.js';
for (const n of [1000, 10000]) {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(`p, role-${i % 1000}, ag-${i % 50}, r${i % 20}, /res${i}/:id, GET|HEAD, allow`);
  writeFileSync('/tmp/bq/p.csv', lines.join('\n'));
  const routes = new Set(Array.from({ length: 20 }, (_, i) => `r${i}`));
  let t = performance.now();
  const e = await PolicyEngine.load('/work/main/policies/model.conf', '/tmp/bq/p.csv', routes);
  console.log(n, 'load ms', performance.now() - t);
  const pr = { nationalId: '001234567890', agency: 'ag-1', roles: ['role-1', 'role-2'], acr: null, issuer: 'x', authTime: null };
  for (let k = 0; k < 3; k++) { t = performance.now(); for (let i = 0; i < 50; i++) e.authorize(pr, { routeId: 'r1', path: '/res1/5' }, 'GET'); console.log(' per authorize ms', (performance.now() - t) / 50); }
}
