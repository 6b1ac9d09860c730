// The broker's HTTP API from the browser: JSON in and out, the login token in sessionStorage
// (gone when the tab closes; a new tab asks an open one for it), errors as ApiError with the
// contract's code.

import { lang } from '/assets/i18n.js';

const TOKEN_KEY = 'sb.token';

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// Tabs of one console share the sign-in without writing it to disk: a new tab asks the open
// ones over a BroadcastChannel (same origin only) and takes the token and the vendor-support
// state; signing out in one tab signs out all. Per-tab keys (`sb.resume.*`, a technician's
// place in a session) stay in their tab.
const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel('sb-auth') : null;
const SHARED = (key) => key.startsWith('sb.') && !key.startsWith('sb.resume.');
if (channel) {
  channel.addEventListener('message', (ev) => {
    const m = ev.data || {};
    if (m.type === 'ask' && token()) {
      const items = {};
      for (let i = 0; i < sessionStorage.length; i += 1) {
        const key = sessionStorage.key(i);
        if (SHARED(key)) items[key] = sessionStorage.getItem(key);
      }
      channel.postMessage({ type: 'token', items });
    } else if (m.type === 'logout' && token()) {
      for (const key of Object.keys(sessionStorage)) if (key.startsWith('sb.')) sessionStorage.removeItem(key);
      window.dispatchEvent(new Event('sb-logout'));
    }
  });
}

// A tab without a token asks the others (for up to 400 ms); resolves either way.
export function adoptToken() {
  if (token() || !channel) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      channel.removeEventListener('message', take);
      clearTimeout(timer);
      resolve();
    };
    const take = (ev) => {
      const m = ev.data || {};
      if (m.type !== 'token' || token()) return;
      for (const [key, value] of Object.entries(m.items || {})) if (SHARED(key)) sessionStorage.setItem(key, value);
      done();
    };
    const timer = setTimeout(done, 400);
    channel.addEventListener('message', take);
    channel.postMessage({ type: 'ask' });
  });
}

// Tells the other tabs that this user signed out.
export function announceLogout() {
  if (channel) channel.postMessage({ type: 'logout' });
}

// Calls `/api/v1{path}` (or `path` as is when it starts with `/join/`).
export async function api(method, path, body, options = {}) {
  const url = path.startsWith('/join/') ? path : `/api/v1${path}`;
  // The server answers words (audit texts, mails to new users) in the console's language.
  const headers = { Accept: 'application/json', 'Accept-Language': lang() };
  const auth = options.token ?? token();
  if (auth) headers.Authorization = `Bearer ${auth}`;
  Object.assign(headers, options.headers || {});
  let payload;
  if (options.csv !== undefined) {
    headers['Content-Type'] = 'text/csv';
    payload = options.csv;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, { method, headers, body: payload, cache: 'no-store' });
  } catch (err) {
    throw new ApiError(0, 'network', String(err));
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const e = data && data.error ? data.error : { code: `http_${res.status}`, message: res.statusText };
    throw new ApiError(res.status, e.code, e.message, res.headers.get('Retry-After'));
  }
  return data;
}

// The WebSocket base of this page's origin.
export function wsBase() {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}`;
}

// Downloads `/api/v1{path}` (an export) with the login token as the file `name`.
export async function download(path, name) {
  const headers = { 'Accept-Language': lang() };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const res = await fetch(`/api/v1${path}`, { headers, cache: 'no-store' });
  if (!res.ok) {
    let e = { code: `http_${res.status}`, message: res.statusText };
    try {
      e = (await res.json()).error || e;
    } catch {
      // Not JSON: the status says enough.
    }
    throw new ApiError(res.status, e.code, e.message, res.headers.get('Retry-After'));
  }
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
