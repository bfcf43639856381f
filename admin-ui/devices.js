// @ts-check
import { field, formatTime, h, replace, select } from './dom.js';
import { api, get, whoami } from './api.js';
import { currentLang, t } from './i18n.js';
import { codeLabel, errorBox, openDialog, table } from './common.js';
import { nameOf } from './labels.js';

/**
 * Devices (approve, quarantine, retire), sessions (revoke) and locks (set, lift), each change
 * with a reason. Each part loads on its own, so a gateway without one of the APIs still shows
 * the others, and says which one is missing.
 */

/**
 * A browser's name and major version from its User-Agent, enough to tell two sessions apart;
 * the whole string is on hover.
 * @param {string} ua
 */
export function browserName(ua) {
  const m = /(Edg|OPR|Firefox|Chrome|Chromium|Safari)\/(\d+)/.exec(ua);
  const os = /Windows|Android|iPhone|Mac OS X|Linux/.exec(ua)?.[0] ?? '';
  return m ? `${m[1] === 'Edg' ? 'Edge' : m[1]} ${m[2]}${os ? ` · ${os}` : ''}` : ua.slice(0, 40);
}

/** What gateway/lock-registry.ts locks. */
const LOCK_KINDS = ['user', 'device', 'session', 'address'];

/** @param {any} action */
const who = (action) => (action ? `${action.by ?? action.actor ?? '—'} · ${formatTime(action.at)}${action.reason ? ` · ${action.reason}` : ''}` : '—');

/**
 * @param {string} title
 * @param {(data: FormData) => Promise<void>} run
 * @param {HTMLElement[]} [extra]
 */
function withReason(title, run, extra = []) {
  openDialog(title, () => [...extra, field(t('common.reason'), h('textarea', { name: 'reason', rows: 2, required: true, maxlength: 1000 }), t('services.reasonHint'))], run);
}

/** @param {HTMLElement} main */
export async function devicesScreen(main) {
  const me = await whoami().then(
    (w) => w.nationalId,
    () => '',
  );
  const devicesBox = h('section', { 'aria-labelledby': 'h-devices' });
  const sessionsBox = h('section', { 'aria-labelledby': 'h-sessions' });
  const locksBox = h('section', { 'aria-labelledby': 'h-locks' });
  replace(main, h('h1', {}, t('devices.title')), h('h2', { id: 'h-devices' }, t('devices.devices')), devicesBox, h('h2', { id: 'h-sessions' }, t('devices.sessions')), sessionsBox, h('h2', { id: 'h-locks' }, t('devices.locks')), locksBox);

  async function loadDevices() {
    try {
      const { devices } = await get('/api/v1/devices');
      replace(
        devicesBox,
        table(
          t('devices.devices'),
          [t('services.name'), t('devices.owner'), t('common.status'), t('common.by'), t('common.actions')],
          devices.map((/** @type {any} */ d) => [
            h('div', {}, d.name, h('div', {}, h('small', { class: 'mono' }, d.id.slice(0, 16) + '…'))),
            d.ownerNationalId,
            codeLabel('deviceStatus', d.status, `badge ${d.status === 'approved' ? 'ok' : d.status === 'pending' ? 'warn' : 'bad'}`),
            h('small', {}, who(d.quarantined ?? d.retired ?? d.approved ?? d.enrolled)),
            h(
              'div',
              { class: 'buttons' },
              // Four-eyes: an admin's own device is approved by another admin.
              d.status !== 'approved' && d.status !== 'retired' && d.ownerNationalId !== me
                ? h(
                    'button',
                    {
                      type: 'button',
                      onclick: () =>
                        withReason(
                          `${t('devices.approve')}: ${d.name}`,
                          async (f) => {
                            await api('POST', `/api/v1/devices/${encodeURIComponent(d.id)}/approve`, { body: { reason: f.get('reason'), hardwareKey: f.get('hardwareKey') === 'on' } });
                            await loadDevices();
                          },
                          [field('Khóa phần cứng / hardware key (TPM)', h('input', { type: 'checkbox', name: 'hardwareKey' }))],
                        ),
                    },
                    t('devices.approve'),
                  )
                : null,
              d.status !== 'quarantined' && d.status !== 'retired'
                ? h(
                    'button',
                    {
                      type: 'button',
                      class: 'danger',
                      onclick: () =>
                        withReason(`${t('devices.quarantine')}: ${d.name}`, async (f) => {
                          await api('POST', `/api/v1/devices/${encodeURIComponent(d.id)}/quarantine`, { body: { reason: f.get('reason') } });
                          await loadDevices();
                        }),
                    },
                    t('devices.quarantine'),
                  )
                : null,
              d.status !== 'retired'
                ? h(
                    'button',
                    {
                      type: 'button',
                      class: 'danger',
                      onclick: () =>
                        withReason(`${t('devices.retire')}: ${d.name}`, async (f) => {
                          await api('POST', `/api/v1/devices/${encodeURIComponent(d.id)}/retire`, { body: { reason: f.get('reason') } });
                          await loadDevices();
                        }),
                    },
                    t('devices.retire'),
                  )
                : null,
            ),
          ]),
          'devices-table',
        ),
      );
    } catch (err) {
      replace(devicesBox, errorBox(err));
    }
  }

  /** Who is signed in now, from where, since when; each can be ended (with a reason, audited). */
  async function activeSessions() {
    try {
      const { items } = await get('/api/v1/sessions');
      return table(
        t('sessions.active'),
        [t('live.official'), t('sessions.since'), t('sessions.lastSeen'), t('sessions.from'), t('common.actions')],
        items.map((/** @type {any} */ s) => [
          h('div', {}, h('code', {}, s.nationalId), s.current ? h('div', {}, h('small', { class: 'badge ok' }, t('sessions.current'))) : null),
          formatTime(s.createdAt),
          formatTime(s.lastSeenAt),
          h('div', {}, s.client?.address ?? '—', s.client?.userAgent ? h('div', {}, h('small', { title: s.client.userAgent }, browserName(s.client.userAgent))) : null),
          h(
            'button',
            {
              type: 'button',
              class: 'danger',
              'data-testid': `end-session-${s.nationalId}`,
              onclick: () =>
                withReason(`${t('sessions.end')}: ${s.nationalId}`, async (f) => {
                  await api('DELETE', `/api/v1/sessions/${encodeURIComponent(s.handle)}`, { body: { reason: f.get('reason') } });
                  // Ending one's own session is signing out: the next call would need a new sign-in.
                  if (s.current) location.assign('/');
                  else await loadSessions();
                }),
            },
            t('sessions.end'),
          ),
        ]),
        'sessions-table',
      );
    } catch (err) {
      return errorBox(err);
    }
  }

  async function loadSessions() {
    const form = /** @type {HTMLFormElement} */ (
      h('form', { class: 'filters' }, field(t('officials.nationalId'), h('input', { name: 'nationalId', required: true, inputmode: 'numeric', pattern: '\\d{12}', size: 14 })), h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'danger' }, t('devices.revoke'))))
    );
    const out = h('div', { 'aria-live': 'polite' });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (!form.reportValidity()) return;
      const nationalId = String(new FormData(form).get('nationalId'));
      // The revocation says why (audited); a refusal shows in the dialog, the count below the form.
      withReason(`${t('devices.revoke')}: ${nationalId}`, async (f) => {
        const r = await api('DELETE', `/api/v1/officials/${nationalId}/sessions`, { body: { reason: f.get('reason') } });
        replace(out, h('p', { class: 'notice ok', role: 'status', 'data-testid': 'sessions-ended' }, `${t('devices.sessionsEnded')}: ${r.sessionsEnded}`));
      });
    });
    replace(sessionsBox, await activeSessions(), h('h3', {}, t('sessions.endAll')), form, out);
  }

  async function loadLocks() {
    try {
      const body = await get('/api/v1/locks');
      const locks = body.items ?? [];
      const setForm = /** @type {HTMLFormElement} */ (
        h(
          'form',
          { class: 'filters' },
          select(
            t('devices.lockKind'),
            LOCK_KINDS.map((k) => ({ value: k, label: nameOf('lockKind', k, currentLang()) })),
            LOCK_KINDS[0],
            { name: 'kind' },
          ),
          field(t('devices.lockSubject'), h('input', { name: 'value', required: true, size: 20, maxlength: 200 })),
          field(t('devices.lockHours'), h('input', { name: 'hours', type: 'number', required: true, min: 1, max: 720, value: 8, size: 5 })),
          h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'danger' }, t('devices.setLock'))),
        )
      );
      setForm.addEventListener('submit', (ev) => {
        ev.preventDefault();
        if (!setForm.reportValidity()) return;
        const f0 = new FormData(setForm);
        withReason(`${t('devices.setLock')}: ${f0.get('kind')} ${f0.get('value')}`, async (f) => {
          await api('POST', '/api/v1/locks', { body: { kind: f0.get('kind'), value: f0.get('value'), reason: f.get('reason'), expiresInSeconds: Number(f0.get('hours')) * 3600 } });
          await loadLocks();
        });
      });
      replace(
        locksBox,
        setForm,
        table(
          t('devices.locks'),
          [t('devices.lockKind'), t('devices.lockSubject'), t('common.reason'), t('common.by'), t('devices.expires'), t('common.actions')],
          locks.map((/** @type {any} */ l) => [
            codeLabel('lockKind', l.kind),
            h('code', {}, l.value),
            l.reason ?? '—',
            `${l.lockedBy ?? '—'} · ${formatTime(l.lockedAt)}`,
            formatTime(l.expiresAt),
            // A lock on oneself is lifted by someone else (four-eyes).
            l.kind === 'user' && l.value === me
              ? h('small', {}, t('devices.ownLock'))
              : h(
                  'button',
                  {
                    type: 'button',
                    onclick: () =>
                      withReason(`${t('devices.lift')}: ${l.kind} ${l.value}`, async (f) => {
                        await api('DELETE', `/api/v1/locks/${encodeURIComponent(l.kind)}/${encodeURIComponent(l.value)}`, { body: { reason: f.get('reason') } });
                        await loadLocks();
                      }),
                  },
                  t('devices.lift'),
                ),
          ]),
          'locks-table',
        ),
      );
    } catch (err) {
      replace(locksBox, errorBox(err));
    }
  }

  await Promise.all([loadDevices(), loadSessions(), loadLocks()]);
}
