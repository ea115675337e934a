//! A WebSocket join, in one call: room lookup, password, admission (presence and the
//! room's size), the room's channel on this node, catch-up and recovery, in a fixed
//! order, with a typed error for each way it can fail.

use crate::cluster_manager::{ClusterManager, Member};
use crate::connection_manager::Refusal;
use crate::delivery::encode_event;
use crate::error::ClusterError;
use crate::hub::{HeldChannel, JoinView, RecoveryRequest, SubscribeOutcome};
use crate::presence::Arrival;
use bytes::Bytes;
use synctv_core::password::verify_password;
use synctv_core::storage::{ChangeOutcome, RoomChange, RoomChangeKind};
use synctv_core::{Actor, Control, Epoch, RoomId, RoomRecord, UserId};

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

/// A room joined: who may control its playback.
#[derive(Clone, Debug)]
pub struct JoinedRoom {
    pub control: Control,
    pub owner_id: UserId,
    pub recovered: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("no such room")]
    NotFound,
    #[error("wrong or missing room password")]
    WrongPassword,
    #[error("the room is full")]
    RoomFull,
    /// More events than the recent ring holds were applied while the missed ones were
    /// read from the history: the join can be tried again.
    #[error("the room moved on faster than its history could be read")]
    Overtaken,
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

impl ClusterManager {
    /// Makes `member` a member of `request.room` and queues its `joined` frame, built by
    /// `make_joined` from the room's position and the members present.
    pub async fn join(
        &self,
        member: &Member,
        request: JoinRequest<'_>,
        make_joined: impl Fn(JoinView<'_>, &[Actor]) -> Bytes,
    ) -> Result<JoinedRoom, JoinError> {
        let room = request.room;
        let record = match self.db.room(room).await.map_err(ClusterError::from)? {
            Some(record) if record.archived_at.is_none() => record,
            _ => return Err(JoinError::NotFound),
        };
        if !password_opens(&record, request.password).await {
            return Err(JoinError::WrongPassword);
        }
        if !request.again {
            self.arrive(member, room).await?;
        }
        match self
            .subscribe(member, room, request.recover, &make_joined)
            .await
        {
            Ok(recovered) => Ok(JoinedRoom {
                control: record.control,
                owner_id: record.owner_id,
                recovered,
            }),
            Err(e) => {
                if !request.again {
                    self.depart(member, room).await;
                }
                Err(e)
            }
        }
    }

    /// Counts the member in the room's presence; the user's first connection there is
    /// recorded as `member_joined`.
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
                    Ok(ChangeOutcome::Rejected(_)) => JoinError::NotFound,
                    Err(e) => e.into(),
                };
                self.depart_presence(room, &member.actor.user_id).await;
                Err(failed)
            }
        }
    }

    /// Adds the member to the room's channel on this node, with its `joined`:
    /// 1. listen to the room's Redis channel (cluster mode) before reading any position,
    ///    so that nothing committed elsewhere falls in between;
    /// 2. hold the room's channel, opening it from the database position if needed;
    /// 3. if the client has seen events this node has not applied, catch up once;
    /// 4. subscribe from the recent ring, or, when the missed events are older than the
    ///    ring, read them from the history once and subscribe with them.
    async fn subscribe(
        &self,
        member: &Member,
        room: &RoomId,
        recover: Option<(Epoch, i64)>,
        make_joined: &impl Fn(JoinView<'_>, &[Actor]) -> Bytes,
    ) -> Result<bool, JoinError> {
        if let Some(membership) = &self.membership {
            membership.bus.subscribe_room(room).await;
        }
        let members = self.presence.members(room).await;
        let channel = self.hold_channel(room).await?;
        let recover = recover.as_ref().map(|(epoch, seq)| (epoch, *seq));
        if let Some((epoch, seq)) = recover {
            if self.membership.is_some() && channel.is_behind(epoch, seq) {
                self.catch_up.fill(room).await.map_err(ClusterError::from)?;
            }
        }
        let subscribe = |history: &[(i64, Bytes)]| {
            channel.subscribe(
                member.conn,
                &member.outbox,
                RecoveryRequest { recover, history },
                |view| make_joined(view, &members),
            )
        };
        let outcome = match subscribe(&[]) {
            SubscribeOutcome::NeedHistory { after } => {
                subscribe(&self.recovery_history(room, after).await?)
            }
            subscribed => subscribed,
        };
        match outcome {
            SubscribeOutcome::Subscribed { recovered, .. } => Ok(recovered),
            SubscribeOutcome::NeedHistory { .. } => Err(JoinError::Overtaken),
        }
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
