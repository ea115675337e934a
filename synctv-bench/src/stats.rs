//! What the receiving side of every connection records: end-to-end latency of bench chat
//! events (send -> each receiver), ack latency (send -> ack), deliveries, errors by code,
//! `reconnect` frames and closes. One shared value behind a mutex: on the default
//! current-thread runtime the lock is never contended.
//!
//! Only events *sent* inside the measured window count, so warm-up traffic and the drain
//! after the window never blur the figures: expected = sent in window x room size.
//!
//! With several nodes, each delivery is also counted by whether it crossed between nodes
//! (the sender on one, the receiver on another): with one `--url` per region, that splits
//! the deliveries that crossed the link between regions from those that stayed in one.

use crate::clock;
use crate::protocol::{decode_payload, ServerFrame};
use crate::report::Percentiles;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// Histograms hold microseconds, up to 10 minutes, 3 significant figures.
fn histogram() -> Histogram<u64> {
    // Constant, valid bounds: this cannot fail at run time.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant histogram bounds are valid")
}

/// How connections map to nodes: connection `i` of the run is on node `(offset + i) % nodes`
/// (the fleet's layout), so a receiver knows a sender's node from its index alone.
#[derive(Debug, Clone, Copy)]
pub struct NodeLayout {
    pub nodes: usize,
    pub offset: usize,
}

impl NodeLayout {
    pub fn node_of(&self, conn: usize) -> usize {
        (self.offset + conn) % self.nodes.max(1)
    }
}

/// What a connection's task keeps for `on_frame`: its last seq and its node.
#[derive(Debug, Default)]
pub struct Receiver {
    /// The last event seq this connection saw (0 before any), checked and moved on.
    pub last_seq: u64,
    pub node: usize,
}

#[derive(Debug)]
struct Inner {
    window: (u64, u64),
    layout: NodeLayout,
    e2e_us: Histogram<u64>,
    /// Deliveries whose sender was on the receiver's node, and on another node.
    same_node_us: Histogram<u64>,
    other_node_us: Histogram<u64>,
    ack_us: Histogram<u64>,
    delivered: u64,
    acked: u64,
    errors: BTreeMap<String, u64>,
    reconnects: BTreeMap<String, u64>,
    closed: BTreeMap<String, u64>,
    unparsable: u64,
    seq_gaps: u64,
    seq_backwards: u64,
}

/// A copy of the counters at one moment, for the report.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub delivered: u64,
    pub acked: u64,
    pub e2e: Percentiles,
    pub e2e_same_node: Percentiles,
    pub e2e_other_node: Percentiles,
    pub ack: Percentiles,
    pub errors: BTreeMap<String, u64>,
    pub reconnects: BTreeMap<String, u64>,
    pub closed: BTreeMap<String, u64>,
    pub unparsable: u64,
    /// Events whose seq skipped ahead of the last one the same connection saw.
    pub seq_gaps: u64,
    /// Events whose seq was not above the last one the same connection saw.
    pub seq_backwards: u64,
}

#[derive(Debug)]
pub struct Stats {
    inner: Mutex<Inner>,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Stats of connections all on one node.
    pub fn new() -> Self {
        Self::spanning(NodeLayout {
            nodes: 1,
            offset: 0,
        })
    }

    /// Stats of connections spread over nodes as `layout` says.
    pub fn spanning(layout: NodeLayout) -> Self {
        Self {
            inner: Mutex::new(Inner {
                window: (u64::MAX, u64::MAX),
                layout,
                e2e_us: histogram(),
                same_node_us: histogram(),
                other_node_us: histogram(),
                ack_us: histogram(),
                delivered: 0,
                acked: 0,
                errors: BTreeMap::new(),
                reconnects: BTreeMap::new(),
                closed: BTreeMap::new(),
                unparsable: 0,
                seq_gaps: 0,
                seq_backwards: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot corrupt plain counters: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start a new measured window `[start, end)` (bench clock nanos) and forget the last.
    pub fn reset(&self, start: u64, end: u64) {
        let mut s = self.lock();
        s.window = (start, end);
        s.e2e_us.reset();
        s.same_node_us.reset();
        s.other_node_us.reset();
        s.ack_us.reset();
        s.delivered = 0;
        s.acked = 0;
        s.errors.clear();
        s.reconnects.clear();
        s.closed.clear();
        s.unparsable = 0;
        s.seq_gaps = 0;
        s.seq_backwards = 0;
    }

    /// Record one text frame of a connection joined to one room.
    pub fn on_frame(&self, text: &str, receiver: &mut Receiver) {
        let last_seq = &mut receiver.last_seq;
        let now = clock::now_nanos();
        let Ok(frame) = ServerFrame::parse(text) else {
            self.lock().unparsable += 1;
            return;
        };
        let mut s = self.lock();
        if let (true, Some(seq)) = (frame.kind == "event", frame.seq) {
            if *last_seq != 0 && seq <= *last_seq {
                s.seq_backwards += 1;
            } else if *last_seq != 0 && seq > *last_seq + 1 {
                s.seq_gaps += 1;
            }
            *last_seq = (*last_seq).max(seq);
        }
        let (start, end) = s.window;
        let in_window = |sent: u64| sent >= start && sent < end;
        match frame.kind.as_ref() {
            "event" => {
                if let Some((sender, sent)) = frame.chat_text().and_then(decode_payload) {
                    if in_window(sent) {
                        s.delivered += 1;
                        let us = now.saturating_sub(sent) / 1000;
                        s.e2e_us.saturating_record(us);
                        if s.layout.node_of(sender as usize) == receiver.node {
                            s.same_node_us.saturating_record(us);
                        } else {
                            s.other_node_us.saturating_record(us);
                        }
                    }
                }
            }
            "ack" => {
                // Chat ids are the send time in microseconds (see `chat_id`).
                if let Some(sent_us) = frame.id_u64() {
                    if in_window(sent_us.saturating_mul(1000)) {
                        s.acked += 1;
                        s.ack_us
                            .saturating_record((now / 1000).saturating_sub(sent_us));
                    }
                }
            }
            "error" => {
                let code = frame.code.as_deref().unwrap_or("unknown").to_string();
                *s.errors.entry(code).or_default() += 1;
            }
            "reconnect" => {
                let reason = frame.reason.as_deref().unwrap_or("unknown").to_string();
                *s.reconnects.entry(reason).or_default() += 1;
            }
            _ => {}
        }
    }

    pub fn on_closed(&self, why: &str) {
        *self.lock().closed.entry(why.to_string()).or_default() += 1;
    }

    /// Count a failure the bench saw itself (connect refused, queue full, ...).
    pub fn on_error(&self, code: &str) {
        *self.lock().errors.entry(code.to_string()).or_default() += 1;
    }

    /// Whether the window's `deliveries` and `acks` have all arrived.
    pub fn all_in(&self, deliveries: u64, acks: u64) -> bool {
        let s = self.lock();
        s.delivered >= deliveries && s.acked >= acks
    }

    pub fn snapshot(&self) -> Snapshot {
        let s = self.lock();
        Snapshot {
            delivered: s.delivered,
            acked: s.acked,
            e2e: Percentiles::from_us(&s.e2e_us),
            e2e_same_node: Percentiles::from_us(&s.same_node_us),
            e2e_other_node: Percentiles::from_us(&s.other_node_us),
            ack: Percentiles::from_us(&s.ack_us),
            errors: s.errors.clone(),
            reconnects: s.reconnects.clone(),
            closed: s.closed.clone(),
            unparsable: s.unparsable,
            seq_gaps: s.seq_gaps,
            seq_backwards: s.seq_backwards,
        }
    }
}

/// The `id` of a chat sent at `sent_nanos`: its send time in microseconds, so the ack
/// carries its own latency start and the bench keeps no per-message state.
pub fn chat_id(sent_nanos: u64) -> u64 {
    sent_nanos / 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::encode_payload;

    fn chat_event(seq: u64, text: &str) -> String {
        format!(
            r#"{{"type":"event","room":"r","epoch":"e","seq":{seq},"kind":"chat","by":null,"data":{{"text":"{text}"}},"server_time":0}}"#
        )
    }

    #[test]
    fn counts_only_events_sent_in_the_window() {
        let stats = Stats::new();
        let seq = &mut Receiver::default();
        let now = clock::now_nanos();
        stats.reset(now - 1_000_000_000, now + 1_000_000_000);
        stats.on_frame(&chat_event(1, &encode_payload(1, now - 2_000_000, 40)), seq);
        stats.on_frame(
            &chat_event(2, &encode_payload(1, now - 5_000_000_000, 40)),
            seq,
        );
        stats.on_frame(&chat_event(3, "hello"), seq);
        stats.on_frame(
            r#"{"type":"error","code":"rate_limited","message":"x"}"#,
            seq,
        );
        stats.on_frame(
            r#"{"type":"reconnect","reason":"shutdown","after_ms":10}"#,
            seq,
        );
        stats.on_frame("not json", seq);
        let ack = format!(
            r#"{{"type":"ack","id":{},"room":"r","seq":1}}"#,
            chat_id(now)
        );
        stats.on_frame(&ack, seq);
        let snap = stats.snapshot();
        assert_eq!(snap.delivered, 1);
        assert_eq!(snap.acked, 1);
        assert_eq!(snap.e2e.count, 1);
        assert!(snap.e2e.max_ms >= 1.9);
        assert_eq!(snap.errors.get("rate_limited"), Some(&1));
        assert_eq!(snap.reconnects.get("shutdown"), Some(&1));
        assert_eq!(snap.unparsable, 1);
        assert_eq!((snap.seq_gaps, snap.seq_backwards), (0, 0));
    }

    #[test]
    fn seq_gaps_and_reorders_are_counted() {
        let stats = Stats::new();
        let seq = &mut Receiver::default();
        for n in [10, 11, 13, 12, 14] {
            stats.on_frame(&chat_event(n, "x"), seq);
        }
        let snap = stats.snapshot();
        assert_eq!((snap.seq_gaps, snap.seq_backwards), (1, 1));
    }

    #[test]
    fn deliveries_are_split_by_whether_they_crossed_between_nodes() {
        // Two nodes: even connections on node 0, odd ones on node 1.
        let stats = Stats::spanning(NodeLayout {
            nodes: 2,
            offset: 0,
        });
        let now = clock::now_nanos();
        stats.reset(now - 1_000_000_000, now + 1_000_000_000);
        let on_node_1 = &mut Receiver {
            last_seq: 0,
            node: 1,
        };
        stats.on_frame(
            &chat_event(1, &encode_payload(3, now - 50_000_000, 40)),
            on_node_1,
        );
        stats.on_frame(
            &chat_event(2, &encode_payload(4, now - 2_000_000, 40)),
            on_node_1,
        );
        stats.on_frame(
            &chat_event(3, &encode_payload(6, now - 3_000_000, 40)),
            on_node_1,
        );
        let snap = stats.snapshot();
        assert_eq!(snap.e2e.count, 3);
        assert_eq!(snap.e2e_same_node.count, 1);
        assert!(
            snap.e2e_same_node.max_ms >= 49.0,
            "{:?}",
            snap.e2e_same_node
        );
        assert_eq!(snap.e2e_other_node.count, 2);
        assert!(
            snap.e2e_other_node.max_ms < 49.0,
            "{:?}",
            snap.e2e_other_node
        );
    }
}
