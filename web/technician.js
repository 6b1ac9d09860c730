// Technicians: live sessions (a list that updates itself), one session (participants, chat,
// files, screen and control, ownership, inviting a guest) that stays connected while the user
// moves around the console, and the reports of ended sessions with filters and export.

import { api, wsBase, token } from '/assets/api.js';
import { t, when, why } from '/assets/i18n.js';
import { h, clear, field, select, notice, errorText, table } from '/assets/ui.js';
import { liveSession, sizeText } from '/assets/live.js';

// Live sessions of this tab: id → {view, live, subject}. Leaving the session's page keeps its
// socket; the dock under the header leads back.
const docked = new Map();
let dockEl = null;
let shownSession = null;

const resumeKey = (id) => `sb.resume.${id}`;

// Where the dock is drawn (app.js hands over its element once).
export function attachDock(el) {
  dockEl = el;
  renderDock();
}

// Draws the dock: every live session of this tab but the one on screen.
export function renderDock() {
  if (!dockEl) return;
  const items = [...docked.entries()].filter(([id, d]) => id !== shownSession && !d.live.state.ended);
  clear(
    dockEl,
    items.map(([id, d]) =>
      h(
        'div',
        { class: 'dock-item', 'data-testid': 'dock', dataset: { session: id } },
        h('span', { class: 'live-dot', 'aria-hidden': 'true' }),
        h('strong', {}, t('in_session_dock', { subject: d.subject })),
        h('span', { class: 'muted', 'data-testid': 'dock-status' }, d.live.state.ended ? '' : d.live.ws && d.live.ws.readyState === WebSocket.OPEN ? t('connected') : t('reconnecting')),
        h('a', { href: `#/sessions/${id}`, class: 'button primary', 'data-testid': 'dock-back' }, t('back_to_session')),
      ),
    ),
  );
  dockEl.hidden = items.length === 0;
}

// The page left a session's view (another page is shown).
export function leftSessionPage() {
  shownSession = null;
  renderDock();
}

// Signing out: every session of this tab is left.
export function closeAllSessions() {
  for (const d of docked.values()) d.live.close();
  docked.clear();
  renderDock();
}

function minutesSince(iso) {
  return Math.max(0, Math.floor((Date.now() - new Date(iso).getTime()) / 60000));
}

function customerState(s) {
  const customer = s.participants.some((p) => p.role === 'customer');
  const technicians = s.participants.filter((p) => p.role === 'owner' || p.role === 'technician').length;
  if (customer && technicians === 0) return h('span', { class: 'badge warn', 'data-testid': 'waiting' }, t('waiting_customer'));
  if (customer) return h('span', { class: 'badge customer' }, t('customer_connected'));
  return h('span', { class: 'muted' }, t('no_customer'));
}

function liveTable(live) {
  if (!live.length) return h('p', { class: 'muted' }, t('no_sessions'));
  return table(
    [t('subject'), t('age'), t('participants'), t('role_customer'), ''],
    live.map((s) => [
      s.subject,
      t('minutes_short', { n: minutesSince(s.started_at) }),
      s.participants.map((p) => `${p.name} (${t(`role_${p.role}`)})`).join(', ') || t('nothing'),
      customerState(s),
      h('a', { href: `#/sessions/${s.id}`, class: 'button', 'data-testid': 'open-session' }, docked.has(s.id) ? t('back_to_session') : t('open')),
    ]),
    { 'data-testid': 'live-sessions' },
  );
}

async function newSessionForm(ctx, msg) {
  // Online devices the caller sees: a session on one asks its agent to join as the customer.
  let devices = [];
  if ((ctx.me.rights.areas || []).includes('devices')) {
    devices = await api('GET', `/accounts/${ctx.accountId}/devices`).catch(() => []);
  }
  const form = h(
    'form',
    { class: 'grid', 'data-testid': 'new-session' },
    field(t('subject'), { name: 'subject', required: true, maxlength: 200 }),
    devices.length
      ? select(t('start_on_device'), 'device_id', [['', t('no_device')], ...devices.map((d) => [d.id, `${d.name} (${d.serial})${d.online ? '' : ` ${t('device_offline_suffix')}`}`])], '')
      : null,
    h('button', { type: 'submit', class: 'primary' }, t('create')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const body = { subject: data.get('subject') };
    if (data.get('device_id')) body.device_id = data.get('device_id');
    try {
      const created = await api('POST', '/sessions', body);
      location.hash = `#/sessions/${created.id}`;
    } catch (err) {
      clear(msg, notice('error', errorText(err)));
    }
  });
  return form;
}

export async function sessionsPage(root, ctx) {
  const [live, users] = await Promise.all([api('GET', '/sessions'), api('GET', `/accounts/${ctx.accountId}/users`).catch(() => [])]);
  const msg = h('div');
  const liveBox = h('div', {}, liveTable(live));
  const endedBox = h('div');
  const technicians = users.filter((u) => u.kind !== 'service');
  const filters = h(
    'form',
    { class: 'grid filters', 'data-testid': 'session-filters' },
    field(t('search_subject'), { name: 'q', type: 'search', maxlength: 200 }),
    select(t('technician'), 'technician', [['', t('anyone')], ...technicians.map((u) => [u.id, `${u.first_name} ${u.last_name}`.trim() || u.username])], ''),
    field(t('date_from'), { name: 'from', type: 'date' }),
    field(t('date_to'), { name: 'to', type: 'date' }),
    h('button', { type: 'submit' }, t('filter')),
  );
  async function loadEnded() {
    const data = new FormData(filters);
    const q = new URLSearchParams({ state: 'ended' });
    if (data.get('q')) q.set('q', data.get('q'));
    if (data.get('technician')) q.set('technician', data.get('technician'));
    if (data.get('from')) q.set('from', new Date(`${data.get('from')}T00:00:00`).toISOString());
    if (data.get('to')) q.set('to', new Date(new Date(`${data.get('to')}T00:00:00`).getTime() + 86400000).toISOString());
    try {
      const ended = await api('GET', `/sessions?${q}`);
      clear(
        endedBox,
        ended.length
          ? table(
              [t('subject'), t('started'), t('duration'), t('reason'), ''],
              ended.map((s) => [s.subject, when(s.started_at), duration(s.started_at, s.ended_at), why(s.end_reason), h('a', { href: `#/reports/${s.id}`, class: 'button' }, t('report'))]),
              { 'data-testid': 'ended-sessions' },
            )
          : h('p', { class: 'muted' }, t('no_ended_sessions')),
      );
    } catch (err) {
      clear(endedBox, notice('error', errorText(err)));
    }
  }
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    loadEnded();
  });
  clear(
    root,
    h('section', { class: 'card' }, h('h1', {}, t('new_session')), await newSessionForm(ctx, msg), msg),
    h('section', { class: 'card' }, h('h2', {}, t('live_sessions')), liveBox),
    h('section', { class: 'card' }, h('h2', {}, t('ended_sessions')), filters, endedBox),
  );
  await loadEnded();
  // The live list follows by itself: who is in, whether a customer waits, how long it runs.
  const timer = setInterval(async () => {
    try {
      clear(liveBox, liveTable(await api('GET', '/sessions')));
    } catch {
      // The next round tries again.
    }
  }, 5000);
  ctx.onLeave(() => clearInterval(timer));
}

function duration(from, to) {
  if (!from || !to) return t('nothing');
  const secs = Math.max(0, Math.round((new Date(to) - new Date(from)) / 1000));
  const hrs = Math.floor(secs / 3600);
  const mins = Math.floor((secs % 3600) / 60);
  const rest = secs % 60;
  return hrs ? `${hrs} h ${mins} min` : mins ? `${mins} min ${rest} s` : `${rest} s`;
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const tmp = h('textarea', {}, text);
    document.body.append(tmp);
    tmp.select();
    document.execCommand('copy');
    tmp.remove();
  }
  button.textContent = t('copied');
}

function linkRow(label, url, testid) {
  const input = h('input', { type: 'text', readonly: true, value: url, 'aria-label': label, 'data-testid': testid });
  const button = h('button', { type: 'button' }, t('copy'));
  button.addEventListener('click', () => copy(url, button));
  return h('div', { class: 'link-row' }, h('label', {}, label), h('div', { class: 'inline' }, input, button));
}

function inviteForm(ctx, sessionId, policies, defaultPolicy) {
  const msg = h('div');
  const result = h('div', { 'data-testid': 'invitation-result' });
  const pending = [];
  // No silent choice: the account's default policy, else the technician picks one.
  const options = [['', t('choose_policy')], ...policies.map((p) => [p.id, `${p.name} (${p.permissions.map((x) => t(`perm_${x}`)).join(', ')})`])];
  const policySelect = select(t('policy'), 'policy_id', options, defaultPolicy || '');
  policySelect.querySelector('select').required = true;
  const chatWarning = h('p', { class: 'notice warn', hidden: true, 'data-testid': 'policy-no-chat' }, t('policy_no_chat_warning'));
  const warn = () => {
    const p = policies.find((x) => x.id === form.elements.policy_id.value);
    chatWarning.hidden = !p || p.permissions.includes('chat');
  };
  const form = h(
    'form',
    { 'data-testid': 'invite-form' },
    policySelect,
    chatWarning,
    field(t('guest_name'), { name: 'guest_name', required: true, maxlength: 100 }),
    field(t('email_optional'), { name: 'email', type: 'email' }),
    field(t('message_to_guest'), { name: 'message', tag: 'textarea', rows: 2, maxlength: 1000 }),
    field(t('internal_comment'), { name: 'comment', maxlength: 1000 }),
    msg,
    h('button', { type: 'submit', class: 'primary' }, t('create_link')),
  );
  form.elements.policy_id.addEventListener('change', warn);
  warn();
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const body = { policy_id: data.get('policy_id'), guest_name: data.get('guest_name'), comment: data.get('comment') || '', message: data.get('message') || '' };
    if (data.get('email')) body.email = data.get('email');
    try {
      const inv = await api('POST', `/sessions/${sessionId}/invitations`, body);
      clear(msg);
      const revoke = h('button', { type: 'button', class: 'danger', 'data-testid': 'revoke-invitation' }, t('revoke'));
      const state = h('p', { class: 'muted', 'data-testid': 'invitation-state' }, `${t('expires')} ${when(inv.expires_at)}`);
      const box = h(
        'div',
        { class: 'invitation', dataset: { guest: inv.guest_name } },
        h('p', {}, h('strong', {}, inv.guest_name)),
        linkRow(t('invitation_url'), inv.url, 'invitation-url'),
        h('p', {}, h('a', { href: inv.mailto }, t('mail_client'))),
        inv.mailed ? notice('ok', t('mailed')) : null,
        state,
        revoke,
      );
      const entry = { name: inv.guest_name, box, state, revoke, open: true };
      pending.push(entry);
      revoke.addEventListener('click', async () => {
        try {
          await api('DELETE', `/invitations/${inv.id}`);
          box.remove();
        } catch (err) {
          // Used, expired or already revoked: nothing left to revoke; say why.
          revoke.remove();
          box.append(notice(err.status === 410 ? 'ok' : 'error', errorText(err)));
        }
      });
      result.prepend(box);
      form.reset();
      // The account's default policy stays chosen for the next guest.
      form.elements.policy_id.value = defaultPolicy || '';
      warn();
    } catch (err) {
      clear(msg, notice('error', errorText(err)));
    }
  });
  const section = h('section', { class: 'invite', 'data-testid': 'invite' }, h('h3', {}, t('invite')), form, result);
  // A guest that joined used its link: the box says so instead of offering a revoke.
  section.guestJoined = (name) => {
    const entry = pending.find((p) => p.open && p.name === name);
    if (!entry) return;
    entry.open = false;
    entry.revoke.remove();
    clear(entry.state, t('inv_redeemed'));
    entry.box.dataset.used = 'true';
  };
  return section;
}

export async function sessionPage(root, ctx, id) {
  shownSession = id;
  const existing = docked.get(id);
  if (existing && !existing.live.state.ended) {
    clear(root, existing.view);
    renderDock();
    ctx.onLeave(() => leftSessionPage());
    return;
  }
  const session = await api('GET', `/sessions/${id}`);
  if (session.state !== 'open') {
    location.hash = `#/reports/${id}`;
    return;
  }
  const [policies, account] = await Promise.all([
    api('GET', `/accounts/${ctx.accountId}/policies`).catch(() => []),
    api('GET', `/accounts/${ctx.accountId}`).catch(() => ({})),
  ]);
  const box = h('div');
  const top = h('div', { class: 'session-top' });
  const aside = inviteForm(ctx, id, policies, account.default_policy_id);
  const view = h(
    'section',
    { class: 'card', 'data-testid': 'session-view' },
    h('h1', { 'data-testid': 'session-subject' }, session.subject),
    top,
    session.customer_url ? linkRow(t('customer_link'), session.customer_url, 'customer-link') : null,
    box,
  );
  clear(root, view);
  // Each attempt gets its own ticket; coming back names our place (`resume`).
  const connect = async (me) => {
    const { ticket } = await api('POST', '/ws-tickets', { session_id: id });
    const resume = me || sessionStorage.getItem(resumeKey(id));
    return `${wsBase()}/ws/sessions/${id}?ticket=${encodeURIComponent(ticket)}${resume ? `&resume=${encodeURIComponent(resume)}` : ''}`;
  };
  const live = liveSession(box, connect, {
    aside,
    reconnect: true,
    onWelcome: (m) => {
      sessionStorage.setItem(resumeKey(id), m.participant_id);
      renderDock();
    },
    onPeople: (state) => {
      for (const p of state.participants.values()) if (p.role === 'guest') aside.guestJoined(p.name);
    },
    onEnd: (end) => {
      sessionStorage.removeItem(resumeKey(id));
      docked.delete(id);
      aside.remove();
      view.querySelector('[data-testid="customer-link"]')?.closest('.link-row')?.remove();
      clear(
        top,
        end.kind === 'left' ? h('p', { class: 'muted' }, t('left_session_report_hint')) : null,
        h('div', { class: 'buttons' }, h('a', { href: `#/reports/${id}`, class: 'button primary', 'data-testid': 'report-link' }, t('report')), h('a', { href: '#/sessions', class: 'button', 'data-testid': 'back-to-sessions' }, t('back_to_sessions'))),
      );
      renderDock();
    },
  });
  docked.set(id, { view, live, subject: session.subject });
  renderDock();
  ctx.onLeave(() => leftSessionPage());
}

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// The report as CSV: one row per thing that happened, in time order.
function reportCsv(r, name) {
  const rows = [['when', 'what', 'who', 'role', 'detail']];
  for (const p of r.participants) {
    rows.push([p.joined_at, 'joined', p.name, p.role, '']);
    if (p.left_at) rows.push([p.left_at, 'left', p.name, p.role, p.leave_reason || '']);
  }
  for (const i of r.invitations) rows.push([i.created_at, 'invited', name(i.inviter_id), '', `${i.guest_name} (${i.policy.name}): ${i.outcome}; ${i.comment}`]);
  for (const m of r.chat) rows.push([m.at, 'chat', m.from.name, m.from.role, m.text]);
  for (const f of r.files || []) rows.push([f.at, 'file', f.from.name, f.from.role, `${f.name} (${f.size} bytes)`]);
  for (const o of r.ownership) rows.push([o.at, 'owner', name(o.to), '', `from ${name(o.from)}`]);
  if (r.session.ended_at) rows.push([r.session.ended_at, 'ended', '', '', r.session.end_reason || '']);
  const head = rows.shift();
  rows.sort((a, b) => String(a[0]).localeCompare(String(b[0])));
  // Quote every field; a leading = + - @ is defused so a spreadsheet does not run it.
  const cell = (v) => {
    let s = String(v ?? '');
    if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
    return `"${s.replace(/"/g, '""')}"`;
  };
  return [head, ...rows].map((r2) => r2.map(cell).join(',')).join('\r\n');
}

// A recording's records: [kind, at_ms, bytes] (the format of docs/protocol.md).
function parseRecording(buffer) {
  const bytes = new Uint8Array(buffer);
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== 'SBREC001') return null;
  const view = new DataView(buffer);
  const out = [];
  let at = 8;
  while (at + 13 <= bytes.length) {
    const len = view.getUint32(at);
    if (len < 9 || at + 4 + len > bytes.length) break;
    const kind = bytes[at + 4];
    const ms = Number(view.getBigUint64(at + 5));
    out.push([kind, ms, bytes.subarray(at + 13, at + 4 + len)]);
    at += 4 + len;
  }
  return out;
}

// Plays a recording: the screen frames at their timing, chat, files, input and who came and
// went beside them; and a download of the file.
async function recordingPlayer(id) {
  const res = await fetch(`/api/v1/sessions/${id}/recording`, { headers: { Authorization: `Bearer ${token()}` }, cache: 'no-store' });
  if (!res.ok) return null;
  const buffer = await res.arrayBuffer();
  const records = parseRecording(buffer) || [];
  const screen = h('img', { class: 'screen', alt: t('screen'), 'data-testid': 'replay-screen', hidden: true });
  const log = h('ol', { class: 'chat-log static', 'data-testid': 'replay-log' });
  const clock = h('span', { class: 'muted', 'data-testid': 'replay-clock' }, '0:00');
  const decoder = new TextDecoder();
  const fileUrl = URL.createObjectURL(new Blob([buffer], { type: 'application/octet-stream' }));
  let timers = [];
  let url = null;
  const fmt = (ms) => `${Math.floor(ms / 60000)}:${String(Math.floor(ms / 1000) % 60).padStart(2, '0')}`;
  function show([kind, ms, data]) {
    clock.textContent = fmt(ms);
    if (kind === 1) {
      if (url) URL.revokeObjectURL(url);
      url = URL.createObjectURL(new Blob([data], { type: data[0] === 0x3c ? 'image/svg+xml' : data[0] === 0x89 ? 'image/png' : 'image/jpeg' }));
      screen.src = url;
      screen.hidden = false;
      return;
    }
    let text = '';
    if (kind === 2) text = t('replay_input');
    else {
      try {
        const v = JSON.parse(decoder.decode(data));
        if (kind === 3) text = `${v.from.name}: ${t('replay_file', { name: v.name, size: sizeText(v.size) })}`;
        else if (kind === 4) text = `${v.from.name}: ${v.text}`;
        else if (v.event === 'joined') text = t('replay_joined', { name: v.name, role: t(`role_${v.role}`) }) + (v.verified_email ? ` (${v.verified_email})` : '');
        else if (v.event === 'left') text = t('replay_left', { name: v.name, reason: why(v.reason) });
        else if (v.event === 'ended') text = t('replay_ended', { reason: why(v.reason) });
      } catch {
        return;
      }
    }
    if (kind === 2 && log.lastChild && log.lastChild.dataset.kind === '2') return;
    log.append(h('li', { dataset: { kind: String(kind) } }, h('time', {}, fmt(ms)), ' ', text));
  }
  const play = h('button', { type: 'button', class: 'primary', 'data-testid': 'replay-play' }, t('replay_play'));
  play.addEventListener('click', () => {
    timers.forEach(clearTimeout);
    timers = [];
    clear(log);
    screen.hidden = true;
    for (const r of records) timers.push(setTimeout(() => show(r), r[1]));
  });
  return h(
    'section',
    { 'data-testid': 'recording' },
    h('h2', {}, t('recording')),
    h('p', { class: 'muted' }, t('recording_summary', { n: records.length, length: fmt(records.length ? records[records.length - 1][1] : 0) })),
    h('div', { class: 'buttons' }, play, clock, h('a', { href: fileUrl, download: `session-${id}.sbrec`, class: 'button', 'data-testid': 'recording-download' }, t('download'))),
    h('div', { class: 'replay' }, h('div', {}, screen), log),
  );
}

export async function reportPage(root, ctx, id) {
  const r = await api('GET', `/sessions/${id}/report`);
  const player = await recordingPlayer(id).catch(() => null);
  const names = new Map(r.participants.map((p) => [p.id, p.name]));
  const name = (pid) => names.get(pid) || pid || '';
  const none = (list, el) => (list.length ? el : h('p', { class: 'muted' }, t('no_entries')));
  const slug = r.session.subject.replace(/[^\w-]+/g, '-').slice(0, 40) || 'session';
  clear(
    root,
    h(
      'section',
      { class: 'card', 'data-testid': 'report' },
      h('p', {}, h('a', { href: '#/sessions', class: 'button' }, t('back_to_sessions'))),
      h('h1', {}, `${t('report')}: ${r.session.subject}`),
      h(
        'p',
        { 'data-testid': 'report-summary' },
        `${t('started')}: ${when(r.session.started_at)} · ${t('ended')}: ${when(r.session.ended_at)} · ${t('duration')}: ${duration(r.session.started_at, r.session.ended_at)} · ${t('reason')}: ${why(r.session.end_reason) || t('nothing')}`,
      ),
      h(
        'div',
        { class: 'buttons' },
        h('button', { type: 'button', 'data-testid': 'export-json', onclick: () => download(`report-${slug}.json`, 'application/json', JSON.stringify(r, null, 2)) }, t('export_json')),
        h('button', { type: 'button', 'data-testid': 'export-csv', onclick: () => download(`report-${slug}.csv`, 'text/csv', reportCsv(r, name)) }, t('export_csv')),
      ),
      h('h2', {}, t('participants')),
      table(
        [t('name'), t('role'), t('joined'), t('left'), t('reason')],
        r.participants.map((p) => [p.name, t(`role_${p.role}`), when(p.joined_at), when(p.left_at), why(p.leave_reason)]),
      ),
      h('h2', {}, t('invitations')),
      none(
        r.invitations,
        table(
          [t('guest_name'), t('verified_email'), t('invited_by'), t('policy'), t('comment'), t('outcome')],
          r.invitations.map((i) => [i.guest_name, i.verified_email || '–', name(i.inviter_id), i.policy.name, i.comment, t(`inv_${i.outcome}`)]),
        ),
      ),
      h('h2', {}, t('chat')),
      none(r.chat, h('ol', { class: 'chat-log static', 'data-testid': 'report-chat' }, r.chat.map((m) => h('li', {}, h('span', { class: 'from' }, m.from.name), h('time', { datetime: m.at }, when(m.at)), h('p', { class: 'text' }, m.text))))),
      h('h2', {}, t('report_files')),
      none(
        r.files || [],
        table(
          [t('name'), t('file_size'), t('sent_by'), t('when')],
          (r.files || []).map((f) => [f.name, sizeText(f.size), `${f.from.name} (${t(`role_${f.from.role}`)})`, when(f.at)]),
          { 'data-testid': 'report-files' },
        ),
      ),
      h('h2', {}, t('ownership')),
      none(r.ownership, table([t('from'), t('to'), t('when')], r.ownership.map((o) => [name(o.from), name(o.to), when(o.at)]))),
      player,
    ),
  );
}
