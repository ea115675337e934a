// The members panel (contract 1.1, "Roles and moderation" and "Drift reports"): each
// member with their role, player status and drift, and the room's spread; the owner and
// admins moderate from it (make admin, kick with a ban length, mute). Presence comes from
// the room's events; status, drift and mutes from GET /api/v1/rooms/{id}/members, read
// every 2 s while a room is shown. Rows are updated in place, so a choice being made in
// a row's menus survives the refresh.
import { api, session } from './api.js';
import { conn } from './connection.js';
import { room } from './room.js';
import { renderRoom, toast } from './ui.js';
import { $ } from './util.js';

const REFRESH_MS = 2000;
/** Ban lengths offered with a kick, in seconds (the contract allows 0 to 31,536,000). */
const BANS = [
  [0, 'no ban'],
  [600, 'ban 10 min'],
  [3600, 'ban 1 hour'],
  [86400, 'ban 1 day'],
  [604800, 'ban 1 week'],
  [31536000, 'ban 1 year'],
];
/** Mute lengths, in seconds. */
const MUTES = [
  [300, '5 min'],
  [3600, '1 hour'],
  [86400, '1 day'],
];

export const memberDetails = {
  byUser: new Map(), // user_id -> Member from the API
  timer: null,
  roomId: null,

  /** Reads the members' details now (and every REFRESH_MS while the room is shown). */
  async refresh() {
    const id = room.id;
    if (!id) return;
    let res;
    try {
      res = await api('GET', `/api/v1/rooms/${encodeURIComponent(id)}/members`);
    } catch (_) {
      return; // a server without 1.1, or the origin is down: presence still shows
    }
    if (room.id !== id || !Array.isArray(res && res.members)) return;
    this.byUser = new Map(res.members.map((m) => [m.user_id, m]));
    for (const m of res.members) room.learnRole(m.user_id, m.role);
    const mine = session.data && this.byUser.get(session.data.user_id);
    if (mine) room.mutedUntil = mine.muted_until ?? null;
    renderRoom();
  },

  start() {
    if (this.roomId !== room.id) this.byUser = new Map();
    this.roomId = room.id;
    clearInterval(this.timer);
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    this.refresh();
  },

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.byUser = new Map();
  },

  /** Max minus min of the members' latest drift estimates, in ms; null below two. */
  spread() {
    const drifts = [...this.byUser.values()].map((m) => m.drift_ms).filter((d) => typeof d === 'number');
    return drifts.length < 2 ? null : Math.round(Math.max(...drifts) - Math.min(...drifts));
  },
};

/** Whether this user may act on `target` (a user id with role `role`), and how. */
function powers(target, role) {
  const me = session.data && session.data.user_id;
  const mine = room.myRole();
  if (!me || target === me || role === 'owner') return { role: false, moderate: false };
  if (mine === 'owner') return { role: true, moderate: true };
  if (mine === 'admin') return { role: false, moderate: role !== 'admin' };
  return { role: false, moderate: false };
}

async function send(msg, done) {
  try {
    await conn.request({ room: room.id, ...msg });
    if (done) toast(done, 'info');
  } catch (err) {
    toast(`${msg.type} failed: ${err.code}: ${err.message}`, 'error');
  }
}

function button(text, cls, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = `small ${cls}`;
  b.textContent = text;
  b.addEventListener('click', onClick);
  return b;
}

function select(cls, options) {
  const s = document.createElement('select');
  s.className = `small ${cls}`;
  for (const [value, label] of options) s.append(new Option(label, String(value)));
  return s;
}

/** The moderation controls of one member's row. */
function actions(uid, name, role, muted, can) {
  const box = document.createElement('div');
  box.className = 'member-actions';
  if (can.role) {
    box.append(
      role === 'admin'
        ? button('remove admin', 'make-member', () => send({ type: 'role', user_id: uid, role: 'member' }))
        : button('make admin', 'make-admin', () => send({ type: 'role', user_id: uid, role: 'admin' })),
    );
  }
  if (can.moderate) {
    if (muted) {
      box.append(button('unmute', 'unmute', () => send({ type: 'mute', user_id: uid, secs: 0 })));
    } else {
      const len = select('mute-len', MUTES);
      box.append(len, button('mute', 'mute', () => send({ type: 'mute', user_id: uid, secs: Number(len.value) }, `${name} is muted`)));
    }
    const ban = select('ban-len', BANS);
    box.append(ban, button('kick', 'kick', () => send({ type: 'kick', user_id: uid, ban_secs: Number(ban.value) }, `${name} was removed`)));
  }
  return box;
}

function span(cls) {
  const s = document.createElement('span');
  s.className = cls;
  return s;
}

/** One member's row, created once and then updated in place. */
function row(list, uid) {
  let li = list.querySelector(`li[data-user-id="${CSS.escape(uid)}"]`);
  if (!li) {
    li = document.createElement('li');
    li.dataset.userId = uid;
    li.append(span('name'), span('role'), span('status'), span('drift'));
  }
  return li;
}

export function renderMembers() {
  const list = $('members');
  const entries = [...room.members].sort((a, b) => a[1].name.localeCompare(b[1].name));
  $('member-count').textContent = String(entries.length);
  const spread = memberDetails.spread();
  $('member-spread').textContent = spread === null ? '' : `spread ${spread} ms`;
  const now = Date.now();
  const rows = entries.map(([uid, m]) => {
    const li = row(list, uid);
    const d = memberDetails.byUser.get(uid) || {};
    const role = room.roleOf(uid);
    const muted = typeof d.muted_until === 'number' && d.muted_until > now;
    li.classList.toggle('self', !!(session.data && uid === session.data.user_id));
    li.classList.toggle('owner', role === 'owner');
    li.dataset.role = role;
    li.querySelector('.name').textContent = m.name;
    li.querySelector('.role').textContent = role === 'member' ? '' : role;
    li.querySelector('.status').textContent = d.status ? (muted ? `${d.status} · muted` : d.status) : muted ? 'muted' : '';
    li.querySelector('.drift').textContent = typeof d.drift_ms === 'number' ? `${d.drift_ms >= 0 ? '+' : ''}${Math.round(d.drift_ms)} ms` : '';
    const can = powers(uid, role);
    const signature = `${role}|${muted}|${can.role}|${can.moderate}`;
    if (li.dataset.actions !== signature) {
      li.dataset.actions = signature;
      li.querySelector('.member-actions')?.remove();
      if (can.role || can.moderate) li.append(actions(uid, m.name, role, muted, can));
    }
    return li;
  });
  // Keep the rows (and what is chosen in their menus) that are still there.
  if (rows.length !== list.children.length || rows.some((li, i) => list.children[i] !== li)) list.replaceChildren(...rows);
}
