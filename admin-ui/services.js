// @ts-check
import { field, formatTime, h, replace, select } from './dom.js';
import { api, get, whoami } from './api.js';
import { t } from './i18n.js';
import { codeLabel, openDialog, table } from './common.js';

const CLASSIFICATIONS = ['public', 'internal', 'personal-data', 'sensitive-personal-data', 'mat', 'toi-mat', 'tuyet-mat'];
const STATUSES = ['approved', 'pending', 'rejected', 'suspended'];

/** @param {string} status */
function approvalBadge(status) {
  const cls = status === 'approved' ? 'ok' : status === 'pending' ? 'warn' : 'bad';
  return codeLabel('approval', status, `badge ${cls}`);
}

/** @param {HTMLElement} main */
export async function servicesScreen(main) {
  const list = h('div', { 'aria-live': 'polite' });
  replace(main, h('h1', {}, t('services.title')), h('p', {}, t('services.intro')), list);
  const me = await whoami().then(
    (w) => w.nationalId,
    () => '',
  );

  async function load() {
    const { items } = await get('/api/v1/services');
    replace(
      list,
      table(
        t('services.title'),
        [t('services.id'), t('services.name'), t('services.prefix'), t('services.level'), t('services.classification'), t('services.owner'), t('services.approval'), t('services.changedBy'), t('common.actions')],
        items.map((/** @type {any} */ s) => [
          h('code', {}, s.id),
          s.name,
          h('code', {}, s.pathPrefix),
          String(s.securityLevel),
          h('span', { class: 'code-label', title: s.classification, 'data-code': s.classification }, t(/** @type {any} */ (`class.${s.classification}`))),
          s.ownerAgency,
          h('div', {}, approvalBadge(s.approval.status), s.approval.reason ? h('div', {}, h('small', {}, s.approval.reason)) : null, s.approval.approvedBy ? h('div', {}, h('small', {}, `${s.approval.approvedBy} · ${formatTime(s.approval.approvedAt)}`)) : null),
          s.updatedBy ? h('small', {}, `${s.updatedBy} · ${formatTime(s.updatedAt)}`) : '—',
          h('div', {}, h('button', { type: 'button', 'data-testid': `edit-${s.id}`, 'aria-label': `${t('common.edit')} ${s.name}`, onclick: () => edit(s) }, t('common.edit')), ...(s.pendingChanges ?? []).map((/** @type {any} */ c) => pendingChange(s, c))),
        ]),
        'services-table',
      ),
    );
  }

  /**
   * A change that weakens protection waits for a second security admin (four-eyes): the gateway
   * refuses its proposer's confirmation, so the screen says who proposed it.
   * @param {any} s @param {any} c
   */
  function pendingChange(s, c) {
    const what = Object.entries(c.patch)
      .map(([k, v]) => `${k}: ${k === 'approval' ? /** @type {any} */ (v).status : v}`)
      .join(', ');
    return h(
      'div',
      { class: 'pending-change', 'data-testid': `pending-${s.id}` },
      h('span', { class: 'badge warn' }, t('services.pendingChange')),
      ' ',
      h('small', {}, `${what} · ${c.proposedBy} · ${formatTime(c.proposedAt)}`),
      c.reason ? h('div', {}, h('small', {}, c.reason)) : null,
      // Four-eyes: its proposer is not offered the confirmation the gateway would refuse.
      c.proposedBy === me ? h('small', { class: 'notice' }, t('services.yourOwn')) : h('button', { type: 'button', 'data-testid': `confirm-${s.id}`, onclick: () => decide(s, c, 'confirm') }, t('services.confirm')),
      ' ',
      h('button', { type: 'button', 'data-testid': `reject-${s.id}`, onclick: () => decide(s, c, 'reject') }, t('services.reject')),
    );
  }

  /** @param {any} s @param {any} c @param {'confirm' | 'reject'} action */
  function decide(s, c, action) {
    openDialog(
      `${t(action === 'confirm' ? 'services.confirm' : 'services.reject')}: ${s.name}`,
      () => [field(t('services.comment'), h('textarea', { name: 'comment', rows: 2, maxlength: 1000, required: true }), t('services.fourEyesHint'))],
      async (data) => {
        await api('POST', `/api/v1/services/${encodeURIComponent(s.id)}/changes/${encodeURIComponent(c.id)}/${action}`, { body: { comment: String(data.get('comment') ?? '') } });
        await load();
      },
    );
  }

  /** @param {any} s */
  function edit(s) {
    openDialog(
      `${t('services.editTitle')}: ${s.name}`,
      () => {
        const reason = /** @type {HTMLTextAreaElement} */ (h('textarea', { name: 'reason', rows: 2, maxlength: 1000 }));
        const status = select(
          t('services.approval'),
          STATUSES.map((v) => ({ value: v, label: t(/** @type {any} */ (`approval.${v}`)) })),
          s.approval.status,
          { name: 'status' },
        );
        // A change of approval status needs a reason (the gateway refuses it otherwise, too).
        status.querySelector('select')?.addEventListener('change', (ev) => {
          reason.required = /** @type {HTMLSelectElement} */ (ev.target).value !== s.approval.status;
        });
        return [
          select(
            t('services.level'),
            [1, 2, 3, 4, 5].map((n) => ({ value: String(n), label: String(n) })),
            String(s.securityLevel),
            { name: 'securityLevel' },
          ),
          select(
            t('services.classification'),
            CLASSIFICATIONS.map((c) => ({ value: c, label: t(/** @type {any} */ (`class.${c}`)) })),
            s.classification,
            { name: 'classification' },
          ),
          field(t('services.owner'), h('input', { name: 'ownerAgency', value: s.ownerAgency, required: true, pattern: '[a-z0-9][a-z0-9\\-]{0,62}' })),
          status,
          field(t('common.reason'), reason, t('services.reasonHint')),
        ];
      },
      async (data) => {
        /** @type {Record<string, unknown>} */
        const patch = {};
        if (Number(data.get('securityLevel')) !== s.securityLevel) patch.securityLevel = Number(data.get('securityLevel'));
        if (data.get('classification') !== s.classification) patch.classification = data.get('classification');
        if (data.get('ownerAgency') !== s.ownerAgency) patch.ownerAgency = data.get('ownerAgency');
        if (data.get('status') !== s.approval.status) patch.approval = { status: data.get('status'), reason: String(data.get('reason') ?? '') };
        if (Object.keys(patch).length === 0) return;
        await api('PATCH', `/api/v1/services/${encodeURIComponent(s.id)}`, { body: patch });
        await load();
      },
    );
  }

  await load();
}
