import { ERROR_CODES, type GatewayError } from '../errors.js';

/**
 * What a security admin's browser shows when a page load on the management listener is refused
 * (no such page, no admin role, locked, …): a readable page, Vietnamese first, naming the error
 * code and reason (what the SOC and the logs use) and the request id to quote. No script, no
 * external resource; API calls keep the JSON error.
 */

const HEADLINE: Readonly<Record<number, readonly [string, string]>> = {
  400: ['Yêu cầu không hợp lệ', 'Bad request'],
  401: ['Cần đăng nhập lại', 'Sign-in required'],
  403: ['Không được phép', 'Not allowed'],
  404: ['Không tìm thấy trang', 'Page not found'],
  409: ['Xung đột trạng thái', 'Conflict'],
  413: ['Nội dung quá lớn', 'Too large'],
  429: ['Vượt hạn mức', 'Too many requests'],
};

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function adminErrorPage(err: GatewayError, requestId: string): string {
  const [vi, en] = HEADLINE[err.statusCode] ?? (err.statusCode >= 500 ? ['Cổng đang gặp sự cố', 'The gateway has a problem'] : ['Không thực hiện được', 'Could not be done']);
  const [messageVi, messageEn = ''] = ERROR_CODES[err.code].message.split(' / ');
  // 5xx details stay in the operator log; a 4xx says what was wrong.
  const detail = err.statusCode < 500 && err.message !== ERROR_CODES[err.code].message ? err.message : null;
  return `<!DOCTYPE html>
<html lang="vi"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${err.statusCode} — ${escape(vi)} — ztgate</title>
<style>body{font-family:system-ui,"Noto Sans","DejaVu Sans",sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;color:#1b1f24;line-height:1.5}
h1{color:#a4161a;font-size:1.5rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}dt{font-weight:600}
code{font-family:"Noto Sans Mono","Liberation Mono","DejaVu Sans Mono",monospace}.en{color:#57606a}</style></head>
<body><main>
<h1 data-testid="error-title">${err.statusCode} — ${escape(vi)}</h1>
<p data-testid="error-message">${escape(messageVi ?? '')}</p>
${detail ? `<p data-testid="error-detail">${escape(detail)}</p>\n` : ''}<dl>
<dt>Mã lỗi</dt><dd><code data-testid="error-code">${escape(err.code)}</code></dd>
<dt>Lý do</dt><dd><code data-testid="error-reason">${escape(err.reason)}</code></dd>
<dt>Mã yêu cầu</dt><dd><code data-testid="error-request-id">${escape(requestId)}</code> (gửi kèm khi báo cho bộ phận vận hành)</dd>
</dl>
<p><a href="/">Về trang quản trị</a></p>
<p class="en" lang="en">${escape(en)}: ${escape(messageEn)} — error code, reason and request id above. <a href="/">Back to the admin UI</a></p>
</main></body></html>`;
}
