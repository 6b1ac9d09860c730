// The self-service portal: the caller's own devices and the actions its platform and the
// caller's role allow, each with its own progress line, a confirmation, the password for a
// wipe, lost mode with a message and a phone number, the location on a map, and the
// device's command history.

import { api } from '/assets/api.js';
import { t, when } from '/assets/i18n.js';
import { h, clear, field, notice, errorText } from '/assets/ui.js';
import { dialogUntilDone } from '/assets/admin.js';

// The contract's table: which platform supports which action.
const SUPPORT = {
  lost_mode_on: ['ios', 'android'],
  lost_mode_off: ['ios', 'android'],
  locate: ['ios', 'android', 'windows'],
  wipe: ['ios', 'android', 'windows', 'macos'],
  lock: ['ios', 'android', 'macos'],
  reset_passcode: ['ios', 'android'],
};

export function actionsFor(platform) {
  return Object.keys(SUPPORT).filter((a) => SUPPORT[a].includes(platform));
}

// A map link for a location (OpenStreetMap; no key, no tracking script on our page).
function mapUrl(loc) {
  const lat = loc.lat.toFixed(6);
  const lon = loc.lon.toFixed(6);
  return `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=17/${lat}/${lon}`;
}

function locationView(loc) {
  if (!loc) return t('nothing');
  return h(
    'span',
    {},
    `${loc.lat.toFixed(5)}, ${loc.lon.toFixed(5)} `,
    h('span', { class: 'muted' }, t('location_accuracy', { m: Math.round(loc.accuracy_m), when: when(loc.at) })),
    ' ',
    h('a', { href: mapUrl(loc), target: '_blank', rel: 'noopener noreferrer', 'data-testid': 'map-link' }, t('open_map')),
  );
}

// The lines of commands under way and done, per device: kept across the redraws of the
// device's facts, one line per command (never another command's).
const lines = new Map();

function lineBox(deviceId) {
  if (!lines.has(deviceId)) lines.set(deviceId, h('ul', { class: 'progress-list', role: 'status', 'aria-live': 'polite', 'data-testid': 'command-lines' }));
  return lines.get(deviceId);
}

function doneText(view) {
  if (view.status === 'failed') return t('status_failed');
  if (view.status !== 'done') return t(`status_${view.status}`);
  return t(`done_${view.action}`);
}

async function follow(deviceId, commandId, line, refresh) {
  for (let i = 0; i < 240; i += 1) {
    let view;
    try {
      view = await api('GET', `/me/devices/${deviceId}/actions/${commandId}`);
    } catch (err) {
      clear(line, notice('error', errorText(err)));
      return;
    }
    line.dataset.status = view.status;
    clear(line, h('strong', {}, `${t(`act_${view.action}`)}: `), doneText(view));
    if (view.status === 'done' || view.status === 'failed') {
      await refresh();
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// Asks what each action needs (a confirmation; lost mode's message and phone; the password
// for a wipe) and sends it; a refusal stays in the dialog with what was typed.
async function runAction(d, action, refresh) {
  const label = t(`act_${action}`);
  // One key per decision: a double click, or a retry after a lost answer, is one command.
  const key = crypto.randomUUID();
  const build = (v) => {
    if (action === 'wipe' || action === 'reset_passcode') {
      const question = action === 'wipe' ? t('confirm_wipe', { device: d.name }) : t('confirm_reset_passcode', { device: d.name });
      return [h('p', {}, question), field(t('password'), { name: 'password', type: 'password', required: true, autocomplete: 'current-password' })];
    }
    if (action === 'lost_mode_on') {
      return [
        h('p', {}, t('lost_mode_hint', { device: d.name })),
        field(t('lost_message'), { name: 'message', tag: 'textarea', rows: 3, maxlength: 200, value: v ? v.get('message') : t('lost_message_default') }),
        field(t('lost_phone'), { name: 'phone', type: 'tel', value: v ? v.get('phone') : '' }),
      ];
    }
    return h('p', {}, t('confirm_action', { action: label, device: d.name }));
  };
  const queued = await dialogUntilDone(
    label,
    build,
    async (data) => {
      const req = { action };
      if (action === 'wipe' || action === 'reset_passcode') req.password = data.get('password');
      if (action === 'lost_mode_on') {
        if (data.get('message')) req.message = data.get('message');
        if (data.get('phone')) req.phone = data.get('phone');
      }
      try {
        return await api('POST', `/me/devices/${d.id}/actions`, req, { headers: { 'Idempotency-Key': key } });
      } catch (err) {
        // A wipe or reset sends the password always: refused means it was wrong.
        if (err.code === 'reauth_required') err.code = 'wrong_password';
        throw err;
      }
    },
    { submit: label, danger: action === 'wipe' },
  );
  if (!queued) return;
  const line = h('li', { dataset: { action, command: queued.command_id, status: queued.status } }, h('strong', {}, `${label}: `), t(`status_${queued.status}`));
  lineBox(d.id).prepend(line);
  follow(d.id, queued.command_id, line, refresh);
}

async function history(d, box) {
  try {
    const list = await api('GET', `/me/devices/${d.id}/actions`);
    clear(
      box,
      list.length
        ? h(
            'ol',
            { class: 'history', 'data-testid': 'command-history' },
            list.map((c) =>
              h(
                'li',
                { dataset: { status: c.status } },
                h('strong', {}, t(`act_${c.action}`)),
                ` · ${t(`status_${c.status}`)} · ${when(c.created_at)}`,
                c.params && c.params.message ? h('div', { class: 'muted small' }, `“${c.params.message}”${c.params.phone ? ` · ${c.params.phone}` : ''}`) : null,
              ),
            ),
          )
        : h('p', { class: 'muted' }, t('no_entries')),
    );
  } catch (err) {
    clear(box, notice('error', errorText(err)));
  }
}

function card(d, full, refresh) {
  const actions = actionsFor(d.platform).filter((a) => (a === 'lost_mode_on' ? !d.lost_mode : a === 'lost_mode_off' ? d.lost_mode : true));
  const button = (action) => h('button', { type: 'button', class: action === 'wipe' ? 'danger' : '', 'data-action': action, onclick: () => runAction(d, action, refresh) }, t(`act_${action}`));
  const everyday = full ? actions.filter((a) => a !== 'wipe').map(button) : [];
  const wipe = full && actions.includes('wipe') ? h('div', { class: 'buttons danger-zone' }, button('wipe')) : null;
  const historyBox = h('div');
  const details = h('details', { class: 'history-box' }, h('summary', {}, t('command_history')), historyBox);
  details.addEventListener('toggle', () => {
    if (details.open) history(d, historyBox);
  });
  return h(
    'article',
    { class: 'card device', dataset: { device: d.id, serial: d.serial } },
    h('h2', {}, d.name, ' ', h('span', { class: `badge ${d.online ? 'customer' : ''}`, 'data-testid': 'online' }, d.online ? t('online') : t('offline'))),
    h(
      'dl',
      {},
      h('dt', {}, t('battery')),
      h('dd', { 'data-field': 'battery' }, d.battery == null ? t('nothing') : `${d.battery} %`),
      h('dt', {}, t('serial')),
      h('dd', {}, d.serial),
      h('dt', {}, t('model')),
      h('dd', {}, `${d.model} (${d.platform} ${d.os_version})`.trim()),
      h('dt', {}, t('last_seen')),
      h('dd', {}, when(d.last_seen_at)),
      h('dt', {}, t('location')),
      h('dd', { 'data-field': 'location' }, locationView(d.location)),
      h('dt', {}, t('lost_mode')),
      h('dd', { 'data-field': 'lost_mode' }, d.lost_mode ? t('yes') : t('no')),
    ),
    h('div', { class: 'buttons' }, everyday),
    wipe,
    lineBox(d.id),
    details,
  );
}

export async function myDevicesPage(root, ctx) {
  const full = (ctx.me.rights.roles || []).includes('self-service-full');
  const list = h('div', { class: 'devices', 'data-testid': 'my-devices' });
  async function reload() {
    const devices = await api('GET', '/me/devices');
    clear(list, devices.length ? devices.map((d) => card(d, full, reload)) : h('p', { class: 'muted' }, t('no_devices')));
  }
  clear(root, h('h1', {}, t('my_devices')), full ? null : notice('ok', t('read_only')), list);
  await reload();
}

