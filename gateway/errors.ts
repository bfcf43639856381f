import type { Reason } from './reasons.js';

/**
 * Every response the gateway makes itself comes from a GatewayError: a stable `code`
 * (ZTG_ERR_*, never reused once published), the HTTP status, and the decision reason
 * it records. Modules translate their own failures into one of these at their boundary;
 * gateway/app.ts turns them into HTTP in one place.
 */
export const ERROR_CODES = {
  ZTG_ERR_BAD_REQUEST: { status: 400, message: 'Yêu cầu không hợp lệ / Bad request' },
  ZTG_ERR_PATH_AMBIGUOUS: { status: 400, message: 'Đường dẫn không rõ ràng, bị từ chối / Ambiguous path refused' },
  ZTG_ERR_METHOD_NOT_ALLOWED: { status: 405, message: 'Phương thức không được hỗ trợ / Method not allowed' },
  ZTG_ERR_LENGTH_REQUIRED: { status: 411, message: 'Cần khai báo Content-Length / Content-Length required' },
  ZTG_ERR_BODY_TOO_LARGE: { status: 413, message: 'Nội dung yêu cầu quá lớn / Request body too large' },
  ZTG_ERR_ROUTE_NOT_FOUND: { status: 404, message: 'Không tìm thấy dịch vụ / No such service' },
  ZTG_ERR_ROUTE_NOT_APPROVED: { status: 403, message: 'Dịch vụ chưa được phê duyệt đưa vào sử dụng / Service not approved for use' },
  ZTG_ERR_UNAUTHENTICATED: { status: 401, message: 'Cần xác thực bằng access token hợp lệ / A valid access token is required' },
  ZTG_ERR_IDENTITY_REFUSED: { status: 403, message: 'Danh tính không gắn với số định danh cá nhân hợp lệ / Identity not tied to a valid national ID' },
  ZTG_ERR_FORBIDDEN: { status: 403, message: 'Không có quyền truy cập / Access denied' },
  ZTG_ERR_IDP_UNAVAILABLE: { status: 503, message: 'Không kiểm tra được danh tính lúc này / Identity cannot be verified now' },
  ZTG_ERR_UPSTREAM_UNAVAILABLE: { status: 502, message: 'Dịch vụ dữ liệu không phản hồi / Upstream unavailable' },
  ZTG_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'Dịch vụ dữ liệu phản hồi quá thời gian / Upstream timeout' },
  ZTG_ERR_INTERNAL: { status: 500, message: 'Lỗi nội bộ của cổng / Internal gateway error' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly reason: Reason;
  /** Extra response headers, e.g. WWW-Authenticate (RFC 6750 §3). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, reason: Reason, options: { detail?: string; headers?: Record<string, string>; cause?: unknown } = {}) {
    super(options.detail ?? ERROR_CODES[code].message, { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.statusCode = ERROR_CODES[code].status;
    this.reason = reason;
    this.headers = Object.freeze({ ...options.headers });
  }
}

/** Thrown while loading configuration or policy files; `key` names what is wrong. */
export class ConfigError extends Error {
  readonly code = 'ZTG_ERR_CONFIG_INVALID';
  readonly problems: readonly string[];

  constructor(source: string, problems: string[]) {
    super(`${source}: cấu hình không hợp lệ / invalid configuration\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = Object.freeze([...problems]);
  }
}
