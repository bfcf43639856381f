// @ts-check
import { field, formatTime, h, replace, select } from './dom.js';
import { api, get } from './api.js';
import { t } from './i18n.js';
import { codeLabel, errorBox, openDialog, table } from './common.js';

/**
 * Just-in-time access: pending, active and past requests and break-glass uses; revoke at once;
 * the mandatory after-the-fact review of each break-glass use; unreviewed uses by agency, for
 * the head of each agency. Approval is the owner agency's approvers' (their page on the gateway).
 */

/** Pending requests and unreviewed break-glass uses: the number on the navigation badge. */
export async function accessBadgeCount() {
  const s = await get('/api/v1/access-requests/summary');
  return s.pending + s.unreviewed;
}

/** @param {any} r */
function kindBadge(r) {
  return h('span', { class: `badge ${r.kind === 'break-glass' ? 'bad' : 'ok'}` }, t(/** @type {any} */ (`access.kind.${r.kind}`)));
}

/** @param {HTMLElement} main */
export async function accessScreen(main) {
  const list = h('div', { 'aria-live': 'polite' });
  const unreviewed = h('div', { 'aria-live': 'polite' });
  const filter = select(
    t('access.filter'),
    [
      { value: 'pending', label: t('access.pending') },
      { value: 'active', label: t('access.active') },
      { value: 'past', label: t('access.past') },
      { value: '', label: t('common.all') },
    ],
    'pending',
    { name: 'state', 'data-testid': 'access-filter' },
  );
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'filters' }, filter, h('div', { class: 'buttons' }, h('button', { type: 'submit' }, t('common.apply')))));
  replace(main, h('h1', {}, t('access.title')), h('p', {}, t('access.intro')), form, list, h('h2', {}, t('access.unreviewedTitle')), unreviewed);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void load();
  });

  /** @param {any} r */
  function actions(r) {
    const out = [];
    if (r.state === 'pending' || r.state === 'active') {
      out.push(
        h(
          'button',
          {
            type: 'button',
            'data-testid': `revoke-${r.id}`,
            onclick: () =>
              openDialog(
                `${t('access.revoke')}: ${r.requester.nationalId} · ${r.routeId}`,
                () => [field(t('common.reason'), h('textarea', { name: 'reason', rows: 2, required: true, minlength: 3, maxlength: 500 }), t('common.reasonRequired'))],
                async (d) => {
                  await api('POST', `/api/v1/access-requests/${r.id}/revoke`, { body: { reason: d.get('reason') } });
                  await load();
                },
              ),
          },
          t('access.revoke'),
        ),
      );
    }
    if (r.kind === 'break-glass' && !r.review) {
      out.push(
        h(
          'button',
          {
            type: 'button',
            'data-testid': `review-${r.id}`,
            onclick: () =>
              openDialog(
                `${t('access.review')}: ${r.requester.nationalId} · ${r.routeId}`,
                () => [field(t('access.reviewNote'), h('textarea', { name: 'note', rows: 3, required: true, minlength: 10, maxlength: 2000 }))],
                async (d) => {
                  await api('POST', `/api/v1/access-requests/${r.id}/review`, { body: { note: d.get('note') } });
                  await load();
                },
              ),
          },
          t('access.review'),
        ),
      );
    }
    if (r.review) out.push(h('span', { class: 'badge ok' }, `${t('access.reviewed')}: ${r.review.by}`));
    return h('div', { class: 'buttons' }, out);
  }

  /** @param {any} r */
  const row = (r) => [
    kindBadge(r),
    h('code', {}, r.requester.nationalId),
    r.routeId,
    r.role,
    `${r.purpose}${r.caseRef ? ` — ${r.caseRef}` : ''}`,
    h('span', { 'data-state': r.state }, codeLabel('accessState', r.state), r.kind === 'break-glass' && r.state === 'active' && !r.confirmedBy ? ` (${t('access.unconfirmed')})` : ''),
    r.kind === 'access-request' ? `${r.approvals.length}/${r.requiredApprovals}` : r.confirmedBy ? r.confirmedBy.nationalId : '—',
    formatTime(r.expiresAt),
    actions(r),
  ];
  const headers = () => [t('access.kind'), t('access.requester'), t('access.service'), t('access.role'), t('access.purpose'), t('common.status'), t('access.approvals'), t('access.expires'), t('common.actions')];

  async function load() {
    const state = /** @type {HTMLSelectElement} */ (filter.querySelector('select')).value;
    try {
      const { items } = await get(`/api/v1/access-requests${state ? `?state=${state}` : ''}`);
      replace(list, table(t('access.title'), headers(), items.map(row), 'access-table'));
      const summary = await get('/api/v1/access-requests/summary');
      const groups = Object.entries(summary.unreviewedByAgency);
      replace(unreviewed, groups.length === 0 ? h('p', {}, t('common.none')) : groups.map(([agency, uses]) => table(`${t('access.agency')}: ${agency}`, headers(), /** @type {any[]} */ (uses).map(row), `unreviewed-${agency}`)));
    } catch (err) {
      replace(list, errorBox(err));
    }
  }
  await load();
}
