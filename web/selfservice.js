// The self-service portal: the caller's own devices and the actions its platform and the
// caller's role allow, with a confirmation, the password for a wipe, and the command's progress.

import { api } from '/assets/api.js';
import { t, when } from '/assets/i18n.js';
import { h, clear, field, notice, errorText, dialog } from '/assets/ui.js';

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

function locationText(loc) {
  if (!loc) return t('nothing');
  return `${loc.lat.toFixed(5)}, ${loc.lon.toFixed(5)} (±${Math.round(loc.accuracy_m)} m, ${when(loc.at)})`;
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
    clear(line, `${t(`act_${view.action}`)}: ${t(`status_${view.status}`)}`);
    if (view.status === 'done' || view.status === 'failed') {
      await refresh();
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function card(d, full, refresh) {
  const progress = h('p', { class: 'progress', role: 'status', 'data-testid': 'command-status' });
  const msg = h('div');
  const buttons = full
    ? actionsFor(d.platform).map((action) =>
        h(
          'button',
          {
            type: 'button',
            class: action === 'wipe' ? 'danger' : '',
            'data-action': action,
            onclick: async () => {
              const label = t(`act_${action}`);
              const body =
                action === 'wipe'
                  ? [h('p', {}, t('confirm_wipe', { device: d.name })), field(t('password'), { name: 'password', type: 'password', required: true, autocomplete: 'current-password' })]
                  : h('p', {}, t('confirm_action', { action: label, device: d.name }));
              const data = await dialog(label, body, { submit: label, danger: action === 'wipe' });
              if (!data) return;
              const req = { action };
              if (action === 'wipe') req.password = data.get('password');
              try {
                const queued = await api('POST', `/me/devices/${d.id}/actions`, req);
                clear(msg);
                progress.dataset.status = queued.status;
                clear(progress, `${label}: ${t(`status_${queued.status}`)}`);
                follow(d.id, queued.command_id, progress, refresh);
              } catch (err) {
                clear(msg, notice('error', errorText(err)));
              }
            },
          },
          t(`act_${action}`),
        ),
      )
    : [];
  return h(
    'article',
    { class: 'card device', dataset: { device: d.id, serial: d.serial } },
    h('h2', {}, d.name),
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
      h('dd', { 'data-field': 'location' }, locationText(d.location)),
      h('dt', {}, t('lost_mode')),
      h('dd', { 'data-field': 'lost_mode' }, d.lost_mode ? t('yes') : t('no')),
    ),
    h('div', { class: 'buttons' }, buttons),
    progress,
    msg,
  );
}

export async function myDevicesPage(root, ctx) {
  const full = (ctx.me.rights.roles || []).includes('self-service-full');
  const list = h('div', { class: 'devices', 'data-testid': 'my-devices' });
  async function reload() {
    const devices = await api('GET', '/me/devices');
    // Keep the progress lines of commands under way: only the facts are redrawn.
    const previous = new Map([...list.querySelectorAll('[data-device]')].map((el) => [el.dataset.device, el.querySelector('.progress')]));
    clear(
      list,
      devices.length
        ? devices.map((d) => {
            const el = card(d, full, reload);
            const old = previous.get(d.id);
            if (old && old.textContent) el.querySelector('.progress').replaceWith(old);
            return el;
          })
        : h('p', { class: 'muted' }, t('no_devices')),
    );
  }
  clear(root, h('h1', {}, t('my_devices')), full ? null : notice('ok', t('read_only')), list);
  await reload();
}
