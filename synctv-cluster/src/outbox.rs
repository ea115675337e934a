//! A member's connection, as the rest of the node sees it: somewhere to hand frames.
//!
//! The cluster layer knows frames only as shared JSON bytes, encoded once per event for
//! every member, and never waits for a connection. What a connection does with a frame
//! is its own business: the server's WebSocket writer (synctv-api `ws::writer`) writes it
//! straight into the socket when the socket takes it, queues it when not, and flags a
//! member whose queue is full as a slow consumer (told `reconnect`, then closed), so the
//! room never waits for it.

use bytes::Bytes;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;
use synctv_core::RoomId;

/// What a member's connection does with what its rooms send it.
pub trait MemberSink: Send + Sync {
    /// Hands over a JSON text frame, with the moment the server accepted it (for delivery
    /// latency). `false` when the connection is gone or has just been flagged as a slow
    /// consumer (it will be told to reconnect and recover what it missed).
    fn frame(&self, frame: &Bytes, accepted: Instant) -> bool;

    /// The connection is no longer a member of the room: it was archived, or the
    /// connection's user was kicked.
    fn room_closed(&self, room: &RoomId);
}

/// A handle on a member's connection. Cheap to clone.
#[derive(Clone)]
pub struct Outbox(Arc<dyn MemberSink>);

impl Outbox {
    pub fn new(sink: Arc<dyn MemberSink>) -> Self {
        Self(sink)
    }

    /// See [`MemberSink::frame`].
    pub fn push(&self, frame: &Bytes, accepted: Instant) -> bool {
        self.0.frame(frame, accepted)
    }

    pub fn room_closed(&self, room: &RoomId) {
        self.0.room_closed(room)
    }
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Outbox")
    }
}
