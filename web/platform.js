// Platform staff: every account (filter by kind, search by name), a new customer or partner
// account with its first admin, and certifying partners.

import { api, token, setToken } from '/assets/api.js';
import { t, when } from '/assets/i18n.js';
import { h, clear, field, select, notice, errorText, table, dialog } from '/assets/ui.js';

// While platform support is inside a customer account, the staff login waits here (this tab
// only) and the console works with the account's service user.
const STAFF_KEY = 'sb.staff_token';
const ACTING_KEY = 'sb.acting';

const ACTING_PARTNER_KEY = 'sb.acting_partner';

// The name of the account vendor support (or a partner) is in, or null.
export function actingAs() {
  return sessionStorage.getItem(STAFF_KEY) ? sessionStorage.getItem(ACTING_KEY) : null;
}

// The partner whose user acts in a customer account through a grant, or null (vendor support).
export function actingPartner() {
  return sessionStorage.getItem(STAFF_KEY) ? sessionStorage.getItem(ACTING_PARTNER_KEY) : null;
}

// Works inside another account with `actingToken` until leaveAccount(): the own login waits
// in this tab.
export function enterWith(actingToken, accountName, partnerName = null) {
  sessionStorage.setItem(STAFF_KEY, token());
  sessionStorage.setItem(ACTING_KEY, accountName);
  if (partnerName) sessionStorage.setItem(ACTING_PARTNER_KEY, partnerName);
  else sessionStorage.removeItem(ACTING_PARTNER_KEY);
  setToken(actingToken);
}

async function enterAccount(account) {
  const answer = await api('POST', `/accounts/${account.id}/support-login`, {});
  enterWith(answer.token, account.name);
}

// Ends the visit: the service user's token is logged out and the staff login is back. With
// `logout`, the staff login ends as well (the user signed out).
export async function leaveAccount({ logout = false } = {}) {
  const staff = sessionStorage.getItem(STAFF_KEY);
  sessionStorage.removeItem(STAFF_KEY);
  sessionStorage.removeItem(ACTING_KEY);
  sessionStorage.removeItem(ACTING_PARTNER_KEY);
  if (!staff) return;
  if (logout) {
    await api('POST', '/auth/logout', undefined, { token: staff }).catch(() => null);
    return;
  }
  if (token()) await api('POST', '/auth/logout').catch(() => null);
  setToken(staff);
}

// The deleted users of an account, each with a restore button (platform support).
async function deletedUsers(account, msg) {
  const users = await api('GET', `/accounts/${account.id}/deleted-users`);
  const list = h('div', { 'data-testid': 'deleted-users' });
  const render = (rows) =>
    clear(
      list,
      rows.length
        ? table(
            [t('username'), t('name'), t('email'), t('deleted_at'), ''],
            rows.map((u) =>
              h(
                'tr',
                { dataset: { username: u.username } },
                h('td', {}, u.username),
                h('td', {}, `${u.first_name} ${u.last_name}`.trim()),
                h('td', {}, u.email || ''),
                h('td', {}, when(u.deleted_at)),
                h(
                  'td',
                  {},
                  h(
                    'button',
                    {
                      type: 'button',
                      'data-action': 'restore',
                      onclick: async () => {
                        try {
                          await api('POST', `/users/${u.id}/restore`, {});
                          render(rows.filter((x) => x.id !== u.id));
                          clear(msg, notice('ok', t('user_restored', { name: u.username, account: account.name })));
                        } catch (err) {
                          clear(msg, notice('error', errorText(err)));
                        }
                      },
                    },
                    t('restore'),
                  ),
                ),
              ),
            ),
          )
        : h('p', { class: 'muted' }, t('no_deleted_users')),
    );
  render(users);
  await dialog(`${t('deleted_users')}: ${account.name}`, [list, h('p', { class: 'muted' }, t('restore_means'))], { submit: t('close') });
}

export async function accountsPage(root, ctx) {
  const isAdmin = (ctx.me.platform || []).includes('platform_admin');
  const isSupport = (ctx.me.platform || []).includes('platform_support');
  const msg = h('div', { 'data-testid': 'accounts-message' });
  const list = h('div');
  const filter = h(
    'form',
    { class: 'grid', 'data-testid': 'accounts-filter', role: 'search' },
    select(t('kind'), 'kind', [
      ['', t('kind_all')],
      ['customer', t('kind_customer')],
      ['partner', t('kind_partner')],
      ['platform', t('kind_platform')],
    ]),
    field(t('search_name'), { name: 'q', type: 'search' }),
    h('button', { type: 'submit' }, t('filter')),
  );
  async function reload() {
    const data = new FormData(filter);
    const query = new URLSearchParams();
    if (data.get('kind')) query.set('kind', data.get('kind'));
    if (data.get('q')) query.set('q', data.get('q'));
    const accounts = await api('GET', `/accounts?${query}`);
    clear(
      list,
      table(
        [t('name'), t('kind'), t('certified'), t('vendor_support'), t('created'), t('actions')],
        accounts.map((a) =>
          h(
            'tr',
            { dataset: { account: a.name } },
            h('td', {}, a.name),
            h('td', {}, t(`kind_${a.kind}`)),
            h('td', {}, a.kind === 'partner' ? (a.certified ? t('yes') : t('no')) : '–'),
            h('td', {}, a.support_access ? t('support_allowed') : t('not_allowed')),
            h('td', {}, when(a.created_at)),
            h(
              'td',
              { class: 'actions' },
              isSupport && a.kind !== 'platform'
                ? h(
                    'button',
                    {
                      type: 'button',
                      'data-action': 'enter',
                      disabled: !a.support_access,
                      title: a.support_access ? t('enter_account') : t('support_not_allowed_hint'),
                      onclick: async () => {
                        try {
                          await enterAccount(a);
                          // The hash change loads the account's console as its service user.
                          location.hash = location.hash === '#/' ? '#/users' : '#/';
                        } catch (err) {
                          clear(msg, notice('error', errorText(err)));
                        }
                      },
                    },
                    t('enter_account'),
                  )
                : null,
              isSupport
                ? h(
                    'button',
                    {
                      type: 'button',
                      'data-action': 'deleted-users',
                      onclick: () => deletedUsers(a, msg).catch((err) => clear(msg, notice('error', errorText(err)))),
                    },
                    t('deleted_users'),
                  )
                : null,
              isAdmin && a.kind === 'partner'
                ? h(
                    'button',
                    {
                      type: 'button',
                      'data-action': 'certify',
                      onclick: async () => {
                        try {
                          await api('PATCH', `/accounts/${a.id}`, { certified: !a.certified });
                          clear(msg, notice('ok', a.certified ? t('uncertified', { name: a.name }) : t('certified_now', { name: a.name })));
                          await reload();
                        } catch (err) {
                          clear(msg, notice('error', errorText(err)));
                        }
                      },
                    },
                    a.certified ? t('uncertify') : t('certify'),
                  )
                : null,
            ),
          ),
        ),
        { 'data-testid': 'accounts' },
      ),
    );
  }
  filter.addEventListener('submit', async (e) => {
    e.preventDefault();
    await reload();
  });
  const sections = [h('section', { class: 'card' }, h('h1', { tabindex: '-1' }, t('accounts')), filter, msg, list)];
  if (isAdmin) {
    const form = h(
      'form',
      { class: 'grid', 'data-testid': 'new-account' },
      field(t('name'), { name: 'name', required: true, maxlength: 200 }),
      select(t('kind'), 'kind', [
        ['customer', t('kind_customer')],
        ['partner', t('kind_partner')],
      ]),
      field(t('admin_username'), { name: 'username', required: true, maxlength: 64, autocomplete: 'off' }),
      field(t('first_name'), { name: 'first_name', required: true, maxlength: 100 }),
      field(t('last_name'), { name: 'last_name', required: true, maxlength: 100 }),
      field(t('email'), { name: 'email', type: 'email', required: true }),
      h('button', { type: 'submit', class: 'primary' }, t('create')),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const d = new FormData(form);
      try {
        await api('POST', '/accounts', {
          name: d.get('name'),
          kind: d.get('kind'),
          admin: { username: d.get('username'), first_name: d.get('first_name'), last_name: d.get('last_name'), email: d.get('email') },
        });
        clear(msg, notice('ok', t('account_created', { name: d.get('name'), email: d.get('email') })));
        form.reset();
        await reload();
      } catch (err) {
        // What was typed stays in the form.
        clear(msg, notice('error', errorText(err)));
      }
    });
    sections.push(h('section', { class: 'card' }, h('h2', {}, t('new_account')), form));
  }
  clear(root, ...sections);
  await reload();
}
