// Pages reached without a login: the guest's join page, the customer's page and the
// set-password page of a new user's mail.

import { api, wsBase } from '/assets/api.js';
import { t, when } from '/assets/i18n.js';
import { h, clear, field, notice, errorText } from '/assets/ui.js';
import { liveSession } from '/assets/live.js';

const REFUSALS = ['invitation_used', 'invitation_expired', 'invitation_revoked'];

// The text for an invitation link that cannot be used (any more), from the broker's answer.
function refusalOf(err) {
  const code = REFUSALS.includes(err.code) ? err.code : err.status === 404 ? 'invitation_unknown' : null;
  return { code: code || err.code || 'error', text: code ? t(code) : errorText(err), next: t('ask_new_link') };
}

// A whole page that says what happened and what to do next.
function outcomeCard(root, title, next, code, keep) {
  clear(
    root,
    h(
      'section',
      { class: 'card outcome', 'data-testid': 'outcome', 'data-code': String(code ?? '') },
      h('h1', {}, title),
      next ? h('p', { 'data-testid': 'what-next' }, next) : null,
    ),
    keep || null,
  );
}

// What a guest is told when its connection ends, by close code.
function guestNext(end) {
  if (end.next) return end.next;
  switch (end.code) {
    case 4001:
      return t('what_next_inviter_left');
    case 4004:
      return t('what_next_removed');
    case 4005:
    case 4006:
      return t('what_next_not_admitted');
    case 4002:
    case 1001:
      return t('what_next_ended');
    case 4003:
      return t('what_next_revoked');
    default:
      return end.kind === 'left' ? t('what_next_ended') : t('what_next_guest_used');
  }
}

// The code step of an invitation bound to an email address: send the code, enter it, and
// `done(ticket)` once it was right.
function emailStep(token, info, done) {
  const msg = h('div', { 'data-testid': 'email-message' });
  let challenge = null;
  const send = h('button', { type: 'button', class: 'primary', 'data-testid': 'send-code' }, t('send_code'));
  const form = h(
    'form',
    { class: 'inline', hidden: true, 'data-testid': 'code-form' },
    field(t('code'), { name: 'code', required: true, inputmode: 'numeric', pattern: '[0-9 ]{5,9}', autocomplete: 'one-time-code' }),
    h('button', { type: 'submit', class: 'primary' }, t('verify')),
  );
  send.addEventListener('click', async () => {
    try {
      const sent = await api('POST', `/join/${encodeURIComponent(token)}/code`, undefined, { token: '' });
      challenge = sent.challenge_id;
      form.hidden = false;
      send.textContent = t('send_code_again');
      send.className = '';
      clear(msg, notice('ok', t('code_sent_to', { email: sent.sent_to })));
      form.querySelector('input').focus();
    } catch (err) {
      clear(msg, notice('error', errorText(err)));
    }
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const answer = await api('POST', `/join/${encodeURIComponent(token)}/verify`, { challenge_id: challenge, code: new FormData(form).get('code') }, { token: '' });
      clear(box, notice('ok', t('email_verified_join')));
      done(answer.ticket);
    } catch (err) {
      clear(msg, notice('error', errorText(err)));
    }
  });
  const box = h('div', { class: 'email-step', 'data-testid': 'email-step' }, h('p', {}, t('bound_to_email', { email: info.email_hint })), send, form, msg);
  return box;
}

export async function joinPage(root, token) {
  let info;
  try {
    info = await api('GET', `/join/${encodeURIComponent(token)}`, undefined, { token: '' });
  } catch (err) {
    const why = refusalOf(err);
    outcomeCard(root, why.text, why.next, why.code);
    root.firstChild.dataset.testid = 'join-refused';
    return;
  }
  const perms = info.policy.permissions.map((p) => t(`perm_${p}`));
  const joinButton = h('button', { type: 'button', class: 'primary', 'data-testid': 'join' }, t('join'));
  // Bound to a person: the code mailed to the invitation's address first, then Join.
  let ticket = null;
  const verifyBox = info.email_required ? emailStep(token, info, (got) => {
    ticket = got;
    joinButton.hidden = false;
    joinButton.focus();
  }) : null;
  if (verifyBox) joinButton.hidden = true;
  clear(
    root,
    h(
      'section',
      { class: 'card', 'data-testid': 'invitation' },
      h('h1', {}, t('you_are_invited')),
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, t('session')),
        h('dd', { 'data-testid': 'subject' }, info.session_subject),
        h('dt', {}, t('invited_by')),
        h('dd', { 'data-testid': 'inviter' }, info.inviter_name),
        h('dt', {}, t('guest_name')),
        h('dd', {}, info.guest_name),
        h('dt', {}, t('policy_label')),
        h('dd', { 'data-testid': 'permissions' }, h('strong', {}, info.policy.name), h('br'), t('you_may', { list: perms.join(', ') })),
        h('dt', {}, t('expires')),
        h('dd', {}, when(info.expires_at)),
      ),
      h('p', { class: 'muted' }, t('link_once')),
      verifyBox,
      joinButton,
    ),
  );
  joinButton.addEventListener('click', () => {
    const view = h('section', { class: 'card' }, h('h1', {}, info.session_subject));
    const box = h('div');
    view.append(box);
    clear(root, view);
    const query = ticket ? `?ticket=${encodeURIComponent(ticket)}` : '';
    const base = `${wsBase()}/ws/guest/${encodeURIComponent(token)}`;
    // The link works once; coming back (the session moved to another node of the broker, or
    // the network dropped) takes the key the welcome carried.
    let resumeKey = null;
    const connect = async (me) =>
      me && resumeKey ? `${base}?resume=${encodeURIComponent(me)}&key=${encodeURIComponent(resumeKey)}` : `${base}${query}`;
    liveSession(box, connect, {
      reconnect: true,
      onWelcome: (m) => {
        if (m.resume_key) resumeKey = m.resume_key;
      },
      // Waiting in the lobby: the same key brings it back there.
      onLobby: (m) => {
        if (m.resume_key) resumeKey = m.resume_key;
      },
      // Refused at the door (revoked, used or expired since the page loaded): ask why.
      explain: async () => {
        try {
          await api('GET', `/join/${encodeURIComponent(token)}`, undefined, { token: '' });
          return null;
        } catch (err) {
          return refusalOf(err);
        }
      },
      onEnd: (end) => {
        // The transcript stays readable under the outcome.
        const log = view.querySelector('[data-testid="chat-log"]');
        if (log) log.classList.add('static');
        const keep = log && log.children.length ? h('section', { class: 'card' }, h('h2', {}, t('chat')), log) : null;
        outcomeCard(root, end.text, guestNext(end), end.code ?? end.kind, keep);
      },
    });
  });
}

// Captures the shared screen about twice a second as JPEG and sends it on the screen channel.
function screenShare(getLive) {
  const status = h('p', { class: 'muted', role: 'status' });
  const start = h('button', { type: 'button', class: 'primary', 'data-testid': 'share' }, t('share_screen'));
  const stop = h('button', { type: 'button', hidden: true }, t('stop_sharing'));
  let stream = null;
  let timer = null;
  const video = h('video', { muted: true, playsinline: true, hidden: true });
  const canvas = document.createElement('canvas');

  function end() {
    if (timer) clearInterval(timer);
    timer = null;
    if (stream) stream.getTracks().forEach((tr) => tr.stop());
    stream = null;
    start.hidden = false;
    stop.hidden = true;
    status.textContent = '';
  }

  async function capture() {
    const live = getLive();
    if (!live || !video.videoWidth) return;
    const scale = Math.min(1, 1280 / video.videoWidth);
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext('2d').drawImage(video, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.7));
    if (blob && blob.size < (1 << 20) - 16) live.sendBinary(1, await blob.arrayBuffer());
  }

  start.addEventListener('click', async () => {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia) {
      status.textContent = t('share_failed');
      return;
    }
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (err) {
      status.textContent = `${t('share_failed')} ${err.message || ''}`;
      return;
    }
    video.srcObject = stream;
    await video.play();
    stream.getVideoTracks()[0].addEventListener('ended', end);
    timer = setInterval(capture, 500);
    start.hidden = true;
    stop.hidden = false;
    status.textContent = t('sharing');
  });
  stop.addEventListener('click', end);
  return { el: h('section', { class: 'share' }, h('h3', {}, t('screen')), start, stop, status, video), end };
}

export async function customerPage(root, key) {
  clear(root, h('section', { class: 'card' }, h('p', { class: 'muted' }, t('waiting_for_link'))));
  const check = async () => {
    try {
      return { info: await api('GET', `/customer-sessions/${encodeURIComponent(key)}`, undefined, { token: '' }) };
    } catch (err) {
      if (err.status === 404) return { dead: { code: 'unknown', text: t('customer_link_unknown'), next: t('customer_link_next') } };
      if (err.status === 410) return { dead: { code: 'ended', text: t('customer_link_ended'), next: t('customer_link_next') } };
      return { dead: { code: 'error', text: errorText(err), next: t('what_next_lost') } };
    }
  };
  const first = await check();
  if (first.dead) {
    outcomeCard(root, first.dead.text, first.dead.next, first.dead.code);
    return;
  }
  let live = null;
  const share = screenShare(() => live);
  const box = h('div');
  clear(root, h('section', { class: 'card' }, h('h1', {}, t('customer_title')), h('p', { class: 'muted', 'data-testid': 'customer-subject' }, first.info.session_subject), box));
  const aside = h('div', { class: 'customer-aside' }, share.el, h('p', { class: 'muted small', 'data-testid': 'control-needs-agent' }, t('control_needs_agent')));
  live = liveSession(box, `${wsBase()}/ws/customer/${encodeURIComponent(key)}`, {
    aside,
    reconnect: true,
    explain: async () => (await check()).dead || null,
    onEnd: (end) => {
      share.end();
      const next = end.next || (end.code === 4002 || end.code === 1001 ? t('what_next_ended') : end.kind === 'lost' ? t('what_next_lost') : t('customer_link_next'));
      const log = box.querySelector('[data-testid="chat-log"]');
      if (log) log.classList.add('static');
        const keep = log && log.children.length ? h('section', { class: 'card' }, h('h2', {}, t('chat')), log) : null;
      outcomeCard(root, end.text, next, end.code ?? end.kind, keep);
    },
  });
}

// Read once from the link, kept for a re-render (the language switch).
let setPasswordSecret = '';

export function setPasswordPage(root) {
  const params = new URLSearchParams(location.search);
  const secret = params.get('token') || setPasswordSecret;
  setPasswordSecret = secret;
  // The token stays out of the browser history once read.
  history.replaceState(null, '', '/set-password');
  const msg = h('div');
  const form = h(
    'form',
    { class: 'card narrow' },
    h('h1', {}, t('set_password_title')),
    field(t('password'), { type: 'password', name: 'password', required: true, minlength: 8, autocomplete: 'new-password' }),
    field(t('password_repeat'), { type: 'password', name: 'repeat', required: true, autocomplete: 'new-password' }),
    msg,
    h('button', { type: 'submit', class: 'primary' }, t('save')),
  );
  // A used, expired or unknown link says so before anyone types, and offers a new one.
  const dead = (code) =>
    clear(
      root,
      h(
        'section',
        { class: 'card narrow', 'data-testid': 'link-dead' },
        h('h1', {}, t('set_password_title')),
        notice('error', ['token_used', 'token_expired'].includes(code) ? t(code) : t('token_unknown')),
        h('p', {}, t('link_request_new')),
        h('a', { href: '/#/forgot', class: 'button', 'data-testid': 'request-new-link' }, t('request_new_link')),
      ),
    );
  api('POST', '/auth/password-link', { token: secret }, { token: '' }).catch((err) => dead(err.code));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    if (data.get('password') !== data.get('repeat')) {
      clear(msg, notice('error', t('passwords_differ')));
      return;
    }
    try {
      await api('POST', '/auth/password', { token: secret, password: data.get('password') }, { token: '' });
      clear(root, h('section', { class: 'card narrow' }, notice('ok', t('password_set')), h('a', { href: '/' }, t('login'))));
    } catch (err) {
      clear(msg, notice('error', ['token_used', 'token_expired'].includes(err.code) ? t(err.code) : errorText(err)));
    }
  });
  clear(root, form);
}

// The link mailed to a new email address: opening it confirms the address (once).
let confirmEmailSecret = null;
export async function confirmEmailPage(root) {
  const secret = new URLSearchParams(location.search).get('token') || confirmEmailSecret;
  confirmEmailSecret = secret;
  history.replaceState(null, '', '/confirm-email');
  document.title = `${t('confirm_email_title')} · ${t('app_title')}`;
  const box = h('section', { class: 'card narrow', 'data-testid': 'confirm-email' }, h('h1', {}, t('confirm_email_title')), h('p', { class: 'muted' }, t('confirming')));
  clear(root, box);
  try {
    const answer = await api('POST', '/auth/email-confirm', { token: secret || '' }, { token: '' });
    clear(box, h('h1', {}, t('confirm_email_title')), notice('ok', t('email_confirmed', { email: answer.email })), h('a', { href: '/', class: 'button' }, t('login')));
  } catch (err) {
    const text = ['token_used', 'token_expired'].includes(err.code) ? t(err.code) : err.code === 'token_not_found' ? t('token_unknown') : errorText(err);
    clear(box, h('h1', {}, t('confirm_email_title')), notice('error', text), h('p', {}, t('confirm_email_again')));
  }
}
