// @ts-check
/**
 * Calls to the admin API (same origin, session cookie). Every change carries the session's
 * CSRF token in X-CSRF-Token; the gateway refuses it otherwise (403 csrf-token-invalid).
 */

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} reason
   * @param {string} message
   */
  constructor(status, code, reason, message) {
    super(message);
    this.status = status;
    this.code = code;
    this.reason = reason;
  }

  /** The API does not exist on this gateway (yet): the screen says so instead of failing. */
  get unavailable() {
    return this.status === 404 && this.reason === 'route-not-found';
  }
}

/** @type {Promise<string | null> | null} */
let csrfToken = null;

function csrf() {
  csrfToken ??= fetch('/api/v1/csrf', { credentials: 'same-origin', headers: { accept: 'application/json' } })
    .then((r) => (r.ok ? r.json() : { token: null }))
    .then((b) => /** @type {string | null} */ (b.token))
    .catch(() => {
      csrfToken = null;
      return null;
    });
  return csrfToken;
}

/**
 * @param {string} method
 * @param {string} path
 * @param {{ body?: unknown, text?: string, contentType?: string }} [opts]
 * @returns {Promise<any>}
 */
export async function api(method, path, opts = {}) {
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') {
    const token = await csrf();
    if (token) headers['x-csrf-token'] = token;
  }
  let body;
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body);
  } else if (opts.text !== undefined) {
    headers['content-type'] = opts.contentType ?? 'text/plain; charset=utf-8';
    body = opts.text;
  }
  const res = await fetch(path, { method, headers, body, credentials: 'same-origin', redirect: 'manual' });
  if (res.type === 'opaqueredirect' || res.status === 401) {
    throw new ApiError(401, 'ZTG_ERR_UNAUTHENTICATED', 'session-missing', 'sign in');
  }
  const text = await res.text();
  /** @type {any} */
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  if (!res.ok) {
    const e = json && typeof json === 'object' && json.error ? json.error : {};
    throw new ApiError(res.status, e.code ?? 'unknown', e.reason ?? 'unknown', e.message ?? `HTTP ${res.status}`);
  }
  return json;
}

export const get = (/** @type {string} */ path) => api('GET', path);

/** @type {Promise<{ nationalId: string, agency: string | null, roles: string[], assuranceLevel: number }> | null} */
let me = null;
/** The signed-in admin, asked once per page: screens offer only what this admin may do. */
export function whoami() {
  me ??= get('/api/v1/whoami').catch((err) => {
    me = null;
    throw err;
  });
  return me;
}
