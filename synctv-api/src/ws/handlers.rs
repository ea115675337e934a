//! What a connection does with each client message: admission checks, joins, queued
//! room changes and the answers owed for them. The connection loop is in `session`.

use super::protocol::{
    decode, raw_events, ClientMessage, ErrorCode, MessageId, Recover, ServerMessage,
};
use super::session::{Flow, Owed, RoomAccess, Session, MAX_REFUSED_IN_A_ROW};
use bytes::Bytes;
use futures_util::FutureExt;
use std::time::Instant;
use synctv_cluster::{JoinError, Refusal};
use synctv_core::clock::now_ms;
use synctv_core::storage::{ChangeOutcome, Rejection, RoomChange, RoomChangeKind};
use synctv_core::{Actor, Control, Epoch, RoomId};

impl Session {
    pub(super) async fn receive(&mut self, text: &str) -> Flow {
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

    pub(super) fn error(
        &self,
        id: Option<&MessageId>,
        code: ErrorCode,
        message: &str,
        room: Option<&RoomId>,
    ) {
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
pub(super) fn joined_rooms_gauge(delta: f64) {
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
