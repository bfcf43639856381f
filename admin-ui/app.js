// @ts-check
import { h, replace } from './dom.js';
import { whoami } from './api.js';
import { currentLang, setLang, t } from './i18n.js';
import { errorBox } from './common.js';
import { servicesScreen } from './services.js';
import { policiesScreen } from './policies.js';
import { whatIfScreen } from './whatif.js';
import { liveScreen } from './live.js';
import { devicesScreen } from './devices.js';
import { officialsScreen } from './officials.js';
import { accessBadgeCount, accessScreen } from './access.js';

/**
 * The admin UI shell: header, navigation, and one screen at a time chosen by the URL hash
 * (#/services, …). A screen is a function that fills <main> and may return a cleanup.
 */

/** @typedef {(main: HTMLElement) => Promise<void | (() => void)>} Screen */

/** @type {{ id: string, key: import('./i18n.js').Key, screen: Screen }[]} */
const SCREENS = [
  { id: 'services', key: 'nav.services', screen: servicesScreen },
  { id: 'policies', key: 'nav.policies', screen: policiesScreen },
  { id: 'whatif', key: 'nav.whatif', screen: whatIfScreen },
  { id: 'live', key: 'nav.live', screen: liveScreen },
  { id: 'devices', key: 'nav.devices', screen: devicesScreen },
  { id: 'officials', key: 'nav.officials', screen: officialsScreen },
  { id: 'access', key: 'nav.access', screen: accessScreen },
];

/** @type {(() => void) | void} */
let cleanup;

function currentId() {
  const id = location.hash.replace(/^#\/?/, '');
  return SCREENS.some((s) => s.id === id) ? id : 'services';
}

function renderChrome() {
  document.documentElement.lang = currentLang();
  document.title = t('app.title');
  /** @type {[string, import('./i18n.js').Key][]} */
  const texts = [
    ['app-title', 'app.title'],
    ['app-subtitle', 'app.subtitle'],
    ['skip', 'app.skip'],
    ['synthetic', 'app.synthetic'],
  ];
  for (const [id, key] of texts) {
    const el = document.getElementById(id);
    if (el) el.textContent = t(key);
  }
  const signOut = document.getElementById('sign-out');
  if (signOut) signOut.textContent = t('app.signOut');
  const toggle = /** @type {HTMLButtonElement} */ (document.getElementById('lang-toggle'));
  toggle.textContent = t('app.lang');
  toggle.setAttribute('aria-label', t('app.lang.label'));
  toggle.lang = currentLang() === 'vi' ? 'en' : 'vi';
  const nav = /** @type {HTMLElement} */ (document.getElementById('nav'));
  nav.setAttribute('aria-label', t('nav.label'));
  const active = currentId();
  replace(
    nav,
    h(
      'ul',
      {},
      SCREENS.map((s) => h('li', {}, h('a', { href: `#/${s.id}`, 'aria-current': s.id === active ? 'page' : null, 'data-testid': `nav-${s.id}` }, t(s.key)))),
    ),
  );
  // Pending access requests and unreviewed break-glass uses: a number beside the screen's link.
  accessBadgeCount().then(
    (n) => {
      const link = nav.querySelector('[data-testid="nav-access"]');
      if (link && n > 0) link.append(' ', h('span', { class: 'badge warn', 'data-testid': 'access-badge', 'aria-label': `${n} ${t('access.badge')}` }, String(n)));
    },
    () => undefined,
  );
}

async function renderScreen({ focus = true } = {}) {
  if (typeof cleanup === 'function') cleanup();
  cleanup = undefined;
  renderChrome();
  const main = /** @type {HTMLElement} */ (document.getElementById('main'));
  const entry = SCREENS.find((s) => s.id === currentId()) ?? SCREENS[0];
  replace(main, h('p', {}, t('common.loading')));
  try {
    const fresh = /** @type {HTMLElement} */ (main.cloneNode(false));
    cleanup = await entry.screen(fresh);
    main.replaceWith(fresh);
    // Screen readers hear the new screen's heading; keyboard users continue from it.
    if (focus) fresh.focus();
  } catch (err) {
    replace(main, errorBox(err));
  }
}

async function showWho() {
  const who = /** @type {HTMLElement} */ (document.getElementById('who'));
  try {
    const me = await whoami();
    replace(who, `${t('app.signedInAs')} ${me.nationalId}${me.agency ? ` · ${me.agency}` : ''}`);
  } catch (err) {
    replace(who, '');
    replace(/** @type {HTMLElement} */ (document.getElementById('main')), errorBox(err));
    throw err;
  }
}

document.getElementById('lang-toggle')?.addEventListener('click', () => {
  setLang(currentLang() === 'vi' ? 'en' : 'vi');
  void showWho().then(
    () => renderScreen({ focus: false }),
    () => undefined,
  );
});
window.addEventListener('hashchange', () => void renderScreen());
renderChrome();
showWho().then(
  () => renderScreen({ focus: false }),
  () => undefined,
);
