//! `fanout`: R rooms of M members, a fixed total chat rate, every delivery timed.

use super::window::{self, WindowReport, WindowSpec};
use super::Ctx;
use crate::fleet::{self, Fleet, FleetSpec};
use crate::rate;
use crate::report::round3;
use crate::stats::{NodeLayout, Stats};
use anyhow::{bail, Context};
use serde::Serialize;
use std::sync::Arc;

/// The room layout and pacing shared by `fanout` and `max`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Rooms.
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Members per room, one user and one connection each.
    #[arg(long, default_value_t = 10)]
    pub members: usize,
    /// Highest chat rate any one connection may send (the server allows 20/s sustained).
    #[arg(long, default_value_t = 10.0)]
    pub max_per_conn_rate: f64,
    /// Connections that send (default: every member).
    #[arg(long)]
    pub senders: Option<usize>,
    /// Seconds of traffic before the measured window.
    #[arg(long, default_value_t = 2.0)]
    pub warmup_secs: f64,
    /// Length of the measured window.
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,
    /// After the window, wait at most this long for the last deliveries.
    #[arg(long, default_value_t = 5.0)]
    pub drain_secs: f64,
    /// Size of each chat text (the latency stamp plus padding).
    #[arg(long, default_value_t = 100)]
    pub payload_bytes: usize,
    /// Connections (and HTTP requests, up to 64) in flight during setup.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
}

#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Total chats per second over all senders.
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
}

#[derive(Debug, Serialize)]
pub struct Setup {
    pub nodes: Vec<String>,
    pub rooms: usize,
    pub members: usize,
    pub connections: usize,
    pub payload_bytes: usize,
    pub connect_secs: f64,
}

#[derive(Debug, Serialize)]
struct FanoutReport {
    scenario: &'static str,
    setup: Setup,
    window: WindowReport,
}

/// Users, rooms, connections: every one must be up, or the figures would mean nothing.
pub async fn setup(
    ctx: &Ctx,
    load: &LoadArgs,
    stats: &Arc<Stats>,
) -> anyhow::Result<(Fleet, Setup)> {
    if load.rooms == 0 || load.members == 0 {
        bail!("--rooms and --members must be at least 1");
    }
    let n = load.rooms * load.members;
    let limit = crate::proc_stats::raise_nofile_limit() as usize;
    if n + 256 > limit {
        bail!("{n} connections do not fit in this process's file limit of {limit}");
    }
    let spec = FleetSpec {
        rooms: load.rooms,
        room_size: load.members,
        prefix: ctx.prefix.clone(),
        concurrency: load.concurrency,
        offset: 0,
        total: n,
        spread_above: ctx.spread_sources_above,
    };
    eprintln!("setup: {n} guest users and {} rooms", load.rooms);
    let prepared = fleet::prepare(&ctx.api, &ctx.targets, &spec)
        .await
        .context("setup")?;
    eprintln!("setup: connecting and joining {n} connections");
    let fleet = fleet::connect(prepared, &ctx.targets, stats).await;
    if fleet.failed > 0 {
        bail!(
            "{} of {n} connections failed to connect or join: {:?}",
            fleet.failed,
            stats.snapshot().errors
        );
    }
    let setup = Setup {
        nodes: ctx.node_urls(),
        rooms: load.rooms,
        members: load.members,
        connections: n,
        payload_bytes: load.payload_bytes,
        connect_secs: round3(fleet.connect_secs),
    };
    Ok((fleet, setup))
}

/// The window spec for `rate`, or why that rate cannot be run within the limits.
pub fn window_spec(load: &LoadArgs, rate: f64) -> Result<WindowSpec, rate::RateError> {
    let plan = rate::plan(
        rate,
        load.rooms * load.members,
        load.senders,
        load.max_per_conn_rate,
    )?;
    Ok(WindowSpec {
        rate,
        plan,
        warmup_secs: load.warmup_secs,
        duration_secs: load.duration_secs,
        drain_secs: load.drain_secs,
        payload_bytes: load.payload_bytes,
    })
}

pub async fn run(ctx: &Ctx, args: &FanoutArgs, json: bool) -> anyhow::Result<()> {
    let spec = window_spec(&args.load, args.rate)?;
    let stats = Arc::new(Stats::spanning(NodeLayout {
        nodes: ctx.targets.len(),
        offset: 0,
    }));
    let (fleet, setup) = setup(ctx, &args.load, &stats).await?;
    eprintln!(
        "fanout: {} events/s for {}s after {}s warm-up",
        args.rate, args.load.duration_secs, args.load.warmup_secs
    );
    let window = window::run(&fleet, &stats, &spec, &ctx.server_pids).await;
    fleet.close().await;
    crate::report::print(
        &FanoutReport {
            scenario: "fanout",
            setup,
            window,
        },
        json,
    );
    Ok(())
}
