// @ts-check
import { field, h, replace, select } from './dom.js';
import { api, get } from './api.js';
import { t } from './i18n.js';
import { decisionBadge, errorBox, table } from './common.js';

/**
 * What-if: the decision the active policy would take for an official, device tier, service,
 * method and path, with the matched rule and reasons; and the decisions a draft would flip on
 * recent traffic. Built on the policy API (issue 5); until it exists the screen says so.
 */

const TIERS = ['unknown', 'registered', 'compliant', 'high-assurance'];
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

/** @param {HTMLElement} main */
export async function whatIfScreen(main) {
  const out = h('div', { 'aria-live': 'polite', 'data-testid': 'whatif-result' });
  const flips = h('div', { 'aria-live': 'polite' });
  /** @type {{ value: string, label: string }[]} */
  let services = [];
  try {
    services = (await get('/api/v1/services')).items.map((/** @type {any} */ s) => ({ value: s.id, label: `${s.id} — ${s.name}` }));
  } catch {
    services = [];
  }
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'filters', 'data-testid': 'whatif-form' },
    field(t('whatif.official'), h('input', { name: 'nationalId', required: true, inputmode: 'numeric', pattern: '\\d{12}', size: 14 })),
    select(t('whatif.tier'), TIERS.map((x) => ({ value: x, label: x })), 'registered', { name: 'deviceTier' }),
    select(t('whatif.service'), services, services[0]?.value, { name: 'routeId' }),
    select(t('whatif.method'), METHODS.map((m) => ({ value: m, label: m })), 'GET', { name: 'method' }),
    field(t('whatif.path'), h('input', { name: 'path', required: true, value: '/records', pattern: '/.*', size: 20 })),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, t('whatif.run')))));
  const replay = h('button', { type: 'button', onclick: async () => {
    try {
      const r = await api('POST', '/api/v1/policies/what-if/replay', { body: {} });
      replace(flips, r.flips.length === 0 ? h('p', {}, t('whatif.noFlips')) : table(t('whatif.flips'), [t('live.time'), t('live.official'), t('live.service'), t('live.request'), t('whatif.decision')],
        r.flips.map((/** @type {any} */ f) => [f.time ?? '', f.nationalId ?? f.official ?? '', f.routeId ?? f.service ?? '', `${f.method ?? ''} ${f.path ?? ''}`, h('span', {}, decisionBadge(f.before), ' → ', decisionBadge(f.after))])));
    } catch (err) {
      replace(flips, errorBox(err));
    }
  } }, t('whatif.replay'));
  replace(main, h('h1', {}, t('whatif.title')), form, out, h('h2', {}, t('whatif.flips')), replay, flips);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!form.reportValidity()) return;
    const d = Object.fromEntries(new FormData(form));
    try {
      const r = await api('POST', '/api/v1/policies/what-if', { body: d });
      replace(out, h('dl', {},
        h('dt', {}, t('whatif.decision')), h('dd', {}, decisionBadge(r.effect ?? r.decision)),
        h('dt', {}, t('whatif.rule')), h('dd', {}, h('code', {}, r.rule ?? '—')),
        h('dt', {}, t('whatif.reasons')), h('dd', {}, (r.reasons ?? []).join(', '))));
    } catch (err) {
      replace(out, errorBox(err));
    }
  });
}
