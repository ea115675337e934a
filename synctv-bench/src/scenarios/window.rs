//! One measured publish window over a joined fleet: warm-up, then `duration` seconds at a
//! fixed total rate, paced by one scheduler task that round-robins chats over the senders,
//! then a drain until every expected delivery arrived or the drain time ran out.

use crate::clock;
use crate::connection::Out;
use crate::fleet::Fleet;
use crate::proc_stats::{Probe, WindowUsage};
use crate::protocol::{encode_payload, ClientMsg};
use crate::rate::{self, SendPlan};
use crate::report::{round3, Percentiles};
use crate::stats::{chat_id, Stats};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct WindowSpec {
    pub rate: f64,
    pub plan: SendPlan,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    pub drain_secs: f64,
    pub payload_bytes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowReport {
    pub target_rate: f64,
    /// Chats sent per second inside the measured window.
    pub sent_rate: f64,
    pub senders: usize,
    pub per_sender_rate: f64,
    pub duration_secs: f64,
    pub sent: u64,
    pub acked: u64,
    pub expected_deliveries: u64,
    pub delivered: u64,
    pub lost: u64,
    /// Deliveries beyond the expected ones (duplicates), if any.
    pub extra: u64,
    /// Events a connection saw with a seq skipping ahead, or not going up.
    pub seq_gaps: u64,
    pub seq_backwards: u64,
    pub deliveries_per_sec: f64,
    pub latency: Percentiles,
    /// The same deliveries split by whether the sender was on the receiver's node or on
    /// another (with one `--url` per region: whether they crossed between regions).
    pub latency_same_node: Percentiles,
    pub latency_other_node: Percentiles,
    pub ack_latency: Percentiles,
    pub errors: BTreeMap<String, u64>,
    pub reconnects: BTreeMap<String, u64>,
    pub closed: BTreeMap<String, u64>,
    /// Frames that were not JSON the bench could read.
    pub unparsable_frames: u64,
    pub usage: WindowUsage,
    /// Deliveries per CPU-second of the watched servers (needs `--server-pid`).
    pub deliveries_per_server_cpu_sec: Option<f64>,
    /// Server CPU microseconds spent per delivery (needs `--server-pid`).
    pub server_cpu_us_per_delivery: Option<f64>,
    /// The bench's own CPU microseconds per delivery: when the bench's CPU plus the
    /// servers' nears the machine's cores, the bench is (part of) the limit.
    pub bench_cpu_us_per_delivery: Option<f64>,
    /// Context switches of the servers' threads per delivery (needs `--server-pid`).
    pub server_switches_per_delivery: Option<f64>,
}

/// Run one window over `fleet` (whose connections must all be up) at `spec.rate`.
pub async fn run(
    fleet: &Fleet,
    stats: &Stats,
    spec: &WindowSpec,
    server_pids: &[u32],
) -> WindowReport {
    let rooms = fleet.room_ids.len();
    let order: Vec<usize> = rate::sender_order(rooms, fleet.room_size, spec.plan.senders)
        .into_iter()
        .filter(|&c| fleet.conns[c].is_some())
        .collect();
    let t0 = clock::now_nanos();
    let start = t0 + (spec.warmup_secs * 1e9) as u64;
    let end = start + (spec.duration_secs * 1e9) as u64;
    stats.reset(start, end);

    let mut probe: Option<Probe> = None;
    let (mut scheduled, mut sent_in_window, mut next) = (0u64, 0u64, 0usize);
    loop {
        // Wake for the next due send (the timer's grain is 1 ms, so at most 1000 wakes/s),
        // and at least every 10 ms to start the probe on time.
        let next_due = t0 + rate::nanos_until(scheduled + 1, spec.rate);
        let wait = next_due.saturating_sub(clock::now_nanos()).min(10_000_000);
        tokio::time::sleep(Duration::from_nanos(wait)).await;
        let now = clock::now_nanos();
        if probe.is_none() && now >= start {
            probe = Some(Probe::start(server_pids));
        }
        if now >= end || order.is_empty() {
            break;
        }
        let due = rate::due(now - t0, spec.rate);
        while scheduled < due {
            let conn = order[next];
            next = (next + 1) % order.len();
            scheduled += 1;
            let Some(tx) = &fleet.conns[conn] else {
                continue;
            };
            let sent = clock::now_nanos();
            let text = encode_payload(conn as u32, sent, spec.payload_bytes);
            let room = &fleet.room_ids[conn / fleet.room_size];
            let msg = ClientMsg::Chat {
                id: chat_id(sent),
                room,
                text: &text,
            };
            match tx.try_send(Out::Text(msg.to_json())) {
                Ok(()) if sent >= start && sent < end => sent_in_window += 1,
                Ok(()) => {}
                Err(_) => stats.on_error("bench_send_queue_full"),
            }
        }
    }
    let usage = probe.unwrap_or_else(|| Probe::start(server_pids)).finish();

    let expected = sent_in_window * fleet.room_size as u64;
    let drain_until = tokio::time::Instant::now() + Duration::from_secs_f64(spec.drain_secs);
    while !stats.all_in(expected, sent_in_window) && tokio::time::Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let snap = stats.snapshot();
    let per_cpu = (usage.server_cpu_seconds > 0.0)
        .then(|| round3(snap.delivered as f64 / usage.server_cpu_seconds));
    let us_per = (snap.delivered > 0 && !usage.servers.is_empty())
        .then(|| round3(usage.server_cpu_seconds * 1e6 / snap.delivered as f64));
    let bench_us_per = usage
        .bench
        .as_ref()
        .filter(|_| snap.delivered > 0)
        .map(|b| round3(b.cpu_seconds * 1e6 / snap.delivered as f64));
    let switches_per = (snap.delivered > 0 && !usage.servers.is_empty()).then(|| {
        let switches: u64 = usage.servers.iter().map(|s| s.context_switches).sum();
        round3(switches as f64 / snap.delivered as f64)
    });
    WindowReport {
        target_rate: spec.rate,
        sent_rate: round3(sent_in_window as f64 / spec.duration_secs),
        senders: order.len(),
        per_sender_rate: round3(spec.plan.per_sender_rate),
        duration_secs: spec.duration_secs,
        sent: sent_in_window,
        acked: snap.acked,
        expected_deliveries: expected,
        delivered: snap.delivered,
        lost: expected.saturating_sub(snap.delivered),
        extra: snap.delivered.saturating_sub(expected),
        seq_gaps: snap.seq_gaps,
        seq_backwards: snap.seq_backwards,
        deliveries_per_sec: round3(snap.delivered as f64 / spec.duration_secs),
        latency: snap.e2e,
        latency_same_node: snap.e2e_same_node,
        latency_other_node: snap.e2e_other_node,
        ack_latency: snap.ack,
        errors: snap.errors,
        reconnects: snap.reconnects,
        closed: snap.closed,
        unparsable_frames: snap.unparsable,
        usage,
        deliveries_per_server_cpu_sec: per_cpu,
        server_cpu_us_per_delivery: us_per,
        bench_cpu_us_per_delivery: bench_us_per,
        server_switches_per_delivery: switches_per,
    }
}
