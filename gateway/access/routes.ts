import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../../core/principal.js';
import { hoChiMinhWallClock } from '../../policies/conditions.js';
import { GatewayError } from '../errors.js';
import type { Reason } from '../../core/reasons.js';
import { StoreError } from '../../core/store.js';
import type { ServiceRegistry } from '../service-registry.js';
import type { AccessConfig } from './config.js';
import { AccessError, type AccessRecord, type AccessService } from './requests.js';

/**
 * The official's side of just-in-time access, on the data plane: any authenticated official
 * (the pipeline authenticates and checks locks; no service, no policy) asks for access, follows
 * their requests, reviews those of their agency's services, opens and confirms break-glass.
 *
 * One small page of the gateway's own (GET /.ztgate/access: no script, forms posting to itself)
 * and the same operations as JSON for applications and the CLI. A change must come from this
 * gateway's pages or from a non-browser client: JSON, or a form whose Origin/Sec-Fetch-Site
 * names this gateway.
 */

export const ACCESS_PATH_PREFIX = '/.ztgate/access';

/** Access failures in the one error shape; a store failure refuses (503), never half-applies. */
export function accessFailure(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof StoreError) return new GatewayError('ZTG_ERR_ACCESS_UNAVAILABLE', 'grant-state-unavailable', { cause: err });
  if (!(err instanceof AccessError)) throw err;
  const detail = err.message;
  switch (err.code) {
    case 'ERR_ACCESS_NOT_FOUND':
      return new GatewayError('ZTG_ERR_ACCESS_NOT_FOUND', 'access-request-not-found', { detail, cause: err });
    case 'ERR_ACCESS_STATE':
      return new GatewayError('ZTG_ERR_ACCESS_CONFLICT', 'access-state-conflict', { detail, cause: err });
    case 'ERR_ACCESS_SELF_APPROVAL':
      return new GatewayError('ZTG_ERR_ACCESS_SELF_APPROVAL', 'access-self-approval', { detail, cause: err });
    case 'ERR_ACCESS_NOT_REVIEWER':
      return new GatewayError('ZTG_ERR_FORBIDDEN', 'access-reviewer-required', { detail, cause: err });
    case 'ERR_BREAK_GLASS_NOT_ELIGIBLE':
      return new GatewayError('ZTG_ERR_FORBIDDEN', 'break-glass-not-eligible', { detail, cause: err });
    case 'ERR_GRANT_NOT_UNLOCKABLE':
      return new GatewayError('ZTG_ERR_BAD_REQUEST', 'grant-not-unlockable', { detail, cause: err });
    default:
      return new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: `Dữ liệu không hợp lệ / ${detail}`, cause: err });
  }
}

const STATE_LABELS: Record<AccessRecord['state'], string> = {
  pending: 'Chờ duyệt / pending',
  active: 'Đang hiệu lực / active',
  denied: 'Bị từ chối / denied',
  cancelled: 'Đã hủy / cancelled',
  revoked: 'Bị thu hồi / revoked',
  expired: 'Hết hạn / expired',
  'ended-unconfirmed': 'Tự kết thúc do không được xác nhận / ended, not confirmed',
};

const esc = (s: unknown) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
/** Times on the page in Vietnam time (Asia/Ho_Chi_Minh). */
const vnTime = (isoTime: string | null) => (isoTime ? `${hoChiMinhWallClock(Date.parse(isoTime)).toISOString().slice(0, 16).replace('T', ' ')} (giờ Việt Nam)` : '—');

type Op = 'create' | 'approve' | 'deny' | 'cancel' | 'break-glass' | 'confirm';
const REASON: Record<Op, (r: AccessRecord) => Reason> = {
  create: () => 'access-requested',
  approve: (r) => (r.state === 'active' ? 'access-approved' : 'access-approval-recorded'),
  deny: () => 'access-denied',
  cancel: () => 'access-cancelled',
  'break-glass': () => 'break-glass-opened',
  confirm: () => 'break-glass-confirmed',
};

export function registerAccessRoutes(app: FastifyInstance, access: AccessService, services: ServiceRegistry, config: AccessConfig, publicUrl: string): void {
  const ownOrigin = new URL(publicUrl).origin;

  const isForm = (request: FastifyRequest) => String(request.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');

  /** A form post must prove it came from this gateway's page; JSON cannot be sent cross-site without CORS. */
  function guardOrigin(request: FastifyRequest): void {
    if (!isForm(request)) return;
    const origin = request.headers.origin;
    const site = request.headers['sec-fetch-site'];
    if ((origin === undefined && site === undefined) || (origin !== undefined && origin !== ownOrigin) || (site !== undefined && site !== 'same-origin')) {
      throw new GatewayError('ZTG_ERR_FORBIDDEN', 'request-cross-site', { detail: 'Yêu cầu không đến từ trang của cổng / the change did not come from a page of this gateway' });
    }
  }

  function body(request: FastifyRequest): Record<string, unknown> {
    const b = request.body ?? {};
    if (typeof b !== 'object' || Array.isArray(b)) throw new GatewayError('ZTG_ERR_BAD_REQUEST', 'request-malformed', { detail: 'Nội dung phải là một đối tượng JSON / the body must be a JSON object' });
    const o = { ...(b as Record<string, unknown>) };
    // The page asks for minutes, as text; the API takes seconds.
    if (isForm(request)) o.durationSeconds = typeof o.durationMinutes === 'string' && /^\d{1,6}$/.test(o.durationMinutes) ? Number(o.durationMinutes) * 60 : o.durationMinutes;
    return o;
  }

  function step(op: Op, run: (p: Principal, body: Record<string, unknown>, id: string) => Promise<AccessRecord>) {
    return async (request: FastifyRequest<{ Params: { id?: string } }>, reply: FastifyReply) => {
      guardOrigin(request);
      const p = request.zt.principal!;
      const id = request.params.id ?? '';
      request.zt.access = { operation: op, ...(id ? { id } : {}) };
      let record: AccessRecord;
      try {
        record = await run(p, body(request), id);
      } catch (err) {
        throw accessFailure(err);
      }
      request.zt.access = { operation: op, id: record.id, state: record.state };
      request.zt.reasons.push(REASON[op](record));
      reply.header('cache-control', 'no-store');
      if (isForm(request)) return reply.redirect(ACCESS_PATH_PREFIX, 303);
      return reply.code(op === 'create' || op === 'break-glass' ? 201 : 200).send({ request: record });
    };
  }

  async function overview(p: Principal) {
    const all = await access.list();
    return {
      mine: all.filter((r) => r.requester.nationalId === p.nationalId),
      toReview: all.filter((r) => r.state === 'pending' && access.reviews(p, r) && !r.approvals.some((a) => a.nationalId === p.nationalId)),
      toConfirm: access.eligible(p) ? all.filter((r) => r.kind === 'break-glass' && r.state === 'active' && r.confirmedBy === null && r.requester.nationalId !== p.nationalId) : [],
      breakGlassEligible: access.eligible(p),
      unreviewedBreakGlass: all.filter((r) => r.kind === 'break-glass' && r.review === null && access.headsAgencyOf(p, r)),
      services: services.list().map(({ route }) => ({
        id: route.id,
        name: route.name,
        securityLevel: route.securityLevel,
        maxMinutes: config.maxMinutesBySecurityLevel[String(route.securityLevel) as '1'],
        approvals: config.approvalsBySecurityLevel[String(route.securityLevel) as '1'],
      })),
    };
  }

  app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16 * 1024 }, (_request, text, done) => {
      done(null, Object.fromEntries(new URLSearchParams(String(text))));
    });

    scope.get(`${ACCESS_PATH_PREFIX}/requests`, async (request, reply) => {
      request.zt.access = { operation: 'list' };
      try {
        return reply.header('cache-control', 'no-store').send(await overview(request.zt.principal!));
      } catch (err) {
        throw accessFailure(err);
      }
    });
    scope.post(
      `${ACCESS_PATH_PREFIX}/requests`,
      step('create', (p, b) => access.create(p, { route: b.route, role: b.role, purpose: b.purpose, caseRef: b.caseRef, durationSeconds: b.durationSeconds })),
    );
    scope.post(
      `${ACCESS_PATH_PREFIX}/requests/:id/approve`,
      step('approve', (p, b, id) => access.approve(p, id, b.note)),
    );
    scope.post(
      `${ACCESS_PATH_PREFIX}/requests/:id/deny`,
      step('deny', (p, b, id) => access.deny(p, id, b.reason)),
    );
    scope.post(
      `${ACCESS_PATH_PREFIX}/requests/:id/cancel`,
      step('cancel', (p, _b, id) => access.cancel(p, id)),
    );
    scope.post(
      `${ACCESS_PATH_PREFIX}/break-glass`,
      step('break-glass', (p, b) => access.openBreakGlass(p, { route: b.route, role: b.role, reason: b.reason, durationSeconds: b.durationSeconds })),
    );
    scope.post(
      `${ACCESS_PATH_PREFIX}/break-glass/:id/confirm`,
      step('confirm', (p, _b, id) => access.confirm(p, id)),
    );

    scope.get(ACCESS_PATH_PREFIX, async (request, reply) => {
      request.zt.access = { operation: 'page' };
      let view: Awaited<ReturnType<typeof overview>>;
      try {
        view = await overview(request.zt.principal!);
      } catch (err) {
        throw accessFailure(err);
      }
      return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').header('content-security-policy', "default-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'").header('x-content-type-options', 'nosniff').send(renderPage(request.zt.principal!, view));
    });
  });
}

function row(r: AccessRecord, actions: string): string {
  const kind = r.kind === 'break-glass' ? '<strong>KHẨN CẤP / break-glass</strong>' : 'Yêu cầu / request';
  return `<tr><td>${kind}</td><td>${esc(r.routeId)}</td><td>${esc(r.role)}</td><td>${esc(r.purpose)}${r.caseRef ? `<br>Số hồ sơ: ${esc(r.caseRef)}` : ''}</td><td>${esc(r.requester.nationalId)}</td><td data-state="${esc(r.state)}">${esc(STATE_LABELS[r.state])}${r.state === 'pending' ? ` (${r.approvals.length}/${r.requiredApprovals} phê duyệt)` : ''}${r.kind === 'break-glass' && r.state === 'active' && !r.confirmedBy ? `<br>Cần xác nhận trước ${esc(vnTime(r.confirmBy))}` : ''}</td><td>${esc(vnTime(r.expiresAt))}</td><td>${actions}</td></tr>`;
}

const table = (rows: string[]) => (rows.length === 0 ? '<p>Không có / none.</p>' : `<table><thead><tr><th>Loại</th><th>Dịch vụ</th><th>Vai trò</th><th>Mục đích</th><th>Người yêu cầu</th><th>Trạng thái</th><th>Hết hạn</th><th></th></tr></thead><tbody>${rows.join('')}</tbody></table>`);

const form = (action: string, fields: string, button: string) => `<form method="post" action="${action}">${fields}<button type="submit">${button}</button></form>`;

function renderPage(p: Principal, view: { mine: AccessRecord[]; toReview: AccessRecord[]; toConfirm: AccessRecord[]; breakGlassEligible: boolean; unreviewedBreakGlass: AccessRecord[]; services: { id: string; name: string; securityLevel: number; maxMinutes: number; approvals: number }[] }): string {
  const P = ACCESS_PATH_PREFIX;
  const options = view.services.map((s) => `<option value="${esc(s.id)}">${esc(s.name)} — cấp độ ${s.securityLevel}, tối đa ${s.maxMinutes} phút, ${s.approvals} người duyệt</option>`).join('');
  const mine = view.mine.map((r) => row(r, r.state === 'pending' || r.state === 'active' ? form(`${P}/requests/${r.id}/cancel`, '', 'Hủy / Cancel') : ''));
  const review = view.toReview.map((r) =>
    row(r, form(`${P}/requests/${r.id}/approve`, '<input name="note" placeholder="Ghi chú / note" maxlength="500">', 'Phê duyệt / Approve') + form(`${P}/requests/${r.id}/deny`, '<input name="reason" required minlength="3" maxlength="500" placeholder="Lý do từ chối / reason">', 'Từ chối / Deny')),
  );
  const confirm = view.toConfirm.map((r) => row(r, form(`${P}/break-glass/${r.id}/confirm`, '', 'Xác nhận / Confirm')));
  const breakGlass = view.breakGlassEligible
    ? `<h2>Truy cập khẩn cấp <span lang="en">(break-glass)</span></h2>
<p>Có hiệu lực ngay; Trung tâm giám sát (SOC) được báo ngay; một cán bộ thứ hai phải xác nhận trong thời hạn, nếu không truy cập tự kết thúc. Mọi lần sử dụng đều được xem xét lại. <span lang="en">Effective at once; the SOC is alerted; a second official must confirm in time or it ends by itself; every use is reviewed.</span></p>
${form(`${P}/break-glass`, `<label>Dịch vụ <select name="route">${options}</select></label> <label>Vai trò <input name="role" required></label> <label>Số phút <input name="durationMinutes" type="number" min="1" required></label> <label>Lý do khẩn cấp <input name="reason" required minlength="10" maxlength="500"></label> `, 'Mở truy cập khẩn cấp / Open break-glass')}
<h3>Chờ bạn xác nhận / Waiting for your confirmation</h3>${table(confirm)}`
    : '';
  return `<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8"><title>Truy cập theo yêu cầu — Just-in-time access</title></head>
<body><h1>Truy cập theo yêu cầu <span lang="en">(just-in-time access)</span></h1>
<p>Cán bộ: ${esc(p.nationalId)}${p.agency ? ` — ${esc(p.agency)}` : ''}</p>
<h2>Yêu cầu quyền truy cập / Request access</h2>
${form(`${P}/requests`, `<label>Dịch vụ <select name="route">${options}</select></label> <label>Vai trò <input name="role" required></label> <label>Số phút <input name="durationMinutes" type="number" min="1" required></label> <label>Mục đích <input name="purpose" required minlength="5" maxlength="500"></label> <label>Số hồ sơ / số văn bản <input name="caseRef" required minlength="3" maxlength="64"></label> `, 'Gửi yêu cầu / Submit')}
<h2>Yêu cầu của tôi / My requests</h2>${table(mine)}
<h2>Chờ tôi duyệt / Waiting for my review</h2>${table(review)}
${breakGlass}
${view.unreviewedBreakGlass.length > 0 ? `<h2>Truy cập khẩn cấp của cơ quan chưa được xem xét / Unreviewed break-glass uses in your agency</h2>${table(view.unreviewedBreakGlass.map((r) => row(r, '')))}` : ''}
</body></html>`;
}
