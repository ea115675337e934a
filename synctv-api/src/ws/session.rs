//! One WebSocket connection: read, admit, hand to the cluster layer, write.
//!
//! A single task per connection selects over: shutdown, revocation, its writer's needs
//! (a backlog to drain when the socket is writable again, a slow consumer to evict, an
//! archived room), outcomes of queued commits (acks), the socket, and the idle and
//! maximum-duration timers. Room events do not pass through this task: the fan-out
//! writes them into the socket itself (`writer.rs`). Commits are queued in message order
//! and answered when durable, so the loop never waits on the database for chat or
//! playback.

use super::handlers::{Flow, MessageHandler};
use super::listener::SharedTcp;
use super::protocol::{ErrorCode, ServerMessage};
use super::socket::WsSocket;
use super::writer::FrameWriter;
use crate::http::ApiContext;
use crate::refusal::Refusal;
use crate::session_watch::SessionWatch;
use hyper::upgrade::Upgraded;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use synctv_cluster::{ConnectionPermit, Member, Outbox};
use synctv_core::Actor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Longest the socket may refuse to take what is queued for it.
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
    upgraded: Upgraded,
    socket: SharedTcp,
    config: WebSocketConfig,
    ctx: ApiContext,
    actor: Actor,
    permit: ConnectionPermit,
    watches: SessionWatches,
) {
    let writer = Arc::new(FrameWriter::new(
        socket.0,
        ctx.config.limits.outbound_queue,
        ctx.cluster.connections().counters().clone(),
    ));
    let socket = WsSocket::new(upgraded, writer.clone(), config).await;
    let member = Member {
        conn: permit.id,
        actor,
        outbox: Outbox::new(writer),
    };
    let session = Session {
        conn: permit.id,
        handler: MessageHandler::new(ctx.clone(), member),
        _permit: permit,
        ctx,
    };
    session.serve(socket, watches).await;
}

impl Session {
    async fn serve(mut self, mut socket: WsSocket, watches: SessionWatches) {
        let limits = &self.ctx.config.limits;
        let idle = Duration::from_secs(limits.idle_timeout_secs);
        // Armed once and moved on activity: no timer is made per message.
        let idle_timer = tokio::time::sleep(idle);
        let max_timer = tokio::time::sleep(Duration::from_secs(limits.max_duration_secs));
        tokio::pin!(idle_timer, max_timer);
        let shutdown = self.ctx.shutdown.clone();
        let writer = socket.writer.clone();
        let outcome: io::Result<()> = async {
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.draining() => {
                        send_reconnect(&writer, "shutdown", 0);
                        flush(&writer).await?;
                        return wait_for_leave(&mut socket, &shutdown).await;
                    }
                    _ = watches.revoked.cancelled() => {
                        let frame = ServerMessage::Error {
                            id: None,
                            code: ErrorCode::Unauthorized,
                            message: "the token of this connection was revoked (logged out)",
                            room: None,
                            state: None,
                        }
                        .encode();
                        writer.send_text(&frame);
                        return close(&writer, CLOSE_REVOKED, "token revoked").await;
                    }
                    _ = watches.disconnected.cancelled() => {
                        return close(&writer, CLOSE_DISCONNECTED, "disconnected by the server").await;
                    }
                    _ = writer.attention() => {
                        let attention = writer.take_attention();
                        for room in &attention.closed_rooms {
                            self.handler.room_closed(room).await;
                        }
                        if attention.broken {
                            return Ok(());
                        }
                        if attention.overloaded {
                            // What it did not get, it recovers after reconnecting.
                            writer.discard_queued();
                            return reconnect(&writer, "overloaded", 1000).await;
                        }
                        if attention.backlog {
                            flush(&writer).await?;
                        }
                    }
                    owed = self.handler.next_outcome() => self.handler.answer(owed),
                    message = socket.recv() => match message {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                        Some(Ok(Message::Text(text))) => {
                            idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                            // Boxed: message handling (joins, database reads) has large futures;
                            // inline, their size would be paid by every idle connection.
                            if let Flow::Close(code, reason) = Box::pin(self.handler.receive(text.as_str())).await {
                                return close(&writer, code, reason).await;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                            self.handler.refuse_binary();
                        }
                        // Control frames are not activity; tungstenite answers pings itself.
                        Some(Ok(_)) => {}
                    },
                    _ = &mut idle_timer => {
                        Refusal::IdleTimeout.record(self.ctx.cluster.connections().counters());
                        return close(&writer, 4000, "idle timeout").await;
                    }
                    _ = &mut max_timer => {
                        Refusal::MaxDuration.record(self.ctx.cluster.connections().counters());
                        return reconnect(&writer, "max_duration", 0).await;
                    }
                }
            }
        }
        .await;
        if let Err(e) = outcome {
            tracing::debug!(conn = self.conn, error = %e, "connection ended with an error");
        }
        writer.close();
        self.handler.leave_all().await;
    }
}

/// Writes everything queued, within [`WRITE_TIMEOUT`]: a client that stops reading must
/// not hold its session forever.
async fn flush(writer: &FrameWriter) -> io::Result<()> {
    tokio::time::timeout(WRITE_TIMEOUT, writer.drain())
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

fn send_reconnect(writer: &FrameWriter, reason: &str, after_ms: u64) {
    writer.send_text(&ServerMessage::Reconnect { reason, after_ms }.encode());
}

async fn reconnect(writer: &FrameWriter, reason: &str, after_ms: u64) -> io::Result<()> {
    send_reconnect(writer, reason, after_ms);
    close(writer, 1012, "reconnect").await
}

/// After `reconnect (shutdown)`: the client leaves on its own, or the drain ends.
async fn wait_for_leave(
    socket: &mut WsSocket,
    shutdown: &crate::shutdown::Shutdown,
) -> io::Result<()> {
    loop {
        tokio::select! {
            _ = shutdown.closing() => return close(&socket.writer, 1001, "server shutting down").await,
            message = socket.recv() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Sends a close frame after everything queued, and waits until it is written.
async fn close(writer: &FrameWriter, code: u16, reason: &'static str) -> io::Result<()> {
    writer.send_close(code, reason);
    flush(writer).await
}
