// The console's entry: picks the page from the path, signs in (with the second factor), and
// builds the menu from the caller's rights.

import { api, setToken, token, adoptToken, announceLogout } from '/assets/api.js';
import { t, lang, setLang, otherLang } from '/assets/i18n.js';
import { actingAs, actingPartner, leaveAccount } from '/assets/platform.js';
import { partnerPage } from '/assets/partner.js';
import { h, clear, field, select, notice, errorText } from '/assets/ui.js';
import { joinPage, customerPage, setPasswordPage, confirmEmailPage } from '/assets/public.js';
import { sessionsPage, sessionPage, reportPage, attachDock, closeAllSessions } from '/assets/technician.js';
import { usersPage, policiesPage, accessPage, devicesPage, auditPage, settingsPage } from '/assets/admin.js';
import { myDevicesPage } from '/assets/selfservice.js';
import { accountsPage } from '/assets/platform.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const tools = document.getElementById('tools');
// Live sessions of this tab that are not on screen: a bar under the header leads back.
const dock = h('div', { id: 'dock', class: 'dock', hidden: true, role: 'region', 'aria-label': 'Live sessions' });
document.querySelector('header.top').after(dock);
attachDock(dock);

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
    // Vendor support acts as the account's service user: its name, not its generated username.
    const me = ctx.me.user;
    const name = actingAs() ? `${me.first_name} ${me.last_name}`.trim() || me.username : me.username;
    items.unshift(h('a', { class: 'who', href: '#/profile', 'data-testid': 'who', title: t('my_profile') }, name));
    items.push(
      h(
        'button',
        {
          type: 'button',
          class: 'link',
          'data-testid': 'logout',
          onclick: async () => {
            closeAllSessions();
            try {
              await api('POST', '/auth/logout');
            } catch {
              // The token is dropped either way.
            }
            setToken(null);
            announceLogout();
            await leaveAccount({ logout: true });
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
  clear(nav);
  renderTools(null);
  const msg = h('div');
  const form = h(
    'form',
    { class: 'card narrow', 'data-testid': 'forgot-form' },
    h('h1', { tabindex: '-1' }, t('forgot_title')),
    h('p', {}, t('forgot_hint')),
    field(t('login_or_email'), { name: 'login', required: true, autocomplete: 'username' }),
    msg,
    h('button', { type: 'submit', class: 'primary' }, t('forgot_send')),
    h(
      'button',
      {
        type: 'button',
        class: 'link',
        onclick: () => {
          history.replaceState(null, '', '/');
          loginPage();
        },
      },
      t('back_to_login'),
    ),
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
  const me = ctx.me.user;
  const aboutMsg = h('div', { 'data-testid': 'profile-message' });
  const about = h(
    'form',
    { 'data-testid': 'profile-form' },
    field(t('first_name'), { name: 'first_name', required: true, maxlength: 100, value: me.first_name || '' }),
    field(t('last_name'), { name: 'last_name', required: true, maxlength: 100, value: me.last_name || '' }),
    select(t('mail_language'), 'language', [
      ['en', 'English'],
      ['de', 'Deutsch'],
    ], me.language || lang()),
    h('p', { class: 'muted' }, t('mail_language_hint')),
    aboutMsg,
    h('button', { type: 'submit', class: 'primary' }, t('save')),
  );
  about.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = new FormData(about);
    try {
      const user = await api('PATCH', `/users/${me.id}`, { first_name: data.get('first_name'), last_name: data.get('last_name'), language: data.get('language') });
      Object.assign(ctx.me.user, { first_name: user.first_name, last_name: user.last_name, language: user.language });
      clear(aboutMsg, notice('ok', t('saved')));
    } catch (err) {
      clear(aboutMsg, notice('error', errorText(err)));
    }
  });
  clear(
    main,
    h('section', { class: 'card narrow' }, h('h1', {}, me.username), h('p', { class: 'muted' }, [me.email, me.account_name].filter(Boolean).join(' · ')), about),
    form,
    authenticatorSection(ctx),
  );
}

// Authenticator app, confirm-first: the secret and its otpauth URL, a first code, then ten
// recovery codes shown once (copy or download as a text file).
function authenticatorSection(ctx) {
  const box = h('section', { class: 'card narrow', 'data-testid': 'totp-setup' });
  const msg = h('div');
  const on = ctx.me.user.two_factor === 'totp';
  const start = h(
    'button',
    {
      type: 'button',
      class: on ? '' : 'primary',
      'data-testid': 'totp-start',
      onclick: async () => {
        try {
          const setup = await api('PUT', `/users/${ctx.me.user.id}/login-options`, { two_factor: 'totp' });
          showSetup(setup);
        } catch (err) {
          clear(msg, notice('error', errorText(err)));
        }
      },
    },
    on ? t('totp_renew') : t('totp_start'),
  );
  function showSetup(setup) {
    const form = h(
      'form',
      { 'data-testid': 'totp-confirm' },
      h('p', {}, t('totp_scan')),
      h(
        'div',
        { class: 'totp-pair' },
        // The server draws the QR code; as an image it can run nothing.
        setup.qr_svg ? h('img', { class: 'qr', alt: t('totp_qr_alt'), 'data-testid': 'totp-qr', src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(setup.qr_svg)}` }) : null,
        h('div', {}, h('p', { class: 'muted' }, t('totp_secret_text')), h('p', {}, h('code', { class: 'secret', 'data-testid': 'totp-secret' }, setup.secret))),
      ),
      h('p', { class: 'muted small' }, h('a', { href: setup.otpauth_url }, t('totp_open_in_app'))),
      field(t('code'), { name: 'code', required: true, inputmode: 'numeric', pattern: '[0-9 ]{6,7}', autocomplete: 'one-time-code' }),
      msg,
      h('button', { type: 'submit', class: 'primary' }, t('totp_confirm')),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        const answer = await api('POST', '/me/totp/confirm', { code: new FormData(form).get('code') });
        showCodes(answer.recovery_codes);
      } catch (err) {
        clear(msg, notice('error', errorText(err)));
      }
    });
    clear(box, h('h2', {}, t('totp_title')), form);
    form.querySelector('input').focus();
  }
  function showCodes(codes) {
    const text = `${t('recovery_file_head')}\n\n${codes.join('\n')}\n`;
    const file = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
    clear(
      box,
      h('h2', {}, t('totp_title')),
      notice('ok', t('totp_on')),
      h('p', {}, t('recovery_once')),
      h('ul', { class: 'codes', 'data-testid': 'recovery-codes' }, codes.map((c) => h('li', {}, h('code', {}, c)))),
      h('p', {}, h('a', { href: file, download: 'support-broker-recovery-codes.txt', class: 'button' }, t('recovery_download'))),
    );
  }
  clear(box, h('h2', {}, t('totp_title')), h('p', {}, on ? t('totp_is_on') : t('totp_is_off')), msg, start);
  return box;
}

// The code step adapts to the channel: a 6-digit app code, a 5-digit mailed or texted code,
// or one of the recovery codes of an authenticator app. Nothing typed is cut off.
function codePage(challenge, recovery = false) {
  const msg = h('div');
  const app = challenge.channel === 'totp';
  const hint = recovery ? t('code_recovery_hint') : app ? t('code_from_app') : challenge.channel === 'sms' ? t('code_sent_sms') : t('code_sent_email');
  const input = recovery
    ? { name: 'code', required: true, autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false' }
    : { name: 'code', required: true, inputmode: 'numeric', pattern: app ? '[0-9 ]{6,7}' : '[0-9 ]{5,6}', autocomplete: 'one-time-code' };
  const form = h(
    'form',
    { class: 'card narrow', 'data-testid': 'code-form', 'data-channel': recovery ? 'recovery' : challenge.channel },
    h('h1', {}, t('login')),
    h('p', {}, hint),
    field(recovery ? t('recovery_code') : t('code'), input),
    msg,
    h('button', { type: 'submit', class: 'primary' }, t('verify')),
    app
      ? h(
          'button',
          { type: 'button', class: 'link', 'data-testid': 'use-recovery', onclick: () => codePage(challenge, !recovery) },
          recovery ? t('use_app_code') : t('use_recovery_code'),
        )
      : null,
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

// Vendor support inside a customer account: a banner on every page, with the way out.
function renderActing() {
  document.getElementById('acting')?.remove();
  const account = actingAs();
  if (!account) return;
  const partner = actingPartner();
  const banner = h(
    'div',
    { id: 'acting', class: 'acting', role: 'note', 'data-testid': 'acting-banner' },
    h('strong', {}, partner ? t('acting_as_partner', { partner, account }) : t('acting_as_support', { account })),
    h(
      'button',
      {
        type: 'button',
        'data-testid': 'leave-account',
        onclick: async () => {
          await leaveAccount();
          location.hash = partner ? '#/partner' : '#/accounts';
          start();
        },
      },
      t('leave_account'),
    ),
  );
  document.querySelector('header.top').after(banner);
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
  if ((me.platform || []).length > 0) items.push(['accounts', t('menu_accounts')]);
  if (me.account && me.account.kind === 'partner' && areas.has('access')) items.push(['partner', t('menu_partner')]);
  if (areas.has('sessions')) items.push(['sessions', t('menu_sessions')]);
  if (areas.has('users')) items.push(['users', t('menu_users')]);
  if (areas.has('policies')) items.push(['policies', t('menu_policies')]);
  if (areas.has('access') && !(me.account && me.account.kind === 'partner')) {
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
  if (areas.has('settings')) items.push(['settings', t('menu_settings')]);
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
  accounts: (ctx) => accountsPage(main, ctx),
  settings: (ctx) => settingsPage(main, ctx),
  partner: (ctx) => partnerPage(main, ctx, start),
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
    if (location.hash === '#/forgot') forgotPage();
    else loginPage();
    return;
  }
  let me;
  try {
    me = await api('GET', '/me');
  } catch (err) {
    if (err.status === 401 && actingAs()) {
      // The visit ended (the account turned vendor support off): back to the staff login.
      await leaveAccount();
      location.hash = '#/accounts';
      return consolePage();
    }
    setToken(null);
    renderActing();
    loginPage();
    if (err.status !== 401) main.prepend(notice('error', errorText(err)));
    return;
  }
  const menu = await menuFor(me);
  ctx = { me, accountId: me.user.account_id, menu, onLeave: (fn) => (leaving = fn) };
  renderTools(ctx);
  renderActing();
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
  // A live session stays docked across pages, so the console may always be redrawn.
  livePage = false;
  try {
    await PAGES[current](ctx, current === page ? rest : '');
  } catch (err) {
    clear(main, notice('error', errorText(err)));
  }
  // Each page names itself in the title, and focus moves to its heading (screen readers
  // announce the new page; keyboard users start there).
  const label = (menu.find(([k]) => k === current) || [])[1] || (current === 'profile' ? t('my_profile') : '');
  document.title = label ? `${label} · ${t('app_title')}` : t('app_title');
  const heading = main.querySelector('h1');
  if (heading && !livePage) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
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
  } else if (path === '/confirm-email') {
    renderTools(null);
    confirmEmailPage(main);
  } else {
    // A new tab of a signed-in user: the token comes from another tab of this console.
    adoptToken().then(consolePage);
  }
}

// Another tab signed out: this one follows.
window.addEventListener('sb-logout', () => {
  closeAllSessions();
  location.hash = '';
  start();
});

window.addEventListener('hashchange', () => {
  if (location.pathname === '/') consolePage();
});
start();
