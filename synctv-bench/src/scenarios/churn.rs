//! `churn`: at a fixed rate, a new connection connects, joins a room, leaves it and
//! closes. Reports joins/s and the latency of each step.

use super::Ctx;
use crate::connection::{self, ConnError, Target};
use crate::fleet::source_ip;
use crate::proc_stats::{Probe, WindowUsage};
use crate::protocol::ClientMsg;
use crate::rate;
use crate::report::{round3, Percentiles};
use anyhow::Context;
use futures_util::{stream, StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;

#[derive(Debug, Clone, clap::Args)]
pub struct ChurnArgs {
    /// New connections per second (each connects, joins, leaves, closes).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Length of the run.
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,
    /// Guest users to take turns (the server allows 10 connections per user per node).
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    /// Rooms to take turns joining.
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Cycles in flight at most; a due cycle over this is skipped and counted.
    #[arg(long, default_value_t = 1000)]
    pub max_in_flight: usize,
}

#[derive(Debug, Serialize)]
struct ChurnReport {
    scenario: &'static str,
    nodes: Vec<String>,
    target_rate: f64,
    duration_secs: f64,
    started: u64,
    completed: u64,
    failed: u64,
    skipped: u64,
    joins_per_sec: f64,
    cycles_per_sec: f64,
    connect_latency: Percentiles,
    join_latency: Percentiles,
    leave_latency: Percentiles,
    cycle_latency: Percentiles,
    errors: BTreeMap<String, u64>,
    usage: WindowUsage,
}

struct Tally {
    connect: Histogram<u64>,
    join: Histogram<u64>,
    leave: Histogram<u64>,
    cycle: Histogram<u64>,
    joined: u64,
    completed: u64,
    failed: u64,
    errors: BTreeMap<String, u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant histogram bounds are valid")
}

fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros() as u64
}

/// One connect, join, leave, close; the step timings go into `tally`.
async fn cycle(
    target: &Target,
    token: &str,
    source: Option<std::net::IpAddr>,
    room: &str,
    tally: &Mutex<Tally>,
) -> Result<(), ConnError> {
    let begin = Instant::now();
    let mut ws = connection::connect(target, token, source).await?;
    let connect_us = micros(begin);
    let t = Instant::now();
    connection::request(&mut ws, &ClientMsg::Join { id: 1, room }, 1, "joined").await?;
    let join_us = micros(t);
    {
        let mut s = tally.lock().unwrap_or_else(|e| e.into_inner());
        s.connect.saturating_record(connect_us);
        s.join.saturating_record(join_us);
        s.joined += 1;
    }
    let t = Instant::now();
    connection::request(&mut ws, &ClientMsg::Leave { id: 2, room }, 2, "left").await?;
    let leave_us = micros(t);
    connection::close_gracefully(&mut ws).await;
    let mut s = tally.lock().unwrap_or_else(|e| e.into_inner());
    s.leave.saturating_record(leave_us);
    s.cycle.saturating_record(micros(begin));
    s.completed += 1;
    Ok(())
}

pub async fn run(ctx: &Ctx, args: &ChurnArgs, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.users > 0 && args.rooms > 0,
        "--users and --rooms must be at least 1"
    );
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    crate::proc_stats::raise_nofile_limit();
    eprintln!("setup: {} guest users and {} rooms", args.users, args.rooms);
    let bases: Vec<String> = ctx.node_urls();
    let api = &ctx.api;
    let tokens = api
        .guest_tokens(&bases, &format!("{}u", ctx.prefix), args.users, 32)
        .await
        .context("guest tokens")?;
    let rooms: Vec<String> = stream::iter(0..args.rooms)
        .map(|r| {
            let owner = r % args.users;
            let base = &bases[owner % bases.len()];
            let name = format!("{}room{r}", ctx.prefix);
            let token = &tokens[owner];
            async move { api.create_room(base, token, &name).await }
        })
        .buffered(16)
        .try_collect()
        .await
        .context("rooms")?;

    let tally = Arc::new(Mutex::new(Tally {
        connect: histogram(),
        join: histogram(),
        leave: histogram(),
        cycle: histogram(),
        joined: 0,
        completed: 0,
        failed: 0,
        errors: BTreeMap::new(),
    }));
    let expected_total = (args.rate * args.duration_secs).ceil() as usize;
    let ctx_spread = ctx.spread_sources_above;
    let tokens = Arc::new(tokens);
    let rooms = Arc::new(rooms);
    let targets = Arc::new(ctx.targets.clone());
    let slots = Arc::new(Semaphore::new(args.max_in_flight.max(1)));
    eprintln!("churn: {} cycles/s for {}s", args.rate, args.duration_secs);

    let probe = Probe::start(&ctx.server_pids);
    let begin = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let (mut started, mut skipped) = (0u64, 0u64);
    let mut scheduled = 0u64;
    loop {
        ticker.tick().await;
        let elapsed = begin.elapsed();
        if elapsed.as_secs_f64() >= args.duration_secs {
            break;
        }
        let due = rate::due(elapsed.as_nanos() as u64, args.rate);
        while scheduled < due {
            let k = scheduled as usize;
            scheduled += 1;
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                skipped += 1;
                continue;
            };
            started += 1;
            let (tokens, rooms, targets, tally) = (
                tokens.clone(),
                rooms.clone(),
                targets.clone(),
                tally.clone(),
            );
            tokio::spawn(async move {
                let target = &targets[k % targets.len()];
                let source = source_ip(k, expected_total, ctx_spread, target);
                let result = cycle(
                    target,
                    &tokens[k % tokens.len()],
                    source,
                    &rooms[k % rooms.len()],
                    &tally,
                )
                .await;
                if let Err(e) = result {
                    let mut s = tally.lock().unwrap_or_else(|e| e.into_inner());
                    s.failed += 1;
                    *s.errors.entry(e.code()).or_default() += 1;
                }
                drop(permit);
            });
        }
    }
    let wall = begin.elapsed().as_secs_f64();
    let usage = probe.finish();
    // Let the cycles in flight finish (bounded).
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        slots.acquire_many(args.max_in_flight.max(1) as u32),
    )
    .await;

    let s = tally.lock().unwrap_or_else(|e| e.into_inner());
    let report = ChurnReport {
        scenario: "churn",
        nodes: ctx.node_urls(),
        target_rate: args.rate,
        duration_secs: round3(wall),
        started,
        completed: s.completed,
        failed: s.failed,
        skipped,
        joins_per_sec: round3(s.joined as f64 / wall),
        cycles_per_sec: round3(s.completed as f64 / wall),
        connect_latency: Percentiles::from_us(&s.connect),
        join_latency: Percentiles::from_us(&s.join),
        leave_latency: Percentiles::from_us(&s.leave),
        cycle_latency: Percentiles::from_us(&s.cycle),
        errors: s.errors.clone(),
        usage,
    };
    crate::report::print(&report, json);
    Ok(())
}
