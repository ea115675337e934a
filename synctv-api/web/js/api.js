// The session (token in localStorage, refreshed before it expires) and HTTP calls against
// the page's origin (guest login, rooms, history), and WebSocket tickets from any server.
import { clamp } from './util.js';
import { toast } from './ui.js';

/**
 * How long a ticket request or a WebSocket opening may take before that server counts as
 * gone: a region that died may drop packets instead of refusing them, and the page must
 * not wait for TCP to give up before it fails over to another region.
 */
export const CONNECT_TIMEOUT_MS = 5000;
export const STORE_KEY = 'synctv.session';
/** A token is refreshed this long before it expires (or at half its remaining life). */
export const REFRESH_AHEAD_MS = 24 * 3600 * 1000;

export const session = {
  data: null, // {token, user_id, name, expires_at}
  load() {
    try {
      const d = JSON.parse(localStorage.getItem(STORE_KEY) || 'null');
      if (d && d.token && !this.expired(d)) this.data = d;
    } catch (_) {
      this.data = null;
    }
    return this.data;
  },
  save(d) {
    this.data = d;
    localStorage.setItem(STORE_KEY, JSON.stringify(d));
    refresher.schedule();
  },
  clear() {
    this.data = null;
    localStorage.removeItem(STORE_KEY);
    refresher.schedule();
  },
  expired(d) {
    const e = typeof d.expires_at === 'number' ? d.expires_at : Date.parse(d.expires_at);
    return Number.isFinite(e) && e < Date.now() + 60000;
  },
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

/** HTTP against the page's own origin (tokens are valid on any node of a cluster). */
export async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (session.data) headers.authorization = `Bearer ${session.data.token}`;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'unavailable', 'the server cannot be reached');
  }
  if (res.status === 204) return null;
  let json = null;
  try {
    json = await res.json();
  } catch (_) {
    json = null;
  }
  if (!res.ok) {
    const err = (json && json.error) || {};
    throw new ApiError(res.status, err.code || `http_${res.status}`, err.message || res.statusText);
  }
  return json;
}

export async function login(name) {
  const d = await api('POST', '/api/v1/auth/guest', { name });
  session.save({ token: d.token, user_id: d.user_id, name: d.name, expires_at: d.expires_at });
  return session.data;
}

/**
 * Keeps the token fresh: it is exchanged for a new one (same user) well before it
 * expires, half its remaining life or a day ahead, whichever is sooner.
 */
export const refresher = {
  timer: null,
  schedule(retryMs) {
    clearTimeout(this.timer);
    this.timer = null;
    if (!session.data) return;
    const left = Number(session.data.expires_at) - Date.now();
    const wait = retryMs ?? left - Math.min(REFRESH_AHEAD_MS, left / 2);
    this.timer = setTimeout(() => this.refresh(), clamp(wait, 0, 2 ** 31 - 1));
  },
  async refresh() {
    const before = session.data;
    if (!before) return;
    try {
      const d = await api('POST', '/api/v1/auth/refresh');
      if (session.data !== before) return;
      session.save({ token: d.token, user_id: d.user_id, name: d.name, expires_at: d.expires_at });
    } catch (err) {
      if (err.status === 401) await signInAgain();
      else this.schedule(60000);
    }
  },
};

/** The stored token is no longer taken (expired, or from another server): same name, new guest. */
export async function signInAgain() {
  if (!session.data) return;
  const name = session.data.name;
  toast('your session expired; signing in again', 'info');
  try {
    await login(name);
  } catch (_) {
    /* the origin is unreachable: the next attempt tries again */
  }
}

/**
 * A single-use WebSocket ticket (30 s) from the server the socket will open on (tickets
 * are kept in the cluster's database, so any node would do, but the page's own node may
 * be the one that died). The token itself never goes in a URL.
 */
export async function wsTicket(base, timeoutMs = CONNECT_TIMEOUT_MS) {
  let res;
  try {
    res = await fetch(`${base}/api/v1/auth/ticket`, {
      method: 'POST',
      headers: { authorization: `Bearer ${session.data.token}` },
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (_) {
    throw new ApiError(0, 'unavailable', 'the server cannot be reached');
  }
  if (res.status === 401) throw new ApiError(401, 'unauthorized', 'the token is not taken');
  if (!res.ok) throw new ApiError(res.status, `http_${res.status}`, res.statusText);
  return (await res.json()).ticket;
}
