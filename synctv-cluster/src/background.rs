//! `BackgroundTasks`: the one lifecycle of every task this node runs.
//!
//! Whoever starts a task spawns it here. Each task gets a child of one stop token and
//! ends once it is cancelled (periodic work through [`BackgroundTasks::every`], which
//! abandons a round in progress). Stopping cancels the token and awaits every task, so
//! after [`BackgroundTasks::stop`] nothing this node started is still running. No task
//! ends by noticing that something else was dropped: the token is the only way.

use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Debug, Default)]
pub struct BackgroundTasks {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl BackgroundTasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns `task`, handing it its own child of the stop token; the task must end soon
    /// after that token is cancelled.
    pub fn spawn<F, Fut>(&self, task: F) -> JoinHandle<()>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task(self.stop.child_token()))
    }

    /// Spawns a task that runs `round` every `period` (the first at once) until stopped.
    pub fn every<F, Fut>(&self, period: Duration, mut round: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.spawn(move |stop| async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            stop.run_until_cancelled(async {
                loop {
                    tick.tick().await;
                    round().await;
                }
            })
            .await;
        });
    }

    /// Tells every task to stop, without waiting (what dropping the owner does).
    pub fn cancel(&self) {
        self.stop.cancel();
    }

    /// Tells every task to stop and waits until all of them have ended.
    pub async fn stop(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Tasks spawned here that have not ended yet.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }
}

/// The next batch of a queue-draining task: up to `max` items into `batch`. Once `stop`
/// is cancelled the queue is closed and what is still in it comes out, so that work
/// accepted before a shutdown (the last commits' publishes) is not dropped. `0` means the
/// queue is closed and empty: the task ends.
pub async fn next_batch<T>(
    rx: &mut tokio::sync::mpsc::Receiver<T>,
    batch: &mut Vec<T>,
    max: usize,
    stop: &CancellationToken,
) -> usize {
    tokio::select! {
        received = rx.recv_many(batch, max) => received,
        _ = stop.cancelled() => {
            rx.close();
            rx.recv_many(batch, max).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stop_ends_every_task_and_waits_for_them() {
        let tasks = BackgroundTasks::new();
        let rounds = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = rounds.clone();
        tasks.every(Duration::from_secs(1), move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        tasks.spawn(|stop| async move { stop.cancelled().await });
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(rounds.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(tasks.running(), 2);
        tasks.stop().await;
        assert_eq!(tasks.running(), 0);
    }
}
