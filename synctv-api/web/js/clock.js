// The server clock: NTP-style offset from ping/pong samples.
import { median, wallNow } from './util.js';

export const CLOCK = { keep: 12, best: 3, burst: 6, burstGapMs: 120, everyMs: 5000, deadAfterMs: 20000 };

/** Offset of the server clock: server_time - (t + rtt/2) over the lowest-RTT samples. */
export const clock = {
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
  /**
   * The median round trip of the recent samples: what a message typically takes there and
   * back. The offset uses the fastest samples (least queueing); a drift report's half trip
   * is better estimated by the typical one, which its own trip is like.
   */
  typicalRtt() {
    return this.samples.length ? median(this.samples.map((s) => s.rtt)) : null;
  },
  serverNow() {
    return wallNow() + this.offset;
  },
};
