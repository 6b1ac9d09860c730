// Small DOM helpers: elements without innerHTML (no markup from data ever reaches the page),
// tables, dialogs and error texts.

import { t, translation } from '/assets/i18n.js';

// h('button', {onclick, class: 'x'}, 'text', child...)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// A labelled input; `attrs` go to the input.
export function field(label, attrs = {}) {
  const id = attrs.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  const input = attrs.tag === 'textarea' ? h('textarea', { ...attrs, tag: undefined, id }) : h('input', { type: 'text', ...attrs, id });
  return h('div', { class: 'field' }, h('label', { for: id }, label), input);
}

export function select(label, name, options, value) {
  const id = `f-${name}-${Math.random().toString(36).slice(2, 7)}`;
  const sel = h('select', { id, name });
  for (const [v, text] of options) {
    const o = h('option', { value: v }, text);
    if (v === value) o.selected = true;
    sel.append(o);
  }
  return h('div', { class: 'field' }, h('label', { for: id }, label), sel);
}

export function checkbox(label, name, checked, attrs = {}) {
  const input = h('input', { type: 'checkbox', name, ...attrs });
  // The default too, so that a form's reset() comes back to it (not to "unticked").
  input.defaultChecked = !!checked;
  input.checked = !!checked;
  return h('label', { class: 'check' }, input, ' ', label);
}

export function table(headers, rows, attrs = {}) {
  return h(
    'table',
    attrs,
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows.map((r) => (r instanceof Node ? r : h('tr', {}, r.map((c) => h('td', {}, c)))))),
  );
}

// The user-facing text of an API error.
export function errorText(err) {
  if (!err) return t('error');
  const message = (err.code && translation(`err_${err.code}`)) || err.message || err.code || String(err);
  if (err.status === 429 && err.retryAfter) return `${message} ${t('retry_after', { s: err.retryAfter })}`;
  return message;
}

// A message box under a form: `kind` is "error" or "ok".
export function notice(kind, text) {
  return h('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

// Shows a modal dialog; resolves to the form's values or null when cancelled.
export function dialog(title, body, { submit = t('save'), danger = false } = {}) {
  return new Promise((resolve) => {
    const form = h('form', { method: 'dialog' });
    const dlg = h('dialog', { 'aria-label': title }, form);
    const done = (value) => {
      dlg.close();
      dlg.remove();
      resolve(value);
    };
    form.append(
      h('h2', {}, title),
      ...(Array.isArray(body) ? body : [body]),
      h(
        'div',
        { class: 'buttons' },
        h('button', { type: 'submit', class: danger ? 'danger' : 'primary', 'data-confirm': '' }, submit),
        h('button', { type: 'button', onclick: () => done(null) }, t('cancel')),
      ),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      done(new FormData(form));
    });
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      done(null);
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}

// Line icons drawn as SVG (no icon font or emoji font needed): 24×24, stroked.
const ICONS = {
  pen: 'M4 20h4L19 9l-4-4L4 16z M13 7l4 4',
  door: 'M6 21V3h11v18 M3 21h18 M14 12v.5',
  bin: 'M4 7h16 M9 7V4h6v3 M6 7l1 13h10l1-13 M10 11v6 M14 11v6',
  cross: 'M6 6l12 12 M18 6L6 18',
  key: 'M14 10a4 4 0 1 0-1 2.6L20 20 M17 17l2-2 M15 15l2-2',
  mail: 'M3 6h18v12H3z M3 6l9 7 9-7',
  person: 'M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8z M4 21a8 8 0 0 1 16 0',
  shield: 'M12 3l8 3v6c0 5-4 8-8 9-4-1-8-4-8-9V6z',
  bolt: 'M13 2L4 14h7l-1 8 9-12h-7z',
  release: 'M9 12h12 M17 8l4 4-4 4 M14 4H4v16h10',
};

function icon(name) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '18');
  svg.setAttribute('height', '18');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICONS[name]);
  svg.append(path);
  return svg;
}

// An icon button (`name` from ICONS) with a text label for screen readers and a tooltip.
export function iconButton(name, label, onclick, attrs = {}) {
  return h('button', { type: 'button', class: 'icon', title: label, 'aria-label': label, onclick, ...attrs }, icon(name));
}
