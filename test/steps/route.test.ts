import { describe, expect, it } from 'vitest';
import { createRouteTable, requireApproved } from '../../gateway/steps/route.js';
import { inProcessConfig, inProcessIssuer, refusalOf } from '../helpers/in-process.js';

/** Step 2 alone (gateway/steps/route.ts): the registered, approved shared database service. */

const { routes } = inProcessConfig(await inProcessIssuer());
const table = createRouteTable(routes);

describe('route', () => {
  it('matches a service by its path prefix and hands the policy the path inside it', () => {
    const { route, innerPath } = table.match('gw.test', '/echo/records/1');
    expect([route.id, innerPath]).toEqual(['echo', '/records/1']);
    expect(table.match(undefined, '/echo').innerPath).toBe('/');
    expect(() => requireApproved(route)).not.toThrow();
  });

  it('refuses a path no service owns (404 route-not-found), prefixes matched on whole segments', async () => {
    for (const path of ['/nowhere', '/echoes/x', '/']) {
      const err = await refusalOf(() => table.match('gw.test', path));
      expect([path, err.statusCode, err.reason]).toEqual([path, 404, 'route-not-found']);
    }
  });

  it('refuses a registered service that is not approved for use (403 route-not-approved)', async () => {
    const { route } = table.match('gw.test', '/cong-thuong/x');
    const err = await refusalOf(() => requireApproved(route));
    expect([err.statusCode, err.reason]).toEqual([403, 'route-not-approved']);
  });
});
