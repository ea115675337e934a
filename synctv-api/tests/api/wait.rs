//! Waiting for a condition, never for a time: a test polls what it needs (a port that
//! answers, a status, a counter) until it holds, and fails naming it after a deadline
//! generous enough for a loaded machine.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is checked. Only the pace of the polling: how long a test
/// waits depends on the condition alone (and the deadline).
const POLL: Duration = Duration::from_millis(50);

/// Polls `check` until it answers `Some`, or panics naming `what` after `patience`.
pub async fn wait_for<T, F, Fut>(patience: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + patience;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {patience:?}");
        // Pacing, not synchronisation: the loop ends on the condition above.
        tokio::time::sleep(POLL).await;
    }
}
