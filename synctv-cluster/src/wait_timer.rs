//! The end of a wait (contract 1.1, "Waiting for everyone"): every node serving a room
//! arms a timer for the `wait_until` of each wait the room starts (the hub sees it in
//! the state of the event, or of the room as read from the database), and when it rings
//! submits a `WaitTimeout` change. The sequencer starts the room only if that wait is
//! still the room's, so of all the nodes that ask, the first one starts it and the others
//! change nothing; and the room starts on time even when the node of the member who
//! asked to play, or of the one being waited for, has died.

use crate::background::BackgroundTasks;
use crate::history_writer::HistoryWriter;
use std::collections::BTreeSet;
use std::time::Duration;
use synctv_core::clock::now_ms;
use synctv_core::storage::{RoomChange, RoomChangeKind};
use synctv_core::{PlaybackState, RoomId};
use tokio::sync::mpsc;

/// Where the hub reports the waits it sees. Cheap to clone.
#[derive(Clone, Debug)]
pub struct WaitAlarms {
    tx: mpsc::UnboundedSender<(i64, RoomId)>,
}

/// The receiving side, handed to [`WaitTimer::spawn`].
pub struct WaitAlarmQueue {
    rx: mpsc::UnboundedReceiver<(i64, RoomId)>,
}

impl WaitAlarms {
    pub fn new() -> (Self, WaitAlarmQueue) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, WaitAlarmQueue { rx })
    }

    /// Arms a timer when `state` holds a start for buffering members.
    pub fn arm_if_waiting(&self, room: &RoomId, state: &PlaybackState) {
        if let (Some(until), false) = (state.wait_until, state.waiting_for.is_empty()) {
            // Only fails once the timer task has stopped (shutdown): nothing to arm then.
            let _ = self.tx.send((until, room.clone()));
        }
    }
}

pub struct WaitTimer;

impl WaitTimer {
    /// Runs the node's wait timers on `tasks` until they stop.
    pub fn spawn(queue: WaitAlarmQueue, writer: HistoryWriter, tasks: &BackgroundTasks) {
        let WaitAlarmQueue { mut rx } = queue;
        tasks.spawn(|stop| async move {
            let mut armed: BTreeSet<(i64, RoomId)> = BTreeSet::new();
            loop {
                let next = armed.first().map(|(until, _)| *until);
                let ring = async {
                    match next {
                        Some(until) => {
                            let wait = u64::try_from(until - now_ms()).unwrap_or(0);
                            tokio::time::sleep(Duration::from_millis(wait)).await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    alarm = rx.recv() => match alarm {
                        Some(alarm) => {
                            armed.insert(alarm);
                        }
                        None => return,
                    },
                    _ = ring => {
                        let Some((until, room)) = armed.pop_first() else { continue };
                        let change = RoomChange {
                            room: room.clone(),
                            by: None,
                            kind: RoomChangeKind::WaitTimeout { until },
                        };
                        // The outcome is the room's event, seen by every member; a failed
                        // commit is logged (another node serving the room asks too).
                        if let Err(e) = writer.submit(change).await {
                            tracing::warn!(room = %room, error = %e, "a wait's end could not be committed");
                        }
                    }
                }
            }
        });
    }
}
