// @ts-check
import { field, formatTime, h, replace } from './dom.js';
import { api, ApiError, get, whoami } from './api.js';
import { t } from './i18n.js';
import { codeLabel, errorBox, openDialog, table } from './common.js';

/**
 * Policies: the active version as readable rules, a draft with validation as you type, its diff
 * against the active version, submit, four-eyes approve/reject with a comment, rollback, history.
 * Built on gateway/admin/policies-routes.ts; a gateway without it says so.
 */

const V = '/api/v1/policies';

/**
 * One CSV rule line in words, so that a reviewer reads what it does.
 * @param {string} line
 */
export function ruleInWords(line) {
  const f = line.split(',').map((x) => x.trim());
  if (f[0] === 'p' && f.length === 7) {
    return t('policies.ruleText', {
      subject: f[1],
      agency: f[2] === '*' ? t('policies.anyAgency') : f[2],
      effect: f[6] === 'deny' ? t('policies.deny') : t('policies.allow'),
      methods: f[5] ?? '',
      path: f[4] ?? '',
      service: f[3] === '*' ? t('policies.anyService') : (f[3] ?? ''),
    });
  }
  if (f[0] === 'g' && f.length === 3) return `${f[1]} ${t('policies.inherits')} ${f[2]}`;
  return line;
}

/** @param {string} diff */
function diffView(diff) {
  if (!diff.trim()) return h('p', { 'data-testid': 'policy-diff' }, t('policies.noDiff'));
  return h(
    'pre',
    { class: 'diff', 'data-testid': 'policy-diff' },
    diff.split('\n').map((l) => h('span', { class: l.startsWith('+ ') ? 'add' : l.startsWith('- ') ? 'del' : '' }, l + '\n')),
  );
}

/** @param {string} state */
function stateBadge(state) {
  const cls = state === 'active' ? 'ok' : state === 'rejected' ? 'bad' : state === 'superseded' ? '' : 'warn';
  return codeLabel('policyState', state, `badge ${cls}`);
}

/**
 * The refusal the gateway gives an author approving their own draft, said plainly.
 * @param {unknown} err
 */
function policyError(err) {
  if (err instanceof ApiError && err.reason === 'policy-same-approver') {
    return h('p', { class: 'notice error', role: 'alert', 'data-testid': 'four-eyes-refusal' }, `${t('policies.sameApprover')} (${err.status} ${err.reason})`);
  }
  return errorBox(err);
}

/** @param {HTMLElement} main */
export async function policiesScreen(main) {
  const box = h('div', { 'aria-live': 'polite' });
  replace(main, h('h1', {}, t('policies.title')), h('p', {}, t('policies.fourEyes')), box);
  const me = await whoami().then(
    (w) => w.nationalId,
    () => '',
  );

  async function load() {
    const list = await get(`${V}/versions`);
    /** @type {any[]} */
    const items = list.items;
    const active = list.active ? await get(`${V}/versions/${encodeURIComponent(list.active)}`) : null;
    const rules = active
      ? String(active.sources.policy)
          .split('\n')
          .filter((l) => l.trim() && !l.trim().startsWith('#'))
      : [];
    const open = items.filter((v) => v.state === 'draft' || v.state === 'submitted').reverse();
    const diffs = await Promise.all(
      open.map((v) =>
        get(`${V}/versions/${encodeURIComponent(v.id)}/diff`).then(
          (d) => String(d.diff),
          () => '',
        ),
      ),
    );

    const editor = /** @type {HTMLTextAreaElement} */ (h('textarea', { rows: 14, spellcheck: false, class: 'mono', 'data-testid': 'draft-editor', 'aria-describedby': 'draft-status' }));
    editor.value = active ? active.sources.policy : '';
    const status = h('div', { id: 'draft-status', role: 'status', 'data-testid': 'draft-status' });
    const comment = /** @type {HTMLInputElement} */ (h('input', { name: 'comment', required: true, minlength: 3, maxlength: 2000, size: 60, 'data-testid': 'draft-comment' }));
    const saveOut = h('div', { 'aria-live': 'polite' });
    /** @type {number | undefined} */
    let timer;
    let checks = 0;
    // Validation as you type, debounced: the gateway parses the draft exactly as an approval would load it.
    editor.addEventListener('input', () => {
      clearTimeout(timer);
      replace(status, h('small', {}, t('policies.checking')));
      timer = window.setTimeout(async () => {
        const mine = ++checks;
        try {
          const r = await api('POST', `${V}/validate`, { body: { policy: editor.value } });
          if (mine !== checks) return;
          replace(
            status,
            r.valid
              ? h('span', { class: 'badge ok', 'data-testid': 'draft-valid' }, t('policies.valid'))
              : h(
                  'div',
                  { 'data-testid': 'draft-invalid' },
                  h('span', { class: 'badge bad' }, t('policies.invalid')),
                  h(
                    'ul',
                    {},
                    r.problems.map((/** @type {string} */ p) => h('li', { class: 'mono' }, p)),
                  ),
                ),
          );
        } catch (err) {
          if (mine === checks) replace(status, errorBox(err));
        }
      }, 300);
    });
    const save = h(
      'button',
      {
        type: 'button',
        class: 'primary',
        'data-testid': 'draft-save',
        onclick: async () => {
          if (!comment.reportValidity()) return;
          try {
            await api('POST', `${V}/versions`, { body: { comment: comment.value, policy: editor.value } });
            await load();
          } catch (err) {
            replace(saveOut, errorBox(err));
          }
        },
      },
      t('policies.saveDraft'),
    );

    /** @param {any} v @param {'approve' | 'reject' | 'rollback'} action */
    const review = (v, action) => {
      openDialog(
        `${t(/** @type {any} */ (`policies.${action}`))}: ${v.id}`,
        () => [field(t('common.comment'), h('textarea', { name: 'comment', rows: 2, required: true, minlength: 3, maxlength: 2000 }))],
        async (d) => {
          await api('POST', `${V}/versions/${encodeURIComponent(v.id)}/${action}`, { body: { comment: d.get('comment') } });
          await load();
        },
        policyError,
      );
    };

    /** @param {any} v @param {number} i */
    const openVersion = (v, i) =>
      h(
        'section',
        { class: 'card', 'data-testid': `version-${v.id}`, 'aria-label': `${t('policies.version')} ${v.id}` },
        h('h3', {}, `${t('policies.version')} ${v.id} `, stateBadge(v.state)),
        h('p', {}, `${t('policies.author')} ${v.author} · ${formatTime(v.submittedAt ?? v.createdAt)} · ${v.comment}`),
        h('h4', {}, t('policies.diff')),
        diffView(diffs[i] ?? ''),
        v.state === 'submitted' && v.author === me ? h('p', { class: 'notice' }, t('policies.yourOwn')) : null,
        h(
          'div',
          { class: 'buttons' },
          v.state === 'draft' && v.author === me
            ? h(
                'button',
                {
                  type: 'button',
                  class: 'primary',
                  'data-testid': 'submit',
                  onclick: async (/** @type {Event} */ ev) => {
                    try {
                      await api('POST', `${V}/versions/${encodeURIComponent(v.id)}/submit`, { body: {} });
                      await load();
                    } catch (err) {
                      /** @type {HTMLElement} */ (ev.target).after(errorBox(err));
                    }
                  },
                },
                t('policies.submit'),
              )
            : null,
          // Four-eyes: the author is never offered the approval the gateway would refuse them.
          v.state === 'submitted' && v.author !== me ? h('button', { type: 'button', class: 'primary', 'data-testid': 'approve', onclick: () => review(v, 'approve') }, t('policies.approve')) : null,
          h('button', { type: 'button', class: 'danger', 'data-testid': 'reject', onclick: () => review(v, 'reject') }, t('policies.reject')),
        ),
      );

    replace(
      box,
      h('h2', {}, `${t('policies.active')}: `, h('code', { 'data-testid': 'active-version' }, active?.id ?? '—'), active ? h('small', {}, ` · ${active.review ? `${t('policies.reviewer')} ${active.review.by}` : active.author} · ${formatTime(active.activatedAt)}`) : null),
      h(
        'ol',
        { class: 'rules', 'data-testid': 'active-rules' },
        rules.map((l) => h('li', {}, ruleInWords(l), ' ', h('small', { class: 'mono' }, l))),
      ),
      h('h2', {}, t('policies.pending')),
      open.length === 0 ? h('p', {}, t('common.none')) : open.map(openVersion),
      h('h2', {}, t('policies.newDraft')),
      field(t('policies.rules'), editor, t('policies.editorHint')),
      status,
      field(t('common.comment'), comment),
      h('div', { class: 'buttons' }, save),
      saveOut,
      h('h2', {}, t('policies.history')),
      table(
        t('policies.history'),
        [t('policies.version'), t('common.status'), t('policies.author'), t('policies.reviewer'), t('common.comment'), t('common.actions')],
        [...items]
          .reverse()
          .map((v) => [
            h('code', {}, v.id),
            stateBadge(v.state),
            `${v.author} · ${formatTime(v.createdAt)}`,
            v.review ? `${v.review.by} · ${formatTime(v.review.at)}` : '—',
            v.review?.comment ?? v.comment,
            v.state === 'superseded' && v.activatedAt ? h('button', { type: 'button', 'data-testid': `rollback-${v.id}`, onclick: () => review(v, 'rollback') }, t('policies.rollback')) : '',
          ]),
        'policy-history',
      ),
    );
  }

  try {
    await load();
  } catch (err) {
    replace(box, errorBox(err));
  }
}
