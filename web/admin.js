// Account admins: users (rights, login options, delete), security policies, partner access,
// devices with the CSV import, and the audit log.

import { api } from '/assets/api.js';
import { t, when } from '/assets/i18n.js';
import { h, clear, field, select, checkbox, notice, errorText, table, dialog, iconButton } from '/assets/ui.js';

const AREAS = ['users', 'devices', 'sessions', 'policies', 'access', 'settings', 'reports'];
const PERMISSIONS = ['chat', 'view', 'control', 'files'];

// Runs `action`; on failure shows the error in `msg` and returns undefined.
async function attempt(msg, action) {
  try {
    const value = await action();
    clear(msg);
    return value ?? true;
  } catch (err) {
    clear(msg, notice('error', errorText(err)));
    return undefined;
  }
}

function formValues(form) {
  const data = new FormData(form);
  const out = {};
  for (const [k, v] of data.entries()) if (v !== '') out[k] = v;
  return out;
}

// ---- users -------------------------------------------------------------------------------

async function editRights(ctx, user, msg, reload) {
  const detail = await api('GET', `/users/${user.id}`);
  const rights = detail.rights;
  const roles = await api('GET', `/accounts/${ctx.accountId}/roles`).catch(() => []);
  const groups = await api('GET', `/accounts/${ctx.accountId}/groups`).catch(() => []);
  const allGroups = rights.groups === 'all';
  const chosen = new Set(Array.isArray(rights.groups) ? rights.groups : []);
  const body = [
    h('fieldset', {}, h('legend', {}, t('areas')), AREAS.map((a) => checkbox(t(`area_${a}`), `area:${a}`, rights.areas.includes(a)))),
    h('fieldset', {}, h('legend', {}, t('objects')), ['create', 'edit', 'delete'].map((o) => checkbox(t(`obj_${o}`), `obj:${o}`, rights.objects[o]))),
    h(
      'fieldset',
      {},
      h('legend', {}, t('groups')),
      checkbox(t('all_groups'), 'groups:all', allGroups),
      groups.map((g) => checkbox(g.name, `group:${g.id}`, chosen.has(g.id))),
    ),
    checkbox(t('edit_group_settings'), 'edit_group_settings', rights.edit_group_settings),
    checkbox(t('support_access'), 'support_access', rights.support_access),
    h('fieldset', {}, h('legend', {}, t('roles')), roles.map((r) => checkbox(r.name, `role:${r.id}`, (rights.roles || []).includes(r.id)))),
  ];
  const data = await dialog(t('rights_of', { name: user.username }), body);
  if (!data) return;
  const keys = [...data.keys()];
  const pick = (prefix) => keys.filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  const next = {
    areas: pick('area:'),
    objects: { create: data.has('obj:create'), edit: data.has('obj:edit'), delete: data.has('obj:delete') },
    groups: data.has('groups:all') ? 'all' : pick('group:'),
    edit_group_settings: data.has('edit_group_settings'),
    support_access: data.has('support_access'),
    roles: pick('role:'),
  };
  if (await attempt(msg, () => api('PUT', `/users/${user.id}/rights`, next))) {
    clear(msg, notice('ok', t('saved')));
    await reload(false);
  }
}

async function editLoginOptions(user, msg) {
  const detail = await api('GET', `/users/${user.id}`);
  const options = [
    ['off', t('tf_off')],
    ['email', t('tf_email')],
    ['sms', t('tf_sms')],
  ];
  // Only the user can set up an authenticator app; an admin sees it and may switch away.
  if (detail.two_factor === 'totp') options.push(['totp', t('tf_totp')]);
  const data = await dialog(`${t('login_options')}: ${user.username}`, select(t('two_factor'), 'two_factor', options, detail.two_factor));
  if (!data || data.get('two_factor') === detail.two_factor) return;
  if (await attempt(msg, () => api('PUT', `/users/${user.id}/login-options`, { two_factor: data.get('two_factor') }))) {
    clear(msg, notice('ok', t('saved')));
  }
}

// The API keys of a user: name, prefix, made and last used; each can be revoked. Only the user
// itself makes keys (they act as it, without its second factor).
async function apiKeys(user, msg, reload) {
  const keys = await api('GET', `/users/${user.id}/api-keys`);
  const body = keys.length
    ? table(
        [t('name'), t('key_prefix'), t('created'), t('last_used'), t('actions')],
        keys.map((k) =>
          h(
            'tr',
            { dataset: { key: k.prefix } },
            h('td', {}, k.name),
            h('td', {}, h('code', {}, k.prefix)),
            h('td', {}, when(k.created_at)),
            h('td', {}, k.last_used_at ? when(k.last_used_at) : t('never')),
            h(
              'td',
              {},
              iconButton('bin', `${t('revoke_key')}: ${k.name}`, async (e) => {
                const row = e.currentTarget.closest('tr');
                if (await attempt(msg, () => api('DELETE', `/api-keys/${k.id}`))) {
                  clear(msg, notice('ok', t('key_revoked', { name: k.name, user: user.username })));
                  row.remove();
                  await reload(false);
                }
              }, { 'data-action': 'revoke-key' }),
            ),
          ),
        ),
        { 'data-testid': 'api-keys' },
      )
    : h('p', { 'data-testid': 'api-keys' }, t('no_keys'));
  await dialog(`${t('api_keys_of')}: ${user.username}`, [body, h('p', { class: 'muted' }, t('keys_own_only'))], { submit: t('close') });
}

async function sendLink(user, msg) {
  const sure = await dialog(t('send_link'), h('p', {}, t('confirm_send_link', { name: user.username, email: user.email || '' })), { submit: t('send_link') });
  if (!sure) return;
  if (await attempt(msg, () => api('POST', `/users/${user.id}/set-password-link`, {}))) {
    clear(msg, notice('ok', t('link_sent', { email: user.email || '' })));
  }
}

async function deleteUser(user, msg, reload) {
  const sure = await dialog(t('delete'), h('p', {}, t('confirm_delete_user', { name: user.username })), { submit: t('delete'), danger: true });
  if (!sure) return;
  if (await attempt(msg, () => api('DELETE', `/users/${user.id}`))) await reload(false);
}

export async function usersPage(root, ctx) {
  const msg = h('div', { 'data-testid': 'users-message' });
  const list = h('div');
  async function reload(clearMsg = true) {
    const users = await api('GET', `/accounts/${ctx.accountId}/users`);
    if (clearMsg) clear(msg);
    clear(
      list,
      table(
        [t('username'), t('name'), t('email'), t('last_login'), t('two_factor'), t('api_key'), t('actions')],
        users.map((u) => {
          // Nobody changes its own rights (the server answers own_rights): no pen for oneself.
          const self = u.id === ctx.me.user.id;
          const actions =
            u.kind === 'service'
              ? h('span', { class: 'muted' }, 'service')
              : h(
                  'span',
                  { class: 'actions' },
                  self ? null : iconButton('pen', `${t('edit_rights')}: ${u.username}`, () => editRights(ctx, u, msg, reload), { 'data-action': 'rights' }),
                  iconButton('door', `${t('login_options')}: ${u.username}`, () => editLoginOptions(u, msg), { 'data-action': 'login-options' }),
                  iconButton('key', `${t('api_keys_of')}: ${u.username}`, () => apiKeys(u, msg, reload), { 'data-action': 'api-keys' }),
                  u.email ? iconButton('mail', `${t('send_link')}: ${u.username}`, () => sendLink(u, msg), { 'data-action': 'send-link' }) : null,
                  iconButton('bin', `${t('delete')}: ${u.username}`, () => deleteUser(u, msg, reload), { 'data-action': 'delete', class: 'icon danger' }),
                );
          return h(
            'tr',
            { dataset: { username: u.username } },
            h('td', {}, u.username),
            h('td', {}, `${u.first_name} ${u.last_name}`.trim()),
            h('td', {}, u.email || ''),
            h('td', {}, u.last_login_at ? when(u.last_login_at) : t('never')),
            h('td', {}, u.kind === 'service' ? '' : t(`tf_${u.two_factor || 'off'}`)),
            h('td', {}, u.has_api_key ? t('yes') : t('no')),
            h('td', {}, actions),
          );
        }),
        { 'data-testid': 'users' },
      ),
    );
  }
  const formMsg = h('div');
  const form = h(
    'form',
    { class: 'grid', 'data-testid': 'new-user' },
    field(t('username'), { name: 'username', required: true, maxlength: 64, autocomplete: 'off' }),
    field(t('first_name'), { name: 'first_name', required: true }),
    field(t('last_name'), { name: 'last_name', required: true }),
    field(t('email'), { name: 'email', type: 'email', required: true }),
    field(t('phone'), { name: 'phone', type: 'tel' }),
    field(t('password_optional'), { name: 'password', type: 'password', autocomplete: 'new-password' }),
    formMsg,
    h('button', { type: 'submit', class: 'primary' }, t('create')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (await attempt(formMsg, () => api('POST', `/accounts/${ctx.accountId}/users`, formValues(form)))) {
      form.reset();
      await reload();
    }
  });
  clear(root, h('section', { class: 'card' }, h('h1', {}, t('users')), msg, list), h('section', { class: 'card' }, h('h2', {}, t('new_user')), form));
  await reload();
}

// ---- policies ----------------------------------------------------------------------------

export async function policiesPage(root, ctx) {
  const msg = h('div');
  const list = h('div');
  async function reload() {
    const policies = await api('GET', `/accounts/${ctx.accountId}/policies`);
    clear(
      list,
      table(
        [t('name'), t('description'), t('permissions'), t('actions')],
        policies.map((p) => [
          p.name,
          p.description,
          p.permissions.map((x) => t(`perm_${x}`)).join(', '),
          iconButton('bin', `${t('delete')}: ${p.name}`, async () => {
            const sure = await dialog(t('delete'), h('p', {}, t('confirm_delete_policy', { name: p.name })), { submit: t('delete'), danger: true });
            if (sure && (await attempt(msg, () => api('DELETE', `/policies/${p.id}`)))) await reload();
          }),
        ]),
        { 'data-testid': 'policies' },
      ),
    );
  }
  const form = h(
    'form',
    { class: 'grid', 'data-testid': 'new-policy' },
    field(t('name'), { name: 'name', required: true, maxlength: 100 }),
    field(t('description'), { name: 'description', maxlength: 1000 }),
    h('fieldset', {}, h('legend', {}, t('permissions')), PERMISSIONS.map((p) => checkbox(t(`perm_${p}`), `perm:${p}`, p === 'chat'))),
    h('button', { type: 'submit', class: 'primary' }, t('create')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const body = {
      name: data.get('name'),
      description: data.get('description') || '',
      permissions: PERMISSIONS.filter((p) => data.has(`perm:${p}`)),
    };
    if (await attempt(msg, () => api('POST', `/accounts/${ctx.accountId}/policies`, body))) {
      form.reset();
      await reload();
    }
  });
  clear(root, h('section', { class: 'card' }, h('h1', {}, t('policies')), msg, list), h('section', { class: 'card' }, h('h2', {}, t('new_policy')), form));
  await reload();
}

// ---- partner access ----------------------------------------------------------------------

export async function accessPage(root, ctx) {
  const msg = h('div', { 'data-testid': 'access-message' });
  const body = h('div');
  async function reload() {
    const access = await api('GET', `/accounts/${ctx.accountId}/access`);
    const act = (path) => async () => {
      if (await attempt(msg, () => api('POST', path, {}))) await reload();
    };
    clear(
      body,
      h('h2', {}, t('requests')),
      access.requests.length
        ? table(
            [t('partner'), t('requested_by'), t('requested_at'), t('support_user'), t('message'), t('actions')],
            access.requests.map((r) =>
              h(
                'tr',
                { dataset: { request: r.id } },
                h('td', {}, r.partner.name),
                h('td', {}, r.requested_by.name),
                h('td', {}, when(r.requested_at)),
                h('td', {}, r.support_user ? t('yes') : t('no')),
                h('td', {}, r.message || ''),
                h(
                  'td',
                  { class: 'actions' },
                  h('button', { type: 'button', class: 'primary', 'data-action': 'approve', onclick: act(`/access-requests/${r.id}/approve`) }, t('approve')),
                  h('button', { type: 'button', 'data-action': 'reject', onclick: act(`/access-requests/${r.id}/reject`) }, t('reject')),
                ),
              ),
            ),
            { 'data-testid': 'access-requests' },
          )
        : h('p', { class: 'muted' }, t('no_requests')),
      h('h2', {}, t('grants')),
      access.grants.length
        ? table(
            [t('partner'), t('support_user'), t('granted_at'), t('expires'), ''],
            access.grants.map((g) =>
              h(
                'tr',
                { dataset: { grant: g.id } },
                h('td', {}, g.partner.name),
                h('td', {}, g.support_user ? t('yes') : t('no')),
                h('td', {}, when(g.granted_at)),
                h('td', {}, g.expires_at ? when(g.expires_at) : t('never')),
                h(
                  'td',
                  {},
                  iconButton('cross', `${t('revoke')}: ${g.partner.name}`, async () => {
                    const sure = await dialog(t('revoke'), h('p', {}, t('confirm_revoke', { name: g.partner.name })), { submit: t('revoke'), danger: true });
                    if (sure && (await attempt(msg, () => api('DELETE', `/access-grants/${g.id}`)))) await reload();
                  }, { 'data-action': 'revoke', class: 'icon danger' }),
                ),
              ),
            ),
            { 'data-testid': 'access-grants' },
          )
        : h('p', { class: 'muted' }, t('no_grants')),
    );
  }
  clear(root, h('section', { class: 'card' }, h('h1', {}, t('access_title')), msg, body));
  await reload();
}

// ---- devices -----------------------------------------------------------------------------

export async function devicesPage(root, ctx) {
  const list = h('div');
  const users = await api('GET', `/accounts/${ctx.accountId}/users`).catch(() => []);
  const userName = new Map(users.map((u) => [u.id, u.username]));
  async function reload() {
    const devices = await api('GET', `/accounts/${ctx.accountId}/devices`);
    clear(
      list,
      table(
        [t('name'), t('serial'), t('platform'), t('model'), t('user'), t('battery'), t('last_seen'), t('online')],
        devices.map((d) => [
          d.name,
          d.serial,
          d.platform,
          d.model,
          d.user_id ? userName.get(d.user_id) || d.user_id : t('nothing'),
          d.battery == null ? t('nothing') : `${d.battery} %`,
          when(d.last_seen_at),
          d.online ? t('yes') : t('no'),
        ]),
        { 'data-testid': 'devices' },
      ),
    );
  }
  const msg = h('div');
  const report = h('div', { 'data-testid': 'import-report' });
  const text = h('textarea', { name: 'csv', rows: 5, 'aria-label': 'CSV', placeholder: 'serial,username', 'data-testid': 'csv-text' });
  const file = h('input', { type: 'file', accept: '.csv,text/csv', 'aria-label': t('csv_file') });
  file.addEventListener('change', async () => {
    if (file.files[0]) text.value = await file.files[0].text();
  });
  const form = h('form', { 'data-testid': 'csv-import' }, file, text, msg, h('button', { type: 'submit', class: 'primary' }, t('import')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const rows = await attempt(msg, () => api('POST', `/accounts/${ctx.accountId}/devices/import`, undefined, { csv: text.value }));
    if (!rows) return;
    clear(report, table([t('line'), t('serial'), t('username'), t('outcome')], rows.map((r) => [String(r.line), r.serial, r.username, t(`outcome_${r.outcome}`)])));
    await reload();
  });
  clear(
    root,
    h('section', { class: 'card' }, h('h1', {}, t('devices')), list),
    await groupsSection(ctx),
    h('section', { class: 'card' }, h('h2', {}, t('import_csv')), form, report),
  );
  await reload();
}

// ---- audit log ---------------------------------------------------------------------------

export async function auditPage(root, ctx) {
  const entries = await api('GET', `/accounts/${ctx.accountId}/audit`);
  clear(
    root,
    h(
      'section',
      { class: 'card' },
      h('h1', {}, t('audit')),
      table(
        [t('when'), t('who'), t('via'), t('action'), t('target')],
        entries.map((e) => [when(e.at), e.actor_name, e.via, e.action, e.target || '']),
        { 'data-testid': 'audit' },
      ),
    ),
  );
}

// ---- account settings --------------------------------------------------------------------

export async function settingsPage(root, ctx) {
  const msg = h('div', { 'data-testid': 'settings-message' });
  const account = await api('GET', `/accounts/${ctx.accountId}`);
  const nameForm = h(
    'form',
    { class: 'grid', 'data-testid': 'account-name' },
    field(t('name'), { name: 'name', required: true, maxlength: 200, value: account.name }),
    h('button', { type: 'submit', class: 'primary' }, t('save')),
  );
  nameForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = new FormData(nameForm).get('name');
    if (await attempt(msg, () => api('PATCH', `/accounts/${ctx.accountId}`, { name }))) clear(msg, notice('ok', t('saved')));
  });
  const state = h('p', { 'data-testid': 'support-state' });
  const toggle = h('button', { type: 'button', 'data-testid': 'support-toggle' });
  function render(on) {
    clear(state, h('strong', {}, on ? t('vendor_support_on') : t('vendor_support_off')));
    clear(toggle, on ? t('vendor_support_turn_off') : t('vendor_support_turn_on'));
    toggle.className = on ? 'danger' : 'primary';
    toggle.onclick = async () => {
      if (on) {
        const sure = await dialog(t('vendor_support'), h('p', {}, t('vendor_support_confirm_off')), { submit: t('vendor_support_turn_off'), danger: true });
        if (!sure) return;
      }
      if (await attempt(msg, () => api('PATCH', `/accounts/${ctx.accountId}`, { support_access: !on }))) {
        clear(msg, notice('ok', t('saved')));
        render(!on);
      }
    };
  }
  render(account.support_access);
  clear(
    root,
    h('section', { class: 'card' }, h('h1', { tabindex: '-1' }, t('menu_settings')), msg, nameForm),
    h('section', { class: 'card', 'data-testid': 'vendor-support' }, h('h2', {}, t('vendor_support')), h('p', {}, t('vendor_support_means')), state, toggle),
  );
}

// ---- device groups -----------------------------------------------------------------------

// Device groups the admin sees: create, rename, delete (refused while devices are in it).
async function groupsSection(ctx) {
  const box = h('section', { class: 'card', 'data-testid': 'groups' });
  const msg = h('div', { 'data-testid': 'groups-message' });
  const list = h('div');
  async function reload() {
    const groups = await api('GET', `/accounts/${ctx.accountId}/groups`);
    clear(
      list,
      groups.length
        ? table(
            [t('name'), t('created'), t('actions')],
            groups.map((g) =>
              h(
                'tr',
                { dataset: { group: g.name } },
                h('td', {}, g.name),
                h('td', {}, when(g.created_at)),
                h(
                  'td',
                  {},
                  h(
                    'span',
                    { class: 'actions' },
                    iconButton('pen', `${t('rename')}: ${g.name}`, async () => {
                    const data = await dialog(t('rename'), field(t('name'), { name: 'name', required: true, maxlength: 100, value: g.name }));
                    if (data && (await attempt(msg, () => api('PATCH', `/groups/${g.id}`, { name: data.get('name') })))) await reload();
                  }, { 'data-action': 'rename' }),
                  iconButton('bin', `${t('delete')}: ${g.name}`, async () => {
                    const sure = await dialog(t('delete'), h('p', {}, t('confirm_delete_group', { name: g.name })), { submit: t('delete'), danger: true });
                    if (sure && (await attempt(msg, () => api('DELETE', `/groups/${g.id}`)))) await reload();
                  }, { 'data-action': 'delete', class: 'icon danger' }),
                  ),
                ),
              ),
            ),
          )
        : h('p', {}, t('no_groups')),
    );
  }
  const form = h(
    'form',
    { class: 'grid', 'data-testid': 'new-group' },
    field(t('name'), { name: 'name', required: true, maxlength: 100 }),
    h('button', { type: 'submit', class: 'primary' }, t('create')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (await attempt(msg, () => api('POST', `/accounts/${ctx.accountId}/groups`, { name: new FormData(form).get('name') }))) {
      form.reset();
      await reload();
    }
  });
  clear(box, h('h2', {}, t('device_groups')), h('p', { class: 'muted' }, t('groups_hint')), msg, list, form);
  await reload();
  return box;
}
