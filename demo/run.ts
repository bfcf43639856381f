import { loadConfigFile } from '../gateway/config.js';
import { startGateway, type RunningGateway } from '../gateway/server.js';
import { startDemoIdp, type DemoIdp } from './idp.js';
import { demoFile } from './paths.js';
import { startDemoUpstream, type DemoUpstream, type DemoDatasetId } from './upstreams.js';

/**
 * The embedded demo: a real OIDC provider with synthetic officials, three synthetic shared
 * data services, and the gateway in front of them, all on loopback, all in one process.
 */
export const DEMO_CONFIG_FILE = demoFile('ztgate.demo.yaml');

export interface RunningDemo {
  readonly gateway: RunningGateway;
  readonly idp: DemoIdp;
  readonly upstreams: readonly DemoUpstream[];
  close(): Promise<void>;
}

export async function startDemo(configFile = DEMO_CONFIG_FILE): Promise<RunningDemo> {
  const config = loadConfigFile(configFile);
  const issuer = new URL(config.identity.issuers[0]!.issuer);
  const started: { close(): Promise<void> }[] = [];
  const closeAll = async () => {
    for (const s of started.reverse()) await s.close().catch(() => undefined);
  };
  try {
    const idp = await startDemoIdp({ host: issuer.hostname, port: Number(issuer.port), audience: config.identity.issuers[0]!.audience[0]! });
    started.push(idp);
    const upstreams: DemoUpstream[] = [];
    for (const route of config.routes.filter((r) => r.approval.status === 'approved')) {
      const url = new URL(route.upstream);
      const upstream = await startDemoUpstream({
        dataset: route.id as DemoDatasetId,
        host: url.hostname,
        port: Number(url.port),
        gatewayIssuer: config.publicUrl,
        gatewayJwksUrl: `${config.publicUrl}/.well-known/jwks.json`,
      });
      started.push(upstream);
      upstreams.push(upstream);
    }
    const gateway = await startGateway(config);
    started.push(gateway);
    return { gateway, idp, upstreams, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

export function demoBanner(demo: RunningDemo): string {
  const g = demo.gateway.url;
  const officials = demo.idp.officials
    .map((o) => `  ${o.nationalId}  ${o.name.padEnd(28)} ${o.agency.padEnd(26)} ${o.roles.join(', ') || '(không có vai trò)'}`)
    .join('\n');
  return `
ztgate — bản trình diễn / embedded demo  (DỮ LIỆU GIẢ LẬP — SYNTHETIC DATA ONLY)

  Cổng truy cập / gateway        ${g}
  Nhà cung cấp định danh / IdP   ${demo.idp.issuer}  (OIDC, mật khẩu demo: demo)
  Khóa công khai / gateway JWKS  ${g}/.well-known/jwks.json
  Quản trị / management API      ${demo.gateway.adminUrl ?? '(tắt / off)'}/api/v1  (vai trò security-admin)
  Dịch vụ dữ liệu / services     ${g}/ho-tich  ${g}/dat-dai  ${g}/y-te  (${g}/cong-thuong: chưa phê duyệt)

Cán bộ giả lập / synthetic officials:
${officials}

Thử / try (in another terminal, from this folder):
  TOKEN=$(npx ztgate token --user 056085000001)
  curl -s -H "Authorization: Bearer $TOKEN" ${g}/ho-tich/records?limit=2     # 200: allowed
  curl -s -H "Authorization: Bearer $TOKEN" ${g}/y-te/records                # 403: no rule allows
  curl -s ${g}/ho-tich/records                                              # 401: no token

Quyết định truy cập (JSON, một dòng mỗi yêu cầu) in ra stdout / decision events are printed to stdout.
Ctrl+C để dừng / to stop.
`;
}
