// The live session view shared by technicians, guests and customers: one WebSocket, the
// participants with their roles and the owner, the chat transcript, and the screen stream.

import { t, translation, when } from '/assets/i18n.js';
import { h, clear, notice } from '/assets/ui.js';

const SCREEN = 1;

// The text for a close code of the contract.
function closeText(code, endedReason) {
  switch (code) {
    case 4001:
      return t('inviter_left');
    case 4002:
      return endedReason ? t(`ended_reason_${endedReason}`) : t('session_ended');
    case 4003:
      return t('access_revoked');
    case 4008:
      return t('too_slow');
    case 1001:
      return t('ended_reason_shutdown');
    default:
      return endedReason ? t(`ended_reason_${endedReason}`) : t('disconnected');
  }
}

// Opens `url` and renders the session into `root`. `options.aside` is extra content (invite
// form, screen-share controls); `options.onEnd(kind)` runs once the connection is over.
export function liveSession(root, url, options = {}) {
  const state = { me: null, role: null, permissions: [], ownerId: null, participants: new Map(), ended: null };
  const status = h('p', { class: 'status', role: 'status', 'data-testid': 'live-status' }, t('connecting'));
  const people = h('ul', { class: 'participants', 'data-testid': 'participants' });
  const log = h('ol', { class: 'chat-log', role: 'log', 'aria-live': 'polite', 'data-testid': 'chat-log' });
  const input = h('input', { type: 'text', name: 'text', maxlength: 4000, 'aria-label': t('message'), autocomplete: 'off', 'data-testid': 'chat-input' });
  const form = h('form', { class: 'chat-form' }, input, h('button', { type: 'submit', 'data-testid': 'chat-send' }, t('send')));
  const screenImg = h('img', { alt: t('screen'), class: 'screen', 'data-testid': 'screen', hidden: true });
  const screenNote = h('p', { class: 'muted' }, t('no_screen'));
  const screenBox = h('section', { class: 'screen-box', hidden: true }, h('h3', {}, t('screen')), screenNote, screenImg);
  const messages = h('div', { class: 'messages' });
  const controls = h('div', { class: 'buttons' });
  let screenUrl = null;

  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';

  clear(
    root,
    status,
    messages,
    h(
      'div',
      { class: 'live' },
      h('section', { class: 'people' }, h('h3', {}, t('participants')), people, controls),
      h('section', { class: 'chat' }, h('h3', {}, t('chat')), log, form),
      options.aside || null,
    ),
    screenBox,
  );

  function send(frame) {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
  }

  function roleLabel(p) {
    return t(`role_${p.role}`);
  }

  function renderPeople() {
    const rows = [];
    for (const p of state.participants.values()) {
      const isMe = p.id === state.me;
      const li = h(
        'li',
        { dataset: { role: p.role, participant: p.id } },
        h('span', { class: 'name' }, p.name),
        ' ',
        h('span', { class: `badge ${p.role}` }, roleLabel(p)),
        isMe ? h('span', { class: 'muted' }, ` (${t('you')})`) : null,
      );
      if (state.ownerId === state.me && !isMe && p.role === 'technician') {
        li.append(' ', h('button', { type: 'button', class: 'small', onclick: () => send({ type: 'transfer_ownership', to: p.id }) }, t('make_owner')));
      }
      rows.push(li);
    }
    clear(people, rows);
    const buttons = [];
    if (!state.ended && (state.role === 'owner' || state.role === 'technician' || state.role === 'guest')) {
      buttons.push(h('button', { type: 'button', 'data-testid': 'leave', onclick: () => send({ type: 'leave' }) }, t('leave')));
    }
    if (!state.ended && state.ownerId === state.me) {
      buttons.push(h('button', { type: 'button', class: 'danger', 'data-testid': 'end-session', onclick: () => send({ type: 'end_session' }) }, t('end_session')));
    }
    clear(controls, buttons);
  }

  function addChat(m) {
    const mine = m.from && m.from.id === state.me;
    log.append(
      h(
        'li',
        { class: mine ? 'mine' : '', dataset: { role: m.from?.role || '' } },
        h('span', { class: 'from' }, m.from?.name || '?'),
        h('time', { datetime: m.at }, when(m.at)),
        h('p', { class: 'text' }, m.text),
      ),
    );
    log.scrollTop = log.scrollHeight;
  }

  function setOwner(ownerId) {
    for (const p of state.participants.values()) {
      if (p.role === 'owner' && p.id !== ownerId) p.role = 'technician';
      if (p.id === ownerId) p.role = 'owner';
    }
    state.ownerId = ownerId;
    const me = state.participants.get(state.me);
    if (me && (state.role === 'owner' || state.role === 'technician')) state.role = me.role;
  }

  function finish(text) {
    if (state.ended) return;
    state.ended = text;
    status.textContent = text;
    status.className = 'status ended';
    status.dataset.ended = 'true';
    input.disabled = true;
    renderPeople();
    if (options.onEnd) options.onEnd(text);
  }

  ws.addEventListener('open', () => {
    status.textContent = t('connected');
  });
  ws.addEventListener('message', (ev) => {
    if (typeof ev.data !== 'string') {
      const bytes = new Uint8Array(ev.data);
      if (bytes.length > 1 && bytes[0] === SCREEN) {
        if (screenUrl) URL.revokeObjectURL(screenUrl);
        screenUrl = URL.createObjectURL(new Blob([bytes.subarray(1)]));
        screenImg.src = screenUrl;
        screenImg.hidden = false;
        screenNote.hidden = true;
      }
      return;
    }
    let m;
    try {
      m = JSON.parse(ev.data);
    } catch {
      return;
    }
    switch (m.type) {
      case 'welcome':
        state.me = m.participant_id;
        state.role = m.role;
        state.permissions = m.permissions || [];
        state.ownerId = m.owner_id;
        state.participants = new Map(m.participants.map((p) => [p.id, { ...p }]));
        status.textContent = t('connected');
        status.dataset.connected = 'true';
        screenBox.hidden = !(state.permissions.includes('view') && state.role !== 'customer');
        renderPeople();
        if (options.onWelcome) options.onWelcome(m, api);
        break;
      case 'participant_joined':
        state.participants.set(m.participant.id, { ...m.participant });
        renderPeople();
        break;
      case 'participant_left':
        state.participants.delete(m.participant_id);
        renderPeople();
        break;
      case 'owner_changed':
        setOwner(m.owner_id);
        renderPeople();
        break;
      case 'chat':
        addChat(m);
        break;
      case 'error':
        clear(messages, notice('error', translation(`err_${m.code}`) || `${m.code}: ${m.message}`));
        break;
      case 'session_ended':
        state.endedReason = m.reason;
        finish(t(`ended_reason_${m.reason}`));
        break;
      default:
        break;
    }
  });
  ws.addEventListener('close', (ev) => {
    finish(closeText(ev.code, state.endedReason));
    status.dataset.closeCode = String(ev.code);
  });

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    send({ type: 'chat', text });
    input.value = '';
  });

  const api = {
    state,
    ws,
    send,
    // Sends a binary frame on `channel` unless the socket is backed up (1 MiB queued).
    sendBinary(channel, bytes) {
      if (ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > 1 << 20) return false;
      const frame = new Uint8Array(bytes.byteLength + 1);
      frame[0] = channel;
      frame.set(new Uint8Array(bytes), 1);
      ws.send(frame);
      return true;
    },
    close() {
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
    },
  };
  return api;
}
