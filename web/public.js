// Pages reached without a login: the guest's join page, the customer's page and the
// set-password page of a new user's mail.

import { api, wsBase } from '/assets/api.js';
import { t, when } from '/assets/i18n.js';
import { h, clear, field, notice, errorText } from '/assets/ui.js';
import { liveSession } from '/assets/live.js';

const REFUSALS = ['invitation_used', 'invitation_expired', 'invitation_revoked'];

export async function joinPage(root, token) {
  let info;
  try {
    info = await api('GET', `/join/${encodeURIComponent(token)}`, undefined, { token: '' });
  } catch (err) {
    const code = REFUSALS.includes(err.code) ? err.code : err.status === 404 ? 'invitation_unknown' : null;
    clear(
      root,
      h(
        'section',
        { class: 'card refused', 'data-testid': 'join-refused', 'data-code': err.code || '' },
        h('h1', {}, code ? t(code) : t('error')),
        h('p', {}, code ? t('ask_new_link') : errorText(err)),
      ),
    );
    return;
  }
  const perms = info.policy.permissions.map((p) => t(`perm_${p}`));
  const joinButton = h('button', { type: 'button', class: 'primary', 'data-testid': 'join' }, t('join'));
  clear(
    root,
    h(
      'section',
      { class: 'card', 'data-testid': 'invitation' },
      h('h1', {}, t('you_are_invited')),
      h(
        'dl',
        {},
        h('dt', {}, t('session')),
        h('dd', { 'data-testid': 'subject' }, info.session_subject),
        h('dt', {}, t('invited_by')),
        h('dd', { 'data-testid': 'inviter' }, info.inviter_name),
        h('dt', {}, t('guest_name')),
        h('dd', {}, info.guest_name),
        h('dt', {}, `${t('allowed')} (${info.policy.name})`),
        h('dd', { 'data-testid': 'permissions' }, perms.join(', ')),
        h('dt', {}, t('expires')),
        h('dd', {}, when(info.expires_at)),
      ),
      h('p', { class: 'muted' }, t('link_once')),
      joinButton,
    ),
  );
  joinButton.addEventListener('click', () => {
    const view = h('section', { class: 'card' }, h('h1', {}, info.session_subject));
    const box = h('div');
    view.append(box);
    clear(root, view);
    liveSession(box, `${wsBase()}/ws/guest/${encodeURIComponent(token)}`);
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

export function customerPage(root, key) {
  let live = null;
  const share = screenShare(() => live);
  const box = h('div');
  clear(root, h('section', { class: 'card' }, h('h1', {}, t('customer_title')), box));
  live = liveSession(box, `${wsBase()}/ws/customer/${encodeURIComponent(key)}`, {
    aside: share.el,
    onEnd: () => share.end(),
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
