//! The bench clock: Unix-epoch nanoseconds read from a monotonic base, so a payload's send
//! time and its receive time are comparable within one process and across the worker
//! processes of one machine, and never go backwards.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

static BASE: OnceLock<(Instant, u64)> = OnceLock::new();

fn base() -> &'static (Instant, u64) {
    BASE.get_or_init(|| {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        (Instant::now(), unix)
    })
}

/// Nanoseconds since the Unix epoch, monotonic within the process.
pub fn now_nanos() -> u64 {
    let (start, unix) = base();
    unix + start.elapsed().as_nanos() as u64
}
