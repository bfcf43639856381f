// @ts-check
import { h } from './dom.js';
import { ApiError } from './api.js';
import { currentLang, t } from './i18n.js';
import { nameOf } from './labels.js';

/**
 * A code of the gateway by its name in the admin's language, the code itself on hover.
 * @param {string} kind 'reason' or a kind of labels.js ENUMS
 * @param {string} code
 * @param {string} [cls]
 */
export function codeLabel(kind, code, cls = '') {
  return h('span', { class: `code-label ${cls}`.trim(), title: code, 'data-code': code }, nameOf(kind, code, currentLang()));
}

/** @param {string[]} reasons */
export function reasonList(reasons) {
  return reasons.flatMap((r, i) => (i === 0 ? [codeLabel('reason', r)] : [', ', codeLabel('reason', r)]));
}

/**
 * What a screen shows when a call fails: the API missing on this gateway, a refused CSRF token,
 * a missing role, an ended session, or the gateway's own message (which names what is wrong).
 * @param {unknown} err
 */
export function errorBox(err) {
  if (err instanceof ApiError) {
    if (err.unavailable) return h('p', { class: 'notice unavailable', role: 'status' }, t('common.unavailable'));
    if (err.reason === 'csrf-token-invalid') return h('p', { class: 'notice error', role: 'alert' }, t('common.csrf'));
    if (err.reason === 'admin-role-required') return h('p', { class: 'notice error', role: 'alert' }, t('common.forbidden'));
    if (err.status === 401) return h('p', { class: 'notice error', role: 'alert' }, t('common.signin'), ' ', h('a', { href: '/' }, '↻'));
    // The gateway lists problems one per line ("\n  - row 2, column clearance: …"): one item each.
    const [first, ...problems] = err.message
      .split('\n')
      .map((l) => l.replace(/^\s*-\s*/, ''))
      .filter((l) => l.trim());
    return h(
      'div',
      { class: 'notice error', role: 'alert', 'data-testid': 'error-box' },
      h('strong', {}, `${t('common.error')} ${err.status}: `),
      codeLabel('reason', err.reason),
      ` (${err.reason}) — ${first ?? ''}`,
      problems.length
        ? h(
            'ul',
            {},
            problems.map((p) => h('li', {}, p)),
          )
        : null,
    );
  }
  return h('p', { class: 'notice error', role: 'alert' }, `${t('common.error')}: ${String(/** @type {any} */ (err)?.message ?? err)}`);
}

/**
 * @param {string} caption
 * @param {string[]} headers
 * @param {(string | number | Node | null)[][]} rows
 * @param {string} [testId]
 */
export function table(caption, headers, rows, testId) {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { 'data-testid': testId },
      h('caption', {}, caption),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          headers.map((x) => h('th', { scope: 'col' }, x)),
        ),
      ),
      h(
        'tbody',
        {},
        rows.length === 0
          ? h('tr', {}, h('td', { colspan: headers.length }, t('common.none')))
          : rows.map((r) =>
              h(
                'tr',
                {},
                r.map((c) => h('td', {}, c)),
              ),
            ),
      ),
    ),
  );
}

/** @param {'allow' | 'deny' | string} decision */
export function decisionBadge(decision) {
  return codeLabel('outcome', decision, `badge ${decision === 'allow' ? 'ok' : 'bad'}`);
}

/**
 * A small form shown in a modal <dialog>: focus moves into it, Escape closes it, and focus
 * returns to the control that opened it.
 * @param {string} title
 * @param {(form: HTMLFormElement) => HTMLElement[]} fields
 * @param {(data: FormData) => Promise<void>} onSubmit
 * @param {(err: unknown) => HTMLElement} [renderError] how a refusal is said (errorBox by default)
 */
export function openDialog(title, fields, onSubmit, renderError = errorBox) {
  const opener = /** @type {HTMLElement | null} */ (document.activeElement);
  const status = h('div', { 'aria-live': 'polite' });
  const form = /** @type {HTMLFormElement} */ (h('form', { method: 'dialog', novalidate: true }));
  const dialog = /** @type {HTMLDialogElement} */ (h('dialog', { 'aria-labelledby': 'dialog-title' }, h('h2', { id: 'dialog-title' }, title), form));
  const close = () => {
    dialog.close();
    dialog.remove();
    opener?.focus();
  };
  form.append(...fields(form), status, h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, t('common.save')), h('button', { type: 'button', onclick: close }, t('common.cancel'))));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!form.checkValidity()) {
      form.reportValidity();
      return;
    }
    status.replaceChildren(h('p', {}, t('common.loading')));
    try {
      await onSubmit(new FormData(form));
      close();
    } catch (err) {
      status.replaceChildren(renderError(err));
    }
  });
  dialog.addEventListener('cancel', (ev) => {
    ev.preventDefault();
    close();
  });
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}
