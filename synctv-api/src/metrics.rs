//! The process-wide Prometheus recorder behind `/metrics`.
//!
//! The `metrics` facade has one global recorder per process, and tests build many
//! applications in one process, so the recorder is installed once and every application
//! shares its handle.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Seconds: from half a millisecond to a second.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Seconds of a member's drift: from 10 ms to 10 s (buckets, so that the alerting rules
/// can take a p99 across nodes).
const DRIFT_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Events per group commit, up to the default `history.max_batch`.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The recorder's handle, installing the recorder on first use.
pub fn install_recorder() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = builder().build_recorder();
            let handle = recorder.handle();
            if let Err(e) = ::metrics::set_global_recorder(recorder) {
                tracing::warn!(error = %e, "another metrics recorder is installed; /metrics will be empty");
            }
            // Upkeep drains histogram buffers. A plain thread, because a task would die
            // with whichever runtime happened to install the recorder.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start the metrics upkeep thread");
            }
            handle
        })
        .clone()
}

fn builder() -> PrometheusBuilder {
    let buckets = [
        ("synctv_history_commit_seconds", LATENCY_BUCKETS),
        ("synctv_delivery_latency_seconds", LATENCY_BUCKETS),
        ("synctv_http_request_seconds", LATENCY_BUCKETS),
        ("synctv_history_batch_size", BATCH_BUCKETS),
        ("synctv_member_drift_seconds", DRIFT_BUCKETS),
    ];
    let mut builder = PrometheusBuilder::new();
    for (name, values) in buckets {
        // Only an empty bucket list is refused, and these are constants.
        builder = match builder.set_buckets_for_metric(Matcher::Full(name.into()), values) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(metric = name, error = %e, "histogram buckets refused");
                PrometheusBuilder::new()
            }
        };
    }
    builder
}
