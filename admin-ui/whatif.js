// @ts-check
import { field, formatTime, h, replace, select } from './dom.js';
import { api, get } from './api.js';
import { currentLang, t } from './i18n.js';
import { codeLabel, decisionBadge, errorBox, reasonList, table } from './common.js';
import { nameOf } from './labels.js';

/**
 * What-if: the decision a policy version would take for an official, device tier, service,
 * method and path, with the matched rule and reasons (POST /policies/decide); and the recent
 * decisions a version would flip (POST /policies/versions/:id/what-if).
 */

const TIERS = ['unknown', 'registered', 'compliant', 'high-assurance'];
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

/** @param {HTMLElement} main */
export async function whatIfScreen(main) {
  const out = h('div', { 'aria-live': 'polite', 'data-testid': 'whatif-result' });
  const flips = h('div', { 'aria-live': 'polite', 'data-testid': 'whatif-flips' });
  /** @type {{ value: string, label: string }[]} */
  let services = [];
  try {
    services = (await get('/api/v1/services')).items.map((/** @type {any} */ s) => ({ value: s.id, label: `${s.id} — ${s.name}` }));
  } catch {
    services = [];
  }
  const list = await get('/api/v1/policies/versions');
  /** @type {{ value: string, label: string }[]} */
  const versions = [
    { value: '', label: `${t('whatif.inForce')} (${list.active ?? '—'})` },
    ...list.items
      .filter((/** @type {any} */ v) => v.state === 'draft' || v.state === 'submitted')
      .reverse()
      .map((/** @type {any} */ v) => ({ value: v.id, label: `${v.id} — ${t(/** @type {any} */ (`policies.state.${v.state}`))} — ${v.comment}` })),
  ];
  const form = /** @type {HTMLFormElement} */ (
    h(
      'form',
      { class: 'filters', 'data-testid': 'whatif-form' },
      select(t('policies.version'), versions, versions[1]?.value ?? '', { name: 'version', 'data-testid': 'whatif-version' }),
      field(t('whatif.official'), h('input', { name: 'nationalId', required: true, inputmode: 'numeric', pattern: '\\d{12}', size: 14 })),
      field(t('whatif.roles'), h('input', { name: 'roles', size: 18, pattern: '[a-z][a-z0-9_.:\\-]*(\\s*,\\s*[a-z][a-z0-9_.:\\-]*)*' }), t('whatif.rolesHint')),
      select(
        t('whatif.tier'),
        TIERS.map((x) => ({ value: x, label: nameOf('tier', x, currentLang()) })),
        'registered',
        { name: 'deviceTier' },
      ),
      select(t('whatif.service'), services, services[0]?.value, { name: 'routeId' }),
      select(
        t('whatif.method'),
        METHODS.map((m) => ({ value: m, label: m })),
        'GET',
        { name: 'method' },
      ),
      field(t('whatif.path'), h('input', { name: 'path', required: true, value: '/records', pattern: '/.*', size: 20 })),
      h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, t('whatif.run'))),
    )
  );
  const versionOf = () => String(new FormData(form).get('version') ?? '') || list.active;
  const replay = h(
    'button',
    {
      type: 'button',
      'data-testid': 'whatif-replay',
      onclick: async () => {
        try {
          const r = await api('POST', `/api/v1/policies/versions/${encodeURIComponent(versionOf())}/what-if`, { body: {} });
          replace(
            flips,
            h('p', {}, t('whatif.evaluated', { n: r.evaluated, version: r.id })),
            r.flips.length === 0
              ? h('p', {}, t('whatif.noFlips'))
              : table(
                  t('whatif.flips'),
                  [t('live.time'), t('live.official'), t('live.service'), t('live.request'), t('whatif.decision'), t('whatif.rule')],
                  r.flips.map((/** @type {any} */ f) => [
                    formatTime(f.at),
                    `${f.nationalId} · ${(f.roles ?? []).join(', ')}`,
                    f.route,
                    `${f.method} ${f.path}`,
                    h('span', {}, decisionBadge(f.before.effect), ' → ', decisionBadge(f.after.effect), ' ', h('small', {}, codeLabel('reason', f.after.reason))),
                    h('code', {}, f.after.rule ?? f.before.rule ?? '—'),
                  ]),
                  'flips-table',
                ),
          );
        } catch (err) {
          replace(flips, errorBox(err));
        }
      },
    },
    t('whatif.replay'),
  );
  replace(main, h('h1', {}, t('whatif.title')), h('p', {}, t('whatif.intro')), form, out, h('h2', {}, t('whatif.flips')), replay, flips);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!form.reportValidity()) return;
    const d = new FormData(form);
    const roles = String(d.get('roles') ?? '')
      .split(',')
      .map((r) => r.trim())
      .filter(Boolean);
    /** @type {Record<string, unknown>} */
    const body = { nationalId: d.get('nationalId'), deviceTier: d.get('deviceTier'), routeId: d.get('routeId'), method: d.get('method'), path: d.get('path') };
    if (roles.length) body.roles = roles;
    if (d.get('version')) body.version = d.get('version');
    try {
      const r = await api('POST', '/api/v1/policies/decide', { body });
      replace(
        out,
        h(
          'dl',
          {},
          h('dt', {}, t('policies.version')),
          h('dd', {}, h('code', {}, r.version)),
          h('dt', {}, t('whatif.official')),
          h('dd', {}, `${r.principal.nationalId} · ${r.principal.agency ?? '—'} · ${r.principal.roles.join(', ') || '—'}`),
          h('dt', {}, t('whatif.decision')),
          h('dd', { 'data-testid': 'whatif-effect' }, decisionBadge(r.effect)),
          h('dt', {}, t('whatif.rule')),
          h('dd', {}, h('code', { 'data-testid': 'whatif-rule' }, r.rule ?? '—')),
          h('dt', {}, t('whatif.reasons')),
          h('dd', { 'data-testid': 'whatif-reasons' }, reasonList(r.reasons), r.condition ? h('span', {}, ', ', h('code', {}, r.condition)) : null),
        ),
      );
    } catch (err) {
      replace(out, errorBox(err));
    }
  });
}
