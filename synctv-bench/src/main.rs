//! `synctv-bench`: a load generator that speaks only the public wire contract
//! (PROTOCOL.md): guest tokens and rooms over HTTP, then WebSockets that join rooms and
//! publish chats whose text carries the send time.
//!
//! A tour:
//! - `protocol`: the few client and server messages it uses, and the latency payload.
//! - `http`: guest tokens and room creation.
//! - `connection`: connect (from a chosen loopback source), join, and the one task that
//!   drives each connection.
//! - `fleet`: R rooms of M members, connected and joined, spread over the nodes.
//! - `stats`: what receivers record (latency, deliveries, errors); `report`: percentiles
//!   and the text / JSON output; `proc_stats`: CPU and RSS from /proc.
//! - `rate`: pacing arithmetic; `clock`: the send/receive time base.
//! - `scenarios`: `fanout`, `max`, `idle`, `churn`.

mod clock;
mod connection;
mod fleet;
mod http;
mod proc_stats;
mod protocol;
mod rate;
mod report;
mod scenarios;
mod stats;

use anyhow::Context;
use clap::{Parser, Subcommand};
use scenarios::{churn::ChurnArgs, fanout::FanoutArgs, idle::IdleArgs, max::MaxArgs, Ctx};

#[derive(Debug, Parser)]
#[command(
    name = "synctv-bench",
    about = "Load generator for synctv (public wire contract only)"
)]
struct Cli {
    /// A node's base URL; repeat for several nodes (rooms then span them).
    #[arg(long = "url", global = true, default_value = "http://127.0.0.1:8080")]
    urls: Vec<String>,
    /// A server process to watch (CPU seconds, RSS); repeatable.
    #[arg(long = "server-pid", global = true)]
    server_pids: Vec<u32>,
    /// Print the report as one JSON line.
    #[arg(long, global = true)]
    json: bool,
    /// Past this many connections in one run, bind client sockets to 127.0.0.2, .3, ...,
    /// 10k per address. One address has about 28k ephemeral ports, and picking a free one
    /// gets slow long before they run out (19k connections: ~1.5k/s from 127.0.0.1 alone,
    /// ~2.5k/s spread, at half the bench CPU), so the default spreads early.
    #[arg(long, global = true, default_value_t = 10_000)]
    spread_sources_above: usize,
    /// Worker threads (default: a current-thread runtime).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// R rooms of M members at a fixed chat rate; end-to-end latency of every delivery.
    Fanout(FanoutArgs),
    /// Fanout at rising rates until p99 passes the budget or anything is lost.
    Max(MaxArgs),
    /// N connections joined and held: connect rate and server RSS per connection.
    Idle(IdleArgs),
    /// Connect, join, leave, close at a fixed rate: joins/s and their latency.
    Churn(ChurnArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = match cli.threads {
        Some(n) if n > 1 => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
    .context("starting the runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut targets = Vec::new();
    for url in &cli.urls {
        targets.push(
            connection::Target::resolve(url.trim_end_matches('/'))
                .await
                .with_context(|| format!("--url {url}"))?,
        );
    }
    let ctx = Ctx {
        api: http::Api::new()?,
        targets,
        server_pids: cli.server_pids,
        spread_sources_above: cli.spread_sources_above,
        prefix: format!(
            "b{}t{}-",
            std::process::id(),
            clock::now_nanos() / 1_000_000_000 % 100_000
        ),
    };
    match &cli.scenario {
        Scenario::Fanout(args) => scenarios::fanout::run(&ctx, args, cli.json).await,
        Scenario::Max(args) => scenarios::max::run(&ctx, args, cli.json).await,
        Scenario::Idle(args) => scenarios::idle::run(&ctx, args, cli.json).await,
        Scenario::Churn(args) => scenarios::churn::run(&ctx, args, cli.json).await,
    }
}
