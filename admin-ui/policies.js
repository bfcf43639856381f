// @ts-check
import { field, formatTime, h, replace } from './dom.js';
import { api, get } from './api.js';
import { t } from './i18n.js';
import { errorBox, openDialog, table } from './common.js';

/**
 * Policies: the active version as readable rules, a draft with validation as you type, the diff,
 * submit, four-eyes approve/reject with a comment, rollback, history. Built on the policy
 * versions API (issue 5); until it exists the screen says so.
 */

/**
 * One CSV rule line in words, so that a reviewer reads what it does.
 * @param {string} line
 */
export function ruleInWords(line) {
  const f = line.split(',').map((x) => x.trim());
  if (f[0] === 'p' && f.length === 7) {
    return t('policies.ruleText', {
      subject: f[1], agency: f[2] === '*' ? t('policies.anyAgency') : f[2],
      effect: f[6] === 'deny' ? t('policies.deny') : t('policies.allow'),
      methods: f[5] ?? '', path: f[4] ?? '', service: f[3] === '*' ? t('policies.anyService') : f[3] ?? '',
    });
  }
  if (f[0] === 'g' && f.length === 3) return `${f[1]} ${t('policies.inherits')} ${f[2]}`;
  return line;
}

/** @param {string} diff */
function diffView(diff) {
  return h('pre', { class: 'diff', 'data-testid': 'policy-diff' }, diff.split('\n').map((l) => h('span', { class: l.startsWith('+') ? 'add' : l.startsWith('-') ? 'del' : '' }, l + '\n')));
}

/** @param {HTMLElement} main */
export async function policiesScreen(main) {
  const box = h('div', { 'aria-live': 'polite' });
  replace(main, h('h1', {}, t('policies.title')), h('p', {}, t('policies.fourEyes')), box);

  async function load() {
    const { items } = await get('/api/v1/policies/versions');
    const active = items.find((/** @type {any} */ v) => v.state === 'active');
    const rules = active ? String(active.sources.policy).split('\n').filter((l) => l.trim() && !l.trim().startsWith('#')) : [];
    const editor = /** @type {HTMLTextAreaElement} */ (h('textarea', { rows: 14, spellcheck: false, 'data-testid': 'draft-editor', 'aria-describedby': 'draft-status' }));
    editor.value = active ? active.sources.policy : '';
    const status = h('div', { id: 'draft-status', role: 'status', 'data-testid': 'draft-status' });
    const comment = /** @type {HTMLInputElement} */ (h('input', { name: 'comment', required: true, size: 60 }));
    /** @type {number | undefined} */
    let timer;
    // Validation as you type, debounced: the gateway parses the draft exactly as it would load it.
    editor.addEventListener('input', () => {
      clearTimeout(timer);
      timer = window.setTimeout(async () => {
        try {
          const r = await api('POST', '/api/v1/policies/validate', { body: { sources: { ...active?.sources, policy: editor.value } } });
          replace(status, r.valid ? h('span', { class: 'badge ok' }, t('policies.valid')) : h('div', {}, h('span', { class: 'badge bad' }, t('policies.invalid')), h('ul', {}, (r.problems ?? []).map((/** @type {string} */ p) => h('li', {}, p)))));
        } catch (err) {
          replace(status, errorBox(err));
        }
      }, 300);
    });
    const save = h('button', { type: 'button', class: 'primary', 'data-testid': 'draft-save', onclick: async () => {
      try {
        const v = await api('POST', '/api/v1/policies/drafts', { body: { comment: comment.value, sources: { ...active?.sources, policy: editor.value } } });
        await api('POST', `/api/v1/policies/versions/${encodeURIComponent(v.id)}/submit`, { body: {} });
        await load();
      } catch (err) {
        replace(status, errorBox(err));
      }
    } }, t('policies.submit'));

    /** @param {any} v @param {'approve' | 'reject' | 'rollback'} action */
    const review = (v, action) => openDialog(`${t(/** @type {any} */ (`policies.${action}`))}: ${v.id}`, () => [
      field(t('common.comment'), h('textarea', { name: 'comment', rows: 2, required: true, maxlength: 1000 })),
    ], async (d) => {
      await api('POST', `/api/v1/policies/versions/${encodeURIComponent(v.id)}/${action}`, { body: { comment: d.get('comment') } });
      await load();
    });

    const pending = items.filter((/** @type {any} */ v) => v.state === 'submitted');
    replace(box,
      h('h2', {}, `${t('policies.active')}: `, h('code', {}, active?.id ?? '—')),
      h('ol', { class: 'rules', 'data-testid': 'active-rules' }, rules.map((l) => h('li', {}, ruleInWords(l), ' ', h('small', { class: 'mono' }, l)))),
      h('h2', {}, t('policies.pending')),
      pending.length === 0 ? h('p', {}, t('common.none')) : pending.map((/** @type {any} */ v) => h('section', { 'data-testid': `pending-${v.id}` },
        h('p', {}, `${t('policies.version')} ${v.id} · ${t('policies.author')} ${v.author} · ${formatTime(v.submittedAt)} · ${v.comment}`),
        diffView(v.diff),
        h('div', { class: 'buttons' },
          h('button', { type: 'button', class: 'primary', 'data-testid': 'approve', onclick: () => review(v, 'approve') }, t('policies.approve')),
          h('button', { type: 'button', class: 'danger', 'data-testid': 'reject', onclick: () => review(v, 'reject') }, t('policies.reject'))))),
      h('h2', {}, t('policies.draft')),
      field(t('policies.rules'), editor), status, field(t('common.comment'), comment), h('div', { class: 'buttons' }, save),
      h('h2', {}, t('policies.history')),
      table(t('policies.history'), [t('policies.version'), t('common.status'), t('policies.author'), t('policies.reviewer'), t('common.comment'), t('common.actions')],
        items.map((/** @type {any} */ v) => [h('code', {}, v.id), v.state, `${v.author} · ${formatTime(v.createdAt)}`, v.review ? `${v.review.by} · ${formatTime(v.review.at)}` : '—', v.review?.comment ?? v.comment,
          v.state === 'superseded' ? h('button', { type: 'button', onclick: () => review(v, 'rollback') }, t('policies.rollback')) : '']), 'policy-history'));
  }

  try {
    await load();
  } catch (err) {
    replace(box, errorBox(err));
  }
}
