//! A connection's outbound queue, as the rest of the node sees it.
//!
//! Bounded: a member that cannot keep up is flagged `overloaded` (its connection then
//! sends `reconnect` and closes) instead of slowing the room. Frames are shared bytes,
//! encoded once per event for every member.
//!
//! The queue is a `VecDeque` behind a mutex rather than a tokio channel: it allocates
//! nothing while empty and gives back what a burst made it grow, and most connections
//! are idle most of the time, so memory per connection is what counts here.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use synctv_core::RoomId;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Past this many slots, a drained queue gives its memory back.
const KEEP_CAPACITY: usize = 16;

/// What a connection's writer receives.
#[derive(Debug)]
pub enum Outbound {
    /// A JSON text frame, with the moment the server accepted it (for delivery latency).
    Frame(Bytes, Instant),
    /// The room was archived: the connection is no longer a member.
    RoomClosed(RoomId),
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<VecDeque<Outbound>>,
    capacity: usize,
    ready: Notify,
    /// The receiver is gone: pushes are refused.
    closed: AtomicBool,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, VecDeque<Outbound>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending side of a connection's queue. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbox {
    shared: Arc<Shared>,
    overloaded: CancellationToken,
}

/// The receiving side, owned by the connection's task.
pub struct OutboxReceiver {
    shared: Arc<Shared>,
    /// Cancelled when the queue overflowed: say `reconnect` and close.
    pub overloaded: CancellationToken,
}

impl Outbox {
    pub fn new(capacity: usize) -> (Outbox, OutboxReceiver) {
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            capacity,
            ready: Notify::new(),
            closed: AtomicBool::new(false),
        });
        let overloaded = CancellationToken::new();
        let receiver = OutboxReceiver {
            shared: shared.clone(),
            overloaded: overloaded.clone(),
        };
        (Outbox { shared, overloaded }, receiver)
    }

    /// Queues `frame`; `false` when the connection is gone or has just been flagged as a
    /// slow consumer (it will be told to reconnect and recover what it missed).
    pub fn push(&self, frame: Bytes, accepted: Instant) -> bool {
        self.push_outbound(Outbound::Frame(frame, accepted))
    }

    pub fn push_outbound(&self, item: Outbound) -> bool {
        if self.shared.closed.load(Ordering::Relaxed) {
            return false;
        }
        {
            let mut queue = self.shared.queue();
            if queue.len() >= self.shared.capacity {
                drop(queue);
                if !self.overloaded.is_cancelled() {
                    metrics::counter!("synctv_slow_consumer_disconnects_total").increment(1);
                    self.overloaded.cancel();
                }
                return false;
            }
            queue.push_back(item);
        }
        self.shared.ready.notify_one();
        true
    }
}

impl OutboxReceiver {
    /// The next item, waiting for one. Never ends on its own: the receiver owns the
    /// connection, which ends for other reasons.
    pub async fn recv(&self) -> Outbound {
        loop {
            if let Some(item) = self.try_recv() {
                return item;
            }
            // `notify_one` keeps a permit when nobody waits, so a push between the check
            // above and this await is not lost.
            self.shared.ready.notified().await;
        }
    }

    /// The next item if one is queued.
    pub fn try_recv(&self) -> Option<Outbound> {
        let mut queue = self.shared.queue();
        let item = queue.pop_front();
        if queue.is_empty() && queue.capacity() > KEEP_CAPACITY {
            *queue = VecDeque::new();
        }
        item
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.queue().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_flags_the_connection_instead_of_blocking() {
        let (outbox, rx) = Outbox::new(2);
        assert!(outbox.push(Bytes::from_static(b"1"), Instant::now()));
        assert!(outbox.push(Bytes::from_static(b"2"), Instant::now()));
        assert!(!rx.overloaded.is_cancelled());
        assert!(!outbox.push(Bytes::from_static(b"3"), Instant::now()));
        assert!(rx.overloaded.is_cancelled());
        assert!(matches!(rx.recv().await, Outbound::Frame(b, _) if b == "1"));
    }

    #[tokio::test]
    async fn recv_waits_for_a_push_and_a_dropped_receiver_refuses_more() {
        let (outbox, rx) = Outbox::new(8);
        let pusher = outbox.clone();
        let waiting =
            tokio::spawn(
                async move { matches!(rx.recv().await, Outbound::Frame(b, _) if b == "x") },
            );
        tokio::task::yield_now().await;
        assert!(pusher.push(Bytes::from_static(b"x"), Instant::now()));
        assert!(waiting.await.unwrap());
        assert!(!outbox.push(Bytes::from_static(b"y"), Instant::now()));
    }

    #[test]
    fn a_drained_queue_gives_back_what_a_burst_took() {
        let (outbox, rx) = Outbox::new(1000);
        for _ in 0..500 {
            outbox.push(Bytes::from_static(b"f"), Instant::now());
        }
        while rx.try_recv().is_some() {}
        assert!(rx.shared.queue().capacity() <= KEEP_CAPACITY);
    }
}
