//! `max`: the fanout window at rising rates over one fleet, until p99 passes the budget or
//! anything is lost; reports the highest rate that held.

use super::fanout::{self, LoadArgs};
use super::window::{self, WindowReport};
use super::Ctx;
use crate::stats::{NodeLayout, Stats};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct MaxArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// First rate tried, in chats per second.
    #[arg(long, default_value_t = 500.0)]
    pub start_rate: f64,
    /// Each step multiplies the rate by this.
    #[arg(long, default_value_t = 1.5)]
    pub step_factor: f64,
    /// A step holds while end-to-end p99 stays at or under this.
    #[arg(long, default_value_t = 25.0)]
    pub budget_ms: f64,
    /// Give up after this many steps.
    #[arg(long, default_value_t = 20)]
    pub max_steps: usize,
}

#[derive(Debug, Serialize)]
struct Step {
    rate: f64,
    deliveries_per_sec: f64,
    p99_ms: f64,
    lost: u64,
    errors: u64,
    held: bool,
}

#[derive(Debug, Serialize)]
struct MaxReport {
    scenario: &'static str,
    setup: fanout::Setup,
    budget_ms: f64,
    stopped_because: String,
    steps: Vec<Step>,
    /// The full report of the highest rate that held, if any did.
    best: Option<WindowReport>,
}

/// Why a window does not hold, if it does not.
fn failure(w: &WindowReport, budget_ms: f64) -> Option<String> {
    let errors: u64 = w.errors.values().sum();
    if w.lost > 0 || w.seq_gaps > 0 || w.seq_backwards > 0 {
        Some(format!(
            "{} deliveries lost at {} events/s",
            w.lost, w.target_rate
        ))
    } else if errors > 0 {
        Some(format!(
            "errors {:?} at {} events/s",
            w.errors, w.target_rate
        ))
    } else if w.latency.p99_ms > budget_ms {
        Some(format!(
            "p99 {} ms over the budget at {} events/s",
            w.latency.p99_ms, w.target_rate
        ))
    } else {
        None
    }
}

pub async fn run(ctx: &Ctx, args: &MaxArgs, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(args.step_factor > 1.0, "--step-factor must be above 1");
    let stats = Arc::new(Stats::spanning(NodeLayout {
        nodes: ctx.targets.len(),
        offset: 0,
    }));
    let (fleet, setup) = fanout::setup(ctx, &args.load, &stats).await?;
    let mut steps = Vec::new();
    let mut best = None;
    let mut rate = args.start_rate;
    let mut stopped_because = format!("reached --max-steps {}", args.max_steps);
    for _ in 0..args.max_steps {
        let spec = match fanout::window_spec(&args.load, rate) {
            Ok(spec) => spec,
            Err(e) => {
                stopped_because = e.to_string();
                break;
            }
        };
        eprintln!("max: trying {rate} events/s");
        let w = window::run(&fleet, &stats, &spec, &ctx.server_pids).await;
        let why = failure(&w, args.budget_ms);
        steps.push(Step {
            rate,
            deliveries_per_sec: w.deliveries_per_sec,
            p99_ms: w.latency.p99_ms,
            lost: w.lost,
            errors: w.errors.values().sum(),
            held: why.is_none(),
        });
        eprintln!(
            "max: {rate} events/s -> {} deliveries/s, p99 {} ms, lost {}",
            w.deliveries_per_sec, w.latency.p99_ms, w.lost
        );
        if let Some(why) = why {
            stopped_because = why;
            break;
        }
        best = Some(w);
        rate = (rate * args.step_factor).round();
        // Let queues empty before the next step's warm-up.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    fleet.close().await;
    crate::report::print(
        &MaxReport {
            scenario: "max",
            setup,
            budget_ms: args.budget_ms,
            stopped_because,
            steps,
            best,
        },
        json,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc_stats::WindowUsage;
    use crate::report::Percentiles;
    use std::collections::BTreeMap;

    fn window(p99_ms: f64, lost: u64, errors: &[(&str, u64)]) -> WindowReport {
        WindowReport {
            target_rate: 100.0,
            sent_rate: 100.0,
            senders: 10,
            per_sender_rate: 10.0,
            duration_secs: 1.0,
            sent: 100,
            acked: 100,
            expected_deliveries: 1000,
            delivered: 1000 - lost,
            lost,
            extra: 0,
            seq_gaps: 0,
            seq_backwards: 0,
            deliveries_per_sec: 1000.0,
            latency: Percentiles {
                p99_ms,
                ..Percentiles::default()
            },
            latency_same_node: Percentiles::default(),
            latency_other_node: Percentiles::default(),
            ack_latency: Percentiles::default(),
            errors: errors.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
            reconnects: BTreeMap::new(),
            closed: BTreeMap::new(),
            unparsable_frames: 0,
            usage: WindowUsage {
                wall_seconds: 1.0,
                server_cpu_seconds: 0.0,
                servers: vec![],
                bench: None,
                machine_busy_percent: None,
                others_cpu_seconds: None,
            },
            deliveries_per_server_cpu_sec: None,
            server_cpu_us_per_delivery: None,
            bench_cpu_us_per_delivery: None,
            server_switches_per_delivery: None,
        }
    }

    #[test]
    fn a_step_holds_only_within_budget_and_without_loss_or_errors() {
        assert_eq!(failure(&window(10.0, 0, &[]), 25.0), None);
        assert!(failure(&window(30.0, 0, &[]), 25.0).is_some());
        assert!(failure(&window(10.0, 1, &[]), 25.0).is_some());
        assert!(failure(&window(10.0, 0, &[("rate_limited", 1)]), 25.0).is_some());
    }
}
