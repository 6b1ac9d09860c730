// A partner's customers: ask a customer for access by its customer number, follow the requests
// and grants per customer, assign the partner's own devices to a customer and take them back,
// and enter a customer account through a grant with a support login.

import { api } from '/assets/api.js';
import { t, when } from '/assets/i18n.js';
import { h, clear, field, select, checkbox, notice, errorText, table, dialog } from '/assets/ui.js';
import { enterWith } from '/assets/platform.js';

function requestState(r) {
  return h('span', { class: `badge state-${r.state}`, 'data-testid': 'request-state' }, t(`request_${r.state}`));
}

// The devices the partner put into one customer account under `grant`, and its own to add.
async function devicesBox(ctx, grant, msg) {
  const box = h('div', { class: 'grant-devices', 'data-testid': 'grant-devices' });
  async function reload() {
    const [assigned, own] = await Promise.all([api('GET', `/access-grants/${grant.id}/devices`), api('GET', `/accounts/${ctx.accountId}/devices`).catch(() => [])]);
    const form = h(
      'form',
      { class: 'inline', 'data-testid': 'assign-form' },
      own.length ? select(t('own_device'), 'device_id', own.map((d) => [d.id, `${d.name} (${d.serial})`])) : h('p', { class: 'muted' }, t('no_own_devices')),
      own.length ? h('button', { type: 'submit', class: 'primary' }, t('assign_device')) : null,
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        await api('POST', `/accounts/${grant.account_id}/devices/assign`, { device_id: new FormData(form).get('device_id') });
        clear(msg, notice('ok', t('device_assigned', { customer: grant.customer.name })));
        await reload();
      } catch (err) {
        clear(msg, notice('error', errorText(err)));
      }
    });
    clear(
      box,
      assigned.length
        ? table(
            [t('name'), t('serial'), t('platform'), ''],
            assigned.map((d) => [
              d.name,
              d.serial,
              d.platform,
              h(
                'button',
                {
                  type: 'button',
                  'data-action': 'unassign',
                  onclick: async () => {
                    const sure = await dialog(t('take_back'), h('p', {}, t('confirm_take_back', { device: d.name, customer: grant.customer.name })), { submit: t('take_back') });
                    if (!sure) return;
                    try {
                      await api('POST', `/accounts/${grant.account_id}/devices/${d.id}/unassign`, {});
                      await reload();
                    } catch (err) {
                      clear(msg, notice('error', errorText(err)));
                    }
                  },
                },
                t('take_back'),
              ),
            ]),
          )
        : h('p', { class: 'muted' }, t('no_assigned_devices')),
      form,
    );
  }
  await reload();
  return box;
}

export async function partnerPage(root, ctx, start) {
  const msg = h('div', { 'data-testid': 'partner-message' });
  const lists = h('div');
  const canDevices = (ctx.me.rights.areas || []).includes('devices');
  const form = h(
    'form',
    { class: 'grid', 'data-testid': 'ask-access' },
    field(t('customer_number'), { name: 'customer_number', required: true, inputmode: 'numeric', pattern: '[0-9 \\-]{9,11}', placeholder: '123 456 789' }),
    field(t('message'), { name: 'message', maxlength: 500 }),
    h('div', { class: 'wide' }, checkbox(t('ask_support_login'), 'support_user', false), h('p', { class: 'muted small' }, t('support_login_means'))),
    h('button', { type: 'submit', class: 'primary' }, t('ask_access')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const body = { customer_number: data.get('customer_number'), support_user: data.has('support_user') };
    if (data.get('message')) body.message = data.get('message');
    try {
      const r = await api('POST', '/access-requests', body);
      form.reset();
      clear(msg, notice('ok', t('access_asked', { customer: r.customer.name })));
      await reload();
    } catch (err) {
      clear(msg, notice('error', errorText(err)));
    }
  });

  async function reload() {
    const [requests, grants] = await Promise.all([api('GET', '/access-requests'), api('GET', '/access-grants')]);
    const grantRows = [];
    for (const g of grants) {
      const enter = g.support_user
        ? h(
            'button',
            {
              type: 'button',
              class: 'primary',
              'data-action': 'enter',
              onclick: async () => {
                try {
                  const answer = await api('POST', `/access-grants/${g.id}/login`, {});
                  enterWith(answer.token, g.customer.name, ctx.me.account.name);
                  location.hash = '#/sessions';
                  start();
                } catch (err) {
                  clear(msg, notice('error', errorText(err)));
                }
              },
            },
            t('enter_customer_account'),
          )
        : h('span', { class: 'muted' }, t('no_support_login'));
      const row = h(
        'article',
        { class: 'grant card', dataset: { grant: g.id, customer: g.customer.name } },
        h('h3', {}, g.customer.name),
        h('p', {}, `${t('granted_at')}: ${when(g.granted_at)} · ${t('expires')}: ${g.expires_at ? when(g.expires_at) : t('never')} · ${t('support_user')}: ${g.support_user ? t('yes') : t('no')}`),
        g.groups ? h('p', { class: 'muted small' }, t('grant_narrowed')) : null,
        g.renewal_requested_at ? h('p', { class: 'muted small', 'data-testid': 'renewal-asked' }, t('renewal_asked', { when: when(g.renewal_requested_at) })) : null,
        h(
          'div',
          { class: 'buttons' },
          enter,
          h(
            'button',
            {
              type: 'button',
              'data-action': 'renew',
              onclick: async () => {
                const data = await dialog(t('ask_renewal'), [h('p', {}, t('ask_renewal_hint', { customer: g.customer.name })), field(t('message'), { name: 'message', maxlength: 500 })], { submit: t('ask_renewal') });
                if (!data) return;
                try {
                  await api('POST', `/access-grants/${g.id}/renewal`, data.get('message') ? { message: data.get('message') } : {});
                  clear(msg, notice('ok', t('renewal_sent', { customer: g.customer.name })));
                  await reload();
                } catch (err) {
                  clear(msg, notice('error', errorText(err)));
                }
              },
            },
            t('ask_renewal'),
          ),
        ),
        canDevices ? await devicesBox(ctx, g, msg) : null,
      );
      grantRows.push(row);
    }
    clear(
      lists,
      h('section', { class: 'card' }, h('h2', {}, t('customers_with_access')), grantRows.length ? grantRows : h('p', { class: 'muted' }, t('no_grants_yet'))),
      h(
        'section',
        { class: 'card' },
        h('h2', {}, t('my_requests')),
        requests.length
          ? table(
              [t('customer'), t('requested_by'), t('requested_at'), t('support_user'), t('state')],
              requests.map((r) => [r.customer.name, r.requested_by.name, when(r.requested_at), r.support_user ? t('yes') : t('no'), requestState(r)]),
              { 'data-testid': 'my-requests' },
            )
          : h('p', { class: 'muted' }, t('no_requests')),
      ),
    );
  }
  clear(root, h('section', { class: 'card' }, h('h1', {}, t('menu_partner')), h('p', { class: 'muted' }, t('partner_intro')), form, msg), lists);
  await reload();
}
