// The console's entry: picks the page from the path, signs in (with the second factor), and
// builds the menu from the caller's rights.

import { api, setToken, token } from '/assets/api.js';
import { t, lang, setLang, otherLang } from '/assets/i18n.js';
import { h, clear, field, notice, errorText } from '/assets/ui.js';
import { joinPage, customerPage, setPasswordPage } from '/assets/public.js';
import { sessionsPage, sessionPage, reportPage } from '/assets/technician.js';
import { usersPage, policiesPage, accessPage, devicesPage, auditPage } from '/assets/admin.js';
import { myDevicesPage } from '/assets/selfservice.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const tools = document.getElementById('tools');

// A live page holds a WebSocket (a guest's link works once): the language switch must not
// rebuild it, so it only takes effect on the next page.
let livePage = false;

function renderTools(ctx) {
  const items = [
    h(
      'button',
      {
        type: 'button',
        class: 'link',
        lang: otherLang(),
        'data-testid': 'lang',
        onclick: () => {
          setLang(otherLang());
          document.getElementById('brand').textContent = t('app_title');
          if (livePage) renderTools(ctx);
          else start();
        },
      },
      t('language'),
    ),
  ];
  if (ctx && ctx.me) {
    items.unshift(h('a', { class: 'who', href: '#/profile', 'data-testid': 'who', title: t('my_profile') }, ctx.me.user.username));
    items.push(
      h(
        'button',
        {
          type: 'button',
          class: 'link',
          'data-testid': 'logout',
          onclick: async () => {
            try {
              await api('POST', '/auth/logout');
            } catch {
              // The token is dropped either way.
            }
            setToken(null);
            location.hash = '';
            start();
          },
        },
        t('logout'),
      ),
    );
  }
  clear(tools, items);
}

function loginPage() {
  clear(nav);
  renderTools(null);
  const msg = h('div');
  const form = h(
    'form',
    { class: 'card narrow', 'data-testid': 'login-form' },
    h('h1', {}, t('login')),
    field(t('username'), { name: 'username', required: true, autocomplete: 'username' }),
    field(t('password'), { name: 'password', type: 'password', required: true, autocomplete: 'current-password' }),
    msg,
    h('button', { type: 'submit', class: 'primary' }, t('login')),
    h('button', { type: 'button', class: 'link', 'data-testid': 'forgot', onclick: () => forgotPage() }, t('forgot_password')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    try {
      const answer = await api('POST', '/auth/login', { username: data.get('username'), password: data.get('password') }, { token: '' });
      if (answer.second_factor) codePage(answer.second_factor);
      else signedIn(answer.token);
    } catch (err) {
      clear(msg, notice('error', errorText(err)));
    }
  });
  clear(main, form);
  form.querySelector('input').focus();
}

// "Forgot password?": asks for a username or email; the answer never says whether it exists.
function forgotPage() {
  const msg = h('div');
  const form = h(
    'form',
    { class: 'card narrow', 'data-testid': 'forgot-form' },
    h('h1', { tabindex: '-1' }, t('forgot_title')),
    h('p', {}, t('forgot_hint')),
    field(t('login_or_email'), { name: 'login', required: true, autocomplete: 'username' }),
    msg,
    h('button', { type: 'submit', class: 'primary' }, t('forgot_send')),
    h('button', { type: 'button', class: 'link', onclick: () => loginPage() }, t('back_to_login')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api('POST', '/auth/password-reset', { login: new FormData(form).get('login') }, { token: '' });
      clear(msg, notice('ok', t('forgot_sent')));
    } catch (err) {
      clear(msg, notice('error', errorText(err)));
    }
  });
  clear(main, form);
  document.title = `${t('forgot_title')} · ${t('app_title')}`;
  form.querySelector('input').focus();
}

// The signed-in user's own page: change the password with the current one.
function profilePage(ctx) {
  const msg = h('div');
  const form = h(
    'form',
    { class: 'card narrow', 'data-testid': 'password-form' },
    h('h2', {}, t('change_password')),
    field(t('current_password'), { name: 'current', type: 'password', required: true, autocomplete: 'current-password' }),
    field(t('new_password'), { name: 'new', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' }),
    field(t('password_repeat'), { name: 'repeat', type: 'password', required: true, autocomplete: 'new-password' }),
    h('p', { class: 'muted' }, t('change_password_hint')),
    msg,
    h('button', { type: 'submit', class: 'primary' }, t('save')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    if (data.get('new') !== data.get('repeat')) {
      clear(msg, notice('error', t('passwords_differ')));
      return;
    }
    try {
      await api('POST', '/me/password', { current_password: data.get('current'), new_password: data.get('new') });
      form.reset();
      clear(msg, notice('ok', t('password_changed')));
    } catch (err) {
      clear(msg, notice('error', err.code === 'reauth_required' ? t('current_password_wrong') : errorText(err)));
    }
  });
  clear(main, h('section', { class: 'card narrow' }, h('h1', {}, ctx.me.user.username), h('p', {}, `${ctx.me.user.first_name || ''} ${ctx.me.user.last_name || ''}`.trim())), form);
}

function codePage(challenge) {
  const msg = h('div');
  const form = h(
    'form',
    { class: 'card narrow', 'data-testid': 'code-form' },
    h('h1', {}, t('login')),
    h('p', {}, challenge.channel === 'sms' ? t('code_sent_sms') : t('code_sent_email')),
    field(t('code'), { name: 'code', required: true, inputmode: 'numeric', pattern: '[0-9]{5}', maxlength: 5, autocomplete: 'one-time-code' }),
    msg,
    h('button', { type: 'submit', class: 'primary' }, t('verify')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const answer = await api('POST', '/auth/verify', { challenge_id: challenge.challenge_id, code: new FormData(form).get('code') }, { token: '' });
      signedIn(answer.token);
    } catch (err) {
      if (err.code === 'challenge_expired') loginPage();
      else clear(msg, notice('error', errorText(err)));
    }
  });
  clear(main, form);
  form.querySelector('input').focus();
}

function signedIn(value) {
  setToken(value);
  start();
}

// The menu entries the caller's rights open, in order.
async function menuFor(me) {
  const areas = new Set(me.rights.areas || []);
  const roles = me.rights.roles || [];
  const items = [];
  if (areas.has('sessions')) items.push(['sessions', t('menu_sessions')]);
  if (areas.has('users')) items.push(['users', t('menu_users')]);
  if (areas.has('policies')) items.push(['policies', t('menu_policies')]);
  if (areas.has('access')) {
    // Shown only while there is a request or a grant (the contract's `visible`).
    try {
      const list = await api('GET', `/accounts/${me.user.account_id}/access`);
      if (list.visible) items.push(['access', t('menu_access')]);
    } catch {
      // A partner account has no customer-side list.
    }
  }
  if (areas.has('devices')) items.push(['devices', t('menu_devices')]);
  if (areas.has('reports')) items.push(['audit', t('menu_audit')]);
  if (roles.some((r) => r.startsWith('self-service'))) items.push(['my-devices', t('menu_my_devices')]);
  return items;
}

const PAGES = {
  sessions: (ctx, rest) => (rest ? sessionPage(main, ctx, rest) : sessionsPage(main, ctx)),
  reports: (ctx, rest) => reportPage(main, ctx, rest),
  users: (ctx) => usersPage(main, ctx),
  policies: (ctx) => policiesPage(main, ctx),
  access: (ctx) => accessPage(main, ctx),
  devices: (ctx) => devicesPage(main, ctx),
  audit: (ctx) => auditPage(main, ctx),
  'my-devices': (ctx) => myDevicesPage(main, ctx),
  profile: (ctx) => profilePage(ctx),
};

let ctx = null;
// What the page on screen must do when it is left (close its WebSocket).
let leaving = null;

async function consolePage() {
  if (leaving) {
    const fn = leaving;
    leaving = null;
    fn();
  }
  if (!token()) {
    loginPage();
    return;
  }
  let me;
  try {
    me = await api('GET', '/me');
  } catch (err) {
    setToken(null);
    loginPage();
    if (err.status !== 401) main.prepend(notice('error', errorText(err)));
    return;
  }
  const menu = await menuFor(me);
  ctx = { me, accountId: me.user.account_id, menu, onLeave: (fn) => (leaving = fn) };
  renderTools(ctx);
  const hash = location.hash.replace(/^#\/?/, '');
  const [page, ...restParts] = hash.split('/');
  const rest = restParts.join('/');
  const current = PAGES[page] && (menu.some(([k]) => k === page) || page === 'reports' || page === 'profile') ? page : menu[0]?.[0];
  clear(
    nav,
    h(
      'ul',
      {},
      menu.map(([key, label]) =>
        h('li', {}, h('a', { href: `#/${key}`, 'data-testid': `menu-${key}`, 'aria-current': key === current || (key === 'sessions' && page === 'reports') ? 'page' : false }, label)),
      ),
    ),
  );
  if (!current) {
    clear(main, h('section', { class: 'card' }, h('p', {}, me.user.username)));
    return;
  }
  livePage = current === 'sessions' && !!rest;
  try {
    await PAGES[current](ctx, current === page ? rest : '');
  } catch (err) {
    clear(main, notice('error', errorText(err)));
  }
}

function start() {
  document.documentElement.lang = lang();
  document.getElementById('brand').textContent = t('app_title');
  const path = location.pathname;
  if (path.startsWith('/join/')) {
    livePage = true;
    renderTools(null);
    joinPage(main, decodeURIComponent(path.slice('/join/'.length)));
  } else if (path.startsWith('/customer/')) {
    livePage = true;
    renderTools(null);
    customerPage(main, decodeURIComponent(path.slice('/customer/'.length)));
  } else if (path === '/set-password') {
    renderTools(null);
    setPasswordPage(main);
  } else {
    consolePage();
  }
}

window.addEventListener('hashchange', () => {
  if (location.pathname === '/') consolePage();
});
start();
