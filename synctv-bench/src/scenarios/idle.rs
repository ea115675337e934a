//! `idle`: N connections joined to rooms and held. Reports the connect + join rate and,
//! with `--server-pid`, the server's RSS per connection. Past the bench's own file limit
//! the connections are split over worker processes (this binary re-run with `--worker`),
//! which answer on stdout with one JSON line each (see `workers`).

use super::Ctx;
use crate::clock;
use crate::fleet::{self, FleetSpec};
use crate::proc_stats::{self, Probe};
use crate::report::round3;
use crate::stats::Stats;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Descriptors a process keeps for itself besides its connections.
const FD_RESERVE: u64 = 256;

#[derive(Debug, Clone, clap::Args)]
pub struct IdleArgs {
    /// Connections in all (rounded up to whole rooms).
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Members per room.
    #[arg(long, default_value_t = 100)]
    pub room_size: usize,
    /// Seconds to hold the connections after all joined.
    #[arg(long, default_value_t = 5.0)]
    pub hold_secs: f64,
    /// Connections (and HTTP requests, up to 64) in flight while connecting; the connect
    /// rate measured is only the server's when this is high enough (1000 gave ~5k/s where
    /// 200 gave ~1.5k/s on the dev machine).
    #[arg(long, default_value_t = 1000)]
    pub concurrency: usize,
    /// Connections per process (default: the file limit less a reserve).
    #[arg(long)]
    pub per_process: Option<usize>,
    /// Internal: run as a worker of a parent `idle` run.
    #[arg(long, hide = true)]
    pub worker: bool,
    /// Internal: global index of this worker's first connection.
    #[arg(long, hide = true, default_value_t = 0)]
    pub worker_offset: usize,
    /// Internal: connections of the whole run.
    #[arg(long, hide = true, default_value_t = 0)]
    pub worker_total: usize,
}

/// What one process (the bench alone, or one worker) reports about its connections.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShareReport {
    pub connected: usize,
    pub failed: usize,
    pub connect_start_nanos: u64,
    pub connect_end_nanos: u64,
    pub errors: BTreeMap<String, u64>,
    pub bench_cpu_seconds: f64,
    pub bench_rss_kib: u64,
}

#[derive(Debug, Serialize)]
struct IdleReport {
    scenario: &'static str,
    nodes: Vec<String>,
    connections: usize,
    room_size: usize,
    processes: usize,
    connected: usize,
    failed: usize,
    connect_secs: f64,
    connects_per_sec: f64,
    errors: BTreeMap<String, u64>,
    server_rss_before_kib: Option<u64>,
    server_rss_after_kib: Option<u64>,
    server_rss_per_connection_kib: Option<f64>,
    server_cpu_seconds_while_connecting: Option<f64>,
    bench_cpu_seconds: f64,
    bench_rss_kib: u64,
}

fn server_rss(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter()
        .map(|p| proc_stats::sample(&p.to_string()).ok().map(|s| s.rss_kib))
        .sum()
}

fn split(total: usize, per_process: usize, room_size: usize) -> Vec<(usize, usize)> {
    let per = (per_process / room_size).max(1) * room_size;
    let mut shares = Vec::new();
    let mut offset = 0;
    while offset < total {
        let n = per.min(total - offset);
        shares.push((offset, n));
        offset += n;
    }
    shares
}

/// Prepare one share's users and rooms; connecting comes later, when told.
async fn prepare_share(
    ctx: &Ctx,
    args: &IdleArgs,
    offset: usize,
    n: usize,
    total: usize,
) -> anyhow::Result<fleet::Prepared> {
    let spec = FleetSpec {
        rooms: n / args.room_size,
        room_size: args.room_size,
        prefix: ctx.prefix.clone(),
        concurrency: args.concurrency,
        offset,
        total,
        spread_above: ctx.spread_sources_above,
    };
    fleet::prepare(&ctx.api, &ctx.targets, &spec)
        .await
        .context("setup")
}

/// Connect a prepared share and say how it went.
async fn connect_share(
    ctx: &Ctx,
    prepared: fleet::Prepared,
    stats: &Arc<Stats>,
) -> (fleet::Fleet, ShareReport) {
    let start = clock::now_nanos();
    let fleet = fleet::connect(prepared, &ctx.targets, stats).await;
    let end = clock::now_nanos();
    let me = proc_stats::sample("self").ok();
    let report = ShareReport {
        connected: fleet.connected,
        failed: fleet.failed,
        connect_start_nanos: start,
        connect_end_nanos: end,
        errors: stats.snapshot().errors,
        bench_cpu_seconds: me.map(|s| round3(s.cpu_secs)).unwrap_or(0.0),
        bench_rss_kib: me.map(|s| s.rss_kib).unwrap_or(0),
    };
    (fleet, report)
}

/// Worker side: prepare, print `{}` (ready), wait for a line (go), connect, print the
/// share report, hold until stdin closes.
async fn worker(ctx: &Ctx, args: &IdleArgs) -> anyhow::Result<()> {
    proc_stats::raise_nofile_limit();
    let prepared = prepare_share(
        ctx,
        args,
        args.worker_offset,
        args.connections,
        args.worker_total,
    )
    .await?;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    println!("{{}}");
    stdin.next_line().await?;
    let stats = Arc::new(Stats::new());
    let (fleet, report) = connect_share(ctx, prepared, &stats).await;
    println!("{}", serde_json::to_string(&report)?);
    while stdin.next_line().await?.is_some() {}
    fleet.close().await;
    Ok(())
}

/// Parent side with workers: each worker prepares its share; when all are ready the
/// server is sampled and all are told to connect at once.
async fn with_workers(
    ctx: &Ctx,
    args: &IdleArgs,
    shares: &[(usize, usize)],
    total: usize,
    measure: &mut Measure,
) -> anyhow::Result<Vec<ShareReport>> {
    let exe = std::env::current_exe().context("finding the bench binary")?;
    let concurrency = (args.concurrency / shares.len()).max(1);
    let mut children = Vec::new();
    for &(offset, n) in shares {
        let mut cmd = tokio::process::Command::new(&exe);
        for url in ctx.node_urls() {
            cmd.arg("--url").arg(url);
        }
        cmd.arg("--spread-sources-above")
            .arg(ctx.spread_sources_above.to_string())
            .arg("idle")
            .args(["--worker", "--connections", &n.to_string()])
            .args(["--room-size", &args.room_size.to_string()])
            .args(["--concurrency", &concurrency.to_string()])
            .args(["--worker-offset", &offset.to_string()])
            .args(["--worker-total", &total.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting a worker")?;
        let stdin = child.stdin.take().context("worker stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("worker stdout")?).lines();
        children.push((child, stdin, stdout));
    }
    for (_, _, out) in children.iter_mut() {
        out.next_line()
            .await?
            .context("a worker ended before it was ready")?;
    }
    measure.start(&ctx.server_pids);
    for (_, stdin, _) in children.iter_mut() {
        stdin.write_all(b"go\n").await?;
    }
    let mut reports = Vec::new();
    for (_, _, out) in children.iter_mut() {
        let line = out
            .next_line()
            .await?
            .context("a worker ended before its report")?;
        reports.push(serde_json::from_str(&line).context("a worker's report")?);
    }
    measure.finish(&ctx.server_pids, args.hold_secs).await;
    for (mut child, stdin, _) in children {
        drop(stdin);
        let _ = child.wait().await;
    }
    Ok(reports)
}

/// Server samples around the connect phase.
#[derive(Default)]
struct Measure {
    rss_before: Option<u64>,
    rss_after: Option<u64>,
    probe: Option<Probe>,
    cpu_seconds: Option<f64>,
}

impl Measure {
    fn start(&mut self, pids: &[u32]) {
        self.rss_before = server_rss(pids);
        self.probe = Some(Probe::start(pids));
    }

    /// After the connects: let the server settle, sample, then hold.
    async fn finish(&mut self, pids: &[u32], hold_secs: f64) {
        if let Some(probe) = &self.probe {
            let usage = probe.finish();
            self.cpu_seconds = (!usage.servers.is_empty()).then_some(usage.server_cpu_seconds);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.rss_after = server_rss(pids);
        tokio::time::sleep(Duration::from_secs_f64(hold_secs)).await;
    }
}

pub async fn run(ctx: &Ctx, args: &IdleArgs, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(args.room_size > 0, "--room-size must be at least 1");
    if args.worker {
        return worker(ctx, args).await;
    }
    let total = args.connections.div_ceil(args.room_size) * args.room_size;
    let limit = proc_stats::raise_nofile_limit();
    let per_process = args
        .per_process
        .unwrap_or(limit.saturating_sub(FD_RESERVE) as usize)
        .max(args.room_size);
    let shares = split(total, per_process, args.room_size);
    eprintln!("idle: {total} connections in {} process(es)", shares.len());
    let mut measure = Measure::default();
    let reports = if shares.len() <= 1 {
        let prepared = prepare_share(ctx, args, 0, total, total).await?;
        measure.start(&ctx.server_pids);
        let stats = Arc::new(Stats::new());
        let (fleet, report) = connect_share(ctx, prepared, &stats).await;
        measure.finish(&ctx.server_pids, args.hold_secs).await;
        fleet.close().await;
        vec![report]
    } else {
        with_workers(ctx, args, &shares, total, &mut measure).await?
    };
    crate::report::print(&summarize(ctx, args, total, &reports, &measure), json);
    Ok(())
}

fn summarize(
    ctx: &Ctx,
    args: &IdleArgs,
    total: usize,
    reports: &[ShareReport],
    m: &Measure,
) -> IdleReport {
    let connected: usize = reports.iter().map(|r| r.connected).sum();
    let start = reports
        .iter()
        .map(|r| r.connect_start_nanos)
        .min()
        .unwrap_or(0);
    let end = reports
        .iter()
        .map(|r| r.connect_end_nanos)
        .max()
        .unwrap_or(0);
    let secs = end.saturating_sub(start) as f64 / 1e9;
    let mut errors = BTreeMap::new();
    for r in reports {
        for (code, n) in &r.errors {
            *errors.entry(code.clone()).or_default() += n;
        }
    }
    let per_conn = match (m.rss_before, m.rss_after) {
        (Some(b), Some(a)) if connected > 0 => {
            Some(round3((a as f64 - b as f64) / connected as f64))
        }
        _ => None,
    };
    IdleReport {
        scenario: "idle",
        nodes: ctx.node_urls(),
        connections: total,
        room_size: args.room_size,
        processes: reports.len(),
        connected,
        failed: reports.iter().map(|r| r.failed).sum(),
        connect_secs: round3(secs),
        connects_per_sec: if secs > 0.0 {
            round3(connected as f64 / secs)
        } else {
            0.0
        },
        errors,
        server_rss_before_kib: m.rss_before,
        server_rss_after_kib: m.rss_after,
        server_rss_per_connection_kib: per_conn,
        server_cpu_seconds_while_connecting: m.cpu_seconds,
        bench_cpu_seconds: round3(reports.iter().map(|r| r.bench_cpu_seconds).sum()),
        bench_rss_kib: reports.iter().map(|r| r.bench_rss_kib).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_whole_rooms_and_cover_everything() {
        let shares = split(45_000, 19_744, 100);
        assert_eq!(shares, vec![(0, 19_700), (19_700, 19_700), (39_400, 5_600)]);
        assert_eq!(split(1000, 20_000, 100), vec![(0, 1000)]);
    }
}
