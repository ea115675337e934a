//! One WebSocket connection: read, admit, hand to the cluster layer, write.
//!
//! A single task per connection selects over: shutdown, overload, the outbound queue
//! (frames are fed in batches and flushed once), outcomes of queued commits (acks), the
//! socket, and the idle and maximum-duration timers. Commits are queued in message order
//! and answered when durable, so the loop never waits on the database for chat or
//! playback.

use super::protocol::{
    decode, raw_events, ClientMessage, ErrorCode, MessageId, Recover, ServerMessage,
};
use crate::http::ApiContext;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use synctv_cluster::{
    ClusterError, ConnectionPermit, JoinError, Member, Outbound, Outbox, OutboxReceiver, Refusal,
    TokenBucket,
};
use synctv_core::clock::now_ms;
use synctv_core::storage::{ChangeOutcome, Rejection, RoomChange, RoomChangeKind};
use synctv_core::{Actor, Control, Epoch, RoomId, UserId};

/// Frames written before one flush.
const WRITE_BATCH: usize = 64;
/// Longest a batch of frames may take to reach the socket.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that ignores this many rate-limit errors in a row is closed.
const MAX_REFUSED_IN_A_ROW: u32 = 200;

/// What a joined room allows this connection.
struct RoomAccess {
    control: Control,
    owner_id: UserId,
}

/// The answer owed for a queued commit.
struct Owed {
    id: Option<MessageId>,
    room: RoomId,
    with_version: bool,
    result: Result<ChangeOutcome, ClusterError>,
}

enum Flow {
    Continue,
    Close(u16, &'static str),
}

pub struct Session {
    ctx: ApiContext,
    member: Member,
    rooms: HashMap<RoomId, RoomAccess>,
    bucket: TokenBucket,
    refused_in_a_row: u32,
    owed: FuturesUnordered<BoxFuture<'static, Owed>>,
    _permit: ConnectionPermit,
}

pub async fn run(socket: WebSocket, ctx: ApiContext, actor: Actor, permit: ConnectionPermit) {
    let limits = &ctx.config.limits;
    let (outbox, rx) = Outbox::new(limits.outbound_queue);
    let session = Session {
        bucket: TokenBucket::new(limits.messages_per_second),
        member: Member {
            conn: permit.id,
            actor,
            outbox,
        },
        rooms: HashMap::new(),
        refused_in_a_row: 0,
        owed: FuturesUnordered::new(),
        _permit: permit,
        ctx,
    };
    session.serve(socket, rx).await;
}

impl Session {
    async fn serve(mut self, mut socket: WebSocket, mut rx: OutboxReceiver) {
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
                        self.write_pending(&mut socket, &mut rx).await?;
                        send_reconnect(&mut socket, "shutdown", 0).await?;
                        return wait_for_leave(&mut socket, &shutdown).await;
                    }
                    _ = rx.overloaded.cancelled() => {
                        return reconnect(&mut socket, "overloaded", 1000).await;
                    }
                    Some(item) = rx.frames.recv() => {
                        // A client that stops reading must not hold its session forever.
                        match tokio::time::timeout(WRITE_TIMEOUT, self.write_frames(&mut socket, item, &mut rx)).await {
                            Ok(written) => written?,
                            Err(_) => return Ok(()),
                        }
                    }
                    Some(owed) = self.owed.next(), if !self.owed.is_empty() => self.answer(owed),
                    message = socket.recv() => match message {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                        Some(Ok(Message::Text(text))) => {
                            idle_deadline = tokio::time::Instant::now() + idle;
                            // Boxed: message handling (joins, database reads) has large futures;
                            // inline, their size would be paid by every idle connection.
                            if let Flow::Close(code, reason) = Box::pin(self.receive(text.as_str())).await {
                                self.write_pending(&mut socket, &mut rx).await?;
                                return close(&mut socket, code, reason).await;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            idle_deadline = tokio::time::Instant::now() + idle;
                            self.error(None, ErrorCode::BadRequest, "binary frames are not accepted: send JSON text", None);
                        }
                        // Control frames are not activity; tungstenite answers pings itself.
                        Some(Ok(_)) => {}
                    },
                    _ = tokio::time::sleep_until(idle_deadline) => {
                        Refusal::IdleTimeout.record();
                        return close(&mut socket, 4000, "idle timeout").await;
                    }
                    _ = tokio::time::sleep_until(max_deadline) => {
                        Refusal::MaxDuration.record();
                        self.write_pending(&mut socket, &mut rx).await?;
                        return reconnect(&mut socket, "max_duration", 0).await;
                    }
                }
            }
        }
        .await;
        if let Err(e) = outcome {
            tracing::debug!(conn = self.member.conn, error = %e, "connection ended with an error");
        }
        let joined = std::mem::take(&mut self.rooms);
        joined_rooms_gauge(-(joined.len() as f64));
        for room in joined.into_keys() {
            if let Err(e) = Box::pin(self.ctx.cluster.leave(&self.member, &room)).await {
                tracing::warn!(room = %room, error = %e, "leaving a room on disconnect failed");
            }
        }
    }

    /// Writes `first` and whatever else is queued (up to a batch), then flushes once.
    async fn write_frames(
        &mut self,
        socket: &mut WebSocket,
        first: Outbound,
        rx: &mut OutboxReceiver,
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
                Outbound::RoomClosed(room) => {
                    if self.rooms.remove(&room).is_some() {
                        joined_rooms_gauge(-1.0);
                        Box::pin(self.ctx.cluster.forget(&self.member, &room)).await;
                    }
                }
            }
            if written < WRITE_BATCH as u64 {
                next = rx.frames.try_recv().ok();
            }
        }
        socket.flush().await?;
        metrics::counter!("synctv_deliveries_total").increment(written);
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
        rx: &mut OutboxReceiver,
    ) -> Result<(), axum::Error> {
        while let Ok(item) = rx.frames.try_recv() {
            self.write_frames(socket, item, rx).await?;
        }
        Ok(())
    }

    async fn receive(&mut self, text: &str) -> Flow {
        if !self.bucket.try_take(Instant::now()) {
            Refusal::RateLimited.record();
            self.refused_in_a_row += 1;
            if self.refused_in_a_row > MAX_REFUSED_IN_A_ROW {
                return Flow::Close(1008, "message rate exceeded");
            }
            let id = peek_id(text);
            self.error(
                id.as_ref(),
                ErrorCode::RateLimited,
                "over the message rate: slow down",
                None,
            );
            return Flow::Continue;
        }
        self.refused_in_a_row = 0;
        if text.len() > self.ctx.config.limits.max_message_bytes {
            Refusal::TooLarge.record();
            let message = format!(
                "a message may be at most {} bytes",
                self.ctx.config.limits.max_message_bytes
            );
            self.error(None, ErrorCode::TooLarge, &message, None);
            return Flow::Continue;
        }
        match decode(text) {
            Err(bad) => self.error(
                bad.id.as_ref(),
                ErrorCode::BadRequest,
                &bad.message,
                bad.room.as_ref(),
            ),
            Ok((id, message)) => self.handle(id, message).await,
        }
        Flow::Continue
    }

    async fn handle(&mut self, id: Option<MessageId>, message: ClientMessage) {
        match message {
            ClientMessage::Ping { t } => {
                let pong = ServerMessage::Pong {
                    id: id.as_ref(),
                    t: t.as_ref(),
                    server_time: now_ms(),
                };
                self.send(pong.encode());
            }
            ClientMessage::Join {
                room,
                password,
                recover,
            } => self.join(id, room, password, recover).await,
            ClientMessage::Leave { room } => {
                if self.rooms.remove(&room).is_none() {
                    return self.error(
                        id.as_ref(),
                        ErrorCode::NotFound,
                        "not joined to this room",
                        Some(&room),
                    );
                }
                joined_rooms_gauge(-1.0);
                if let Err(e) = Box::pin(self.ctx.cluster.leave(&self.member, &room)).await {
                    tracing::warn!(room = %room, error = %e, "leave failed");
                }
                self.send(
                    ServerMessage::Left {
                        id: id.as_ref(),
                        room: &room,
                    }
                    .encode(),
                );
            }
            ClientMessage::Playback { room, command } => {
                self.change(id, room, true, RoomChangeKind::Playback(command))
                    .await
            }
            ClientMessage::Media { room, media } => {
                self.change(id, room, true, RoomChangeKind::Media(media))
                    .await
            }
            ClientMessage::Chat { room, text } => {
                self.change(id, room, false, RoomChangeKind::Chat(text))
                    .await
            }
        }
    }

    async fn join(
        &mut self,
        id: Option<MessageId>,
        room: RoomId,
        password: Option<String>,
        recover: Option<Recover>,
    ) {
        let id = id.as_ref();
        let already = self.rooms.contains_key(&room);
        if !already && self.rooms.len() >= self.ctx.config.limits.rooms_per_connection {
            Refusal::TooManyRooms.record();
            let message = format!(
                "a connection may join at most {} rooms",
                self.ctx.config.limits.rooms_per_connection
            );
            return self.error(id, ErrorCode::TooManyRooms, &message, Some(&room));
        }
        let record = match self.ctx.db.room(&room).await {
            Ok(Some(record)) if record.archived_at.is_none() => record,
            Ok(_) => return self.error(id, ErrorCode::NotFound, "no such room", Some(&room)),
            Err(e) => {
                tracing::warn!(error = %e, "room lookup failed");
                return self.error(
                    id,
                    ErrorCode::Unavailable,
                    "the database is unavailable",
                    Some(&room),
                );
            }
        };
        if !crate::http::verify_room_password(&record, password.as_deref()).await {
            return self.error(
                id,
                ErrorCode::Forbidden,
                "wrong or missing room password",
                Some(&room),
            );
        }
        let recover = recover.map(|r| (Epoch::from(r.epoch), r.seq));
        let make_joined = |view: synctv_cluster::JoinView<'_>, members: &[Actor]| {
            ServerMessage::Joined {
                id,
                room: &room,
                epoch: view.epoch.as_str(),
                seq: view.seq,
                state: view.state,
                members,
                recovered: view.recovered,
                events: raw_events(&view.events),
            }
            .encode()
        };
        let cluster = &self.ctx.cluster;
        let joined = if already {
            cluster
                .subscribe(&self.member, &room, recover, &make_joined)
                .await
                .map(|_| ())
        } else {
            cluster
                .join(&self.member, &room, recover, make_joined)
                .await
                .map(|_| ())
        };
        match joined {
            Ok(()) => {
                if !already {
                    joined_rooms_gauge(1.0);
                }
                self.rooms.insert(
                    room,
                    RoomAccess {
                        control: record.control,
                        owner_id: record.owner_id,
                    },
                );
            }
            Err(JoinError::NotFound) => {
                self.error(id, ErrorCode::NotFound, "no such room", Some(&room))
            }
            Err(JoinError::RoomFull) => {
                self.error(id, ErrorCode::RoomFull, "the room is full", Some(&room))
            }
            Err(JoinError::Cluster(e)) => {
                tracing::warn!(room = %room, error = %e, "join failed");
                self.error(
                    id,
                    ErrorCode::Unavailable,
                    "the database is unavailable: retry",
                    Some(&room),
                )
            }
        }
    }

    /// Queues a room change; its ack (or error) is sent once the commit is known.
    async fn change(
        &mut self,
        id: Option<MessageId>,
        room: RoomId,
        controlled: bool,
        kind: RoomChangeKind,
    ) {
        let Some(access) = self.rooms.get(&room) else {
            return self.error(
                id.as_ref(),
                ErrorCode::NotFound,
                "not joined to this room",
                Some(&room),
            );
        };
        if controlled
            && access.control == Control::Owner
            && access.owner_id != self.member.actor.user_id
        {
            return self.error(
                id.as_ref(),
                ErrorCode::Forbidden,
                "only the room's owner controls playback",
                Some(&room),
            );
        }
        let change = RoomChange {
            room: room.clone(),
            by: Some(self.member.actor.clone()),
            kind,
        };
        let pending = self.ctx.cluster.enqueue(change).await;
        self.owed.push(
            async move {
                let result = match pending {
                    Ok(pending) => pending.outcome().await,
                    Err(e) => Err(e),
                };
                Owed {
                    id,
                    room,
                    with_version: controlled,
                    result,
                }
            }
            .boxed(),
        );
    }

    fn answer(&mut self, owed: Owed) {
        let Owed {
            id,
            room,
            with_version,
            result,
        } = owed;
        match result {
            Ok(ChangeOutcome::Committed(done)) => {
                let version = with_version.then_some(done.state.version);
                self.send(
                    ServerMessage::Ack {
                        id: id.as_ref(),
                        room: &room,
                        seq: done.event.seq,
                        version,
                    }
                    .encode(),
                );
            }
            Ok(ChangeOutcome::Rejected(Rejection::Conflict(state))) => {
                let error = ServerMessage::Error {
                    id: id.as_ref(),
                    code: ErrorCode::Conflict,
                    message: "if_version does not match the room's version",
                    room: Some(&room),
                    state: Some(&state),
                };
                self.send(error.encode());
            }
            Ok(ChangeOutcome::Rejected(Rejection::NotFound)) => self.error(
                id.as_ref(),
                ErrorCode::NotFound,
                "no such room",
                Some(&room),
            ),
            Err(e) => {
                tracing::warn!(room = %room, error = %e, "a change was not committed");
                self.error(
                    id.as_ref(),
                    ErrorCode::Unavailable,
                    "not saved: the database is unavailable",
                    Some(&room),
                )
            }
        }
    }

    fn error(&self, id: Option<&MessageId>, code: ErrorCode, message: &str, room: Option<&RoomId>) {
        self.send(
            ServerMessage::Error {
                id,
                code,
                message,
                room,
                state: None,
            }
            .encode(),
        );
    }

    /// Direct answers share the queue with events, so they keep their order.
    fn send(&self, frame: Bytes) {
        self.member.outbox.push(frame, Instant::now());
    }
}

/// Memberships of all connections on this node (`synctv_joined_rooms`).
fn joined_rooms_gauge(delta: f64) {
    metrics::gauge!("synctv_joined_rooms").increment(delta);
}

/// The `id` of a message that will not be decoded (it was refused before), if cheap to find.
fn peek_id(text: &str) -> Option<MessageId> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<MessageId>,
    }
    serde_json::from_str::<IdOnly>(text)
        .ok()
        .and_then(|m| m.id)
        .filter(|id| id.is_number() || id.is_string())
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
