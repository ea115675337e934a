// The candidate servers from /config.json, ranked by WebSocket ping round trip.
import { session, wsTicket } from './api.js';
import { wallNow } from './util.js';

export const PROBE = { pings: 3, timeoutMs: 3000, everyMs: 15000 };

export const wsUrl = (base, ticket) =>
  `${base.replace(/^http/, 'ws')}/ws?ticket=${encodeURIComponent(ticket)}`;
export const hostOf = (base) => base.replace(/^https?:\/\//, '');

/**
 * Candidate servers, each {base, region, rtt, downUntil}; ranked by the lowest measured
 * RTT, so the page uses the nearest region (and the nearest node in it) and, when that
 * region dies, the next nearest one. A server's region comes from /config.json: the
 * origin's own `region`, and each live node's advertised `address` with its `region`.
 */
export const servers = {
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
export async function probe(base) {
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
