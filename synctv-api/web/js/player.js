// Applies the room state to the <video>: drift correction, and user-initiated player events
// (not our own) turned into `playback` messages.
import { conn } from './connection.js';
import { queue } from './queue.js';
import { room } from './room.js';
import { renderRoom, renderSync, toast } from './ui.js';
import { $, clamp, wallNow, video } from './util.js';

export const SYNC = {
  tickMs: 100, // how often the player is compared to the room
  nudgeStart: 0.015, // s of drift before the rate is nudged...
  nudgeStop: 0.005, // ...and when the nudge stops (hysteresis against thrashing)
  nudgeGain: 1.2, // rate offset per second of drift
  nudgeMin: 0.02, // smallest nudge, so small drifts still converge
  nudgeMax: 0.1, // at most ±10% of the room's rate
  seekAbove: 1.0, // s of drift corrected by seeking instead of nudging
  seekAboveAfterChange: 0.25, // right after a state change (someone seeked), seek sooner
  seekCooldownMs: 1500, // no second corrective seek sooner than this, for the same state
  pausedTolerance: 0.02, // s: a paused player further off than this is moved
  userSeekMin: 0.25, // s: a seek closer than this to the room position is not sent
  holdTimeoutMs: 3000, // how long a local change is kept before giving up on its echo
};


/**
 * Keeps the <video> at the room position. Our own changes to the element are remembered
 * (`own`) so that the events they fire are not mistaken for the user's and echoed back.
 */
export const player = {
  url: null,
  ready: false, // metadata loaded and the first alignment done
  own: { play: 0, pause: 0, rate: 1, seeks: [] },
  holds: [], // local changes sent and not yet reflected by the room state: {until, version}
  nudging: false,
  lastSeek: { at: 0, version: -1 },
  seekLead: 0.05, // s: how long a seek takes while playing, learned
  seekStartedAt: 0,
  jumpPending: false,
  drift: 0,
  blocked: false,
  startTimer: null,

  load(url) {
    if (url === this.url) return;
    this.url = url;
    this.ready = false;
    this.nudging = false;
    this.holds = [];
    this.own.rate = 1;
    video.defaultPlaybackRate = 1;
    if (url) {
      video.src = url;
    } else {
      video.removeAttribute('src');
    }
    video.load();
    renderRoom();
  },

  release() {
    // Disconnected: keep playing locally, the room will be reapplied on rejoin.
    this.holds = [];
  },

  apply(jump) {
    const st = room.state;
    if (!st) return;
    this.load(st.media ? st.media.url : null);
    if (jump) this.jumpPending = true;
    this.tick();
  },

  holding() {
    const t = Date.now();
    const v = room.state ? room.state.version : -1;
    this.holds = this.holds.filter((h) => h.until > t && !(h.version !== null && v >= h.version));
    return this.holds.length > 0;
  },

  setRate(r) {
    r = clamp(r, 0.0625, 16);
    if (Math.abs(video.playbackRate - r) < 1e-4) return;
    this.own.rate = r;
    video.playbackRate = r;
  },

  seek(to) {
    to = Math.max(0, to);
    if (Number.isFinite(video.duration)) to = Math.min(to, Math.max(0, video.duration - 0.05));
    this.own.seeks.push({ to, until: Date.now() + 3000 });
    this.seekStartedAt = wallNow();
    this.lastSeek = { at: Date.now(), version: room.state ? room.state.version : -1 };
    video.currentTime = to;
  },

  play() {
    if (!video.paused) return;
    this.own.play++;
    video.play().then(
      () => {
        this.blocked = false;
        renderRoom();
      },
      (e) => {
        this.own.play = Math.max(0, this.own.play - 1);
        if (e && e.name === 'NotAllowedError' && !video.muted) {
          // Autoplay rules: start muted and offer to unmute.
          video.muted = true;
          $('unmute').hidden = false;
          this.play();
        } else if (e && e.name === 'NotAllowedError') {
          this.blocked = true;
          renderRoom();
        }
      },
    );
  },

  pause() {
    if (video.paused) return;
    this.own.pause++;
    video.pause();
  },

  /** Compares the player to the room and corrects it; runs every tick and on every change. */
  tick() {
    const st = room.state;
    if (!st || !this.url || !room.joined) return;
    if (video.readyState < 1 || this.holding()) return;
    const exp = room.expected();
    const wait = room.startsIn();
    if (wait > 0) {
      // A start set ahead: hold at the position, and start on time, not on the next tick.
      clearTimeout(this.startTimer);
      this.startTimer = setTimeout(() => this.tick(), wait);
    }
    const playing = st.playing && wait === 0;
    if (playing && video.paused) {
      // play() on an ended video would restart it from 0: move it first.
      if (!video.ended) this.play();
      else if (exp < video.duration - 0.1) {
        this.seek(exp);
        this.play();
      }
    }
    if (!playing && !video.paused) this.pause();
    if (video.seeking) return;
    const drift = video.currentTime - exp;
    this.drift = drift;
    const ad = Math.abs(drift);
    const recentSeek = Date.now() - this.lastSeek.at < SYNC.seekCooldownMs && this.lastSeek.version === st.version;
    if (!playing) {
      this.nudging = false;
      this.setRate(st.rate);
      if (ad > SYNC.pausedTolerance && !recentSeek) this.seek(exp);
      this.jumpPending = false;
      this.ready = true;
      renderSync();
      return;
    }
    if (Number.isFinite(video.duration) && exp >= video.duration) {
      this.setRate(st.rate);
      this.ready = true;
      return;
    }
    const seekAbove = this.jumpPending || !this.ready ? SYNC.seekAboveAfterChange : SYNC.seekAbove;
    this.jumpPending = false;
    if (ad > seekAbove && !recentSeek) {
      this.nudging = false;
      this.setRate(st.rate);
      this.seek(exp + this.seekLead * st.rate);
    } else if (this.nudging ? ad < SYNC.nudgeStop : ad < SYNC.nudgeStart) {
      this.nudging = false;
      this.setRate(st.rate);
    } else {
      this.nudging = true;
      const off = clamp(ad * SYNC.nudgeGain, SYNC.nudgeMin, SYNC.nudgeMax);
      this.setRate(st.rate * (drift > 0 ? 1 - off : 1 + off));
    }
    this.ready = true;
    renderSync();
  },

  /** A user-initiated change: sent as `playback`, and kept locally until the room reflects it. */
  async user(action, fields) {
    if (!room.joined || !room.state) return;
    if (!room.canControl()) {
      toast(room.info && room.info.control === 'hosts' ? 'only the owner and admins control playback here' : 'only the room owner controls playback here', 'error');
      this.tick();
      return;
    }
    const hold = { until: Date.now() + SYNC.holdTimeoutMs, version: null };
    this.holds.push(hold);
    try {
      const ack = await conn.request({ type: 'playback', room: room.id, action, ...fields });
      hold.version = ack.version ?? null;
      hold.until = Math.min(hold.until, Date.now() + 1000);
    } catch (e) {
      this.holds = this.holds.filter((h) => h !== hold);
      toast(`${action} failed: ${e.code}: ${e.message}`, 'error');
    }
    this.tick();
  },

  isOwnSeek() {
    const t = Date.now();
    this.own.seeks = this.own.seeks.filter((s) => s.until > t);
    const i = this.own.seeks.findIndex((s) => Math.abs(s.to - video.currentTime) < 0.01);
    if (i < 0) return false;
    this.own.seeks.splice(0, i + 1);
    return true;
  },
};

let userSeekTimer = null;
let userSeekLast = 0;
video.addEventListener('play', () => {
  if (player.own.play > 0) {
    player.own.play--;
    return;
  }
  if (!player.ready || !room.state || room.state.playing) return;
  player.user('play', { position: video.currentTime });
});
video.addEventListener('pause', () => {
  if (player.own.pause > 0) {
    player.own.pause--;
    return;
  }
  if (!player.ready || !room.state || !room.state.playing || video.ended) return;
  player.user('pause', { position: video.currentTime });
});
video.addEventListener('seeking', () => {
  if (player.isOwnSeek() || !player.ready || !room.state) return;
  if (Math.abs(video.currentTime - room.expected()) < SYNC.userSeekMin) return;
  // Dragging the scrubber fires many seeks: send the first at once, then at most every 200 ms.
  const send = () => {
    userSeekTimer = null;
    userSeekLast = Date.now();
    player.user('seek', { position: video.currentTime });
  };
  clearTimeout(userSeekTimer);
  const wait = 200 - (Date.now() - userSeekLast);
  if (wait <= 0) send();
  else userSeekTimer = setTimeout(send, wait);
});
video.addEventListener('seeked', () => {
  if (!player.seekStartedAt) return;
  const took = (wallNow() - player.seekStartedAt) / 1000;
  player.seekStartedAt = 0;
  if (took > 0 && took < 1) player.seekLead = clamp(0.6 * player.seekLead + 0.4 * took, 0.01, 0.5);
});
video.addEventListener('ratechange', () => {
  if (Math.abs(video.playbackRate - player.own.rate) < 1e-4) return;
  if (!player.ready || !room.state) return;
  const rate = clamp(video.playbackRate, 0.25, 4);
  player.own.rate = video.playbackRate;
  player.user('rate', { rate });
});
video.addEventListener('loadedmetadata', () => player.tick());
video.addEventListener('ended', () => queue.ended());
for (const ev of ['play', 'pause', 'ratechange', 'loadeddata', 'emptied']) video.addEventListener(ev, () => renderRoom());
video.addEventListener('error', () => {
  if (player.url) toast('this video cannot be played by the browser', 'error');
});
setInterval(() => player.tick(), SYNC.tickMs);
