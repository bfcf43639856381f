// @ts-check
/**
 * Names for the codes the gateway speaks in (decision outcomes, reasons, statuses, trust tiers,
 * lock kinds): the screens show the Vietnamese name and keep the code on hover (title), because
 * SOC rules, the API and the logs use the code. Pure data, no DOM: test/admin-labels.test.ts
 * checks that every code of the gateway has a Vietnamese name here.
 */

/** @type {Record<string, string>} */
export const REASON_VI = {
  'policy-allowed': 'Được chính sách cho phép',
  'public-endpoint': 'Điểm truy cập công khai',
  'path-ambiguous': 'Đường dẫn không rõ ràng',
  'request-malformed': 'Yêu cầu sai định dạng',
  'request-timeout': 'Yêu cầu gửi quá chậm',
  'headers-too-large': 'Phần đầu yêu cầu quá lớn',
  'method-not-allowed': 'Phương thức không được hỗ trợ',
  'body-too-large': 'Nội dung quá lớn',
  'length-required': 'Thiếu Content-Length',
  'route-not-found': 'Không có dịch vụ này',
  'route-mismatch': 'Dịch vụ không khớp',
  'route-not-approved': 'Dịch vụ chưa được phê duyệt',
  'token-missing': 'Thiếu access token',
  'token-malformed': 'Token sai định dạng',
  'token-issuer-untrusted': 'Nơi cấp token không được tin cậy',
  'token-algorithm-not-allowed': 'Thuật toán ký token không được phép',
  'token-key-unknown': 'Khóa ký token không xác định',
  'token-signature-invalid': 'Chữ ký token không hợp lệ',
  'token-expired': 'Token đã hết hạn',
  'token-not-yet-valid': 'Token chưa có hiệu lực',
  'token-audience-invalid': 'Token không dành cho cổng này',
  'token-type-invalid': 'Loại token không hợp lệ',
  'token-claim-invalid': 'Thông tin trong token không hợp lệ',
  'identity-national-id-missing': 'Token không có số định danh',
  'identity-national-id-invalid': 'Số định danh không hợp lệ',
  'identity-provider-unavailable': 'Không kiểm tra được với nhà cung cấp định danh',
  'token-inactive': 'Token không còn hiệu lực',
  'official-not-on-roster': 'Không có trong danh sách cán bộ',
  'official-suspended': 'Cán bộ đang bị tạm dừng hoặc đã nghỉ',
  'roster-unavailable': 'Không đọc được danh sách cán bộ',
  'session-missing': 'Chưa đăng nhập',
  'cookie-duplicate': 'Cookie của cổng bị gửi trùng',
  'session-unknown': 'Phiên đăng nhập không xác định',
  'session-expired': 'Phiên đăng nhập hết hạn',
  'session-idle-timeout': 'Phiên hết hạn do không hoạt động',
  'session-revoked': 'Phiên đăng nhập đã bị kết thúc',
  'session-refresh-failed': 'Không gia hạn được phiên',
  'session-refreshed': 'Đã gia hạn phiên',
  'session-store-unavailable': 'Không đọc được kho phiên',
  'sign-in-started': 'Bắt đầu đăng nhập',
  'session-created': 'Đăng nhập thành công',
  'signed-out': 'Đã đăng xuất',
  'backchannel-logout': 'Đăng xuất từ nhà cung cấp định danh',
  'logout-cross-site': 'Yêu cầu đăng xuất từ trang khác',
  'auth-return-path-invalid': 'Đường dẫn quay lại không hợp lệ',
  'auth-state-invalid': 'Trạng thái đăng nhập không hợp lệ',
  'auth-idp-error': 'Nhà cung cấp định danh báo lỗi',
  'auth-code-rejected': 'Mã đăng nhập bị từ chối',
  'auth-id-token-invalid': 'ID token không hợp lệ',
  'logout-token-invalid': 'Token đăng xuất không hợp lệ',
  'roster-invalid': 'Danh sách cán bộ không hợp lệ',
  'official-not-found': 'Không tìm thấy cán bộ',
  'roster-self-change': 'Tự sửa mục của chính mình',
  'device-proof-missing': 'Thiếu bằng chứng thiết bị',
  'device-proof-invalid': 'Bằng chứng thiết bị không hợp lệ',
  'device-proof-replayed': 'Bằng chứng thiết bị bị dùng lại',
  'device-proof-mismatch': 'Bằng chứng thiết bị không khớp yêu cầu',
  'device-clock-skew': 'Đồng hồ thiết bị lệch',
  'device-unregistered': 'Thiết bị chưa đăng ký',
  'device-pending': 'Thiết bị chờ phê duyệt',
  'device-quarantined': 'Thiết bị đang bị cách ly',
  'device-retired': 'Thiết bị đã thu hồi',
  'device-owner-mismatch': 'Thiết bị của người khác',
  'device-certificate-mismatch': 'Chứng thư thiết bị không khớp',
  'device-tier-insufficient': 'Thiết bị chưa đủ tin cậy',
  'device-registry-unavailable': 'Không đọc được sổ thiết bị',
  'posture-missing': 'Thiếu báo cáo tình trạng thiết bị',
  'posture-stale': 'Báo cáo tình trạng thiết bị đã cũ',
  'posture-signer-unknown': 'Nơi ký báo cáo tình trạng không xác định',
  'posture-signature-invalid': 'Chữ ký báo cáo tình trạng không hợp lệ',
  'posture-device-mismatch': 'Báo cáo tình trạng của thiết bị khác',
  'posture-replayed': 'Báo cáo tình trạng bị dùng lại',
  'posture-invalid': 'Báo cáo tình trạng không hợp lệ',
  'posture-signer-unavailable': 'Không kiểm tra được nơi ký báo cáo tình trạng',
  'device-enrolment': 'Đăng ký thiết bị',
  'device-not-found': 'Không tìm thấy thiết bị',
  'device-already-enrolled': 'Thiết bị đã đăng ký',
  'device-state-conflict': 'Trạng thái thiết bị không cho phép',
  'device-self-approval': 'Tự phê duyệt thiết bị của mình',
  'locked-user': 'Cán bộ đang bị khóa',
  'locked-device': 'Thiết bị đang bị khóa',
  'locked-session': 'Phiên đang bị khóa',
  'locked-address': 'Địa chỉ đang bị khóa',
  'lock-state-unavailable': 'Không kiểm tra được trạng thái khóa',
  'state-lost': 'Dữ liệu dùng chung bị mất, đang khôi phục',
  'lock-not-found': 'Không tìm thấy khóa',
  'lock-self-lift': 'Tự gỡ khóa của chính mình',
  'policy-denied': 'Chính sách từ chối',
  'policy-no-match': 'Không quy tắc nào cho phép',
  'clearance-insufficient': 'Không đủ mức được tiếp cận bí mật',
  'network-not-allowed': 'Mạng không được phép',
  'assurance-insufficient': 'Mức bảo đảm định danh chưa đủ',
  'authentication-too-old': 'Lần xác thực đã quá lâu',
  'outside-time-window': 'Ngoài khung giờ cho phép',
  'purpose-required': 'Thiếu mục đích khai thác',
  'purpose-invalid': 'Mục đích khai thác không hợp lệ',
  'quota-exceeded': 'Vượt hạn mức',
  'records-per-response-exceeded': 'Vượt số bản ghi mỗi lần',
  'quota-unavailable': 'Không kiểm tra được hạn mức',
  'obligation-failed': 'Không thực hiện được nghĩa vụ chính sách',
  'policy-invalid': 'Chính sách không hợp lệ',
  'policy-version-not-found': 'Không tìm thấy phiên bản chính sách',
  'policy-state-conflict': 'Trạng thái phiên bản không cho phép',
  'policy-same-approver': 'Người soạn tự phê duyệt',
  'four-eyes-required': 'Cần quản trị viên thứ hai xác nhận',
  'service-change-not-found': 'Không tìm thấy thay đổi chờ xác nhận',
  'policy-error': 'Lỗi khi đánh giá chính sách',
  'admin-role-required': 'Cần vai trò quản trị an ninh',
  'csrf-token-invalid': 'Thiếu mã chống giả mạo hoặc khác nguồn gốc',
  'audit-unavailable': 'Không ghi được nhật ký kiểm toán',
  'upstream-unavailable': 'Dịch vụ dữ liệu không phản hồi',
  'upstream-timeout': 'Dịch vụ dữ liệu quá thời gian',
  'client-aborted': 'Máy khách ngắt kết nối',
  'gateway-error': 'Lỗi nội bộ của cổng',
};

/**
 * The other closed lists, by kind. English names sit beside them; a reason's English name is
 * its code read as words (the README's reason table gives the full meaning).
 * @type {Record<string, Record<string, { vi: string, en: string }>>}
 */
export const ENUMS = {
  outcome: {
    allow: { vi: 'Cho phép', en: 'Allow' },
    deny: { vi: 'Từ chối', en: 'Deny' },
  },
  approval: {
    approved: { vi: 'Đã phê duyệt', en: 'Approved' },
    pending: { vi: 'Chờ phê duyệt', en: 'Pending' },
    rejected: { vi: 'Bị từ chối', en: 'Rejected' },
    suspended: { vi: 'Tạm dừng', en: 'Suspended' },
  },
  deviceStatus: {
    pending: { vi: 'Chờ phê duyệt', en: 'Pending' },
    approved: { vi: 'Đã phê duyệt', en: 'Approved' },
    quarantined: { vi: 'Đang cách ly', en: 'Quarantined' },
    retired: { vi: 'Đã thu hồi', en: 'Retired' },
  },
  officialStatus: {
    active: { vi: 'Đang công tác', en: 'Active' },
    suspended: { vi: 'Tạm dừng', en: 'Suspended' },
    retired: { vi: 'Đã nghỉ', en: 'Retired' },
  },
  tier: {
    unknown: { vi: 'Không xác định', en: 'Unknown' },
    registered: { vi: 'Đã đăng ký', en: 'Registered' },
    compliant: { vi: 'Đạt yêu cầu an toàn', en: 'Compliant' },
    'high-assurance': { vi: 'Tin cậy cao', en: 'High assurance' },
  },
  lockKind: {
    user: { vi: 'Cán bộ', en: 'Official' },
    device: { vi: 'Thiết bị', en: 'Device' },
    session: { vi: 'Phiên đăng nhập', en: 'Session' },
    address: { vi: 'Địa chỉ IP', en: 'IP address' },
  },
  clearance: {
    none: { vi: 'Không', en: 'None' },
    mat: { vi: 'Mật', en: 'Secret (Mật)' },
    'toi-mat': { vi: 'Tối mật', en: 'Top secret (Tối mật)' },
    'tuyet-mat': { vi: 'Tuyệt mật', en: 'Most secret (Tuyệt mật)' },
  },
  policyState: {
    draft: { vi: 'bản nháp', en: 'draft' },
    submitted: { vi: 'chờ duyệt', en: 'awaiting review' },
    active: { vi: 'đang áp dụng', en: 'active' },
    superseded: { vi: 'đã thay thế', en: 'superseded' },
    rejected: { vi: 'bị từ chối', en: 'rejected' },
  },
};

/**
 * The name of `code` of `kind` in `lang`; an unknown code is shown as itself.
 * @param {string} kind 'reason' or a key of ENUMS
 * @param {string} code
 * @param {'vi' | 'en'} lang
 */
export function nameOf(kind, code, lang) {
  if (kind === 'reason') return lang === 'vi' ? REASON_VI[code] ?? code : code.replaceAll('-', ' ');
  const entry = ENUMS[kind]?.[code];
  return entry ? entry[lang] : code;
}
