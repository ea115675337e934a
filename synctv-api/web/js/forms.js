// What the page's forms and buttons do, and entering the page after sign-in.
import { api, login, session } from './api.js';
import { conn } from './connection.js';
import { player } from './player.js';
import { room } from './room.js';
import { servers, PROBE } from './servers.js';
import { loadRooms, parseRoomInput, renderMe, routeRoom, showLobby, showRoom, toast } from './ui.js';
import { $, video } from './util.js';

/** After login: choose the server, connect, and go where the address says. */
export async function enter() {
  renderMe();
  if (servers.multi()) {
    conn.setState('connecting');
    await servers.probeAll(null);
    setInterval(() => servers.probeAll(conn.state === 'connected' ? conn.server : null), PROBE.everyMs);
  }
  conn.start();
  const id = routeRoom();
  if (id) room.open(id);
  else showLobby();
}

// forms
$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const name = $('login-name').value.trim();
  if (!name) return;
  try {
    await login(name);
  } catch (err) {
    toast(`cannot sign in: ${err.message}`, 'error');
    return;
  }
  enter();
});
$('logout').addEventListener('click', async () => {
  room.leave(false);
  try {
    await api('POST', '/api/v1/auth/logout');
  } catch (_) {
    /* revoked already, or the server is unreachable: forget the token anyway */
  }
  session.clear();
  location.reload();
});
$('create-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const body = {
    name: $('create-name').value.trim(),
    control: document.querySelector('input[name=control]:checked').value,
  };
  const pw = $('create-password').value;
  if (pw) body.password = pw;
  let r;
  try {
    r = await api('POST', '/api/v1/rooms', body);
  } catch (err) {
    toast(`cannot create the room: ${err.message}`, 'error');
    return;
  }
  $('create-form').reset();
  room.open(r.id, pw || null);
});
$('open-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const id = parseRoomInput($('open-room').value);
  if (id) room.open(id);
});
$('rooms-refresh').addEventListener('click', () => loadRooms());
$('rooms-more').addEventListener('click', () => loadRooms(true));
$('password-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const id = room.id;
  if (!id) return;
  room.password = $('password-input').value;
  showRoom();
  if (conn.state === 'connected') room.join();
  else conn.start();
});
$('password-cancel').addEventListener('click', () => room.close());
$('leave').addEventListener('click', () => room.close());
$('brand').addEventListener('click', (e) => {
  e.preventDefault();
  if (session.data) room.close();
});
$('copy-link').addEventListener('click', async () => {
  const link = `${location.origin}/#room=${encodeURIComponent(room.id)}`;
  try {
    await navigator.clipboard.writeText(link);
    toast('link copied', 'info');
  } catch (_) {
    toast(link, 'info');
  }
});
$('media-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const url = $('media-url').value.trim();
  if (!/^https?:\/\//i.test(url)) {
    toast('the video URL must start with http:// or https://', 'error');
    return;
  }
  let title = null;
  try {
    title = decodeURIComponent(new URL(url).pathname.split('/').pop()) || null;
  } catch (_) {
    title = null;
  }
  try {
    await conn.request({ type: 'media', room: room.id, url, ...(title ? { title } : {}) });
    $('media-url').value = '';
  } catch (err) {
    toast(`cannot set the video: ${err.code}: ${err.message}`, 'error');
  }
});
$('chat-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = $('chat-input');
  const text = input.value;
  if (!text.trim()) return;
  try {
    await conn.request({ type: 'chat', room: room.id, text });
    input.value = '';
  } catch (err) {
    toast(`message not sent: ${err.code}: ${err.message}`, 'error');
  }
});
$('btn-play').addEventListener('click', () => {
  if (!room.state) return;
  // Goes through the element, so the user-event path sends it like the native controls do.
  if (room.state.playing) video.pause();
  else if (video.paused) video.play().catch(() => {});
  else player.user('play', { position: video.currentTime });
});
$('rate-select').addEventListener('change', () => {
  video.playbackRate = Number($('rate-select').value);
});
$('unmute').addEventListener('click', () => {
  video.muted = false;
  $('unmute').hidden = true;
});
video.addEventListener('click', () => {
  if (player.blocked) player.play();
});
window.addEventListener('hashchange', () => {
  const id = routeRoom();
  if (!session.data) return;
  if (id && id !== room.id) room.open(id);
  else if (!id && room.id) room.close();
});
