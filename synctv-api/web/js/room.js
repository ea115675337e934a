// The joined room: epoch/seq for recovery, state, members, chat.
import { api, session } from './api.js';
import { clock } from './clock.js';
import { conn } from './connection.js';
import { player } from './player.js';
import { renderChat, renderMembers, renderRoom, setRoute, showLobby, showPassword, showRoom, toast } from './ui.js';

/** The room this page shows: what recovery needs (epoch, seq) and what the UI shows. */
export const room = {
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
