// @ts-check
import { field, formatTime, h, replace, select } from './dom.js';
import { get } from './api.js';
import { currentLang, t } from './i18n.js';
import { nameOf } from './labels.js';
import { decisionBadge, errorBox, reasonList, table } from './common.js';

/** Rows kept on screen: enough to watch, few enough for a modest office PC. */
const MAX_ROWS = 200;

/** @param {HTMLElement} main */
export async function liveScreen(main) {
  const outcome = select(
    t('live.outcome'),
    [
      { value: '', label: t('common.all') },
      { value: 'allow', label: nameOf('outcome', 'allow', currentLang()) },
      { value: 'deny', label: nameOf('outcome', 'deny', currentLang()) },
    ],
    '',
    { name: 'outcome' },
  );
  const agency = field(t('live.agency'), h('input', { name: 'agency', size: 18, pattern: '[a-z0-9][a-z0-9\\-]{0,62}' }));
  const service = field(t('live.service'), h('input', { name: 'service', size: 14, pattern: '[a-z0-9][a-z0-9\\-]{0,62}' }));
  const official = field(t('live.official'), h('input', { name: 'official', size: 14, inputmode: 'numeric', pattern: '\\d{12}' }));
  const exportLink = /** @type {HTMLAnchorElement} */ (h('a', { class: 'button', href: '/api/v1/decisions.csv?kind=access', download: '', 'data-testid': 'export-decisions' }, t('live.export')));
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'filters', 'data-testid': 'live-filters' }, outcome, agency, service, official, h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, t('common.apply')), exportLink)));
  const status = h('p', { role: 'status', 'data-testid': 'live-status' });
  const tbody = h('tbody', { 'data-testid': 'live-rows' });
  const feed = h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { 'data-testid': 'live-table' },
      h('caption', {}, t('live.title')),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          [t('live.time'), t('live.outcome'), t('live.official'), t('live.agency'), t('live.service'), t('live.request'), t('live.reasons')].map((x) => h('th', { scope: 'col' }, x)),
        ),
      ),
      tbody,
    ),
  );
  const year = new Date().getFullYear();
  const yearInput = /** @type {HTMLInputElement} */ (h('input', { type: 'number', name: 'year', min: 2000, max: 2999, value: year, 'data-testid': 'counts-year' }));
  const countsLink = /** @type {HTMLAnchorElement} */ (h('a', { class: 'button', href: `/api/v1/decisions/counts.csv?year=${year}`, download: '', 'data-testid': 'export-counts' }, t('live.exportCounts')));
  const countsBox = h('div', { 'aria-live': 'polite' });
  const countsForm = /** @type {HTMLFormElement} */ (h('form', { class: 'filters' }, field(t('live.year'), yearInput), h('div', { class: 'buttons' }, h('button', { type: 'submit' }, t('common.refresh')), countsLink)));

  replace(main, h('h1', {}, t('live.title')), form, status, feed, h('h2', {}, t('live.counts')), countsForm, countsBox);

  /** @type {EventSource | null} */
  let source = null;
  const query = () => {
    const p = new URLSearchParams({ kind: 'access' });
    for (const [k, v] of new FormData(form)) if (v) p.set(k, String(v));
    return p;
  };
  /** @param {any} d */
  const row = (d) =>
    h(
      'tr',
      { 'data-id': d.id },
      h('td', {}, formatTime(d.time)),
      h('td', {}, decisionBadge(d.decision)),
      h('td', {}, d.official ?? '—'),
      h('td', {}, d.agency ?? '—'),
      h('td', {}, d.service ?? '—'),
      h('td', {}, h('code', {}, `${d.method ?? ''} ${d.path ?? ''}`), ' ', h('small', {}, String(d.status ?? ''))),
      h('td', {}, h('small', {}, reasonList(d.reasons))),
    );
  const connect = () => {
    source?.close();
    replace(tbody);
    const q = query();
    exportLink.href = `/api/v1/decisions.csv?${q}`;
    source = new EventSource(`/api/v1/decisions/stream?${q}`);
    source.addEventListener('open', () => replace(status, h('span', { class: 'badge ok' }, t('live.connected'))));
    source.addEventListener('error', () => replace(status, h('span', { class: 'badge warn' }, t('live.disconnected'))));
    source.addEventListener('decision', (ev) => {
      const d = JSON.parse(/** @type {MessageEvent} */ (ev).data);
      tbody.prepend(row(d));
      while (tbody.children.length > MAX_ROWS) tbody.lastElementChild?.remove();
    });
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (form.reportValidity()) connect();
  });

  const loadCounts = async () => {
    const y = Number(yearInput.value) || year;
    countsLink.href = `/api/v1/decisions/counts.csv?year=${y}`;
    try {
      const c = await get(`/api/v1/decisions/counts?year=${y}`);
      replace(
        countsBox,
        table(
          `${t('live.counts')} — ${c.from} → ${c.to}`,
          [t('live.agency'), t('live.service'), t('live.allowed'), t('live.denied'), t('live.total')],
          c.rows.map((/** @type {any} */ r) => [r.agency, r.service, String(r.allowed), String(r.denied), String(r.allowed + r.denied)]),
          'counts-table',
        ),
      );
    } catch (err) {
      replace(countsBox, errorBox(err));
    }
  };
  countsForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void loadCounts();
  });

  connect();
  await loadCounts();
  return () => source?.close();
}
