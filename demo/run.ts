import { loadConfigFile } from '../gateway/config.js';
import { startGateway, type RunningGateway } from '../gateway/server.js';
import type { RuntimeOptions } from '../gateway/runtime.js';
import { startDemoIdp, type DemoIdp } from './idp.js';
import { demoFile } from './paths.js';
import { startDemoUpstream, type DemoUpstream, type DemoDatasetId } from './upstreams.js';
import { DEMO_POSTURE_ISSUER, startDemoPostureSigner } from './device-cli.js';

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

export async function startDemo(configFile = DEMO_CONFIG_FILE, opts: RuntimeOptions = {}): Promise<RunningDemo> {
  const config = loadConfigFile(configFile);
  const issuer = new URL(config.identity.issuers[0]!.issuer);
  const started: { close(): Promise<void> }[] = [];
  const closeAll = async () => {
    for (const s of started.reverse()) await s.close().catch(() => undefined);
  };
  try {
    // Browser sign-in: the gateway is the IdP's confidential client ztgate-gateway (gateway/auth-routes.ts).
    const browser = config.identity.browser
      ? {
          gatewayRedirectUris: [`${config.publicUrl}/.ztgate/auth/callback`, ...(config.admin?.publicUrl ? [`${config.admin.publicUrl}/.ztgate/auth/callback`] : [])],
          postLogoutRedirectUris: [`${config.publicUrl}/.ztgate/auth/signed-out`, ...(config.admin?.publicUrl ? [`${config.admin.publicUrl}/.ztgate/auth/signed-out`] : [])],
          gatewayBackchannelLogoutUri: `${config.publicUrl}/.ztgate/auth/backchannel-logout`,
        }
      : {};
    const idp = await startDemoIdp({ host: issuer.hostname, port: Number(issuer.port), audience: config.identity.issuers[0]!.audience[0]!, ...browser });
    started.push(idp);
    const upstreams: DemoUpstream[] = [];
    // An upstream pins one signature; the demo's have moved to the post-quantum one where the gateway sends it.
    const assertionAlgorithm = config.assertion.algorithms.includes('ML-DSA-65') ? 'ML-DSA-65' : 'ES256';
    for (const route of config.routes.filter((r) => r.approval.status === 'approved')) {
      const url = new URL(route.upstream);
      const upstream = await startDemoUpstream({
        dataset: route.id as DemoDatasetId,
        host: url.hostname,
        port: Number(url.port),
        gatewayIssuer: config.publicUrl,
        gatewayJwksUrl: `${config.publicUrl}/.well-known/jwks.json`,
        assertionAlgorithm,
      });
      started.push(upstream);
      upstreams.push(upstream);
    }
    // The DEMO endpoint-management signer whose posture reports `ztgate-demo device posture` signs.
    const postureSigner = config.devices.postureSigners.find((s) => s.issuer === DEMO_POSTURE_ISSUER && s.jwksUri);
    if (postureSigner) {
      const jwks = new URL(postureSigner.jwksUri!);
      started.push(await startDemoPostureSigner({ host: jwks.hostname, port: Number(jwks.port) }));
    }
    const gateway = await startGateway(config, opts);
    started.push(gateway);
    return { gateway, idp, upstreams, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

export function demoBanner(demo: RunningDemo): string {
  const g = demo.gateway.url;
  const officials = demo.idp.officials.map((o) => `  ${o.nationalId}  ${o.name.padEnd(28)} ${o.agency.padEnd(26)} ${o.roles.join(', ') || '(không có vai trò)'}`).join('\n');
  return `
ztgate — bản trình diễn / embedded demo  (DỮ LIỆU GIẢ LẬP — SYNTHETIC DATA ONLY)

  Cổng truy cập / gateway        ${g}
  Nhà cung cấp định danh / IdP   ${demo.idp.issuer}  (OIDC, mật khẩu demo: demo)
  Khóa công khai / gateway JWKS  ${g}/.well-known/jwks.json
  Giao diện quản trị / admin UI  ${demo.gateway.adminUrl ?? '(tắt / off)'}/  (056179000006 hoặc 056083000007, mật khẩu demo)
  API quản trị / admin API       ${demo.gateway.adminUrl ?? '(tắt / off)'}/api/v1  (OpenAPI: /api/v1/openapi.json)
  Giám sát / metrics, probes     ${demo.gateway.opsUrl ?? '(tắt / off)'}/metrics  ${demo.gateway.opsUrl ?? '(tắt / off)'}/readyz
  Dịch vụ dữ liệu / services     ${g}/ho-tich  ${g}/dat-dai  ${g}/y-te  (${g}/cong-thuong: chưa phê duyệt)

Cán bộ giả lập / synthetic officials:
${officials}

Thử / try (in another terminal, from this folder):
  TOKEN=$(npx ztgate-demo token --user 056085000001)
  curl -s -H "Authorization: Bearer $TOKEN" ${g}/ho-tich/records?limit=2     # 200: allowed
  curl -s -H "Authorization: Bearer $TOKEN" ${g}/dat-dai/records             # 403: no rule allows
  curl -s ${g}/ho-tich/records                                              # 401: no token

Trình duyệt / browser: mở / open ${g}/ho-tich/records → đăng nhập / sign in (056085000001, demo)
  → JSON của dịch vụ / the service's JSON;  ${g}/.ztgate/auth/logout rồi xác nhận để đăng xuất / and confirm to sign out.
  (cookie "ztgate-session": http trên loopback không dùng được tiền tố __Host- / no __Host- prefix over plain http)

Thiết bị / device trust (Y tế, cấp độ 4, cần thiết bị tuân thủ / needs a compliant device):
  ID=$(npx ztgate-demo device init --name "Máy trạm Sở Y tế")
  npx ztgate-demo device enrol --device $ID --user 056190000002             # 201: pending
  npx ztgate-demo device approve --device $ID --admin 056179000006          # 200: approved
  npx ztgate-demo device posture --device $ID                               # compliant report (demo signer)
  npx ztgate-demo device curl --device $ID --user 056190000002 --purpose giai-quyet-thu-tuc --case-ref HS-2026-0001 ${g}/y-te/records  # 200
  npx ztgate-demo device posture --device $ID --non-compliant
  npx ztgate-demo device curl --device $ID --user 056190000002 --purpose giai-quyet-thu-tuc --case-ref HS-2026-0001 ${g}/y-te/records  # 403

Quyết định truy cập (JSON, một dòng mỗi yêu cầu) in ra stdout / decision events are printed to stdout.
Ctrl+C để dừng / to stop.
`;
}
