// Technicians: live sessions, one session (participants, chat, screen, ownership, inviting a
// guest) and the report of a session.

import { api, wsBase } from '/assets/api.js';
import { t, when, why } from '/assets/i18n.js';
import { h, clear, field, select, notice, errorText, table } from '/assets/ui.js';
import { liveSession } from '/assets/live.js';

const CUSTOMER_KEYS = 'sb.customer-keys';

function rememberCustomerKey(id, key) {
  const all = JSON.parse(sessionStorage.getItem(CUSTOMER_KEYS) || '{}');
  all[id] = key;
  sessionStorage.setItem(CUSTOMER_KEYS, JSON.stringify(all));
}

function customerKey(id) {
  return JSON.parse(sessionStorage.getItem(CUSTOMER_KEYS) || '{}')[id];
}

export async function sessionsPage(root) {
  const [live, ended] = await Promise.all([api('GET', '/sessions'), api('GET', '/sessions?state=ended')]);
  const msg = h('div');
  const form = h(
    'form',
    { class: 'inline', 'data-testid': 'new-session' },
    field(t('subject'), { name: 'subject', required: true, maxlength: 200 }),
    h('button', { type: 'submit', class: 'primary' }, t('create')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const created = await api('POST', '/sessions', { subject: new FormData(form).get('subject') });
      rememberCustomerKey(created.id, created.customer_key);
      location.hash = `#/sessions/${created.id}`;
    } catch (err) {
      clear(msg, notice('error', errorText(err)));
    }
  });
  clear(
    root,
    h('section', { class: 'card' }, h('h1', {}, t('new_session')), form, msg),
    h(
      'section',
      { class: 'card' },
      h('h2', {}, t('live_sessions')),
      live.length
        ? table(
            [t('subject'), t('started'), t('participants'), ''],
            live.map((s) => [s.subject, when(s.started_at), String(s.participants.length), h('a', { href: `#/sessions/${s.id}`, class: 'button' }, t('open'))]),
            { 'data-testid': 'live-sessions' },
          )
        : h('p', { class: 'muted' }, t('no_sessions')),
    ),
    h(
      'section',
      { class: 'card' },
      h('h2', {}, t('ended_sessions')),
      ended.length
        ? table(
            [t('subject'), t('started'), t('ended'), t('reason'), ''],
            ended.map((s) => [s.subject, when(s.started_at), when(s.ended_at), why(s.end_reason), h('a', { href: `#/reports/${s.id}` }, t('report'))]),
            { 'data-testid': 'ended-sessions' },
          )
        : h('p', { class: 'muted' }, t('no_ended_sessions')),
    ),
  );
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

function inviteForm(ctx, sessionId, policies, defaultPolicy) {
  const msg = h('div');
  const result = h('div', { 'data-testid': 'invitation-result' });
  const form = h(
    'form',
    { 'data-testid': 'invite-form' },
    select(t('policy'), 'policy_id', policies.map((p) => [p.id, `${p.name} (${p.permissions.map((x) => t(`perm_${x}`)).join(', ')})`]), defaultPolicy || undefined),
    field(t('guest_name'), { name: 'guest_name', required: true, maxlength: 100 }),
    field(t('email_optional'), { name: 'email', type: 'email' }),
    field(t('message_to_guest'), { name: 'message', tag: 'textarea', rows: 2, maxlength: 1000 }),
    field(t('internal_comment'), { name: 'comment', maxlength: 1000 }),
    msg,
    h('button', { type: 'submit', class: 'primary' }, t('invite')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const body = { policy_id: data.get('policy_id'), guest_name: data.get('guest_name'), comment: data.get('comment') || '', message: data.get('message') || '' };
    if (data.get('email')) body.email = data.get('email');
    try {
      const inv = await api('POST', `/sessions/${sessionId}/invitations`, body);
      clear(msg);
      const url = h('input', { type: 'text', readonly: true, value: inv.url, 'aria-label': t('invitation_url'), 'data-testid': 'invitation-url' });
      const copyButton = h('button', { type: 'button' }, t('copy'));
      copyButton.addEventListener('click', () => copy(inv.url, copyButton));
      const revoke = h('button', { type: 'button', class: 'danger', 'data-testid': 'revoke-invitation' }, t('revoke'));
      const box = h(
        'div',
        { class: 'invitation' },
        h('p', {}, `${inv.guest_name}: ${t('invitation_url')} (${t('expires')} ${when(inv.expires_at)})`),
        h('div', { class: 'inline' }, url, copyButton),
        h('p', {}, h('a', { href: inv.mailto }, t('mail_client'))),
        inv.mailed ? notice('ok', t('mailed')) : null,
        revoke,
      );
      revoke.addEventListener('click', async () => {
        try {
          await api('DELETE', `/invitations/${inv.id}`);
          box.remove();
        } catch (err) {
          if (err.status === 410) {
            // Used, expired or already revoked: nothing left to revoke, so say why and drop
            // the button instead of leaving an error next to it.
            revoke.remove();
            box.append(notice('ok', errorText(err)));
          } else {
            box.append(notice('error', errorText(err)));
          }
        }
      });
      result.prepend(box);
      form.reset();
      // The account's default policy stays chosen for the next guest.
      if (defaultPolicy) form.elements.policy_id.value = defaultPolicy;
    } catch (err) {
      clear(msg, notice('error', errorText(err)));
    }
  });
  return h('section', { class: 'invite' }, h('h3', {}, t('invite')), form, result);
}

export async function sessionPage(root, ctx, id) {
  const session = await api('GET', `/sessions/${id}`);
  if (session.state !== 'open') {
    location.hash = `#/reports/${id}`;
    return;
  }
  let policies = [];
  try {
    policies = await api('GET', `/accounts/${ctx.accountId}/policies`);
  } catch {
    policies = [];
  }
  const account = await api('GET', `/accounts/${ctx.accountId}`).catch(() => ({}));
  const { ticket } = await api('POST', '/ws-tickets', { session_id: id });
  const key = customerKey(id);
  const box = h('div');
  const after = h('div');
  clear(
    root,
    h(
      'section',
      { class: 'card' },
      h('h1', { 'data-testid': 'session-subject' }, session.subject),
      key ? h('p', {}, `${t('role_customer')}: `, h('a', { href: `/customer/${key}`, target: '_blank', rel: 'noopener', 'data-testid': 'customer-link' }, `${location.origin}/customer/${key}`)) : null,
      box,
      after,
    ),
  );
  const live = liveSession(box, `${wsBase()}/ws/sessions/${id}?ticket=${encodeURIComponent(ticket)}`, {
    aside: inviteForm(ctx, id, policies, account.default_policy_id),
    onEnd: () => clear(after, h('a', { href: `#/reports/${id}`, class: 'button', 'data-testid': 'report-link' }, t('report'))),
  });
  ctx.onLeave(() => live.close());
}

export async function reportPage(root, ctx, id) {
  const r = await api('GET', `/sessions/${id}/report`);
  const names = new Map(r.participants.map((p) => [p.id, p.name]));
  const name = (pid) => names.get(pid) || pid || '';
  clear(
    root,
    h(
      'section',
      { class: 'card', 'data-testid': 'report' },
      h('h1', {}, `${t('report')}: ${r.session.subject}`),
      h('p', {}, `${t('started')}: ${when(r.session.started_at)} · ${t('ended')}: ${when(r.session.ended_at)} · ${t('reason')}: ${why(r.session.end_reason) || t('nothing')}`),
      h('h2', {}, t('participants')),
      table(
        [t('name'), t('role'), t('joined'), t('left'), t('reason')],
        r.participants.map((p) => [p.name, t(`role_${p.role}`), when(p.joined_at), when(p.left_at), why(p.leave_reason)]),
      ),
      h('h2', {}, t('invitations')),
      table(
        [t('guest_name'), t('invited_by'), t('policy'), t('comment'), t('outcome')],
        r.invitations.map((i) => [i.guest_name, name(i.inviter_id), i.policy.name, i.comment, t(`inv_${i.outcome}`)]),
      ),
      h('h2', {}, t('chat')),
      h('ol', { class: 'chat-log static', 'data-testid': 'report-chat' }, r.chat.map((m) => h('li', {}, h('span', { class: 'from' }, m.from.name), h('time', { datetime: m.at }, when(m.at)), h('p', { class: 'text' }, m.text)))),
      h('h2', {}, t('ownership')),
      table([t('from'), t('to'), t('when')], r.ownership.map((o) => [name(o.from), name(o.to), when(o.at)])),
    ),
  );
}
