//! Group commit of room changes.
//!
//! One task per node owns the writes to the room history. Changes submitted while a
//! transaction runs queue up and go into the next one together, so a busy node pays one
//! commit per batch rather than one per event. After each commit the writer hands the
//! committed events, in seq order, to its sink (the cluster manager's fan-out) before it
//! answers the submitters: by the time a client gets its `ack`, the event is durable and
//! already on its way to every member.

use crate::background::BackgroundTasks;
use crate::error::ClusterError;
use std::time::{Duration, Instant};
use synctv_core::clock::now_ms;
use synctv_core::storage::{ChangeOutcome, CommittedChange, Database, RoomChange, Sequencer};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// What the writer does with each committed event (fan-out). Called on the writer task,
/// in commit order; it must not block.
pub trait CommitSink: Send + Sync + 'static {
    fn committed(&self, change: &CommittedChange);
}

type Reply = oneshot::Sender<Result<ChangeOutcome, ClusterError>>;

/// A handle to the writer task. Cheap to clone; the task ends once it is closed (or the
/// node's background tasks are stopped) and the queue is empty.
#[derive(Clone)]
pub struct HistoryWriter {
    queue: mpsc::Sender<(RoomChange, Reply)>,
    closing: CancellationToken,
}

/// How long a change may wait for its commit before the submitter is told `unavailable`
/// (the contract's bound while the database is unreachable).
pub const COMMIT_DEADLINE: Duration = Duration::from_secs(10);

impl HistoryWriter {
    /// Starts the writer on `tasks`; the handle returned ends once the queue is drained.
    /// `ready_timeout` is how long a start waits for buffering members.
    pub fn spawn(
        db: Database,
        sink: impl CommitSink,
        max_batch: usize,
        ready_timeout: Duration,
        tasks: &BackgroundTasks,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(max_batch * 8);
        let mut closing = CancellationToken::new();
        let task = tasks.spawn(|stop| {
            closing = stop.clone();
            run(db, sink, rx, max_batch, ready_timeout, stop)
        });
        (Self { queue, closing }, task)
    }

    /// Stops taking changes; the task commits what is queued, then ends.
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Commits `change` (with whatever else is pending) and returns its outcome once
    /// durable.
    pub async fn submit(&self, change: RoomChange) -> Result<ChangeOutcome, ClusterError> {
        self.enqueue(change).await?.outcome().await
    }

    /// Queues `change` and returns at once (waiting only for queue space), so a connection
    /// can queue several changes in its own order and collect the outcomes later.
    pub async fn enqueue(&self, change: RoomChange) -> Result<PendingCommit, ClusterError> {
        let deadline = tokio::time::Instant::now() + COMMIT_DEADLINE;
        let (tx, rx) = oneshot::channel();
        match tokio::time::timeout_at(deadline, self.queue.send((change, tx))).await {
            Ok(Ok(())) => Ok(PendingCommit { rx, deadline }),
            Ok(Err(_)) => Err(ClusterError::ShuttingDown),
            Err(_) => Err(ClusterError::Timeout),
        }
    }
}

/// A queued change whose outcome is not known yet.
pub struct PendingCommit {
    rx: oneshot::Receiver<Result<ChangeOutcome, ClusterError>>,
    deadline: tokio::time::Instant,
}

impl PendingCommit {
    /// The outcome, or `Timeout` once the contract's 10 s have passed since it was queued.
    pub async fn outcome(self) -> Result<ChangeOutcome, ClusterError> {
        match tokio::time::timeout_at(self.deadline, self.rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(ClusterError::ShuttingDown),
            Err(_) => Err(ClusterError::Timeout),
        }
    }
}

async fn run(
    db: Database,
    sink: impl CommitSink,
    mut rx: mpsc::Receiver<(RoomChange, Reply)>,
    max_batch: usize,
    ready_timeout: Duration,
    closing: CancellationToken,
) {
    let ready_timeout_ms = i64::try_from(ready_timeout.as_millis()).unwrap_or(i64::MAX);
    let mut changes = Vec::with_capacity(max_batch);
    let mut replies = Vec::with_capacity(max_batch);
    loop {
        let next = tokio::select! {
            next = rx.recv() => next,
            _ = closing.cancelled() => {
                // Refuse new changes but commit every one already queued.
                rx.close();
                rx.recv().await
            }
        };
        let Some((change, reply)) = next else { break };
        changes.push(change);
        replies.push(reply);
        while changes.len() < max_batch {
            match rx.try_recv() {
                Ok((change, reply)) => {
                    changes.push(change);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        // Submitters that gave up (deadline passed) need no commit.
        let live: Vec<bool> = replies.iter().map(|r: &Reply| !r.is_closed()).collect();
        if !live.iter().any(|l| *l) {
            changes.clear();
            replies.clear();
            continue;
        }
        let batch: Vec<RoomChange> = changes
            .drain(..)
            .zip(&live)
            .filter(|(_, l)| **l)
            .map(|(c, _)| c)
            .collect();
        let batch_len = batch.len();
        let started = Instant::now();
        let sequencer = Sequencer {
            now_ms: now_ms(),
            ready_timeout_ms,
        };
        let result = db.commit_changes(batch, sequencer).await;
        metrics::histogram!("synctv_history_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("synctv_history_batch_size").record(batch_len as f64);
        let live_replies = replies
            .drain(..)
            .zip(live)
            .filter(|(_, l)| *l)
            .map(|(r, _)| r);
        match result {
            Ok(outcomes) => {
                for outcome in &outcomes {
                    if let ChangeOutcome::Committed(change) = outcome {
                        sink.committed(change);
                    }
                }
                for (reply, outcome) in live_replies.zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, changes = batch_len, "history commit failed");
                metrics::counter!("synctv_history_commit_failures_total").increment(1);
                let error = ClusterError::from(e);
                for reply in live_replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}
