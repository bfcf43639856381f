// @ts-check
import { field, h, replace, select } from './dom.js';
import { api, get, whoami } from './api.js';
import { currentLang, t } from './i18n.js';
import { codeLabel, errorBox, openDialog, table } from './common.js';
import { nameOf } from './labels.js';

const STATUSES = ['active', 'suspended', 'retired'];

/** @param {HTMLElement} main */
export async function officialsScreen(main) {
  const me = await whoami().then(
    (w) => w.nationalId,
    () => '',
  );
  const list = h('div', { 'aria-live': 'polite' });
  const importOut = h('div', { 'aria-live': 'polite' });
  const file = /** @type {HTMLInputElement} */ (h('input', { type: 'file', name: 'file', accept: '.csv,text/csv', required: true, 'data-testid': 'roster-file' }));
  const importForm = /** @type {HTMLFormElement} */ (h('form', { class: 'filters' }, field(t('officials.import'), file, t('officials.importHint')), h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, t('officials.import')))));
  replace(main, h('h1', {}, t('officials.title')), importForm, importOut, list);

  importForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = file.files?.[0];
    if (!f || !importForm.reportValidity()) return;
    try {
      // The whole file or nothing: the gateway names each bad row and column and changes nothing.
      const r = await api('PUT', '/api/v1/roster', { text: await f.text(), contentType: 'text/csv; charset=utf-8' });
      replace(importOut, h('p', { class: 'notice ok', role: 'status' }, `${t('officials.importDone')}: ${r.count}`));
      await load();
    } catch (err) {
      replace(importOut, errorBox(err));
    }
  });

  async function load() {
    try {
      const { items } = await get('/api/v1/roster');
      replace(
        list,
        table(
          t('officials.title'),
          [t('officials.nationalId'), t('officials.name'), t('officials.agency'), t('officials.roles'), t('common.status'), t('common.actions')],
          items.map((/** @type {any} */ o) => [
            h('code', {}, o.nationalId),
            o.name,
            o.agency,
            o.roles.join(', '),
            codeLabel('officialStatus', o.status, `badge ${o.status === 'active' ? 'ok' : 'bad'}`),
            // Four-eyes: an admin's own entry is changed by another admin.
            o.nationalId === me
              ? h('small', {}, t('officials.ownEntry'))
              : h(
                  'button',
                  {
                    type: 'button',
                    'aria-label': `${t('officials.setStatus')}: ${o.name}`,
                    onclick: () =>
                      openDialog(
                        `${t('officials.setStatus')}: ${o.name}`,
                        () => [
                          select(
                            t('common.status'),
                            STATUSES.map((s) => ({ value: s, label: nameOf('officialStatus', s, currentLang()) })),
                            o.status,
                            { name: 'status' },
                          ),
                          field(t('common.reason'), h('textarea', { name: 'reason', rows: 2, required: true, maxlength: 1000 }), t('services.reasonHint')),
                        ],
                        async (d) => {
                          await api('PATCH', `/api/v1/roster/${o.nationalId}`, { body: { status: d.get('status'), reason: d.get('reason') } });
                          await load();
                        },
                      ),
                  },
                  t('officials.setStatus'),
                ),
          ]),
          'roster-table',
        ),
      );
    } catch (err) {
      replace(list, errorBox(err));
    }
  }
  await load();
}
