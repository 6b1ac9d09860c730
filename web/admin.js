// Account admins: users (rights, login options, delete), security policies, partner access,
// devices with the CSV import, and the audit log.

import { api, download } from '/assets/api.js';
import { t, when, lang, translation } from '/assets/i18n.js';
import { h, clear, field, select, checkbox, notice, errorText, table, dialog, iconButton } from '/assets/ui.js';
import { actionsFor } from '/assets/selfservice.js';

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
  const chosen = new Set(Array.isArray(rights.groups) ? rights.groups : []);
  // After a refusal the dialog opens again with what was ticked.
  const ticked = (v, name, now) => (v ? v.has(name) : now);
  const saved = await dialogUntilDone(
    t('rights_of', { name: user.username }),
    (v) => [
      h('fieldset', {}, h('legend', {}, t('areas')), AREAS.map((a) => checkbox(t(`area_${a}`), `area:${a}`, ticked(v, `area:${a}`, rights.areas.includes(a))))),
      h('fieldset', {}, h('legend', {}, t('objects')), ['create', 'edit', 'delete'].map((o) => checkbox(t(`obj_${o}`), `obj:${o}`, ticked(v, `obj:${o}`, rights.objects[o])))),
      h(
        'fieldset',
        {},
        h('legend', {}, t('groups')),
        checkbox(t('all_groups'), 'groups:all', ticked(v, 'groups:all', rights.groups === 'all')),
        groups.map((g) => checkbox(g.name, `group:${g.id}`, ticked(v, `group:${g.id}`, chosen.has(g.id)))),
      ),
      checkbox(t('edit_group_settings'), 'edit_group_settings', ticked(v, 'edit_group_settings', rights.edit_group_settings)),
      checkbox(t('support_access'), 'support_access', ticked(v, 'support_access', rights.support_access)),
      h('fieldset', {}, h('legend', {}, t('roles')), roles.map((r) => checkbox(translation(`role_${r.id.replace(/-/g, '_')}`) || r.name, `role:${r.id}`, ticked(v, `role:${r.id}`, (rights.roles || []).includes(r.id))))),
    ],
    (data) => {
      const keys = [...data.keys()];
      const pick = (prefix) => keys.filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
      return api('PUT', `/users/${user.id}/rights`, {
        areas: pick('area:'),
        objects: { create: data.has('obj:create'), edit: data.has('obj:edit'), delete: data.has('obj:delete') },
        groups: data.has('groups:all') ? 'all' : pick('group:'),
        edit_group_settings: data.has('edit_group_settings'),
        support_access: data.has('support_access'),
        roles: pick('role:'),
      });
    },
  );
  if (saved) {
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
  const saved = await dialogUntilDone(
    `${t('login_options')}: ${user.username}`,
    (v) => select(t('two_factor'), 'two_factor', options, v ? v.get('two_factor') : detail.two_factor),
    (data) => (data.get('two_factor') === detail.two_factor ? 'unchanged' : api('PUT', `/users/${user.id}/login-options`, { two_factor: data.get('two_factor') })),
  );
  if (saved && saved !== 'unchanged') clear(msg, notice('ok', t('saved')));
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

const LANGUAGES = [
  ['en', 'English'],
  ['de', 'Deutsch'],
];

// A dialog that stays open, with what was typed, until its action succeeds or it is cancelled.
// `build(values)` makes the fields; `run(data)` does the work and throws ApiError on refusal.
export async function dialogUntilDone(title, build, run, options = {}) {
  let error = null;
  let values = null;
  for (;;) {
    const fields = build(values);
    const body = [...(Array.isArray(fields) ? fields : [fields]), error ? notice('error', errorText(error)) : null].filter(Boolean);
    const data = await dialog(title, body, options);
    if (!data) return undefined;
    try {
      return (await run(data)) ?? true;
    } catch (err) {
      error = err;
      values = data;
    }
  }
}

// Name, email, phone and language of a user. A new email address takes effect only once the
// link mailed to it is opened.
async function editUser(user, msg, reload) {
  const detail = await api('GET', `/users/${user.id}`);
  const value = (values, key, fallback) => (values ? values.get(key) : fallback) ?? '';
  const answer = await dialogUntilDone(
    `${t('edit_user')}: ${user.username}`,
    (v) => [
      field(t('first_name'), { name: 'first_name', required: true, maxlength: 100, value: value(v, 'first_name', detail.first_name) }),
      field(t('last_name'), { name: 'last_name', required: true, maxlength: 100, value: value(v, 'last_name', detail.last_name) }),
      field(t('email'), { name: 'email', type: 'email', required: true, value: value(v, 'email', detail.email) }),
      detail.email_pending ? h('p', { class: 'muted', 'data-testid': 'email-pending' }, t('email_pending', { email: detail.email_pending })) : null,
      field(t('phone'), { name: 'phone', type: 'tel', value: value(v, 'phone', detail.phone) }),
      select(t('mail_language'), 'language', LANGUAGES, value(v, 'language', detail.language)),
    ],
    async (data) => {
      const patch = {};
      for (const key of ['first_name', 'last_name', 'email', 'phone', 'language']) {
        const now = (data.get(key) || '').trim();
        if (now !== (detail[key] || '')) patch[key] = now;
      }
      if (Object.keys(patch).length === 0) return 'unchanged';
      return api('PATCH', `/users/${user.id}`, patch);
    },
  );
  if (!answer || answer === 'unchanged') return;
  const pending = answer.email_pending && answer.email_pending !== detail.email_pending;
  clear(msg, notice('ok', pending ? t('email_link_sent', { email: answer.email_pending }) : t('saved')));
  await reload(false);
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
              ? h('span', { class: 'muted' }, t('service_user'))
              : h(
                  'span',
                  { class: 'actions' },
                  iconButton('person', `${t('edit_user')}: ${u.username}`, () => editUser(u, msg, reload), { 'data-action': 'edit' }),
                  self ? null : iconButton('shield', `${t('edit_rights')}: ${u.username}`, () => editRights(ctx, u, msg, reload), { 'data-action': 'rights' }),
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
    select(t('mail_language'), 'language', LANGUAGES, lang()),
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
      clear(msg, notice('ok', t('policy_created', { name: body.name })));
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
                  h(
                    'button',
                    {
                      type: 'button',
                      class: 'primary',
                      'data-action': 'approve',
                      onclick: async () => {
                        // The customer may end the grant on a day of its choosing.
                        const data = await dialog(t('approve'), [
                          h('p', {}, t('confirm_approve', { partner: r.partner.name })),
                          field(t('grant_until'), { name: 'until', type: 'date', min: new Date(Date.now() + 86400000).toISOString().slice(0, 10) }),
                          h('p', { class: 'muted small' }, t('grant_until_hint')),
                        ], { submit: t('approve') });
                        if (!data) return;
                        const body = {};
                        if (data.get('until')) body.expires_at = new Date(`${data.get('until')}T23:59:59`).toISOString();
                        if (await attempt(msg, () => api('POST', `/access-requests/${r.id}/approve`, body))) await reload();
                      },
                    },
                    t('approve'),
                  ),
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
            [t('partner'), t('support_user'), t('granted_at'), t('expires'), t('device_groups'), ''],
            access.grants.map((g) =>
              h(
                'tr',
                { dataset: { grant: g.id } },
                h('td', {}, g.partner.name),
                h('td', {}, g.support_user ? t('yes') : t('no')),
                h('td', {}, when(g.granted_at)),
                h(
                  'td',
                  {},
                  g.expires_at ? when(g.expires_at) : t('never'),
                  g.renewal_requested_at ? h('div', { class: 'notice warn small', 'data-testid': 'renewal-requested' }, t('renewal_requested', { when: when(g.renewal_requested_at) }), g.renewal_message ? ` “${g.renewal_message}”` : '') : null,
                ),
                h(
                  'td',
                  { 'data-testid': 'grant-groups' },
                  g.groups ? g.groups.map((id) => (groups.find((x) => x.id === id) || { name: id }).name).join(', ') : t('all_devices'),
                  g.devices ? h('div', { class: 'muted small' }, t('only_devices', { list: g.devices.map((id) => (devices.find((d) => d.id === id) || { name: id }).name).join(', ') })) : null,
                ),
                h(
                  'td',
                  {},
                  iconButton('pen', `${t('shape_grant')}: ${g.partner.name}`, () => shapeGrant(g), { 'data-action': 'shape' }),
                  h('button', { type: 'button', class: 'small', 'data-action': 'activity', onclick: () => showActivity(g) }, t('activity')),
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
  // The grant's end (renew or shorten) and the device groups it reaches.
  async function shapeGrant(g) {
    const current = g.expires_at ? new Date(g.expires_at).toISOString().slice(0, 10) : '';
    const done = await dialogUntilDone(
      `${t('shape_grant')}: ${g.partner.name}`,
      (v) => [
        field(t('grant_until'), { name: 'until', type: 'date', value: v ? v.get('until') : current, min: new Date(Date.now() + 86400000).toISOString().slice(0, 10) }),
        h('p', { class: 'muted small' }, t('grant_until_hint')),
        groups.length
          ? h('fieldset', {}, h('legend', {}, t('grant_groups')), groups.map((x) => checkbox(x.name, `group:${x.id}`, v ? v.has(`group:${x.id}`) : (g.groups || []).includes(x.id))))
          : h('p', { class: 'muted small' }, t('no_groups_to_narrow')),
        h('p', { class: 'muted small' }, t('grant_groups_hint')),
        devices.length
          ? h('fieldset', {}, h('legend', {}, t('grant_devices')), devices.map((d) => checkbox(`${d.name} (${d.serial})`, `device:${d.id}`, v ? v.has(`device:${d.id}`) : (g.devices || []).includes(d.id))))
          : null,
      ],
      async (data) => {
        const chosen = groups.filter((x) => data.has(`group:${x.id}`)).map((x) => x.id);
        const picked = devices.filter((d) => data.has(`device:${d.id}`)).map((d) => d.id);
        const body = {
          expires_at: data.get('until') ? new Date(`${data.get('until')}T23:59:59`).toISOString() : null,
          groups: chosen.length ? chosen : null,
          devices: picked.length ? picked : null,
        };
        return api('PATCH', `/access-grants/${g.id}`, body);
      },
      { submit: t('save') },
    );
    if (done) {
      clear(msg, notice('ok', t('saved')));
      await reload();
    }
  }
  // Everything the partner did through one grant, in words, with a CSV export.
  const activity = h('section', { class: 'card', hidden: true, 'data-testid': 'grant-activity' });
  async function showActivity(g) {
    try {
      const entries = await api('GET', `/access-grants/${g.id}/activity`);
      const canExport = (ctx.me.rights.areas || []).includes('reports');
      clear(
        activity,
        h('h2', {}, t('grant_activity', { partner: g.partner.name })),
        canExport
          ? h('button', { type: 'button', 'data-testid': 'grant-activity-export', onclick: () => attempt(msg, () => download(`/accounts/${ctx.accountId}/audit/export?grant=${g.id}`, `partner-activity-${new Date().toISOString().slice(0, 10)}.csv`)) }, t('export_csv'))
          : null,
        entries.length
          ? table(
              [t('when'), t('actor'), t('action'), t('object')],
              entries.map((e) => [when(e.at), e.actor_name, e.action_text, e.target_name || (e.details && e.details.subject) || '']),
            )
          : h('p', { class: 'muted' }, t('no_entries')),
      );
      activity.hidden = false;
      activity.scrollIntoView({ block: 'start' });
    } catch (err) {
      clear(msg, notice('error', errorText(err)));
    }
  }
  const groups = await api('GET', `/accounts/${ctx.accountId}/groups`).catch(() => []);
  const devices = await api('GET', `/accounts/${ctx.accountId}/devices`).catch(() => []);
  clear(root, h('section', { class: 'card' }, h('h1', {}, t('access_title')), msg, body), activity);
  await reload();
}

// ---- devices -----------------------------------------------------------------------------

const PLATFORMS = ['ios', 'android', 'windows', 'macos'];

// Follows a command until the agent answers (or 60 s pass), writing its state into `line`.
async function followCommand(device, command, line) {
  for (let i = 0; i < 60; i += 1) {
    let c;
    try {
      c = await api('GET', `/devices/${device.id}/actions/${command.command_id}`);
    } catch {
      return;
    }
    line.dataset.status = c.status;
    clear(line, notice(c.status === 'failed' ? 'error' : 'ok', `${device.name}: ${t(`act_${c.action}`)}: ${t(`status_${c.status}`)}`));
    if (c.status === 'done' || c.status === 'failed') return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// Lock, locate, lost mode, passcode reset or wipe by an admin; a wipe asks for the admin's
// password (and says it cannot be undone).
async function deviceAction(device, msg) {
  const actions = actionsFor(device.platform);
  // One key per decision: a double click, or a retry after a lost answer, is one command.
  const key = crypto.randomUUID();
  const command = await dialogUntilDone(
    `${t('device_action')}: ${device.name}`,
    (v) => [
      select(t('action'), 'action', actions.map((a) => [a, t(`act_${a}`)]), v ? v.get('action') : actions[0]),
      h('p', { class: 'muted' }, t('wipe_needs_password')),
      field(t('password_for_wipe'), { name: 'password', type: 'password', autocomplete: 'current-password' }),
    ],
    async (data) => {
      const body = { action: data.get('action') };
      if (body.action === 'wipe' || body.action === 'reset_passcode') body.password = data.get('password') || '';
      const answer = await api('POST', `/devices/${device.id}/actions`, body, { headers: { 'Idempotency-Key': key } });
      return { ...answer, action: body.action };
    },
    { submit: t('send_command') },
  );
  if (!command) return;
  const line = h('div', { 'data-testid': 'command-state' });
  clear(msg, line);
  await followCommand(device, command, line);
}

async function editDevice(device, groups, msg, reload) {
  const answer = await dialogUntilDone(
    `${t('edit')}: ${device.name}`,
    (v) => [
      field(t('name'), { name: 'name', required: true, maxlength: 200, value: v ? v.get('name') : device.name }),
      select(t('group'), 'group_id', [['', t('no_group')], ...groups.map((g) => [g.id, g.name])], v ? v.get('group_id') : device.group_id || ''),
    ],
    async (data) => {
      const patch = {};
      if (data.get('name') !== device.name) patch.name = data.get('name');
      if ((data.get('group_id') || '') !== (device.group_id || '') && data.get('group_id')) patch.group_id = data.get('group_id');
      if (Object.keys(patch).length === 0) return 'unchanged';
      return api('PATCH', `/devices/${device.id}`, patch);
    },
  );
  if (answer && answer !== 'unchanged') {
    clear(msg, notice('ok', t('saved')));
    await reload();
  }
}

export async function devicesPage(root, ctx) {
  const list = h('div');
  const msg = h('div', { 'data-testid': 'devices-message' });
  const users = await api('GET', `/accounts/${ctx.accountId}/users`).catch(() => []);
  const userName = new Map(users.map((u) => [u.id, u.username]));
  let groups = await api('GET', `/accounts/${ctx.accountId}/groups`).catch(() => []);
  async function reload() {
    const devices = await api('GET', `/accounts/${ctx.accountId}/devices`);
    groups = await api('GET', `/accounts/${ctx.accountId}/groups`).catch(() => groups);
    const groupName = new Map(groups.map((g) => [g.id, g.name]));
    clear(
      list,
      devices.length
        ? table(
            [t('name'), t('serial'), t('platform'), t('group'), t('user'), t('battery'), t('last_seen'), t('online'), t('actions')],
            devices.map((d) =>
              h(
                'tr',
                { dataset: { serial: d.serial } },
                h('td', {}, d.name, d.lost_mode ? h('span', { class: 'muted' }, ` (${t('lost_mode')})`) : null),
                h('td', {}, d.serial),
                h('td', {}, d.platform),
                h('td', {}, d.group_id ? groupName.get(d.group_id) || '' : t('nothing')),
                h('td', {}, d.user_id ? userName.get(d.user_id) || d.user_id : t('nothing')),
                h('td', {}, d.battery == null ? t('nothing') : `${d.battery} %`),
                h('td', {}, when(d.last_seen_at)),
                h('td', {}, d.online ? t('yes') : t('no')),
                h(
                  'td',
                  {},
                  h(
                    'span',
                    { class: 'actions' },
                    iconButton('bolt', `${t('device_action')}: ${d.name}`, () => deviceAction(d, msg), { 'data-action': 'command' }),
                    iconButton('pen', `${t('edit')}: ${d.name}`, () => editDevice(d, groups, msg, reload), { 'data-action': 'edit' }),
                    d.user_id
                      ? iconButton('release', `${t('release')}: ${d.name}`, async () => {
                          const sure = await dialog(t('release'), h('p', {}, t('confirm_release', { name: d.name })), { submit: t('release'), danger: true });
                          if (sure && (await attempt(msg, () => api('POST', `/devices/${d.id}/release`, {})))) await reload();
                        }, { 'data-action': 'release' })
                      : null,
                    iconButton('bin', `${t('delete')}: ${d.name}`, async () => {
                      const sure = await dialog(t('delete'), h('p', {}, t('confirm_delete_device', { name: d.name })), { submit: t('delete'), danger: true });
                      if (sure && (await attempt(msg, () => api('DELETE', `/devices/${d.id}`)))) await reload();
                    }, { 'data-action': 'delete', class: 'icon danger' }),
                  ),
                ),
              ),
            ),
            { 'data-testid': 'devices' },
          )
        : h('p', { class: 'muted', 'data-testid': 'devices' }, t('no_devices')),
    );
  }
  const addMsg = h('div');
  const add = h(
    'form',
    { class: 'grid', 'data-testid': 'new-device' },
    field(t('name'), { name: 'name', required: true, maxlength: 200 }),
    field(t('serial'), { name: 'serial', required: true, maxlength: 64 }),
    select(t('platform'), 'platform', PLATFORMS.map((p) => [p, p])),
    select(t('group'), 'group_id', [['', t('no_group')], ...groups.map((g) => [g.id, g.name])]),
    addMsg,
    h('button', { type: 'submit', class: 'primary' }, t('add_device')),
  );
  add.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (await attempt(addMsg, () => api('POST', `/accounts/${ctx.accountId}/devices`, formValues(add)))) {
      add.reset();
      await reload();
    }
  });
  const report = h('div', { 'data-testid': 'import-report' });
  const importMsg = h('div');
  const text = h('textarea', { name: 'csv', rows: 5, 'aria-label': 'CSV', placeholder: 'serial,username', 'data-testid': 'csv-text' });
  const file = h('input', { type: 'file', accept: '.csv,text/csv', 'aria-label': t('csv_file') });
  file.addEventListener('change', async () => {
    if (file.files[0]) text.value = await file.files[0].text();
  });
  const form = h('form', { 'data-testid': 'csv-import' }, file, text, importMsg, h('button', { type: 'submit', class: 'primary' }, t('import')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const rows = await attempt(importMsg, () => api('POST', `/accounts/${ctx.accountId}/devices/import`, undefined, { csv: text.value }));
    if (!rows) return;
    clear(report, table([t('line'), t('serial'), t('username'), t('outcome')], rows.map((r) => [String(r.line), r.serial, r.username, t(`outcome_${r.outcome}`)])));
    await reload();
  });
  clear(
    root,
    h('section', { class: 'card' }, h('h1', {}, t('devices')), msg, list),
    h('section', { class: 'card' }, h('h2', {}, t('add_device')), add),
    await enrollmentSection(ctx, groups),
    await groupsSection(ctx),
    h('section', { class: 'card' }, h('h2', {}, t('import_csv')), form, report),
  );
  await reload();
}

// Enrollment codes: made with a validity and a group, shown once, listed with their state,
// revoked while open.
async function enrollmentSection(ctx, groups) {
  const box = h('section', { class: 'card', 'data-testid': 'enrollment-codes' });
  const msg = h('div', { 'data-testid': 'codes-message' });
  const list = h('div');
  const groupName = new Map(groups.map((g) => [g.id, g.name]));
  async function reload() {
    const codes = await api('GET', `/accounts/${ctx.accountId}/enrollment-codes`);
    clear(
      list,
      codes.length
        ? table(
            [t('created'), t('created_by'), t('group'), t('expires'), t('state'), t('device'), t('actions')],
            codes.map((c) =>
              h(
                'tr',
                { dataset: { code: c.id, state: c.state } },
                h('td', {}, when(c.created_at)),
                h('td', {}, c.created_by),
                h('td', {}, c.group_name || (c.group_id ? groupName.get(c.group_id) : '') || t('nothing')),
                h('td', {}, when(c.expires_at)),
                h('td', {}, t(`code_${c.state}`)),
                h('td', {}, c.device_name || t('nothing')),
                h(
                  'td',
                  {},
                  c.state === 'open'
                    ? iconButton('cross', `${t('revoke')}: ${when(c.created_at)}`, async () => {
                        const sure = await dialog(t('revoke'), h('p', {}, t('confirm_revoke_code')), { submit: t('revoke'), danger: true });
                        if (sure && (await attempt(msg, () => api('DELETE', `/accounts/${ctx.accountId}/enrollment-codes/${c.id}`)))) {
                          clear(msg, notice('ok', t('code_revoked_now')));
                          await reload();
                        }
                      }, { 'data-action': 'revoke', class: 'icon danger' })
                    : null,
                ),
              ),
            ),
          )
        : h('p', { class: 'muted' }, t('no_codes')),
    );
  }
  const form = h(
    'form',
    { class: 'grid', 'data-testid': 'new-code' },
    select(t('group'), 'group_id', [['', t('no_group')], ...groups.map((g) => [g.id, g.name])]),
    select(t('valid_for'), 'expires_in_hours', [
      ['24', t('hours_n', { n: 24 })],
      ['72', t('days_n', { n: 3 })],
      ['168', t('days_n', { n: 7 })],
      ['720', t('days_n', { n: 30 })],
    ], '72'),
    h('button', { type: 'submit', class: 'primary' }, t('make_code')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const body = { expires_in_hours: Number(data.get('expires_in_hours')) };
    if (data.get('group_id')) body.group_id = data.get('group_id');
    const made = await attempt(msg, () => api('POST', `/accounts/${ctx.accountId}/enrollment-codes`, body));
    if (!made) return;
    clear(
      msg,
      h(
        'div',
        { class: 'notice ok', role: 'status' },
        h('p', {}, t('code_made', { until: when(made.expires_at) })),
        h('p', {}, h('code', { class: 'secret', 'data-testid': 'new-code-value' }, made.code)),
      ),
    );
    await reload();
  });
  clear(box, h('h2', {}, t('enrollment_codes')), h('p', { class: 'muted' }, t('codes_hint')), form, msg, list);
  await reload();
  return box;
}

// ---- audit log ---------------------------------------------------------------------------

// Families of actions the filter offers (the server matches `family.` as a prefix).
const AUDIT_FAMILIES = ['user', 'api_key', 'device', 'group', 'session', 'invitation', 'policy', 'access', 'account', 'support', 'login'];
// The access paths an entry can come through.
const AUDIT_VIAS = ['login', 'api_key', 'vendor_support', 'partner_support', 'ticket', 'enrollment', 'expiry', 'set_password_link', 'password_reset', 'email_link', 'admin_cli'];
const AUDIT_PAGE = 100;

// What an entry's details say, in words where the console has them, without ids (targets are
// named in their own column).
function detailValue(key, v) {
  if (v === true) return t('yes');
  if (v === false) return t('no');
  if (key === 'two_factor') return t(`tf_${v}`);
  if (key === 'action') return t(`act_${v}`);
  if (key === 'areas' && Array.isArray(v)) return v.length ? v.map((a) => t(`area_${a}`)).join(', ') : t('nothing');
  if (key === 'groups' && v === 'all') return t('all_groups');
  if (key === 'permissions' && Array.isArray(v)) return v.map((p) => t(`perm_${p}`)).join(', ');
  if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(v)) return when(v);
  if (Array.isArray(v)) return v.length ? v.join(', ') : t('nothing');
  if (v && typeof v === 'object') {
    const on = Object.entries(v).filter(([, x]) => x === true).map(([k]) => (key === 'objects' ? t(`obj_${k}`) : k));
    if (Object.values(v).every((x) => typeof x === 'boolean')) return on.length ? on.join(', ') : t('nothing');
    return Object.entries(v).map(([k, x]) => `${k} ${x}`).join(', ');
  }
  return String(v);
}

function auditDetails(details) {
  if (!details || typeof details !== 'object') return '';
  return Object.entries(details)
    .filter(([k, v]) => v !== null && v !== '' && !k.endsWith('_id') && k !== 'id')
    .map(([k, v]) => `${translation(`detail_${k}`) || k.replace(/_/g, ' ')}: ${detailValue(k, v)}`)
    .join(' · ');
}

export async function auditPage(root, ctx) {
  const users = await api('GET', `/accounts/${ctx.accountId}/users`).catch(() => []);
  const msg = h('div', { 'data-testid': 'audit-message' });
  const filter = h(
    'form',
    { class: 'grid filters', 'data-testid': 'audit-filter', role: 'search' },
    select(t('who'), 'actor', [['', t('everyone')], ...users.map((u) => [u.id, u.username])]),
    select(t('action'), 'action', [['', t('all_actions')], ...AUDIT_FAMILIES.map((f) => [`${f}.`, t(`family_${f}`)])]),
    select(t('via'), 'via', [['', t('all_paths')], ...AUDIT_VIAS.map((v) => [v, t(`via_${v}`)])]),
    field(t('date_from'), { name: 'from', type: 'date' }),
    field(t('date_to'), { name: 'to', type: 'date' }),
    h('button', { type: 'submit', class: 'primary' }, t('filter')),
  );
  const body = h('tbody');
  const list = h(
    'table',
    { 'data-testid': 'audit' },
    h('thead', {}, h('tr', {}, [t('when'), t('who'), t('via'), t('action'), t('target'), t('details')].map((x) => h('th', { scope: 'col' }, x)))),
    body,
  );
  const more = h('div');
  const count = h('p', { class: 'muted', 'data-testid': 'audit-count' });
  let shown = 0;
  const query = (before) => {
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(filter).entries()) if (v) q.set(k, v);
    if (before) {
      q.set('before', before);
      q.set('limit', String(AUDIT_PAGE));
    }
    return q;
  };
  async function load(before) {
    const q = query(before);
    q.set('limit', String(AUDIT_PAGE));
    const entries = await attempt(msg, () => api('GET', `/accounts/${ctx.accountId}/audit?${q}`));
    if (!entries) return;
    if (!before) {
      body.replaceChildren();
      shown = 0;
    }
    for (const e of entries) {
      body.append(
        h(
          'tr',
          { dataset: { action: e.action } },
          h('td', { class: 'nowrap' }, when(e.at)),
          h('td', { class: 'nowrap' }, e.actor_name),
          h('td', {}, e.via_text),
          h('td', { title: e.action }, e.action_text),
          h('td', {}, e.target_name ? `${t(`kind_of_${e.target_kind}`)} ${e.target_name}` : e.target_kind ? t(`kind_of_${e.target_kind}`) : ''),
          h('td', { class: 'small' }, auditDetails(e.details)),
        ),
      );
    }
    shown += entries.length;
    clear(count, shown ? t('audit_shown', { n: shown }) : t('audit_none'));
    clear(
      more,
      entries.length === AUDIT_PAGE
        ? h('button', { type: 'button', 'data-testid': 'audit-older', onclick: () => load(entries[entries.length - 1].id) }, t('older_entries'))
        : null,
    );
  }
  filter.addEventListener('submit', async (e) => {
    e.preventDefault();
    await load(null);
  });
  const exportButton = h(
    'button',
    {
      type: 'button',
      'data-testid': 'audit-export',
      onclick: async () => {
        const q = query(null);
        await attempt(msg, () => download(`/accounts/${ctx.accountId}/audit/export?${q}`, `audit-${new Date().toISOString().slice(0, 10)}.csv`));
      },
    },
    t('export_csv'),
  );
  // The hash chain: check it here, or take it away and check it offline.
  const chainState = h('div', { 'data-testid': 'chain-state' });
  const verifyButton = h(
    'button',
    {
      type: 'button',
      'data-testid': 'audit-verify',
      onclick: async () => {
        try {
          const c = await api('GET', `/accounts/${ctx.accountId}/audit/verify`);
          clear(
            chainState,
            c.intact
              ? notice('ok', t('chain_intact', { n: c.entries, head: c.head.slice(0, 16) }))
              : notice('error', c.first_broken ? t('chain_broken', { seq: c.first_broken.seq, reason: t(`chain_${c.first_broken.reason}`) }) : t('chain_outside', { n: c.outside_chain })),
          );
        } catch (err) {
          clear(chainState, notice('error', errorText(err)));
        }
      },
    },
    t('verify_chain'),
  );
  const chainExport = h(
    'button',
    {
      type: 'button',
      'data-testid': 'audit-chain-export',
      onclick: () => attempt(msg, () => download(`/accounts/${ctx.accountId}/audit/chain`, `audit-chain-${new Date().toISOString().slice(0, 10)}.jsonl`)),
    },
    t('export_chain'),
  );
  clear(
    root,
    h('section', { class: 'card' }, h('h1', {}, t('audit')), filter, msg, h('div', { class: 'inline' }, count, exportButton, verifyButton, chainExport), chainState, h('div', { class: 'scroll' }, list), more),
  );
  await load(null);
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
  const policies = await api('GET', `/accounts/${ctx.accountId}/policies`).catch(() => []);
  const policyMsg = h('div', { 'data-testid': 'default-policy-message' });
  const policyForm = h(
    'form',
    { class: 'grid', 'data-testid': 'default-policy' },
    select(t('policy'), 'default_policy_id', [['', t('no_default_policy')], ...policies.map((p) => [p.id, `${p.name} (${p.permissions.map((x) => t(`perm_${x}`)).join(', ')})`])], account.default_policy_id || ''),
    h('button', { type: 'submit', class: 'primary' }, t('save')),
  );
  policyForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const id = new FormData(policyForm).get('default_policy_id') || null;
    if (await attempt(policyMsg, () => api('PATCH', `/accounts/${ctx.accountId}`, { default_policy_id: id }))) clear(policyMsg, notice('ok', t('saved')));
  });
  clear(
    root,
    h('section', { class: 'card' }, h('h1', { tabindex: '-1' }, t('menu_settings')), msg, nameForm),
    account.customer_number
      ? h(
          'section',
          { class: 'card', 'data-testid': 'customer-number' },
          h('h2', {}, t('customer_number')),
          h('p', { class: 'big-number' }, h('code', { 'data-testid': 'customer-number-value' }, account.customer_number.replace(/(\d{3})(\d{3})(\d{3})/, '$1 $2 $3'))),
          h('p', { class: 'muted' }, t('customer_number_means')),
        )
      : null,
    h('section', { class: 'card', 'data-testid': 'vendor-support' }, h('h2', {}, t('vendor_support')), h('p', {}, t('vendor_support_means')), state, toggle),
    admissionSection(ctx, account),
    h('section', { class: 'card' }, h('h2', {}, t('default_policy')), h('p', { class: 'muted' }, t('default_policy_means')), policyForm, policyMsg),
  );
}

// Whether guests wait until the customer admits them.
function admissionSection(ctx, account) {
  const msg = h('div', { 'data-testid': 'admission-message' });
  const form = h(
    'form',
    { class: 'grid', 'data-testid': 'guest-admission' },
    select(t('guest_admission'), 'guest_admission', [['off', t('admission_off')], ['technician', t('admission_technician')], ['always', t('admission_always')]], account.guest_admission || 'off'),
    h('button', { type: 'submit', class: 'primary' }, t('save')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const rule = new FormData(form).get('guest_admission');
    if (await attempt(msg, () => api('PATCH', `/accounts/${ctx.accountId}`, { guest_admission: rule }))) clear(msg, notice('ok', t('saved')));
  });
  const recMsg = h('div', { 'data-testid': 'recording-message' });
  const rec = h(
    'form',
    { class: 'grid', 'data-testid': 'record-sessions' },
    checkbox(t('record_sessions'), 'record_sessions', account.record_sessions),
    h('button', { type: 'submit', class: 'primary' }, t('save')),
  );
  rec.addEventListener('submit', async (e) => {
    e.preventDefault();
    const on = new FormData(rec).has('record_sessions');
    if (await attempt(recMsg, () => api('PATCH', `/accounts/${ctx.accountId}`, { record_sessions: on }))) clear(recMsg, notice('ok', t('saved')));
  });
  return h(
    'section',
    { class: 'card' },
    h('h2', {}, t('guest_admission')),
    h('p', { class: 'muted' }, t('guest_admission_means')),
    form,
    msg,
    h('h2', {}, t('recordings')),
    h('p', { class: 'muted' }, t('record_sessions_means')),
    rec,
    recMsg,
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
            [t('name'), t('seen_by'), t('created'), t('actions')],
            groups.map((g) =>
              h(
                'tr',
                { dataset: { group: g.name } },
                h('td', {}, g.name),
                h('td', { 'data-testid': 'seen-by' }, g.seen_by ? (g.seen_by.length ? g.seen_by.join(', ') : t('nobody')) : '–'),
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
