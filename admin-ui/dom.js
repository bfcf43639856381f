// @ts-check
/**
 * The one way the admin UI builds HTML: elements and text nodes, never markup strings, so that
 * nothing an API returns (names, reasons, paths) can become script.
 */

/**
 * @typedef {string | number | Node | null | undefined | false} Child
 * @typedef {Record<string, string | number | boolean | null | undefined | ((ev: any) => void)>} Attrs
 */

/**
 * @param {string} tag
 * @param {Attrs} [attrs]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(name.replace(/^on/, ''), value);
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

/**
 * @param {Node} parent
 * @param {(Child | Child[])[]} children
 */
export function append(parent, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
}

/**
 * @param {Node} el
 * @param {...(Child | Child[])} children
 */
export function replace(el, ...children) {
  while (el.firstChild) el.removeChild(el.firstChild);
  append(el, children);
}

/** Vietnam has kept UTC+7 all year since 1975: one zone, no daylight saving. */
export const VIETNAM_TIME_ZONE = 'Asia/Ho_Chi_Minh';
/** @type {Map<string, Intl.DateTimeFormat>} */
const timeFormats = new Map();

/**
 * A time as an admin in the province reads it: Vietnam time, whatever the PC's own zone, with
 * the zone said. Exports keep ISO 8601 UTC.
 * @param {string | number | null | undefined} iso
 */
export function formatTime(iso) {
  if (iso === null || iso === undefined || iso === '') return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const en = document.documentElement.lang === 'en';
  const locale = en ? 'en-GB' : 'vi-VN';
  let format = timeFormats.get(locale);
  if (!format) {
    format = new Intl.DateTimeFormat(locale, { timeZone: VIETNAM_TIME_ZONE, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
    timeFormats.set(locale, format);
  }
  return `${format.format(d)} ${en ? '(Vietnam time, UTC+7)' : '(giờ Việt Nam, UTC+7)'}`;
}

let fieldCounter = 0;
/** A label and its control, tied by id (WCAG 1.3.1, 3.3.2). */
export function field(/** @type {string} */ label, /** @type {HTMLElement} */ control, /** @type {string} */ hint = '') {
  const id = control.id || `f${++fieldCounter}`;
  control.id = id;
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) control.setAttribute('aria-describedby', hintId);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('small', { id: hintId }, hint) : null);
}

/**
 * @param {string} label
 * @param {{ value: string, label: string }[]} options
 * @param {string} [selected]
 * @param {Attrs} [attrs]
 */
export function select(label, options, selected = '', attrs = {}) {
  const s = /** @type {HTMLSelectElement} */ (
    h(
      'select',
      attrs,
      options.map((o) => h('option', { value: o.value, selected: o.value === selected }, o.label)),
    )
  );
  return field(label, s);
}
