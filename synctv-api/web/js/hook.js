// Read-only views for the browser tests and for curious people in the console.
import { session } from './api.js';
import { clock } from './clock.js';
import { conn } from './connection.js';
import { player } from './player.js';
import { room } from './room.js';
import { servers } from './servers.js';
import { toasts } from './ui.js';
import { video, wallNow } from './util.js';

/** Read-only views for the browser tests and for curious people in the console. */
window.synctv = {
  status: () => conn.state,
  server: () => (conn.server ? conn.server.base : null),
  servers: () => servers.list.map((s) => ({ base: s.base, region: s.region, rtt: s.rtt, down: s.downUntil > Date.now() })),
  region: () => (conn.server ? conn.server.region : null),
  offset: () => clock.offset,
  rtt: () => clock.rtt,
  clockSynced: () => clock.synced,
  user: () => (session.data ? { user_id: session.data.user_id, name: session.data.name } : null),
  tokenExpiresAt: () => (session.data ? session.data.expires_at : null),
  room: () => room.id,
  joined: () => room.joined,
  state: () => (room.state ? JSON.parse(JSON.stringify(room.state)) : null),
  seq: () => ({ epoch: room.epoch, seq: room.seq }),
  expected: () => room.expected(),
  position: () => video.currentTime,
  drift: () => player.drift,
  sample: () => ({
    position: video.currentTime,
    paused: video.paused,
    rate: video.playbackRate,
    expected: room.expected(),
    at: wallNow(),
  }),
  members: () => [...room.members.values()].map((m) => m.name).sort(),
  role: () => room.myRole(),
  muted: () => room.muted(),
  chat: () => room.chat.map((c) => ({ name: c.name, text: c.text, seq: c.seq })),
  errors: () => toasts.filter((t) => t.kind === 'error').map((t) => t.text),
};
