import { CodedError } from '../core/errors.js';
import type { Reason } from '../core/reasons.js';
import type { PresentedIdentity } from '../identity/authentication-errors.js';

/**
 * Every response the gateway makes itself comes from a GatewayError: a stable `code`
 * (ZTG_ERR_*, never reused once published), the HTTP status, and the decision reason
 * it records. Modules translate their own failures into one of these at their boundary;
 * gateway/error-response.ts turns them into HTTP in one place.
 */
export const ERROR_CODES = {
  ZTG_ERR_BAD_REQUEST: { status: 400, message: 'Yêu cầu không hợp lệ / Bad request' },
  ZTG_ERR_REQUEST_TIMEOUT: { status: 408, message: 'Yêu cầu gửi quá chậm / Request timeout' },
  ZTG_ERR_HEADERS_TOO_LARGE: { status: 431, message: 'Phần đầu yêu cầu quá lớn / Request headers too large' },
  ZTG_ERR_PATH_AMBIGUOUS: { status: 400, message: 'Đường dẫn không rõ ràng, bị từ chối / Ambiguous path refused' },
  ZTG_ERR_METHOD_NOT_ALLOWED: { status: 405, message: 'Phương thức không được hỗ trợ / Method not allowed' },
  ZTG_ERR_LENGTH_REQUIRED: { status: 411, message: 'Cần khai báo Content-Length / Content-Length required' },
  ZTG_ERR_BODY_TOO_LARGE: { status: 413, message: 'Nội dung yêu cầu quá lớn / Request body too large' },
  ZTG_ERR_ROUTE_NOT_FOUND: { status: 404, message: 'Không tìm thấy dịch vụ / No such service' },
  ZTG_ERR_MISDIRECTED: { status: 421, message: 'Yêu cầu không khớp dịch vụ đã được quyết định / Misdirected request' },
  ZTG_ERR_ROUTE_NOT_APPROVED: { status: 403, message: 'Dịch vụ chưa được phê duyệt đưa vào sử dụng / Service not approved for use' },
  ZTG_ERR_UNAUTHENTICATED: { status: 401, message: 'Cần xác thực bằng access token hợp lệ / A valid access token is required' },
  ZTG_ERR_IDENTITY_REFUSED: { status: 403, message: 'Danh tính không gắn với số định danh cá nhân hợp lệ / Identity not tied to a valid national ID' },
  ZTG_ERR_FORBIDDEN: { status: 403, message: 'Không có quyền truy cập / Access denied' },
  ZTG_ERR_IDP_UNAVAILABLE: { status: 503, message: 'Không kiểm tra được danh tính lúc này / Identity cannot be verified now' },
  ZTG_ERR_SIGN_IN_REQUIRED: { status: 302, message: 'Cần đăng nhập / Sign-in required' },
  ZTG_ERR_SIGN_IN_FAILED: { status: 400, message: 'Đăng nhập không thành công, hãy thử lại / Sign-in failed, try again' },
  ZTG_ERR_STEP_UP_REQUIRED: { status: 401, message: 'Cần xác thực ở mức đảm bảo cao hơn hoặc gần đây hơn / Stronger or more recent authentication required' },
  ZTG_ERR_ROSTER_INVALID: { status: 400, message: 'Danh sách cán bộ không hợp lệ, không có gì được thay đổi / Invalid roster, nothing was changed' },
  ZTG_ERR_OFFICIAL_NOT_FOUND: { status: 404, message: 'Không có cán bộ này trong danh sách / No such official on the roster' },
  ZTG_ERR_ROSTER_SELF_CHANGE: { status: 403, message: 'Không được tự thay đổi mục của chính mình trong danh sách cán bộ; cần quản trị viên khác (nguyên tắc bốn mắt) / Your own roster entry must be changed by another admin (four-eyes)' },
  ZTG_ERR_DEVICE_PROOF_INVALID: { status: 401, message: 'Cần bằng chứng sở hữu khóa thiết bị hợp lệ (DPoP) / A valid device proof (DPoP) is required' },
  ZTG_ERR_DEVICE_UNTRUSTED: { status: 403, message: 'Thiết bị không đủ tin cậy cho dịch vụ này / Device not trusted for this service' },
  ZTG_ERR_DEVICE_UNVERIFIABLE: { status: 503, message: 'Không kiểm tra được thiết bị lúc này / Device cannot be verified now' },
  ZTG_ERR_DEVICE_NOT_FOUND: { status: 404, message: 'Không tìm thấy thiết bị / No such device' },
  ZTG_ERR_DEVICE_CONFLICT: { status: 409, message: 'Trạng thái thiết bị không cho phép thao tác này / Conflicting device state' },
  ZTG_ERR_DEVICE_SELF_APPROVAL: { status: 403, message: 'Không được tự phê duyệt thiết bị của chính mình; cần quản trị viên khác (nguyên tắc bốn mắt) / Your own device must be approved by another admin (four-eyes)' },
  ZTG_ERR_LOCKED: { status: 403, message: 'Đang bị khóa theo yêu cầu của SOC hoặc quản trị viên / Locked by the SOC or an admin' },
  ZTG_ERR_LOCK_CHECK_UNAVAILABLE: { status: 503, message: 'Không kiểm tra được trạng thái khóa lúc này / Locks cannot be checked now' },
  ZTG_ERR_STATE_LOST: { status: 503, message: 'Trạng thái dùng chung đang được khôi phục, vui lòng thử lại sau / Shared state is being restored, retry later' },
  ZTG_ERR_LOCK_NOT_FOUND: { status: 404, message: 'Không tìm thấy khóa / No such lock' },
  ZTG_ERR_LOCK_SELF_LIFT: { status: 403, message: 'Không được tự gỡ khóa đặt lên chính mình; cần người khác gỡ (nguyên tắc bốn mắt) / A lock on yourself must be lifted by someone else (four-eyes)' },
  ZTG_ERR_AUDIT_UNAVAILABLE: { status: 503, message: 'Không ghi được nhật ký kiểm toán, dịch vụ tạm từ chối / Audit log unavailable, service refused' },
  ZTG_ERR_PURPOSE_REQUIRED: { status: 403, message: 'Cần khai báo mục đích khai thác (X-Purpose, X-Case-Ref) / A purpose of access is required' },
  ZTG_ERR_QUOTA_EXCEEDED: { status: 429, message: 'Vượt hạn mức số bản ghi được khai thác / Record quota exceeded' },
  ZTG_ERR_QUOTA_UNAVAILABLE: { status: 503, message: 'Không kiểm tra được hạn mức lúc này / Quota cannot be checked now' },
  ZTG_ERR_OBLIGATION_FAILED: { status: 502, message: 'Không thực hiện được nghĩa vụ của chính sách với phản hồi / Policy obligation could not be applied to the response' },
  ZTG_ERR_POLICY_INVALID: { status: 400, message: 'Chính sách không hợp lệ, phiên bản đang áp dụng giữ nguyên / Invalid policy; the active version stays' },
  ZTG_ERR_POLICY_NOT_FOUND: { status: 404, message: 'Không tìm thấy phiên bản chính sách / No such policy version' },
  ZTG_ERR_POLICY_CONFLICT: { status: 409, message: 'Trạng thái phiên bản chính sách không cho phép thao tác này / Conflicting policy version state' },
  ZTG_ERR_POLICY_SAME_APPROVER: { status: 403, message: 'Người phê duyệt phải khác người soạn (nguyên tắc bốn mắt) / The approver must not be the author (four-eyes)' },
  ZTG_ERR_FOUR_EYES_REQUIRED: { status: 403, message: 'Thay đổi làm giảm mức bảo vệ phải do quản trị viên khác xác nhận (nguyên tắc bốn mắt) / A change that weakens protection must be confirmed by another admin (four-eyes)' },
  ZTG_ERR_SERVICE_CHANGE_NOT_FOUND: { status: 404, message: 'Không tìm thấy thay đổi đang chờ xác nhận / No such pending service change' },
  ZTG_ERR_ACCESS_NOT_FOUND: { status: 404, message: 'Không tìm thấy yêu cầu truy cập / No such access request' },
  ZTG_ERR_ACCESS_CONFLICT: { status: 409, message: 'Trạng thái yêu cầu truy cập không cho phép thao tác này / Conflicting access request state' },
  ZTG_ERR_ACCESS_SELF_APPROVAL: { status: 403, message: 'Không được tự phê duyệt, xác nhận hay xem xét yêu cầu của chính mình / You cannot approve, confirm or review your own access' },
  ZTG_ERR_ACCESS_UNAVAILABLE: { status: 503, message: 'Không đọc được quyền truy cập theo yêu cầu lúc này / Grants cannot be read now' },
  ZTG_ERR_KEY_ROTATION_REFUSED: { status: 409, message: 'Mọi tiến trình của cổng ký bằng cùng một khóa: thay tệp khóa rồi khởi động lại lần lượt (SIGHUP) / Every worker signs with the same key: replace the key file and restart the workers (SIGHUP)' },
  ZTG_ERR_UPSTREAM_UNAVAILABLE: { status: 502, message: 'Dịch vụ dữ liệu không phản hồi / Upstream unavailable' },
  ZTG_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'Dịch vụ dữ liệu phản hồi quá thời gian / Upstream timeout' },
  ZTG_ERR_TLS_REQUIRED: { status: 403, message: 'Cần kết nối TLS (sslmode=verify-full) / TLS is required (sslmode=verify-full)' },
  ZTG_ERR_PROTOCOL_VIOLATION: { status: 400, message: 'Thông điệp giao thức PostgreSQL không hợp lệ / Malformed PostgreSQL protocol message' },
  ZTG_ERR_STATEMENT_REFUSED: { status: 403, message: 'Câu lệnh SQL bị từ chối / SQL statement refused' },
  ZTG_ERR_INTERNAL: { status: 500, message: 'Lỗi nội bộ của cổng / Internal gateway error' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class GatewayError extends CodedError {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly reason: Reason;
  /** Extra response headers, e.g. WWW-Authenticate (RFC 6750 §3). */
  readonly headers: Readonly<Record<string, string>>;
  /** Who a refused, verified token named, though no principal could be built (not on the roster, …): the event says who tried. */
  readonly presented: PresentedIdentity | null;

  constructor(code: ErrorCode, reason: Reason, options: { detail?: string; headers?: Record<string, string>; cause?: unknown; presented?: PresentedIdentity } = {}) {
    super(options.detail ?? ERROR_CODES[code].message, { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.statusCode = ERROR_CODES[code].status;
    this.reason = reason;
    this.headers = Object.freeze({ ...options.headers });
    this.presented = options.presented ?? null;
  }
}
