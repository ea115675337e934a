// Views, toasts and rendering of the room, the lobby and the connection status.
import { api, session } from './api.js';
import { clock } from './clock.js';
import { conn } from './connection.js';
import { renderMembers } from './members.js';
import { player } from './player.js';
import { renderQueue } from './queue.js';
import { renderWaiting } from './readiness.js';
import { room } from './room.js';
import { hostOf } from './servers.js';
import { $, video } from './util.js';

export const views = ['view-login', 'view-lobby', 'view-password', 'view-room'];
export function show(view) {
  for (const v of views) $(v).hidden = v !== view;
}

export function toast(text, kind = 'info') {
  const el = document.createElement('div');
  el.className = `toast ${kind}`;
  el.textContent = text;
  $('toasts').append(el);
  toasts.push({ kind, text, at: Date.now() });
  if (toasts.length > 50) toasts.shift();
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
}
export const toasts = [];

/** A time of day, or a date and time when it is not today. */
export function when(ms) {
  const d = new Date(ms);
  const today = d.toDateString() === new Date().toDateString();
  return today ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : d.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}

/** A plain statement above the lobby (why the page left a room), until a room is opened. */
export function showNotice(text) {
  $('notice').textContent = text;
  $('notice').hidden = !text;
}

/** Who controls playback, as the page says it. */
export const CONTROL_LABELS = { everyone: 'everyone controls', hosts: 'owner and admins control', owner: 'owner controls' };

export function renderStatus() {
  const el = $('status');
  el.dataset.state = conn.state;
  let text = conn.state;
  if (conn.state === 'connected') {
    text = `connected · ${conn.server.region ? `${conn.server.region} · ` : ''}${hostOf(conn.server.base)}`;
    if (clock.rtt !== null) text += ` · rtt ${clock.rtt.toFixed(1)} ms`;
  } else if (conn.state === 'reconnecting') {
    const s = Math.max(0, (conn.retryAt - Date.now()) / 1000);
    text = s > 0.2 ? `reconnecting in ${s.toFixed(1)} s` : 'reconnecting…';
  } else if (conn.state === 'connecting') {
    text = 'connecting…';
  }
  $('status-text').textContent = text;
}
setInterval(renderStatus, 500);

export function renderSync() {
  const el = $('sync-info');
  if (!room.state || !player.url || video.readyState < 1) {
    el.dataset.sync = 'idle';
    el.textContent = '–';
    return;
  }
  if (!room.joined) {
    el.dataset.sync = 'far';
    el.textContent = 'not synced: offline';
    return;
  }
  const ms = Math.round(player.drift * 1000);
  const ad = Math.abs(ms);
  el.dataset.sync = ad <= 50 ? 'ok' : ad <= 500 ? 'near' : 'far';
  el.textContent = `${ad <= 50 ? 'in sync' : 'syncing'} · ${ms >= 0 ? '+' : ''}${ms} ms`;
  el.title = `drift to the room position; clock offset ${clock.offset.toFixed(1)} ms`;
}

export function showPassword(name, error) {
  $('password-room').textContent = name;
  $('password-error').hidden = !error;
  $('password-error').textContent = error || '';
  $('password-input').value = '';
  show('view-password');
  $('password-input').focus();
}

export function showRoom() {
  showNotice('');
  show('view-room');
  renderRoom();
}

export function showLobby() {
  show('view-lobby');
  loadRooms();
}

export function renderRoom() {
  if (!room.id) return;
  const info = room.info;
  $('room-name').textContent = info ? info.name : room.id;
  const badges = [];
  if (info && info.has_password) badges.push('🔒 password');
  if (info) badges.push(CONTROL_LABELS[info.control] || `${info.control} controls`);
  if (room.myRole() !== 'member') badges.push(`you are ${room.myRole()}`);
  if (!room.joined) badges.push(conn.state === 'connected' ? 'joining…' : 'offline');
  $('room-badges').replaceChildren(
    ...badges.map((b) => {
      const s = document.createElement('span');
      s.className = 'badge';
      s.textContent = b;
      return s;
    }),
  );
  const st = room.state;
  const media = st && st.media;
  $('player-empty').hidden = !!media;
  $('media-title').textContent = media ? media.title || media.url : '';
  const control = room.canControl() && room.joined;
  $('btn-play').disabled = !media || !control;
  $('btn-play').textContent = st && st.playing ? 'Pause' : 'Play';
  $('rate-select').disabled = !media || !control;
  if (st) {
    const v = String(st.rate);
    if (![...$('rate-select').options].some((o) => o.value === v)) {
      const o = document.createElement('option');
      o.value = v;
      o.textContent = `${st.rate}×`;
      $('rate-select').append(o);
    }
    $('rate-select').value = v;
  }
  $('media-form').querySelector('button').disabled = !control;
  const muted = room.muted();
  $('chat-input').disabled = muted;
  $('chat-form').querySelector('button').disabled = muted;
  $('chat-input').placeholder = muted ? `You are muted here until ${when(room.mutedUntil)}` : 'Say something';
  renderMembers();
  renderQueue();
  renderWaiting();
  renderChat();
  renderSync();
}

let renderedChat = -1;
export function renderChat() {
  const last = room.chat.length ? room.chat[room.chat.length - 1].seq : 0;
  if (last === renderedChat && $('chat-log').childElementCount === room.chat.length) return;
  renderedChat = last;
  const log = $('chat-log');
  log.replaceChildren(
    ...room.chat.map((c) => {
      const li = document.createElement('li');
      if (c.mine) li.classList.add('mine');
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = c.name;
      const when = document.createElement('time');
      when.textContent = c.at ? new Date(c.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
      const text = document.createElement('span');
      text.className = 'text';
      text.textContent = c.text;
      li.append(who, when, text);
      return li;
    }),
  );
  log.scrollTop = log.scrollHeight;
}

let roomsCursor = null;
export async function loadRooms(more = false) {
  const list = $('room-list');
  let res;
  try {
    res = await api('GET', `/api/v1/rooms?limit=20${more && roomsCursor ? `&cursor=${encodeURIComponent(roomsCursor)}` : ''}`);
  } catch (e) {
    list.replaceChildren(Object.assign(document.createElement('li'), { className: 'muted', textContent: `cannot list rooms: ${e.message}` }));
    return;
  }
  roomsCursor = res.next_cursor;
  $('rooms-more').hidden = !roomsCursor;
  const items = (res.rooms || []).map((r) => {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'room-item';
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = r.name;
    const meta = document.createElement('span');
    meta.className = 'meta muted';
    const media = r.state && r.state.media ? (r.state.playing ? '▶ ' : '⏸ ') + (r.state.media.title || 'video') : 'no video';
    meta.textContent = `${r.members} watching · ${media}${r.has_password ? ' · 🔒' : ''}${r.control && r.control !== 'everyone' ? ` · ${CONTROL_LABELS[r.control] || r.control}` : ''}`;
    b.append(name, meta);
    b.addEventListener('click', () => room.open(r.id));
    li.append(b);
    return li;
  });
  if (more) list.append(...items);
  else if (items.length) list.replaceChildren(...items);
  else list.replaceChildren(Object.assign(document.createElement('li'), { className: 'muted', textContent: 'no rooms yet: create one' }));
}

export function setRoute(id) {
  const url = new URL(location.href);
  url.searchParams.delete('room');
  url.hash = id ? `room=${encodeURIComponent(id)}` : '';
  if (url.href !== location.href) history.replaceState(null, '', url.href);
}

export function routeRoom() {
  const h = new URLSearchParams(location.hash.replace(/^#/, ''));
  return h.get('room') || new URL(location.href).searchParams.get('room');
}

export function parseRoomInput(text) {
  text = text.trim();
  try {
    const u = new URL(text);
    const h = new URLSearchParams(u.hash.replace(/^#/, ''));
    return h.get('room') || u.searchParams.get('room') || text;
  } catch (_) {
    return text.replace(/^#?room=/, '');
  }
}

export function renderMe() {
  $('me').hidden = !session.data;
  $('me-name').textContent = session.data ? session.data.name : '';
}
