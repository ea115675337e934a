//! A WebSocket join, in one call: room lookup, password, ban, admission (presence and
//! the room's size), the room's channel on this node, catch-up and recovery, in a fixed
//! order, with a typed error for each way it can fail.

use crate::cluster_manager::{ClusterManager, Member};
use crate::connection_manager::Refusal;
use crate::delivery::encode_event;
use crate::error::ClusterError;
use crate::hub::{HeldChannel, JoinView, RecoveryRequest, SubscribeOutcome};
use crate::presence::Arrival;
use bytes::Bytes;
use serde::Serialize;
use synctv_core::clock::now_ms;
use synctv_core::moderation::Role;
use synctv_core::password::verify_password;
use synctv_core::queue::QueueItem;
use synctv_core::storage::{ChangeOutcome, Rejection, RoomChange, RoomChangeKind, RoomSnapshot};
use synctv_core::{Epoch, RoomId, RoomRecord, UserId};

/// How many times a join reads the room's roles and queue again when a change of them
/// lands between its read and its subscription (each try is one small read).
const SNAPSHOT_TRIES: usize = 20;

/// What a connection asks when it joins a room.
pub struct JoinRequest<'a> {
    pub room: &'a RoomId,
    pub password: Option<&'a str>,
    /// The client's last epoch and seq in the room, when it asks to recover.
    pub recover: Option<(Epoch, i64)>,
    /// The connection is a member already (a repeated `join`): it gets a fresh `joined`
    /// and presence is unchanged.
    pub again: bool,
}

/// A room joined.
#[derive(Clone, Debug)]
pub struct JoinedRoom {
    pub recovered: bool,
}

/// A present member with its role, as `joined` lists them.
#[derive(Clone, Debug, Serialize)]
pub struct MemberRole {
    pub user_id: UserId,
    pub name: String,
    pub role: Role,
}

/// What `joined` says besides the room's position (1.1): the joiner's role, the members
/// with theirs, and the queue, all as of the joined seq.
pub struct JoinDetails<'a> {
    pub role: Role,
    pub members: &'a [MemberRole],
    pub queue: &'a [QueueItem],
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("no such room")]
    NotFound,
    #[error("wrong or missing room password")]
    WrongPassword,
    /// The user is banned from the room until then (ms).
    #[error("banned from this room")]
    Banned(i64),
    #[error("the room is full")]
    RoomFull,
    /// More events than the recent ring holds were applied while the missed ones were
    /// read from the history, or roles and queue kept changing while they were read:
    /// the join can be tried again.
    #[error("the room moved on faster than its history could be read")]
    Overtaken,
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

impl ClusterManager {
    /// Makes `member` a member of `request.room` and queues its `joined` frame, built by
    /// `make_joined` from the room's position, roles, queue and the members present.
    pub async fn join(
        &self,
        member: &Member,
        request: JoinRequest<'_>,
        make_joined: impl Fn(JoinView<'_>, JoinDetails<'_>) -> Bytes,
    ) -> Result<JoinedRoom, JoinError> {
        let room = request.room;
        let record = match self.db.room(room).await.map_err(ClusterError::from)? {
            Some(record) if record.archived_at.is_none() => record,
            _ => return Err(JoinError::NotFound),
        };
        if !password_opens(&record, request.password).await {
            return Err(JoinError::WrongPassword);
        }
        let snapshot = self.snapshot(room).await?;
        if let Some(until) = snapshot
            .rules
            .moderation
            .banned_until(&member.actor.user_id, now_ms())
        {
            return Err(JoinError::Banned(until));
        }
        if !request.again {
            self.arrive(member, room).await?;
        }
        match self
            .subscribe(member, room, request.recover, &make_joined)
            .await
        {
            Ok(recovered) => Ok(JoinedRoom { recovered }),
            Err(e) => {
                if !request.again {
                    self.depart(member, room).await;
                }
                Err(e)
            }
        }
    }

    /// Counts the member in the room's presence; the user's first connection there is
    /// recorded as `member_joined` (refused there too if a ban came meanwhile).
    async fn arrive(&self, member: &Member, room: &RoomId) -> Result<(), JoinError> {
        match self.presence.arrive(room, &member.actor).await {
            Arrival::Full => {
                Refusal::RoomFull.record(self.connections().counters());
                Err(JoinError::RoomFull)
            }
            Arrival::Again => Ok(()),
            Arrival::First => {
                let change = RoomChange {
                    room: room.clone(),
                    by: Some(member.actor.clone()),
                    kind: RoomChangeKind::MemberJoined(member.actor.clone()),
                };
                let failed = match self.submit(change).await {
                    Ok(ChangeOutcome::Committed(_)) => return Ok(()),
                    Ok(ChangeOutcome::Rejected(Rejection::Banned(until))) => {
                        JoinError::Banned(until)
                    }
                    Ok(ChangeOutcome::Rejected(_)) => JoinError::NotFound,
                    Err(e) => e.into(),
                };
                self.depart_presence(room, &member.actor.user_id).await;
                Err(failed)
            }
        }
    }

    /// The room's roles, moderation and queue as committed.
    async fn snapshot(&self, room: &RoomId) -> Result<RoomSnapshot, JoinError> {
        self.db
            .room_snapshot(room)
            .await
            .map_err(ClusterError::from)?
            .ok_or(JoinError::NotFound)
    }

    /// Adds the member to the room's channel on this node, with its `joined`:
    /// 1. listen to the room's Redis channel (cluster mode) before reading any position,
    ///    so that nothing committed elsewhere falls in between;
    /// 2. hold the room's channel, opening it from the database position if needed;
    /// 3. if the client has seen events this node has not applied, catch up once;
    /// 4. read the roles and queue, and subscribe only if the channel stands where they
    ///    were read (caught up to it, no change of them since); otherwise read again;
    /// 5. subscribe from the recent ring, or, when the missed events are older than the
    ///    ring, read them from the history once and subscribe with them.
    async fn subscribe(
        &self,
        member: &Member,
        room: &RoomId,
        recover: Option<(Epoch, i64)>,
        make_joined: &impl Fn(JoinView<'_>, JoinDetails<'_>) -> Bytes,
    ) -> Result<bool, JoinError> {
        if let Some(membership) = &self.membership {
            membership.bus.subscribe_room(room).await;
        }
        let present = self.presence.members(room).await;
        let channel = self.hold_channel(room).await?;
        let recover = recover.as_ref().map(|(epoch, seq)| (epoch, *seq));
        if let Some((epoch, seq)) = recover {
            if self.membership.is_some() && channel.is_behind(epoch, seq) {
                self.catch_up.fill(room).await.map_err(ClusterError::from)?;
            }
        }
        let mut history: Vec<(i64, Bytes)> = Vec::new();
        for _ in 0..SNAPSHOT_TRIES {
            let snapshot = self.snapshot(room).await?;
            let moderation = &snapshot.rules.moderation;
            let members: Vec<MemberRole> = present
                .iter()
                .map(|a| MemberRole {
                    user_id: a.user_id.clone(),
                    name: a.name.clone(),
                    role: moderation.role(&snapshot.owner, &a.user_id),
                })
                .collect();
            let role = moderation.role(&snapshot.owner, &member.actor.user_id);
            let outcome = channel.subscribe(
                member.conn,
                &member.actor.user_id,
                &member.outbox,
                snapshot.last_seq,
                RecoveryRequest {
                    recover,
                    history: &history,
                },
                |view| {
                    let details = JoinDetails {
                        role,
                        members: &members,
                        queue: &snapshot.queue.items,
                    };
                    make_joined(view, details)
                },
            );
            match outcome {
                SubscribeOutcome::Subscribed { recovered, .. } => return Ok(recovered),
                SubscribeOutcome::NeedHistory { after } if history.is_empty() => {
                    history = self.recovery_history(room, after).await?;
                }
                SubscribeOutcome::NeedHistory { .. } => return Err(JoinError::Overtaken),
                SubscribeOutcome::Moved { behind: true } => {
                    self.catch_up.fill(room).await.map_err(ClusterError::from)?;
                }
                SubscribeOutcome::Moved { behind: false } => {}
            }
        }
        Err(JoinError::Overtaken)
    }

    /// The room's channel on this node, opened from the database position if need be.
    async fn hold_channel(&self, room: &RoomId) -> Result<HeldChannel<'_>, JoinError> {
        if let Some(channel) = self.hub.hold(room) {
            return Ok(channel);
        }
        let (epoch, last_seq, state) = self
            .db
            .room_position(room)
            .await
            .map_err(ClusterError::from)?
            .ok_or(JoinError::NotFound)?;
        Ok(self.hub.open(room, epoch, last_seq, state))
    }

    /// The events after `after` as the history holds them, encoded, up to the most a
    /// recovery hands back (which reaches past what this node applied, so that events
    /// applied meanwhile are covered too).
    async fn recovery_history(
        &self,
        room: &RoomId,
        after: i64,
    ) -> Result<Vec<(i64, Bytes)>, ClusterError> {
        let events = self
            .db
            .events_between(room, after, None, self.max_recovery_events)
            .await?;
        Ok(events
            .iter()
            .filter_map(|event| encode_event(event).map(|frame| (event.seq, frame)))
            .collect())
    }
}

/// Whether `password` opens `record`; rooms without a password accept anything.
async fn password_opens(record: &RoomRecord, password: Option<&str>) -> bool {
    let Some(stored) = record.password_hash.clone() else {
        return true;
    };
    let Some(password) = password.map(str::to_owned) else {
        return false;
    };
    // Argon2 is deliberately slow: keep it off the async workers.
    tokio::task::spawn_blocking(move || verify_password(&stored, &password))
        .await
        .unwrap_or(false)
}
