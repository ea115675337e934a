// What the player tells the room (contract 1.1, "Waiting for everyone" and "Drift
// reports"): `status` buffering or ready, so that the room waits for this page after a
// seek or a media change, and a drift `report` once a second; and the waiting banner
// ("waiting for Bob…") with "Start anyway" for those who may control playback.
import { session } from './api.js';
import { clock } from './clock.js';
import { conn } from './connection.js';
import { player } from './player.js';
import { room } from './room.js';
import { toast } from './ui.js';
import { $, video } from './util.js';

const REPORT_EVERY_MS = 1000;

export const readiness = {
  sent: null, // the last status sent: {room, state}
  sentAt: 0,
  /** The server marks every waiter buffering on a seek, media or next: say ready again. */
  owed: false,
  /** The server does not know `status` or `report` (version 1): never wait, never report. */
  unsupported: false,

  /** Room state changed; `moved` when it was a seek, a media change or a `next`. */
  onState(moved) {
    if (moved) this.owed = true;
    this.check();
  },

  /** A fresh join: the server knows nothing of this connection's player yet. */
  reset() {
    this.sent = null;
    this.owed = false;
  },

  /**
   * This player's status: ready once it can play at the room's position. The position is
   * compared afresh (not the last tick's drift): right after a seek event the player may
   * not have started seeking yet, and must not say ready for the old position.
   */
  local() {
    if (!player.url) return 'ready';
    const there = Math.abs(video.currentTime - room.expected()) < 1;
    return video.readyState >= 3 && !video.seeking && there ? 'ready' : 'buffering';
  },

  check() {
    const st = room.state;
    if (this.unsupported || !room.joined || !room.id || !st) return;
    const state = this.local();
    const me = session.data ? session.data.user_id : null;
    const waitedFor = Array.isArray(st.waiting_for) && st.waiting_for.includes(me);
    const changed = !this.sent || this.sent.room !== room.id || this.sent.state !== state;
    const remind = state === 'ready' && (this.owed || waitedFor) && Date.now() - this.sentAt > 500;
    if (!changed && !remind) return;
    this.sent = { room: room.id, state };
    this.sentAt = Date.now();
    if (state === 'ready') this.owed = false;
    this.send({ type: 'status', room: room.id, state });
  },

  report() {
    if (this.unsupported || !room.joined || !room.id || !player.url || video.readyState < 1) return;
    const msg = { type: 'report', room: room.id, position: video.currentTime };
    const rtt = clock.typicalRtt();
    if (rtt !== null) msg.rtt_ms = Math.round(rtt);
    this.send(msg);
  },

  /** With an id, so that a version 1 server's `bad_request` comes back here, not as a toast. */
  send(msg) {
    conn.request(msg).catch((err) => {
      if (err.code === 'bad_request') this.unsupported = true;
      else if (err.code !== 'unavailable' && err.code !== 'timeout' && err.code !== 'not_found') toast(`${msg.type} failed: ${err.code}: ${err.message}`, 'error');
    });
  },
};

for (const ev of ['waiting', 'canplay', 'playing', 'seeking', 'seeked', 'loadstart', 'emptied']) {
  video.addEventListener(ev, () => readiness.check());
}
setInterval(() => readiness.check(), 250);
setInterval(() => readiness.report(), REPORT_EVERY_MS);

/** The banner over the player while the room waits for buffering members. */
export function renderWaiting() {
  const st = room.state;
  const waiting = st && Array.isArray(st.waiting_for) ? st.waiting_for : [];
  $('waiting').hidden = waiting.length === 0;
  if (!waiting.length) return;
  const names = waiting.map((uid) => (room.members.get(uid) || {}).name || 'someone');
  const list = names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}` : names[0];
  $('waiting-text').textContent = `waiting for ${list}…`;
  $('start-anyway').hidden = !room.canControl();
}

$('start-anyway').addEventListener('click', async () => {
  try {
    await conn.request({ type: 'playback', room: room.id, action: 'play', force: true });
  } catch (err) {
    toast(`cannot start: ${err.code}: ${err.message}`, 'error');
  }
});
