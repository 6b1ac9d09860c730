// The live session view shared by technicians, guests and customers: one WebSocket (opened
// again by itself when the network drops), the participants with their roles and the owner,
// the chat transcript, files both ways, the screen stream and, for holders of `control`,
// mouse and keyboard input to the customer's device.

import { t, translation, when } from '/assets/i18n.js';
import { h, clear, notice, dialog } from '/assets/ui.js';

const SCREEN = 1;
const INPUT = 2;
const FILE = 3;
// File data per binary frame (the broker takes frames up to 1 MiB).
const CHUNK = 256 * 1024;
// What the page sends at most per second, below the broker's 16 MiB/s per connection.
const FILE_BYTES_PER_SEC = 8 * 1024 * 1024;
// Close codes after which opening the socket again cannot help.
const FINAL = new Set([1000, 1001, 1002, 1007, 1008, 1009, 1011, 4001, 4002, 4003, 4004, 4005, 4006, 4008, 4010]);

// The text for a close code of the contract.
export function closeText(code, endedReason, reason) {
  switch (code) {
    case 4001:
      return t('inviter_left');
    case 4002:
      return endedReason ? t(`ended_reason_${endedReason}`) : t('session_ended');
    case 4003:
      return t('access_revoked');
    case 4004:
      return t('removed_by_owner');
    case 4005:
      return t('admission_refused');
    case 4006:
      return t('admission_timeout');
    case 4008:
      return t('too_slow');
    case 4010:
      return t('place_gone');
    case 1001:
      return t('ended_reason_shutdown');
    case 1008:
      return t('closed_policy');
    case 1009:
      return t('closed_too_big');
    case 1000:
      if (reason === 'replaced' || reason === 'resumed') return t('replaced_elsewhere');
      return endedReason ? t(`ended_reason_${endedReason}`) : t('disconnected');
    default:
      return endedReason ? t(`ended_reason_${endedReason}`) : t('disconnected');
  }
}

// A size in words: 1.5 MB, 320 kB, 12 B.
export function sizeText(bytes) {
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${Math.round(bytes / 1e3)} kB`;
  return `${bytes} B`;
}

function uuidBytes(id) {
  const hex = id.replace(/-/g, '');
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i += 1) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

function uuidText(bytes) {
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Screen frames are images: JPEG or PNG from a browser, SVG from the reference agent.
function imageType(bytes) {
  if (bytes[0] === 0x3c) return 'image/svg+xml';
  if (bytes[0] === 0x89) return 'image/png';
  return 'image/jpeg';
}

// Opens the session and renders it into `root`.
// `connect` is the WebSocket URL, or an async function giving a fresh one for every attempt
// (a technician's ticket works once); it may throw an ApiError that says why it cannot.
// Options: `aside` (extra content: invite form, screen share), `reconnect` (open the socket
// again when the network drops), `explain()` (async: why a connection that never got its
// welcome was refused, as `{text, next}` or null), `onEnd({code, text, next})`, `onWelcome`.
export function liveSession(root, connect, options = {}) {
  const state = {
    me: null,
    role: null,
    permissions: [],
    ownerId: null,
    participants: new Map(),
    away: new Set(),
    ended: null,
    endedReason: null,
    welcomed: false,
    // Waiting in the lobby with a place to come back to (`lobby` named our participant id).
    inLobby: false,
    leaving: false,
    grace: 15,
    fileMax: 50 * 1024 * 1024,
  };
  const status = h('p', { class: 'status', role: 'status', 'data-testid': 'live-status' }, t('connecting'));
  const people = h('ul', { class: 'participants', 'data-testid': 'participants' });
  const log = h('ol', { class: 'chat-log', role: 'log', 'aria-live': 'polite', 'data-testid': 'chat-log' });
  const input = h('input', { type: 'text', name: 'text', maxlength: 4000, 'aria-label': t('message'), autocomplete: 'off', 'data-testid': 'chat-input' });
  const form = h('form', { class: 'chat-form' }, input, h('button', { type: 'submit', 'data-testid': 'chat-send' }, t('send')));
  const noChat = h('p', { class: 'muted', hidden: true, 'data-testid': 'no-chat' }, t('no_chat_permission'));
  const screenImg = h('img', { alt: t('screen'), class: 'screen', 'data-testid': 'screen', hidden: true, draggable: 'false' });
  const screenNote = h('p', { class: 'muted' }, t('no_screen'));
  const controlButton = h('button', { type: 'button', hidden: true, 'data-testid': 'control-toggle' }, t('take_control'));
  const controlNote = h('p', { class: 'muted small', hidden: true, 'data-testid': 'control-note' }, t('control_on'));
  const screenFrame = h('div', { class: 'screen-frame', tabindex: '-1' }, screenNote, screenImg);
  const screenBox = h('section', { class: 'screen-box', hidden: true }, h('div', { class: 'screen-head' }, h('h3', {}, t('screen')), controlButton), controlNote, screenFrame);
  const fileInput = h('input', { type: 'file', 'aria-label': t('choose_file'), 'data-testid': 'file-input' });
  const fileList = h('ul', { class: 'files', 'data-testid': 'files' });
  const filesBox = h(
    'section',
    { class: 'files-box', hidden: true, 'data-testid': 'files-box' },
    h('h3', {}, t('files')),
    h('div', { class: 'inline' }, fileInput, h('button', { type: 'button', 'data-testid': 'send-file', onclick: () => pickAndSend() }, t('send_file'))),
    fileList,
  );
  const messages = h('div', { class: 'messages' });
  const recordingBadge = h('p', { class: 'recording-badge', hidden: true, role: 'status', 'data-testid': 'recording-badge' }, t('recording_on'));
  const controls = h('div', { class: 'buttons' });
  // Guests asking to join: the customer decides; technicians see them wait.
  const lobby = h('section', { class: 'lobby', hidden: true, 'data-testid': 'lobby' });
  const waitingGuests = new Map();
  const admissionToggle = h('button', { type: 'button', hidden: true, 'data-testid': 'admission-toggle' }, t('lobby_off'));
  const incoming = new Map();
  let screenUrl = null;
  let ws = null;
  let controlOn = false;
  let retryTimer = null;
  let retryDeadline = 0;

  // The screen first: it is what remote support is about.
  clear(
    root,
    status,
    recordingBadge,
    messages,
    lobby,
    screenBox,
    h(
      'div',
      { class: 'live' },
      h('section', { class: 'people' }, h('h3', {}, t('participants')), people, controls, admissionToggle),
      h('section', { class: 'chat' }, h('h3', {}, t('chat')), log, form, noChat),
      options.aside || null,
    ),
    filesBox,
  );

  function send(frame) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
  }

  function say(kind, text) {
    clear(messages, notice(kind, text));
  }

  function isOwner() {
    return !!state.me && state.ownerId === state.me;
  }

  function renderPeople() {
    const rows = [];
    if (!state.ended) {
      for (const p of state.participants.values()) {
        const isMe = p.id === state.me;
        const li = h(
          'li',
          { dataset: { role: p.role, participant: p.id }, class: state.away.has(p.id) ? 'away' : '' },
          h('span', { class: 'name' }, p.name),
          ' ',
          h('span', { class: `badge ${p.role}` }, t(`role_${p.role}`)),
          isMe ? h('span', { class: 'muted' }, ` (${t('you')})`) : null,
          state.away.has(p.id) ? h('span', { class: 'muted' }, ` (${t('away')})`) : null,
        );
        if (isOwner() && !isMe && p.role === 'technician') {
          li.append(' ', h('button', { type: 'button', class: 'small', onclick: () => send({ type: 'transfer_ownership', to: p.id }) }, t('make_owner')));
        }
        if (isOwner() && p.role === 'guest') {
          li.append(
            ' ',
            h(
              'button',
              {
                type: 'button',
                class: 'small danger',
                'data-testid': 'remove-guest',
                onclick: async () => {
                  const sure = await dialog(t('remove_guest'), h('p', {}, t('confirm_remove_guest', { name: p.name })), { submit: t('remove_guest'), danger: true });
                  if (sure) send({ type: 'remove_guest', participant_id: p.id });
                },
              },
              t('remove_guest'),
            ),
          );
        }
        rows.push(li);
      }
    }
    clear(people, rows);
    const buttons = [];
    if (!state.ended && state.welcomed && state.role !== 'customer') {
      buttons.push(
        h(
          'button',
          {
            type: 'button',
            'data-testid': 'leave',
            onclick: () => {
              state.leaving = true;
              send({ type: 'leave' });
            },
          },
          t('leave'),
        ),
      );
    }
    if (!state.ended && isOwner()) {
      buttons.push(
        h(
          'button',
          {
            type: 'button',
            class: 'danger',
            'data-testid': 'end-session',
            onclick: async () => {
              const sure = await dialog(t('end_session'), h('p', {}, t('confirm_end_session')), { submit: t('end_session'), danger: true });
              if (sure) send({ type: 'end_session' });
            },
          },
          t('end_session'),
        ),
      );
    }
    clear(controls, buttons);
  }

  const seen = new Set();
  function addChat(m) {
    // After a reconnect the broker replays its recent chat: each message shows once.
    if (m.id && seen.has(m.id)) return;
    if (m.id) seen.add(m.id);
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

  // ---- the lobby ---------------------------------------------------------------------

  function renderLobby() {
    const cards = [...waitingGuests.values()].map((w) => {
      const who = h(
        'div',
        {},
        h('strong', {}, w.name),
        ` · ${t('invited_by')} ${w.invited_by.name} · ${w.policy} (${w.permissions.map((p) => t(`perm_${p}`)).join(', ')})`,
        w.verified_email ? h('div', { class: 'muted small' }, `${t('verified_email')}: ${w.verified_email}`) : null,
      );
      const away = state.away.has(w.participant_id);
      const buttons =
        state.role === 'customer'
          ? h(
              'div',
              { class: 'buttons' },
              h('button', { type: 'button', class: 'primary', 'data-testid': 'admit', disabled: away, onclick: () => send({ type: 'admit', participant_id: w.participant_id }) }, t('admit')),
              h('button', { type: 'button', class: 'danger', 'data-testid': 'refuse', onclick: () => send({ type: 'refuse', participant_id: w.participant_id }) }, t('refuse')),
            )
          : h('p', { class: 'muted small' }, t('waits_for_customer'));
      const note = away ? h('p', { class: 'muted small', 'data-testid': 'guest-reconnecting' }, t('guest_reconnecting')) : null;
      return h('div', { class: `lobby-card${away ? ' away' : ''}`, 'data-testid': 'admission-request', dataset: { guest: w.participant_id } }, who, note, buttons);
    });
    clear(lobby, cards.length ? [h('h3', {}, t('asks_to_join')), ...cards] : []);
    lobby.hidden = cards.length === 0 || !!state.ended;
  }

  function renderAdmissionToggle() {
    const rule = state.admissionRule;
    const mayToggle = isOwner() && !state.ended && rule === 'technician';
    admissionToggle.hidden = !mayToggle && !(isOwner() && rule === 'always');
    admissionToggle.disabled = rule === 'always';
    admissionToggle.textContent = state.admissionRequired ? t('lobby_on') : t('lobby_off');
    admissionToggle.title = rule === 'always' ? t('lobby_always') : '';
    admissionToggle.onclick = () => send({ type: 'guest_admission', required: !state.admissionRequired });
  }

  // ---- files -------------------------------------------------------------------------

  function mayFiles() {
    return state.role === 'customer' || state.permissions.includes('files');
  }

  function fileRow(text, size) {
    const bar = h('progress', { max: String(size), value: '0' });
    const label = h('span', {}, text);
    const end = h('span', { class: 'muted' });
    const li = h('li', { 'data-testid': 'file' }, label, ' ', bar, ' ', end);
    fileList.prepend(li);
    return { li, bar, end };
  }

  async function sendFile(file) {
    if (file.size === 0) return;
    if (file.size > state.fileMax) {
      say('error', t('file_too_big_local', { name: file.name, max: sizeText(state.fileMax) }));
      return;
    }
    const id = crypto.randomUUID();
    const head = uuidBytes(id);
    send({ type: 'file_offer', transfer_id: id, name: file.name, size: file.size });
    const row = fileRow(t('file_outgoing', { name: file.name, size: sizeText(file.size) }), file.size);
    row.li.dataset.direction = 'out';
    const started = performance.now();
    let offset = 0;
    while (offset < file.size) {
      if (!ws || ws.readyState !== WebSocket.OPEN || state.ended) {
        clear(row.end, t('file_failed'));
        return;
      }
      // Keep the socket's own buffer short and the rate under the broker's limit.
      const ahead = offset / FILE_BYTES_PER_SEC - (performance.now() - started) / 1000;
      if (ws.bufferedAmount > 2 * CHUNK || ahead > 0) {
        await sleep(Math.max(20, ahead * 1000));
        continue;
      }
      const data = new Uint8Array(await file.slice(offset, offset + CHUNK).arrayBuffer());
      const frame = new Uint8Array(17 + data.byteLength);
      frame[0] = FILE;
      frame.set(head, 1);
      frame.set(data, 17);
      ws.send(frame);
      offset += data.byteLength;
      row.bar.value = offset;
    }
    row.li.dataset.done = 'true';
    clear(row.end, t('file_done'));
  }

  async function pickAndSend() {
    const files = [...fileInput.files];
    fileInput.value = '';
    for (const f of files) await sendFile(f);
  }

  function onFileOffer(m) {
    const row = fileRow(t('file_incoming', { from: m.from.name, name: m.name, size: sizeText(m.size) }), m.size);
    row.li.dataset.direction = 'in';
    incoming.set(m.transfer_id, { name: m.name, size: m.size, got: 0, parts: [], row });
  }

  function onFileChunk(bytes) {
    if (bytes.length < 17) return;
    const id = uuidText(bytes.subarray(1, 17));
    const file = incoming.get(id);
    if (!file) return;
    const data = bytes.slice(17);
    file.parts.push(data);
    file.got += data.byteLength;
    file.row.bar.value = file.got;
    if (file.got >= file.size) {
      incoming.delete(id);
      const blob = new Blob(file.parts);
      const url = URL.createObjectURL(blob);
      // The received file itself, for the console's own tests.
      file.row.li.fileBlob = blob;
      file.row.li.dataset.done = 'true';
      clear(file.row.end, h('a', { href: url, download: file.name, class: 'button', 'data-testid': 'save-file' }, t('save_file')));
    }
  }

  // ---- remote control (channel 2) ----------------------------------------------------

  function position(ev) {
    const r = screenImg.getBoundingClientRect();
    const x = Math.min(65535, Math.max(0, Math.round(((ev.clientX - r.left) / r.width) * 65535)));
    const y = Math.min(65535, Math.max(0, Math.round(((ev.clientY - r.top) / r.height) * 65535)));
    return [x, y];
  }

  function sendInput(bytes) {
    if (!controlOn || !ws || ws.readyState !== WebSocket.OPEN) return;
    const frame = new Uint8Array(bytes.length + 1);
    frame[0] = INPUT;
    frame.set(bytes, 1);
    ws.send(frame);
  }

  function pointer(kind, ev, button) {
    const [x, y] = position(ev);
    const b = [];
    b.push(kind);
    if (button !== undefined) b.push(button);
    b.push(x >> 8, x & 255, y >> 8, y & 255);
    sendInput(Uint8Array.from(b));
  }

  function key(kind, ev) {
    const name = new TextEncoder().encode(ev.key).slice(0, 32);
    const b = new Uint8Array(name.length + 1);
    b[0] = kind;
    b.set(name, 1);
    sendInput(b);
  }

  let lastMove = 0;
  screenImg.addEventListener('mousemove', (ev) => {
    const now = performance.now();
    if (now - lastMove < 33) return;
    lastMove = now;
    pointer(1, ev);
  });
  screenImg.addEventListener('mousedown', (ev) => {
    if (!controlOn) return;
    ev.preventDefault();
    screenFrame.focus({ preventScroll: true });
    pointer(2, ev, ev.button);
  });
  screenImg.addEventListener('mouseup', (ev) => pointer(3, ev, ev.button));
  screenImg.addEventListener('contextmenu', (ev) => controlOn && ev.preventDefault());
  screenImg.addEventListener(
    'wheel',
    (ev) => {
      if (!controlOn) return;
      ev.preventDefault();
      const dx = Math.max(-32768, Math.min(32767, Math.round(ev.deltaX)));
      const dy = Math.max(-32768, Math.min(32767, Math.round(ev.deltaY)));
      const b = new Uint8Array(5);
      const view = new DataView(b.buffer);
      b[0] = 4;
      view.setInt16(1, dx);
      view.setInt16(3, dy);
      sendInput(b);
    },
    { passive: false },
  );
  screenFrame.addEventListener('keydown', (ev) => {
    if (!controlOn) return;
    ev.preventDefault();
    key(5, ev);
  });
  screenFrame.addEventListener('keyup', (ev) => {
    if (!controlOn) return;
    ev.preventDefault();
    key(6, ev);
  });
  controlButton.addEventListener('click', () => {
    controlOn = !controlOn;
    controlButton.textContent = controlOn ? t('release_control') : t('take_control');
    controlButton.setAttribute('aria-pressed', String(controlOn));
    controlNote.hidden = !controlOn;
    screenFrame.classList.toggle('controlling', controlOn);
    if (controlOn) screenFrame.focus({ preventScroll: true });
  });

  // ---- the connection ----------------------------------------------------------------

  function finish(text, detail = {}) {
    if (state.ended) return;
    state.ended = text;
    if (retryTimer) clearTimeout(retryTimer);
    status.textContent = text;
    status.className = `status ended ${detail.kind === 'left' ? 'left' : ''}`;
    status.dataset.ended = 'true';
    if (detail.code !== undefined) status.dataset.closeCode = String(detail.code);
    input.disabled = true;
    form.hidden = true;
    fileInput.disabled = true;
    controlOn = false;
    // Nothing of the session stays on screen once it is over for this page: no stale list,
    // no frozen image of the customer's screen.
    state.participants.clear();
    state.away.clear();
    waitingGuests.clear();
    recordingBadge.hidden = true;
    renderLobby();
    admissionToggle.hidden = true;
    delete status.dataset.waiting;
    screenBox.hidden = true;
    if (screenUrl) URL.revokeObjectURL(screenUrl);
    screenUrl = null;
    screenImg.removeAttribute('src');
    for (const f of incoming.values()) clear(f.row.end, t('file_failed'));
    incoming.clear();
    renderPeople();
    if (options.onEnd) options.onEnd({ text, ...detail });
  }

  function onWelcome(m) {
    const again = state.welcomed;
    state.welcomed = true;
    state.inLobby = false;
    state.me = m.participant_id;
    state.role = m.role;
    state.permissions = m.permissions || [];
    state.ownerId = m.owner_id;
    state.participants = new Map(m.participants.map((p) => [p.id, { ...p }]));
    state.away.clear();
    for (const p of m.participants) if (p.away) state.away.add(p.id);
    if (m.reconnect_grace_secs) state.grace = m.reconnect_grace_secs;
    if (m.file_max_bytes) state.fileMax = m.file_max_bytes;
    status.textContent = t('connected');
    status.className = 'status';
    status.dataset.connected = 'true';
    status.dataset.me = m.participant_id;
    delete status.dataset.reconnecting;
    const chat = state.permissions.includes('chat');
    form.hidden = !chat;
    noChat.hidden = chat;
    screenBox.hidden = !(state.permissions.includes('view') && state.role !== 'customer');
    controlButton.hidden = !(state.permissions.includes('control') && state.role !== 'customer');
    filesBox.hidden = !mayFiles();
    state.admissionRequired = !!m.guest_admission_required;
    recordingBadge.hidden = !m.recording;
    state.admissionRule = m.guest_admission || 'off';
    if (again) say('ok', t('reconnected'));
    renderPeople();
    renderAdmissionToggle();
    renderLobby();
    if (options.onWelcome) options.onWelcome(m, api, again);
  }

  function onText(data) {
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      return;
    }
    switch (m.type) {
      case 'welcome':
        onWelcome(m);
        break;
      case 'participant_joined':
        state.participants.set(m.participant.id, { ...m.participant });
        renderPeople();
        if (options.onPeople) options.onPeople(state);
        break;
      case 'participant_left':
        state.participants.delete(m.participant_id);
        state.away.delete(m.participant_id);
        renderPeople();
        if (options.onPeople) options.onPeople(state);
        break;
      case 'participant_away':
        state.away.add(m.participant_id);
        renderPeople();
        renderLobby();
        break;
      case 'participant_back':
        state.away.delete(m.participant_id);
        renderPeople();
        renderLobby();
        break;
      case 'owner_changed':
        setOwner(m.owner_id);
        renderPeople();
        renderAdmissionToggle();
        break;
      case 'lobby':
        status.textContent = t('waiting_for_admission');
        status.className = 'status reconnecting';
        status.dataset.waiting = 'true';
        delete status.dataset.reconnecting;
        if (m.participant_id) {
          // Our place in the lobby: a dropped connection comes back to it.
          state.me = m.participant_id;
          state.inLobby = true;
          if (m.reconnect_grace_secs) state.grace = m.reconnect_grace_secs;
          retryDeadline = 0;
        }
        if (options.onLobby) options.onLobby(m);
        break;
      case 'admission_request':
        waitingGuests.set(m.participant_id, m);
        if (m.away) state.away.add(m.participant_id);
        else state.away.delete(m.participant_id);
        renderLobby();
        break;
      case 'admission_decided':
        waitingGuests.delete(m.participant_id);
        renderLobby();
        break;
      case 'guest_admission':
        state.admissionRequired = m.required;
        renderAdmissionToggle();
        say('ok', m.required ? t('lobby_now_on') : t('lobby_now_off'));
        break;
      case 'chat':
        addChat(m);
        break;
      case 'file_offer':
        onFileOffer(m);
        break;
      case 'error':
        say('error', translation(`err_${m.code}`) || t('err_forbidden'));
        break;
      case 'session_ended':
        state.endedReason = m.reason;
        break;
      default:
        break;
    }
  }

  function onBinary(buffer) {
    const bytes = new Uint8Array(buffer);
    if (bytes.length < 2) return;
    if (bytes[0] === SCREEN && !state.ended) {
      if (screenUrl) URL.revokeObjectURL(screenUrl);
      const payload = bytes.subarray(1);
      screenUrl = URL.createObjectURL(new Blob([payload], { type: imageType(payload) }));
      screenImg.src = screenUrl;
      screenImg.hidden = false;
      screenNote.hidden = true;
    } else if (bytes[0] === FILE) {
      onFileChunk(bytes);
    }
  }

  async function onClose(ev) {
    if (state.ended) return;
    if (state.leaving) {
      finish(t('you_left'), { kind: 'left', code: ev.code });
      return;
    }
    // 1001 after `session_ended` is the end of the session (a broker that stops); 1001 alone
    // is a node of a cluster handing the session over: open again, another node takes it.
    const handedOver = ev.code === 1001 && !state.endedReason;
    const final = (FINAL.has(ev.code) && !handedOver) || state.endedReason;
    const placed = state.welcomed || state.inLobby;
    if (!placed || final || !options.reconnect) {
      // Refused before the welcome (the browser only says 1006): ask the page why.
      const why = !placed && !FINAL.has(ev.code) && options.explain ? await options.explain().catch(() => null) : null;
      if (why) {
        finish(why.text, { code: why.code || ev.code, kind: 'refused', next: why.next });
      } else {
        finish(closeText(ev.code, state.endedReason, ev.reason), { code: ev.code, reason: state.endedReason, kind: final ? 'closed' : 'lost' });
      }
      return;
    }
    // The network dropped: open again until the place kept for us (the grace) is gone.
    if (!retryDeadline) retryDeadline = Date.now() + (state.grace + 5) * 1000;
    status.textContent = t('reconnecting');
    status.className = 'status reconnecting';
    status.dataset.reconnecting = 'true';
    delete status.dataset.connected;
    scheduleRetry(1000);
  }

  function scheduleRetry(delay) {
    if (retryTimer) clearTimeout(retryTimer);
    retryTimer = setTimeout(async () => {
      retryTimer = null;
      if (state.ended) return;
      if (Date.now() > retryDeadline) {
        finish(t('connection_gone'), { kind: 'lost' });
        return;
      }
      const opened = await open();
      if (!opened) scheduleRetry(Math.min(delay * 2, 4000));
    }, delay);
  }

  // One attempt to open the socket; false when the URL could not be had (offline).
  async function open() {
    let url;
    try {
      url = typeof connect === 'function' ? await connect(state.me) : connect;
    } catch (err) {
      if (err && err.status > 0) {
        // The broker answered: the session is over or no longer ours.
        const text = (err.code && translation(`err_${err.code}`)) || err.message || t('disconnected');
        finish(text, { kind: 'refused', status: err.status });
        return true;
      }
      return false;
    }
    const socket = new WebSocket(url);
    socket.binaryType = 'arraybuffer';
    ws = socket;
    socket.addEventListener('message', (ev) => {
      if (socket !== ws) return;
      if (typeof ev.data === 'string') onText(ev.data);
      else onBinary(ev.data);
    });
    socket.addEventListener('close', (ev) => {
      if (socket !== ws) return;
      onClose(ev);
    });
    socket.addEventListener('open', () => {
      if (socket === ws) retryDeadline = 0;
    });
    return true;
  }

  // Back online: try at once rather than waiting for the next attempt.
  const online = () => {
    if (retryTimer && !state.ended) scheduleRetry(0);
  };
  window.addEventListener('online', online);

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    send({ type: 'chat', text });
    input.value = '';
  });

  const api = {
    state,
    send,
    get ws() {
      return ws;
    },
    // Sends a binary frame on `channel` unless the socket is backed up (1 MiB queued).
    sendBinary(channel, bytes) {
      if (!ws || ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > 1 << 20) return false;
      const frame = new Uint8Array(bytes.byteLength + 1);
      frame[0] = channel;
      frame.set(new Uint8Array(bytes), 1);
      ws.send(frame);
      return true;
    },
    sendFile,
    // Leaves for good (the page is closed or the user signs out).
    close() {
      window.removeEventListener('online', online);
      if (retryTimer) clearTimeout(retryTimer);
      state.leaving = true;
      if (ws && ws.readyState === WebSocket.OPEN) ws.close(1000);
    },
  };
  // The console's own browser tests reach the connection here (to drop it, as a network would).
  root.liveSession = api;
  open();
  return api;
}
