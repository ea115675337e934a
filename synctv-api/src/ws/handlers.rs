//! What a connection does with each client message: admission checks, joins, queued
//! room changes and the answers owed for them. The connection loop (`session`) owns a
//! [`MessageHandler`] and calls it; nothing here knows the socket or the loop.

use super::protocol::{
    decode, raw_events, ClientMessage, ErrorCode, MessageId, Recover, ServerMessage,
};
use crate::http::ApiContext;
use crate::refusal::Refusal;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use std::collections::HashSet;
use std::time::Instant;
use synctv_cluster::{
    ClusterError, JoinDetails, JoinError, JoinRequest, JoinView, Member, ModerationError,
    PendingCommit, TokenBucket,
};
use synctv_core::clock::now_ms;
use synctv_core::storage::{ChangeOutcome, Rejection, RoomChange, RoomChangeKind};
use synctv_core::{Epoch, RoomId, UserId};

/// A client that ignores this many rate-limit errors in a row is closed.
const MAX_REFUSED_IN_A_ROW: u32 = 200;

/// What the connection loop does after a message.
pub(super) enum Flow {
    Continue,
    Close(u16, &'static str),
}

/// The answer owed for a queued commit, once its outcome is known.
pub(super) struct Owed {
    id: Option<MessageId>,
    room: RoomId,
    with_version: bool,
    result: Result<ChangeOutcome, ClusterError>,
}

/// One connection's membership of rooms and the answers it owes.
pub(super) struct MessageHandler {
    ctx: ApiContext,
    member: Member,
    /// The rooms this connection is a member of. What it may do in each is decided by
    /// the sequencer, in the room's commit, against the stored roles.
    rooms: HashSet<RoomId>,
    bucket: TokenBucket,
    refused_in_a_row: u32,
    owed: FuturesUnordered<BoxFuture<'static, Owed>>,
}

impl MessageHandler {
    pub(super) fn new(ctx: ApiContext, member: Member) -> Self {
        Self {
            bucket: TokenBucket::new(ctx.config.limits.messages_per_second),
            ctx,
            member,
            rooms: HashSet::new(),
            refused_in_a_row: 0,
            owed: FuturesUnordered::new(),
        }
    }

    pub(super) async fn receive(&mut self, text: &str) -> Flow {
        if !self.bucket.try_take(Instant::now()) {
            Refusal::RateLimited.record(self.ctx.cluster.connections().counters());
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
            Refusal::TooLarge.record(self.ctx.cluster.connections().counters());
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
                if !self.rooms.remove(&room) {
                    return self.error(
                        id.as_ref(),
                        ErrorCode::NotFound,
                        "not joined to this room",
                        Some(&room),
                    );
                }
                joined_rooms_gauge(-1.0);
                Box::pin(self.ctx.cluster.leave(&self.member, &room)).await;
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
            ClientMessage::Role { room, user, role } => {
                let kind = RoomChangeKind::SetRole {
                    user: user.clone(),
                    role,
                };
                self.moderate(id, room, user, kind).await
            }
            ClientMessage::Kick {
                room,
                user,
                ban_secs,
            } => {
                let kind = RoomChangeKind::Kick {
                    user: user.clone(),
                    ban_secs,
                };
                self.moderate(id, room, user, kind).await
            }
            ClientMessage::Mute { room, user, secs } => {
                let kind = RoomChangeKind::Mute {
                    user: user.clone(),
                    secs,
                };
                self.moderate(id, room, user, kind).await
            }
            ClientMessage::QueueAdd { room, item } => {
                self.change(id, room, false, RoomChangeKind::QueueAdd(item))
                    .await
            }
            ClientMessage::QueueRemove { room, item_id } => {
                self.change(id, room, false, RoomChangeKind::QueueRemove { item_id })
                    .await
            }
            ClientMessage::QueueMove {
                room,
                item_id,
                index,
            } => {
                let kind = RoomChangeKind::QueueMove { item_id, index };
                self.change(id, room, false, kind).await
            }
            ClientMessage::Next { room, if_version } => {
                self.change(id, room, true, RoomChangeKind::Next { if_version })
                    .await
            }
            ClientMessage::Status { room, status } => {
                self.change(id, room, false, RoomChangeKind::Status(status))
                    .await
            }
            ClientMessage::Report {
                room,
                position,
                rtt_ms,
            } => self.report(id, room, position, rtt_ms),
        }
    }

    /// A role, kick or mute: the target must be a known user; the sequencer decides
    /// whether this member may.
    async fn moderate(
        &mut self,
        id: Option<MessageId>,
        room: RoomId,
        target: UserId,
        kind: RoomChangeKind,
    ) {
        if !self.rooms.contains(&room) {
            return self.not_joined(id, &room);
        }
        let actor = Some(self.member.actor.clone());
        match self.ctx.cluster.moderate(&room, actor, &target, kind).await {
            Ok(pending) => self.owe(id, room, false, Ok(pending)),
            Err(ModerationError::UnknownUser) => self.error(
                id.as_ref(),
                ErrorCode::NotFound,
                "no such user",
                Some(&room),
            ),
            Err(ModerationError::Cluster(e)) => self.owe(id, room, false, Err(e)),
            Err(other) => self.error(
                id.as_ref(),
                ErrorCode::BadRequest,
                &other.to_string(),
                Some(&room),
            ),
        }
    }

    /// A drift report: taken at most once a second, answered only when it has an `id`.
    fn report(&self, id: Option<MessageId>, room: RoomId, position: f64, rtt_ms: Option<f64>) {
        if !self.rooms.contains(&room) {
            return self.not_joined(id, &room);
        }
        let user = &self.member.actor.user_id;
        self.ctx.cluster.report_drift(&room, user, position, rtt_ms);
        if id.is_some() {
            let ack = ServerMessage::Ack {
                id: id.as_ref(),
                room: &room,
                seq: None,
                version: None,
            };
            self.send(ack.encode());
        }
    }

    fn not_joined(&self, id: Option<MessageId>, room: &RoomId) {
        self.error(
            id.as_ref(),
            ErrorCode::NotFound,
            "not joined to this room",
            Some(room),
        );
    }

    async fn join(
        &mut self,
        id: Option<MessageId>,
        room: RoomId,
        password: Option<String>,
        recover: Option<Recover>,
    ) {
        let id = id.as_ref();
        let again = self.rooms.contains(&room);
        if !again && self.rooms.len() >= self.ctx.config.limits.rooms_per_connection {
            Refusal::TooManyRooms.record(self.ctx.cluster.connections().counters());
            let message = format!(
                "a connection may join at most {} rooms",
                self.ctx.config.limits.rooms_per_connection
            );
            return self.error(id, ErrorCode::TooManyRooms, &message, Some(&room));
        }
        let make_joined = |view: JoinView<'_>, details: JoinDetails<'_>| {
            ServerMessage::Joined {
                id,
                room: &room,
                epoch: view.epoch.as_str(),
                seq: view.seq,
                state: view.state,
                role: details.role,
                members: details.members,
                queue: details.queue,
                recovered: view.recovered,
                events: raw_events(&view.events),
            }
            .encode()
        };
        let request = JoinRequest {
            room: &room,
            password: password.as_deref(),
            recover: recover.map(|r| (Epoch::from(r.epoch), r.seq)),
            again,
        };
        match self
            .ctx
            .cluster
            .join(&self.member, request, make_joined)
            .await
        {
            Ok(_) => {
                if !again {
                    joined_rooms_gauge(1.0);
                }
                self.rooms.insert(room);
            }
            Err(JoinError::Banned(until)) => {
                let banned = ServerMessage::ErrorUntil {
                    id,
                    code: ErrorCode::Banned,
                    message: "you are banned from this room",
                    room: &room,
                    until,
                };
                self.send(banned.encode());
            }
            Err(refused) => {
                let (code, message) = join_refusal(&refused);
                if code == ErrorCode::Unavailable {
                    tracing::warn!(room = %room, error = %refused, "join failed");
                }
                self.error(id, code, message, Some(&room));
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
        if !self.rooms.contains(&room) {
            return self.not_joined(id, &room);
        }
        let change = RoomChange {
            room: room.clone(),
            by: Some(self.member.actor.clone()),
            kind,
        };
        let pending = self.ctx.cluster.enqueue(change).await;
        self.owe(id, room, controlled, pending);
    }

    /// Owes the answer of a queued commit.
    fn owe(
        &mut self,
        id: Option<MessageId>,
        room: RoomId,
        controlled: bool,
        pending: Result<PendingCommit, ClusterError>,
    ) {
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

    /// The next commit outcome that is known; never resolves while none is owed.
    pub(super) async fn next_outcome(&mut self) -> Owed {
        match self.owed.next().await {
            Some(owed) => owed,
            None => std::future::pending().await,
        }
    }

    /// Sends the `ack` (or error) owed for a commit.
    pub(super) fn answer(&mut self, owed: Owed) {
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
                        seq: done.seq(),
                        version,
                    }
                    .encode(),
                );
            }
            Ok(ChangeOutcome::Rejected(Rejection::Forbidden(why))) => {
                self.error(id.as_ref(), ErrorCode::Forbidden, why, Some(&room))
            }
            Ok(ChangeOutcome::Rejected(Rejection::Banned(_))) => self.error(
                id.as_ref(),
                ErrorCode::Forbidden,
                "banned from this room",
                Some(&room),
            ),
            Ok(ChangeOutcome::Rejected(Rejection::QueueFull)) => self.error(
                id.as_ref(),
                ErrorCode::QueueFull,
                "the queue is full (500 items)",
                Some(&room),
            ),
            Ok(ChangeOutcome::Rejected(Rejection::QueueItemNotFound(why))) => {
                self.error(id.as_ref(), ErrorCode::NotFound, why, Some(&room))
            }
            Ok(ChangeOutcome::Rejected(Rejection::IndexPastEnd)) => self.error(
                id.as_ref(),
                ErrorCode::BadRequest,
                "index is past the end of the queue",
                Some(&room),
            ),
            Ok(ChangeOutcome::Rejected(Rejection::Conflict(state))) => {
                let error = ServerMessage::Error {
                    id: id.as_ref(),
                    code: ErrorCode::Conflict,
                    message: "if_version does not match the room's version",
                    room: Some(&room),
                    state: Some(&*state),
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
                let message = match e {
                    ClusterError::ShuttingDown => "not saved: the server is shutting down",
                    _ => "not saved: the database is unavailable",
                };
                self.error(id.as_ref(), ErrorCode::Unavailable, message, Some(&room))
            }
        }
    }

    /// A binary frame: the contract speaks JSON text only.
    pub(super) fn refuse_binary(&self) {
        self.error(
            None,
            ErrorCode::BadRequest,
            "binary frames are not accepted: send JSON text",
            None,
        );
    }

    /// The room was archived: the hub removed this connection; forget it here too.
    pub(super) async fn room_closed(&mut self, room: &RoomId) {
        if self.rooms.remove(room) {
            joined_rooms_gauge(-1.0);
            Box::pin(self.ctx.cluster.forget(&self.member, room)).await;
        }
    }

    /// The connection ended: leave every room it joined.
    pub(super) async fn leave_all(&mut self) {
        let joined = std::mem::take(&mut self.rooms);
        joined_rooms_gauge(-(joined.len() as f64));
        for room in joined {
            Box::pin(self.ctx.cluster.leave(&self.member, &room)).await;
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
        self.member.outbox.push(&frame, Instant::now());
    }
}

/// The error code and message a refused join is answered with.
fn join_refusal(refused: &JoinError) -> (ErrorCode, &'static str) {
    match refused {
        JoinError::NotFound => (ErrorCode::NotFound, "no such room"),
        JoinError::WrongPassword => (ErrorCode::Forbidden, "wrong or missing room password"),
        JoinError::Banned(_) => (ErrorCode::Banned, "you are banned from this room"),
        JoinError::RoomFull => (ErrorCode::RoomFull, "the room is full"),
        JoinError::Overtaken => (
            ErrorCode::Unavailable,
            "the room moved on faster than its history could be read: join again",
        ),
        JoinError::Cluster(ClusterError::ShuttingDown) => (
            ErrorCode::Unavailable,
            "the server is shutting down: connect to another node",
        ),
        JoinError::Cluster(_) => (ErrorCode::Unavailable, "the database is unavailable: retry"),
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
