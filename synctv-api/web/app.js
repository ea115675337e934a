// synctv watch-together page: a small hand-written client of the public wire contract
// (PROTOCOL.md), embedded in the synctv binary. No build step, no dependencies.
//
// A tour, top to bottom:
//   tunables     the sync thresholds, in one place
//   clock        NTP-style offset to the server clock from ping/pong samples
//   api          HTTP calls (guest login, rooms, history) against the page's origin
//   servers      the candidate servers from /config.json, ranked by WebSocket ping RTT
//   connection   one WebSocket: requests with ids, heartbeat, reconnect with backoff
//   room         the joined room: epoch/seq for recovery, state, members, chat
//   player       applies the room state to the <video>, drift correction, and turns
//                user-initiated player events (not our own) into `playback` messages
//   ui           views, forms, toasts
//   window.synctv  a small read-only hook for the browser tests
(() => {
  'use strict';

  // ---------------------------------------------------------------- tunables
  const SYNC = {
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
  const CLOCK = { keep: 12, best: 3, burst: 6, burstGapMs: 120, everyMs: 5000, deadAfterMs: 20000 };
  const PROBE = { pings: 3, timeoutMs: 3000, everyMs: 15000 };
  /**
   * How long a ticket request or a WebSocket opening may take before that server counts as
   * gone: a region that died may drop packets instead of refusing them, and the page must
   * not wait for TCP to give up before it fails over to another region.
   */
  const CONNECT_TIMEOUT_MS = 5000;
  const STORE_KEY = 'synctv.session';
  /** A token is refreshed this long before it expires (or at half its remaining life). */
  const REFRESH_AHEAD_MS = 24 * 3600 * 1000;
  /** The close code of a connection whose token was revoked (logout). */
  const CLOSE_REVOKED = 4401;

  const $ = (id) => document.getElementById(id);
  const wallNow = () => performance.timeOrigin + performance.now();
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));

  // ---------------------------------------------------------------- clock
  /** Offset of the server clock: server_time - (t + rtt/2) over the lowest-RTT samples. */
  const clock = {
    samples: [],
    offset: 0,
    rtt: null,
    synced: false,
    add(t, serverTime) {
      const t1 = wallNow();
      const rtt = t1 - t;
      if (!(rtt >= 0) || typeof serverTime !== 'number') return;
      this.samples.push({ rtt, offset: serverTime - (t + rtt / 2) });
      if (this.samples.length > CLOCK.keep) this.samples.shift();
      const best = [...this.samples].sort((a, b) => a.rtt - b.rtt).slice(0, CLOCK.best);
      this.offset = median(best.map((s) => s.offset));
      this.rtt = best[0].rtt;
      this.synced = true;
    },
    reset() {
      this.samples = [];
      this.synced = false;
      this.rtt = null;
    },
    serverNow() {
      return wallNow() + this.offset;
    },
  };

  // ---------------------------------------------------------------- session storage
  const session = {
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

  // ---------------------------------------------------------------- api
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message || code);
      this.status = status;
      this.code = code;
    }
  }

  /** HTTP against the page's own origin (tokens are valid on any node of a cluster). */
  async function api(method, path, body) {
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

  async function login(name) {
    const d = await api('POST', '/api/v1/auth/guest', { name });
    session.save({ token: d.token, user_id: d.user_id, name: d.name, expires_at: d.expires_at });
    return session.data;
  }

  /**
   * Keeps the token fresh: it is exchanged for a new one (same user) well before it
   * expires, half its remaining life or a day ahead, whichever is sooner.
   */
  const refresher = {
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
  async function signInAgain() {
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
  async function wsTicket(base, timeoutMs = CONNECT_TIMEOUT_MS) {
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

  // ---------------------------------------------------------------- servers
  const wsUrl = (base, ticket) =>
    `${base.replace(/^http/, 'ws')}/ws?ticket=${encodeURIComponent(ticket)}`;
  const hostOf = (base) => base.replace(/^https?:\/\//, '');

  /**
   * Candidate servers, each {base, region, rtt, downUntil}; ranked by the lowest measured
   * RTT, so the page uses the nearest region (and the nearest node in it) and, when that
   * region dies, the next nearest one. A server's region comes from /config.json: the
   * origin's own `region`, and each live node's advertised `address` with its `region`.
   */
  const servers = {
    list: [],
    probing: false,
    async init() {
      let config = {};
      try {
        const res = await fetch('/config.json', { cache: 'no-store' });
        if (res.ok) config = (await res.json()) || {};
      } catch (_) {
        config = {};
      }
      const trim = (b) => String(b).replace(/\/+$/, '');
      const regions = new Map();
      for (const n of Array.isArray(config.nodes) ? config.nodes : []) {
        if (n && n.address && n.region) regions.set(trim(n.address), String(n.region));
      }
      if (config.region) regions.set(location.origin, String(config.region));
      let bases = (Array.isArray(config.servers) ? config.servers : []).filter((s) => /^https?:\/\//.test(s));
      bases = [...new Set(bases.map(trim))];
      if (bases.length === 0) bases = [location.origin];
      this.list = bases.map((base) => ({ base, region: regions.get(base) ?? null, rtt: null, downUntil: 0 }));
    },
    multi() {
      return this.list.length > 1;
    },
    ranked() {
      const t = Date.now();
      const up = this.list.filter((s) => s.downUntil <= t);
      const pool = up.length ? up : [...this.list];
      return pool.sort((a, b) => (a.rtt ?? 1e9) - (b.rtt ?? 1e9));
    },
    markDown(s, ms) {
      s.downUntil = Date.now() + ms;
      s.rtt = null;
    },
    /** Measures RTT to every server other than `except` with `ping` over a short-lived WebSocket. */
    async probeAll(except) {
      if (this.probing || !session.data) return;
      this.probing = true;
      try {
        await Promise.all(
          this.list
            .filter((s) => s !== except)
            .map(async (s) => {
              const rtt = await probe(s.base);
              if (Number.isFinite(rtt)) {
                s.rtt = rtt;
                s.downUntil = 0;
              } else {
                this.markDown(s, PROBE.everyMs);
              }
            }),
        );
      } finally {
        this.probing = false;
      }
    },
  };

  /** Lowest RTT of a few pings to one server, Infinity when it cannot be reached. */
  async function probe(base) {
    let ticket;
    try {
      ticket = await wsTicket(base, PROBE.timeoutMs);
    } catch (_) {
      return Infinity;
    }
    return new Promise((resolve) => {
      let best = Infinity;
      let n = 0;
      let ws;
      const done = () => {
        clearTimeout(timer);
        try {
          ws.close();
        } catch (_) {
          /* already closed */
        }
        resolve(best);
      };
      const timer = setTimeout(done, PROBE.timeoutMs);
      const ping = () => ws.send(JSON.stringify({ type: 'ping', id: `probe${n}`, t: wallNow() }));
      try {
        ws = new WebSocket(wsUrl(base, ticket));
      } catch (_) {
        clearTimeout(timer);
        resolve(Infinity);
        return;
      }
      ws.onopen = ping;
      ws.onerror = done;
      ws.onclose = done;
      ws.onmessage = (e) => {
        let m;
        try {
          m = JSON.parse(e.data);
        } catch (_) {
          return;
        }
        if (m.type !== 'pong') return;
        best = Math.min(best, wallNow() - m.t);
        if (++n >= PROBE.pings) done();
        else ping();
      };
    });
  }

  // ---------------------------------------------------------------- connection
  /** The one live WebSocket; reconnects with backoff and rejoins the room with `recover`. */
  const conn = {
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
          if (p) p.reject(new ApiError(0, msg.code, msg.message));
          else toast(`${msg.code}: ${msg.message}`, 'error');
          if (msg.code === 'conflict' && msg.state) room.takeState(msg.state);
          return;
        default:
          break;
      }
      if (p) p.resolve(msg);
    },
  };

  // ---------------------------------------------------------------- room
  /** The room this page shows: what recovery needs (epoch, seq) and what the UI shows. */
  const room = {
    id: null,
    info: null, // Room from GET /api/v1/rooms/{id}
    password: null,
    epoch: null,
    seq: 0,
    state: null,
    members: new Map(),
    chat: [], // [{seq, name, text, at}]
    chatSeqs: new Set(),
    joined: false,
    joining: false,

    async open(id, password) {
      if (this.id && this.id !== id) this.leave(false);
      this.id = id;
      this.password = password ?? sessionStorage.getItem(`synctv.pw.${id}`);
      this.epoch = null;
      this.seq = 0;
      this.state = null;
      this.members = new Map();
      this.chat = [];
      this.chatSeqs = new Set();
      this.joined = false;
      this.info = null;
      setRoute(id);
      try {
        this.info = await api('GET', `/api/v1/rooms/${encodeURIComponent(id)}`);
      } catch (e) {
        if (e.code === 'not_found') {
          toast('no such room (or it was archived)', 'error');
          this.close();
          return;
        }
        // the origin may be down while another server is up: try the WebSocket anyway
      }
      if (this.id !== id) return;
      if (this.info && this.info.has_password && !this.password) {
        showPassword(this.info.name);
        return;
      }
      showRoom();
      if (conn.state === 'connected') this.join();
      else conn.start();
    },

    onConnected() {
      if (this.id && !(this.info && this.info.has_password && !this.password)) this.join();
    },

    onDisconnected() {
      this.joined = false;
      this.joining = false;
      player.release();
      renderRoom();
    },

    async join() {
      if (!this.id || this.joining) return;
      const id = this.id;
      const msg = { type: 'join', room: id };
      if (this.password) msg.password = this.password;
      if (this.epoch !== null && this.seq > 0) msg.recover = { epoch: this.epoch, seq: this.seq };
      this.joining = true;
      let joined;
      try {
        joined = await conn.request(msg);
      } catch (e) {
        this.joining = false;
        if (this.id !== id) return;
        if (e.code === 'forbidden') {
          this.password = null;
          sessionStorage.removeItem(`synctv.pw.${id}`);
          showPassword(this.info ? this.info.name : id, msg.password ? 'wrong password' : null);
        } else if (e.code === 'not_found') {
          toast('no such room (or it was archived)', 'error');
          this.close();
        } else if (e.code !== 'unavailable') {
          toast(`cannot join: ${e.code}: ${e.message}`, 'error');
        }
        return;
      }
      this.joining = false;
      if (this.id !== id) return;
      if (this.password) sessionStorage.setItem(`synctv.pw.${id}`, this.password);
      this.onJoined(joined);
    },

    onJoined(m) {
      const before = this.seq;
      if (m.recovered) {
        for (const ev of m.events || []) this.onEvent(ev, true);
      } else if (before > 0) {
        toast('reconnected; some events could not be recovered, the room state was taken', 'info');
      }
      this.joined = true;
      this.epoch = m.epoch;
      this.seq = Math.max(this.seq, m.seq);
      this.members = new Map((m.members || []).map((u) => [u.user_id, u.name]));
      this.takeState(m.state, true, true);
      if (!m.recovered) this.loadHistory(before > 0 ? before : Math.max(0, m.seq - 200), m.seq);
      showRoom();
      renderRoom();
    },

    /** Reads missed or recent chat from the durable history (best effort). */
    async loadHistory(after, upto) {
      const id = this.id;
      for (let page = 0; page < 5 && after < upto; page++) {
        let res;
        try {
          res = await api('GET', `/api/v1/rooms/${encodeURIComponent(id)}/events?after=${after}&limit=1000`);
        } catch (_) {
          return;
        }
        if (this.id !== id) return;
        for (const ev of res.events || []) if (ev.seq <= upto && ev.kind === 'chat') this.addChat(ev);
        if (res.next_after == null) break;
        after = res.next_after;
      }
      renderChat();
    },

    onEvent(ev, replay = false) {
      // Before `joined`, the answer itself covers the room up to its seq.
      if (ev.room !== this.id || (!this.joined && !replay)) return;
      if (ev.kind === 'resync') {
        this.seq = Math.max(this.seq, ev.data.seq);
        this.takeState(ev.data.state, true, true);
        toast('resynchronized with the room', 'info');
        return;
      }
      if (ev.seq <= this.seq && !replay) return; // seen already
      if (ev.seq > this.seq) this.seq = ev.seq;
      this.epoch = ev.epoch;
      const d = ev.data || {};
      switch (ev.kind) {
        case 'playback':
        case 'media':
          if (!replay) this.takeState(d.state, ev.kind === 'media' || d.action !== 'rate');
          break;
        case 'chat':
          this.addChat(ev);
          renderChat();
          break;
        case 'member_joined':
          if (!replay) this.members.set(d.user_id, d.name);
          renderMembers();
          break;
        case 'member_left':
          if (!replay) this.members.delete(d.user_id);
          renderMembers();
          break;
        case 'room_archived':
          toast('this room was archived by its owner', 'error');
          this.close();
          break;
        default:
          break;
      }
    },

    addChat(ev) {
      if (this.chatSeqs.has(ev.seq)) return;
      this.chatSeqs.add(ev.seq);
      this.chat.push({
        seq: ev.seq,
        name: ev.by ? ev.by.name : 'server',
        mine: !!(ev.by && session.data && ev.by.user_id === session.data.user_id),
        text: String(ev.data && ev.data.text),
        at: ev.server_time,
      });
      this.chat.sort((a, b) => a.seq - b.seq);
      if (this.chat.length > 500) this.chat.splice(0, this.chat.length - 500);
    },

    /** A newer PlaybackState; `jump` when it moved the position on purpose (seek, play, pause). */
    takeState(st, jump = true, authoritative = false) {
      if (!st) return;
      if (!authoritative && this.state && st.version < this.state.version) return;
      this.state = st;
      player.apply(jump);
      renderRoom();
    },

    /** Where the room is now, in media seconds. */
    expected() {
      const st = this.state;
      if (!st) return 0;
      if (!st.playing) return st.position;
      return st.position + ((clock.serverNow() - st.updated_at) / 1000) * st.rate;
    },

    canControl() {
      return !(this.info && this.info.control === 'owner' && session.data && this.info.owner_id !== session.data.user_id);
    },

    leave(route = true) {
      if (this.id && conn.state === 'connected') conn.send({ type: 'leave', room: this.id, id: conn.nextId++ });
      this.id = null;
      this.state = null;
      this.joined = false;
      player.load(null);
      if (route) setRoute(null);
    },

    close() {
      this.leave(true);
      showLobby();
    },
  };

  // ---------------------------------------------------------------- player
  const video = $('player');

  /**
   * Keeps the <video> at the room position. Our own changes to the element are remembered
   * (`own`) so that the events they fire are not mistaken for the user's and echoed back.
   */
  const player = {
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
      if (st.playing && video.paused) {
        // play() on an ended video would restart it from 0: move it first.
        if (!video.ended) this.play();
        else if (exp < video.duration - 0.1) {
          this.seek(exp);
          this.play();
        }
      }
      if (!st.playing && !video.paused) this.pause();
      if (video.seeking) return;
      const drift = video.currentTime - exp;
      this.drift = drift;
      const ad = Math.abs(drift);
      const recentSeek = Date.now() - this.lastSeek.at < SYNC.seekCooldownMs && this.lastSeek.version === st.version;
      if (!st.playing) {
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
        toast('only the room owner controls playback here', 'error');
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
  for (const ev of ['play', 'pause', 'ratechange', 'loadeddata', 'emptied']) video.addEventListener(ev, () => renderRoom());
  video.addEventListener('error', () => {
    if (player.url) toast('this video cannot be played by the browser', 'error');
  });
  setInterval(() => player.tick(), SYNC.tickMs);

  // ---------------------------------------------------------------- ui
  const views = ['view-login', 'view-lobby', 'view-password', 'view-room'];
  function show(view) {
    for (const v of views) $(v).hidden = v !== view;
  }

  function toast(text, kind = 'info') {
    const el = document.createElement('div');
    el.className = `toast ${kind}`;
    el.textContent = text;
    $('toasts').append(el);
    toasts.push({ kind, text, at: Date.now() });
    if (toasts.length > 50) toasts.shift();
    setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
  }
  const toasts = [];

  function renderStatus() {
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

  function renderSync() {
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

  function showPassword(name, error) {
    $('password-room').textContent = name;
    $('password-error').hidden = !error;
    $('password-error').textContent = error || '';
    $('password-input').value = '';
    show('view-password');
    $('password-input').focus();
  }

  function showRoom() {
    show('view-room');
    renderRoom();
  }

  function showLobby() {
    show('view-lobby');
    loadRooms();
  }

  function renderRoom() {
    if (!room.id) return;
    const info = room.info;
    $('room-name').textContent = info ? info.name : room.id;
    const badges = [];
    if (info && info.has_password) badges.push('🔒 password');
    if (info) badges.push(info.control === 'owner' ? 'owner controls' : 'everyone controls');
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
    renderMembers();
    renderChat();
    renderSync();
  }

  function renderMembers() {
    const list = [...room.members].sort((a, b) => a[1].localeCompare(b[1]));
    $('member-count').textContent = String(list.length);
    $('members').replaceChildren(
      ...list.map(([uid, name]) => {
        const li = document.createElement('li');
        li.textContent = name;
        li.dataset.userId = uid;
        if (session.data && uid === session.data.user_id) li.classList.add('self');
        if (room.info && uid === room.info.owner_id) li.classList.add('owner');
        return li;
      }),
    );
  }

  let renderedChat = -1;
  function renderChat() {
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
  async function loadRooms(more = false) {
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
      meta.textContent = `${r.members} watching · ${media}${r.has_password ? ' · 🔒' : ''}${r.control === 'owner' ? ' · owner controls' : ''}`;
      b.append(name, meta);
      b.addEventListener('click', () => room.open(r.id));
      li.append(b);
      return li;
    });
    if (more) list.append(...items);
    else if (items.length) list.replaceChildren(...items);
    else list.replaceChildren(Object.assign(document.createElement('li'), { className: 'muted', textContent: 'no rooms yet: create one' }));
  }

  function setRoute(id) {
    const url = new URL(location.href);
    url.searchParams.delete('room');
    url.hash = id ? `room=${encodeURIComponent(id)}` : '';
    if (url.href !== location.href) history.replaceState(null, '', url.href);
  }

  function routeRoom() {
    const h = new URLSearchParams(location.hash.replace(/^#/, ''));
    return h.get('room') || new URL(location.href).searchParams.get('room');
  }

  function parseRoomInput(text) {
    text = text.trim();
    try {
      const u = new URL(text);
      const h = new URLSearchParams(u.hash.replace(/^#/, ''));
      return h.get('room') || u.searchParams.get('room') || text;
    } catch (_) {
      return text.replace(/^#?room=/, '');
    }
  }

  function renderMe() {
    $('me').hidden = !session.data;
    $('me-name').textContent = session.data ? session.data.name : '';
  }

  /** After login: choose the server, connect, and go where the address says. */
  async function enter() {
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

  // ---------------------------------------------------------------- test hook
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
    members: () => [...room.members.values()].sort(),
    chat: () => room.chat.map((c) => ({ name: c.name, text: c.text, seq: c.seq })),
    errors: () => toasts.filter((t) => t.kind === 'error').map((t) => t.text),
  };

  // ---------------------------------------------------------------- start
  (async () => {
    await servers.init();
    if (session.load()) {
      refresher.schedule();
      enter();
    }
    else {
      renderMe();
      show('view-login');
      $('login-name').focus();
    }
  })();
})();
