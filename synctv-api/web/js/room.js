// The joined room: epoch/seq for recovery, state, members and their roles, chat; what a
// kick, a ban or a mute means for this page.
import { api, session } from './api.js';
import { clock } from './clock.js';
import { conn } from './connection.js';
import { memberDetails, renderMembers } from './members.js';
import { player } from './player.js';
import { queue } from './queue.js';
import { readiness } from './readiness.js';
import { renderChat, renderRoom, setRoute, showLobby, showNotice, showPassword, showRoom, toast, when } from './ui.js';

const me = () => (session.data ? session.data.user_id : null);

/** The room this page shows: what recovery needs (epoch, seq) and what the UI shows. */
export const room = {
  id: null,
  info: null, // Room from GET /api/v1/rooms/{id}
  password: null,
  epoch: null,
  seq: 0,
  state: null,
  members: new Map(), // user_id -> {name}: who is present
  roles: new Map(), // user_id -> 'admin' or 'member', as last told (the owner is info.owner_id)
  mutedUntil: null, // ms: this user's mute here, if any
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
    this.roles = new Map();
    this.mutedUntil = null;
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
      } else if (e.code === 'banned') {
        const until = e.detail && e.detail.until;
        this.shut(`You are banned from “${this.name()}”${until ? ` until ${when(until)}` : ''}.`);
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
    this.members = new Map((m.members || []).map((u) => [u.user_id, { name: u.name }]));
    for (const u of m.members || []) this.learnRole(u.user_id, u.role);
    if (m.role) this.learnRole(me(), m.role);
    memberDetails.start();
    queue.reset(m.queue);
    readiness.reset();
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
        if (ev.kind === 'media' && !replay) queue.took(d.from_queue);
        if (!replay) readiness.onState(ev.kind === 'media' || d.action === 'seek');
        break;
      case 'queue':
        if (!replay) queue.apply(d);
        break;
      case 'chat':
        this.addChat(ev);
        renderChat();
        break;
      case 'member_joined':
        if (!replay) this.members.set(d.user_id, { name: d.name });
        renderMembers();
        if (!replay) memberDetails.refresh(); // a returning admin's role, their status
        break;
      case 'member_left':
        if (!replay) this.members.delete(d.user_id);
        renderMembers();
        break;
      case 'role':
        this.learnRole(d.user_id, d.role);
        if (d.user_id === me() && !replay) toast(d.role === 'admin' ? 'you are now an admin of this room' : 'you are no longer an admin of this room', 'info');
        renderRoom();
        break;
      case 'member_kicked':
        if (d.user_id === me() && !replay) {
          // The server has taken this connection out of the room with this event.
          const by = ev.by ? ev.by.name : 'The server';
          const ban = d.banned_until ? ` You are banned from it until ${when(d.banned_until)}.` : ' You may join it again.';
          this.shut(`${by} removed you from “${this.name()}”.${ban}`);
          return;
        }
        this.members.delete(d.user_id);
        renderMembers();
        break;
      case 'member_muted':
        if (d.user_id === me()) {
          this.mutedUntil = d.muted_until;
          if (!replay) toast(d.muted_until ? `you are muted here until ${when(d.muted_until)}` : 'you may chat again', 'info');
        }
        memberDetails.refresh();
        renderRoom();
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
    return st.position + (Math.max(0, clock.serverNow() - st.updated_at) / 1000) * st.rate;
  },

  /**
   * Ms until the room's clock starts: a start after a wait may be set up to 1 s ahead so
   * that every member starts together (1.1); until then players hold at `position`.
   */
  startsIn() {
    const st = this.state;
    return st && st.playing ? Math.max(0, st.updated_at - clock.serverNow()) : 0;
  },

  name() {
    return this.info ? this.info.name : this.id;
  },

  learnRole(uid, role) {
    if (uid && (role === 'admin' || role === 'member')) this.roles.set(uid, role);
  },

  roleOf(uid) {
    if (this.info && uid === this.info.owner_id) return 'owner';
    return this.roles.get(uid) || 'member';
  },

  myRole() {
    return this.roleOf(me());
  },

  /** Who may move playback and media here: everyone, the owner and admins, or the owner. */
  canControl() {
    const control = this.info ? this.info.control : 'everyone';
    const role = this.myRole();
    if (control === 'owner') return role === 'owner';
    if (control === 'hosts') return role === 'owner' || role === 'admin';
    return true;
  },

  muted() {
    return typeof this.mutedUntil === 'number' && this.mutedUntil > Date.now();
  },

  /** Out of the room by the server's decision (kicked, banned): back to the lobby, told why. */
  shut(why) {
    this.leave(true, false);
    showLobby();
    showNotice(why);
  },

  leave(route = true, tell = true) {
    if (tell && this.id && conn.state === 'connected') conn.send({ type: 'leave', room: this.id, id: conn.nextId++ });
    memberDetails.stop();
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
