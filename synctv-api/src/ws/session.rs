//! One WebSocket connection: read, admit, hand to the cluster layer, write.
//!
//! A single task per connection selects over: shutdown, overload, the outbound queue
//! (frames are fed in batches and flushed once), outcomes of queued commits (acks), the
//! socket, and the idle and maximum-duration timers. Commits are queued in message order
//! and answered when durable, so the loop never waits on the database for chat or
//! playback.

use super::handlers::{Flow, MessageHandler};
use super::protocol::{ErrorCode, ServerMessage};
use crate::http::ApiContext;
use crate::refusal::Refusal;
use crate::session_watch::SessionWatch;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures_util::SinkExt;
use std::time::{Duration, Instant};
use synctv_cluster::{ConnectionPermit, Member, Outbound, Outbox, OutboxReceiver};
use synctv_core::Actor;

/// Frames written before one flush.
const WRITE_BATCH: usize = 64;
/// Longest a batch of frames may take to reach the socket.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The close code of a connection whose token was revoked (logout).
const CLOSE_REVOKED: u16 = 4401;
/// The close code of a connection the server API disconnected.
const CLOSE_DISCONNECTED: u16 = 4000;

/// What may end a session from outside: its token's revocation, and the server API's
/// disconnect of its user.
pub struct SessionWatches {
    pub revoked: SessionWatch,
    pub disconnected: SessionWatch,
}

/// The connection loop's state: the handler of its messages and its admission permit.
struct Session {
    ctx: ApiContext,
    conn: u64,
    handler: MessageHandler,
    _permit: ConnectionPermit,
}

pub async fn run(
    socket: WebSocket,
    ctx: ApiContext,
    actor: Actor,
    permit: ConnectionPermit,
    watches: SessionWatches,
) {
    let (outbox, rx) = Outbox::new(ctx.config.limits.outbound_queue);
    let member = Member {
        conn: permit.id,
        actor,
        outbox,
    };
    let session = Session {
        conn: permit.id,
        handler: MessageHandler::new(ctx.clone(), member),
        _permit: permit,
        ctx,
    };
    session.serve(socket, rx, watches).await;
}

impl Session {
    async fn serve(mut self, mut socket: WebSocket, rx: OutboxReceiver, watches: SessionWatches) {
        let limits = &self.ctx.config.limits;
        let idle = Duration::from_secs(limits.idle_timeout_secs);
        let mut idle_deadline = tokio::time::Instant::now() + idle;
        let max_deadline =
            tokio::time::Instant::now() + Duration::from_secs(limits.max_duration_secs);
        let shutdown = self.ctx.shutdown.clone();
        let outcome: Result<(), axum::Error> = async {
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.draining() => {
                        self.write_pending(&mut socket, &rx).await?;
                        send_reconnect(&mut socket, "shutdown", 0).await?;
                        return wait_for_leave(&mut socket, &shutdown).await;
                    }
                    _ = watches.revoked.cancelled() => {
                        self.write_pending(&mut socket, &rx).await?;
                        let frame = ServerMessage::Error {
                            id: None,
                            code: ErrorCode::Unauthorized,
                            message: "the token of this connection was revoked (logged out)",
                            room: None,
                            state: None,
                        }
                        .encode();
                        socket.send(Message::Text(text_frame(frame))).await?;
                        return close(&mut socket, CLOSE_REVOKED, "token revoked").await;
                    }
                    _ = watches.disconnected.cancelled() => {
                        self.write_pending(&mut socket, &rx).await?;
                        return close(&mut socket, CLOSE_DISCONNECTED, "disconnected by the server").await;
                    }
                    _ = rx.overloaded.cancelled() => {
                        return reconnect(&mut socket, "overloaded", 1000).await;
                    }
                    item = rx.recv() => {
                        // A client that stops reading must not hold its session forever.
                        match tokio::time::timeout(WRITE_TIMEOUT, self.write_frames(&mut socket, item, &rx)).await {
                            Ok(written) => written?,
                            Err(_) => return Ok(()),
                        }
                    }
                    owed = self.handler.next_outcome() => self.handler.answer(owed),
                    message = socket.recv() => match message {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                        Some(Ok(Message::Text(text))) => {
                            idle_deadline = tokio::time::Instant::now() + idle;
                            // Boxed: message handling (joins, database reads) has large futures;
                            // inline, their size would be paid by every idle connection.
                            if let Flow::Close(code, reason) = Box::pin(self.handler.receive(text.as_str())).await {
                                self.write_pending(&mut socket, &rx).await?;
                                return close(&mut socket, code, reason).await;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            idle_deadline = tokio::time::Instant::now() + idle;
                            self.handler.refuse_binary();
                        }
                        // Control frames are not activity; tungstenite answers pings itself.
                        Some(Ok(_)) => {}
                    },
                    _ = tokio::time::sleep_until(idle_deadline) => {
                        Refusal::IdleTimeout.record(self.ctx.cluster.connections().counters());
                        return close(&mut socket, 4000, "idle timeout").await;
                    }
                    _ = tokio::time::sleep_until(max_deadline) => {
                        Refusal::MaxDuration.record(self.ctx.cluster.connections().counters());
                        self.write_pending(&mut socket, &rx).await?;
                        return reconnect(&mut socket, "max_duration", 0).await;
                    }
                }
            }
        }
        .await;
        if let Err(e) = outcome {
            tracing::debug!(conn = self.conn, error = %e, "connection ended with an error");
        }
        self.handler.leave_all().await;
    }

    /// Writes `first` and whatever else is queued (up to a batch), then flushes once.
    async fn write_frames(
        &mut self,
        socket: &mut WebSocket,
        first: Outbound,
        rx: &OutboxReceiver,
    ) -> Result<(), axum::Error> {
        let mut oldest: Option<Instant> = None;
        let mut written = 0u64;
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Outbound::Frame(frame, accepted) => {
                    oldest.get_or_insert(accepted);
                    socket.feed(Message::Text(text_frame(frame))).await?;
                    written += 1;
                }
                Outbound::RoomClosed(room) => self.handler.room_closed(&room).await,
            }
            if written < WRITE_BATCH as u64 {
                next = rx.try_recv();
            }
        }
        socket.flush().await?;
        self.ctx.cluster.connections().counters().delivered(written);
        if let Some(oldest) = oldest {
            metrics::histogram!("synctv_delivery_latency_seconds")
                .record(oldest.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Writes everything already queued, so nothing owed is lost before a close.
    async fn write_pending(
        &mut self,
        socket: &mut WebSocket,
        rx: &OutboxReceiver,
    ) -> Result<(), axum::Error> {
        while let Some(item) = rx.try_recv() {
            self.write_frames(socket, item, rx).await?;
        }
        Ok(())
    }
}

/// Frames come from `serde_json`, so they are UTF-8; the check is a cheap formality.
fn text_frame(frame: Bytes) -> Utf8Bytes {
    Utf8Bytes::try_from(frame).unwrap_or_else(|_| Utf8Bytes::from_static("{}"))
}

async fn send_reconnect(
    socket: &mut WebSocket,
    reason: &str,
    after_ms: u64,
) -> Result<(), axum::Error> {
    let frame = ServerMessage::Reconnect { reason, after_ms }.encode();
    socket.send(Message::Text(text_frame(frame))).await
}

async fn reconnect(socket: &mut WebSocket, reason: &str, after_ms: u64) -> Result<(), axum::Error> {
    send_reconnect(socket, reason, after_ms).await?;
    close(socket, 1012, "reconnect").await
}

/// After `reconnect (shutdown)`: the client leaves on its own, or the drain ends.
async fn wait_for_leave(
    socket: &mut WebSocket,
    shutdown: &crate::shutdown::Shutdown,
) -> Result<(), axum::Error> {
    loop {
        tokio::select! {
            _ = shutdown.closing() => return close(socket, 1001, "server shutting down").await,
            message = socket.recv() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) -> Result<(), axum::Error> {
    socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await
}
