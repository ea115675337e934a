// The one live WebSocket: requests with ids, heartbeat, reconnect with backoff, failover to
// the next server.
import { ApiError, CONNECT_TIMEOUT_MS, session, signInAgain, wsTicket } from './api.js';
import { CLOCK, clock } from './clock.js';
import { room } from './room.js';
import { servers, wsUrl } from './servers.js';
import { renderStatus, toast } from './ui.js';
import { clamp, wallNow } from './util.js';

/** The close code of a connection whose token was revoked (logout). */
export const CLOSE_REVOKED = 4401;

/** The one live WebSocket; reconnects with backoff and rejoins the room with `recover`. */
export const conn = {
  ws: null,
  server: null,
  state: 'offline', // offline | connecting | connected | reconnecting
  nextId: 1,
  pending: new Map(), // id -> {resolve, reject, timer}
  attempts: 0,
  failedBeforeOpen: 0,
  retryTimer: null,
  retryAt: 0,
  pingTimer: null,
  lastPong: 0,

  opening: false,

  start() {
    if (this.ws || this.retryTimer || this.opening) return;
    this.open();
  },

  async open() {
    this.retryTimer = null;
    if (!session.data || this.opening) return;
    const ranked = servers.ranked();
    const target = ranked[0];
    if (this.server !== target) clock.reset();
    this.server = target;
    this.setState(this.attempts ? 'reconnecting' : 'connecting');
    let ws;
    this.opening = true;
    try {
      const ticket = await wsTicket(target.base);
      ws = new WebSocket(wsUrl(target.base, ticket));
    } catch (err) {
      this.opening = false;
      if (err.status === 401) await signInAgain();
      this.dropped(target, false);
      return;
    }
    this.opening = false;
    this.ws = ws;
    let opened = false;
    // A server that neither answers nor refuses (a region cut off) counts as gone.
    const openTimer = setTimeout(() => {
      if (!opened && this.ws === ws) ws.close();
    }, CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      clearTimeout(openTimer);
      opened = true;
      this.attempts = 0;
      this.failedBeforeOpen = 0;
      this.lastPong = Date.now();
      this.setState('connected');
      this.pingBurst();
      room.onConnected();
    };
    ws.onmessage = (e) => {
      if (this.ws !== ws) return;
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch (_) {
        return;
      }
      this.onFrame(msg);
    };
    ws.onclose = (e) => {
      clearTimeout(openTimer);
      if (this.ws !== ws) return;
      this.ws = null;
      if (e.code === CLOSE_REVOKED) {
        // Logged out (here or in another tab): the token is gone on every node.
        session.clear();
        location.reload();
        return;
      }
      this.dropped(target, opened);
    };
  },

  dropped(target, wasOpen) {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new ApiError(0, 'unavailable', 'connection lost'));
    }
    this.pending.clear();
    room.onDisconnected();
    if (!wasOpen) this.failedBeforeOpen++;
    // With several servers, the one that went away is avoided for a while: fail over now.
    if (servers.multi()) servers.markDown(target, 5000);
    const delay = this.reconnectDelay ?? this.backoff(servers.multi() && this.attempts === 0);
    this.reconnectDelay = null;
    this.attempts++;
    this.scheduleRetry(delay);
  },

  backoff(immediate) {
    if (immediate) return 50;
    const base = Math.min(10000, 250 * 2 ** Math.min(this.attempts, 6));
    return base * (0.75 + Math.random() * 0.5);
  },

  scheduleRetry(delay) {
    clearTimeout(this.retryTimer);
    this.retryAt = Date.now() + delay;
    this.setState('reconnecting');
    this.retryTimer = setTimeout(() => this.open(), delay);
  },

  /** A `reconnect` frame: the server is going away; leave after `after_ms` and recover elsewhere. */
  obeyReconnect(msg) {
    const after = clamp(Number(msg.after_ms) || 0, 0, 60000);
    toast(`the server is going away (${msg.reason || 'no reason given'}): reconnecting`, 'info');
    const ws = this.ws;
    const target = this.server;
    setTimeout(() => {
      if (this.ws !== ws || !ws) return;
      if (servers.multi() && msg.reason === 'shutdown') servers.markDown(target, 30000);
      this.reconnectDelay = 0;
      ws.close(1000, 'reconnect requested');
    }, after);
  },

  setState(s) {
    this.state = s;
    renderStatus();
  },

  pingBurst() {
    for (let i = 0; i < CLOCK.burst; i++) setTimeout(() => this.ping(), i * CLOCK.burstGapMs);
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastPong > CLOCK.deadAfterMs && this.ws) {
        this.ws.close(4000, 'no pong');
        return;
      }
      this.ping();
    }, CLOCK.everyMs);
  },

  ping() {
    this.send({ type: 'ping', t: wallNow() });
  },

  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  },

  /** Sends a message with an id; resolves with its answer, rejects with an `error`. */
  request(msg, timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      if (!this.send({ ...msg, id })) {
        reject(new ApiError(0, 'unavailable', 'not connected'));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ApiError(0, 'timeout', 'no answer from the server'));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
  },

  onFrame(msg) {
    const p = msg.id !== undefined ? this.pending.get(msg.id) : undefined;
    if (p) {
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
    }
    switch (msg.type) {
      case 'pong':
        this.lastPong = Date.now();
        clock.add(msg.t, msg.server_time);
        if (this.server && clock.rtt !== null) this.server.rtt = clock.rtt;
        renderStatus();
        break;
      case 'event':
        room.onEvent(msg);
        break;
      case 'reconnect':
        this.obeyReconnect(msg);
        break;
      case 'error':
        if (p) p.reject(Object.assign(new ApiError(0, msg.code, msg.message), { detail: msg }));
        else toast(`${msg.code}: ${msg.message}`, 'error');
        if (msg.code === 'conflict' && msg.state) room.takeState(msg.state);
        return;
      default:
        break;
    }
    if (p) p.resolve(msg);
  },
};
