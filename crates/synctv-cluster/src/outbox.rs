//! A connection's outbound queue, as the rest of the node sees it.
//!
//! Bounded: a member that cannot keep up is flagged `overloaded` (its connection then
//! sends `reconnect` and closes) instead of slowing the room. Frames are shared bytes,
//! encoded once per event for every member.

use bytes::Bytes;
use std::time::Instant;
use synctv_core::RoomId;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

/// What a connection's writer receives.
#[derive(Debug)]
pub enum Outbound {
    /// A JSON text frame, with the moment the server accepted it (for delivery latency).
    Frame(Bytes, Instant),
    /// The room was archived: the connection is no longer a member.
    RoomClosed(RoomId),
}

/// The sending side of a connection's queue. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<Outbound>,
    overloaded: CancellationToken,
}

/// The receiving side, owned by the connection's task.
pub struct OutboxReceiver {
    pub frames: mpsc::Receiver<Outbound>,
    /// Cancelled when the queue overflowed: say `reconnect` and close.
    pub overloaded: CancellationToken,
}

impl Outbox {
    pub fn new(capacity: usize) -> (Outbox, OutboxReceiver) {
        let (tx, frames) = mpsc::channel(capacity);
        let overloaded = CancellationToken::new();
        (
            Outbox {
                tx,
                overloaded: overloaded.clone(),
            },
            OutboxReceiver { frames, overloaded },
        )
    }

    /// Queues `frame`; `false` when the connection is gone or has just been flagged as a
    /// slow consumer (it will be told to reconnect and recover what it missed).
    pub fn push(&self, frame: Bytes, accepted: Instant) -> bool {
        self.push_outbound(Outbound::Frame(frame, accepted))
    }

    pub fn push_outbound(&self, item: Outbound) -> bool {
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                if !self.overloaded.is_cancelled() {
                    metrics::counter!("synctv_slow_consumer_disconnects_total").increment(1);
                    self.overloaded.cancel();
                }
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.overloaded.is_cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_flags_the_connection_instead_of_blocking() {
        let (outbox, mut rx) = Outbox::new(2);
        assert!(outbox.push(Bytes::from_static(b"1"), Instant::now()));
        assert!(outbox.push(Bytes::from_static(b"2"), Instant::now()));
        assert!(!rx.overloaded.is_cancelled());
        assert!(!outbox.push(Bytes::from_static(b"3"), Instant::now()));
        assert!(rx.overloaded.is_cancelled());
        assert!(matches!(rx.frames.recv().await, Some(Outbound::Frame(b, _)) if b == "1"));
    }
}
