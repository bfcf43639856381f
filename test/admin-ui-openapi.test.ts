import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, ROOT, startHarness, type Harness } from './helpers/harness.js';
import { DEMO_GATEWAY_CLIENT_ID, DEMO_GATEWAY_CLIENT_SECRET } from '../demo/idp.js';
import { renderMarkdown, type OpenApiDocument } from '../gateway/admin/openapi.js';

/**
 * The admin API reference is generated from the code: the OpenAPI document the management
 * listener builds from its registered routes, rendered to docs/admin-api.md. This test fails when
 * the committed reference is stale; `UPDATE_DOCS=1 npx vitest run test/admin-ui-openapi.test.ts`
 * rewrites it.
 */

const ADMIN = '056179000006';
const DOC = join(ROOT, 'docs', 'admin-api.md');

let h: Harness;
let doc: Record<string, any>;
beforeAll(async () => {
  // Every optional part on (roster, browser sign-in), so that every route is in the reference.
  const adminPort = await freePort();
  const rosterFile = join(mkdtempSync(join(tmpdir(), 'ztgate-roster-')), 'roster.json');
  const officials = JSON.parse(readFileSync(join(ROOT, 'demo', 'officials.json'), 'utf8')).officials.map(({ assuranceLevel: _a, ...o }: Record<string, unknown>) => o);
  writeFileSync(rosterFile, JSON.stringify({ officials }));
  h = await startHarness({
    idp: { gatewayRedirectUris: [`http://127.0.0.1:${adminPort}/.ztgate/auth/callback`] },
    configure(d) {
      d.admin = { ...d.admin, listen: { host: '127.0.0.1', port: adminPort }, publicUrl: `http://127.0.0.1:${adminPort}` };
      d.identity.browser = { issuer: d.identity.issuers[0].issuer, clientId: DEMO_GATEWAY_CLIENT_ID, clientSecret: DEMO_GATEWAY_CLIENT_SECRET };
      d.identity.roster = { source: 'file', file: rosterFile };
    },
  });
  const res = await fetch(`${h.gateway.adminUrl}/api/v1/openapi.json`, { headers: { authorization: `Bearer ${await h.token(ADMIN)}` } });
  expect(res.status).toBe(200);
  doc = (await res.json()) as Record<string, any>;
});
afterAll(async () => {
  await h?.close();
});

describe('admin API reference', () => {
  it('is an OpenAPI 3.1 document whose path parameters are all declared', () => {
    expect(doc.openapi).toBe('3.1.0');
    for (const [path, methods] of Object.entries<Record<string, any>>(doc.paths)) {
      const inPath = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      for (const [method, op] of Object.entries<Record<string, any>>(methods)) {
        if (op['x-ztgate-undocumented']) continue;
        const declared = op.parameters
          .filter((p: any) => p.in === 'path')
          .map((p: any) => p.name)
          .sort();
        expect(declared, `${method.toUpperCase()} ${path}`).toEqual(inPath);
      }
    }
  });

  it('lists only /api/v1 routes, never the UI files or the sign-in endpoints', () => {
    expect(Object.keys(doc.paths).every((p) => p.startsWith('/api/v1/'))).toBe(true);
  });

  it('docs/admin-api.md is generated from the code and up to date', () => {
    const markdown = renderMarkdown(doc as OpenApiDocument);
    if (process.env.UPDATE_DOCS === '1') writeFileSync(DOC, markdown);
    let committed = '';
    try {
      committed = readFileSync(DOC, 'utf8');
    } catch {}
    expect(committed, 'docs/admin-api.md is stale: run UPDATE_DOCS=1 npx vitest run test/admin-ui-openapi.test.ts').toBe(markdown);
  });
});
