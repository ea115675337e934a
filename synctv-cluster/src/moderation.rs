//! Rooms people run, as the API asks for them: moderation (`kick`, and roles and mutes
//! through [`ClusterManager::moderate`]), the members list with roles, statuses and
//! drift, the queue, and drift reports. Every change goes through the history writer,
//! so the sequencer decides it inside the room's commit.

use crate::cluster_manager::ClusterManager;
use crate::drift_book::DRIFT_SHOWN_FOR;
use crate::error::ClusterError;
use crate::history_writer::PendingCommit;
use serde::Serialize;
use std::time::Instant;
use synctv_core::clock::now_ms;
use synctv_core::drift::drift_ms;
use synctv_core::moderation::{Role, MAX_MODERATION_SECS};
use synctv_core::queue::QueueItem;
use synctv_core::storage::{ChangeOutcome, Rejection, RoomChange, RoomChangeKind};
use synctv_core::waiting::PlayerStatus;
use synctv_core::{Actor, RoomId, UserId};

#[derive(Debug, thiserror::Error)]
pub enum ModerationError {
    #[error("no such room")]
    NotFound,
    #[error("no such user")]
    UnknownUser,
    #[error("ban_secs must be 0 to 31536000")]
    OutOfRange,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// A present member as `GET /api/v1/rooms/{id}/members` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct MemberView {
    pub user_id: UserId,
    pub name: String,
    pub role: Role,
    pub status: Option<PlayerStatus>,
    pub drift_ms: Option<f64>,
    pub muted_until: Option<i64>,
}

impl ClusterManager {
    /// Kicks `user` from `room`, banning it for `ban_secs` (0: no ban), on behalf of `by`
    /// (`None`: the server itself, which may kick anyone). Answers the seq of the
    /// `member_kicked` event once it is durable; the user's connections leave the room
    /// on every node as that event reaches them.
    pub async fn kick(
        &self,
        room: &RoomId,
        user: &UserId,
        ban_secs: i64,
        by: Option<Actor>,
    ) -> Result<i64, ModerationError> {
        if !(0..=MAX_MODERATION_SECS).contains(&ban_secs) {
            return Err(ModerationError::OutOfRange);
        }
        let kind = RoomChangeKind::Kick {
            user: user.clone(),
            ban_secs,
        };
        let pending = self.moderate(room, by, user, kind).await?;
        match pending.outcome().await? {
            ChangeOutcome::Committed(done) => done.seq().ok_or(ModerationError::NotFound),
            ChangeOutcome::Rejected(Rejection::Forbidden(why)) => {
                Err(ModerationError::Forbidden(why))
            }
            ChangeOutcome::Rejected(_) => Err(ModerationError::NotFound),
        }
    }

    /// Queues a moderation change (`kind`: a role, kick or mute aimed at `target`) once
    /// the target is known to exist; the sequencer decides whether `by` may.
    pub async fn moderate(
        &self,
        room: &RoomId,
        by: Option<Actor>,
        target: &UserId,
        kind: RoomChangeKind,
    ) -> Result<PendingCommit, ModerationError> {
        if self
            .db
            .user(target)
            .await
            .map_err(ClusterError::from)?
            .is_none()
        {
            return Err(ModerationError::UnknownUser);
        }
        let change = RoomChange {
            room: room.clone(),
            by,
            kind,
        };
        Ok(self.enqueue(change).await?)
    }

    /// The users present in `room` on any node, with role, status, drift and mute;
    /// `None` when the room is unknown or archived.
    pub async fn member_list(
        &self,
        room: &RoomId,
    ) -> Result<Option<Vec<MemberView>>, ClusterError> {
        let Some(snapshot) = self.db.room_snapshot(room).await? else {
            return Ok(None);
        };
        let now = now_ms();
        let shown_since = now - DRIFT_SHOWN_FOR.as_millis() as i64;
        let drifts = self.db.drifts(room, shown_since).await?;
        let moderation = &snapshot.rules.moderation;
        let members = self
            .presence
            .members(room)
            .await
            .into_iter()
            .map(|actor| MemberView {
                role: moderation.role(&snapshot.owner, &actor.user_id),
                status: snapshot.rules.waiters.status(&actor.user_id),
                drift_ms: drifts.get(&actor.user_id).map(|d| d.round()),
                muted_until: moderation.muted_until(&actor.user_id, now),
                user_id: actor.user_id,
                name: actor.name,
            })
            .collect();
        Ok(Some(members))
    }

    /// The room's queue; `None` when the room is unknown or archived.
    pub async fn queue(&self, room: &RoomId) -> Result<Option<Vec<QueueItem>>, ClusterError> {
        Ok(self.db.room_snapshot(room).await?.map(|s| s.queue.items))
    }

    /// A drift report of `user` in `room`: `false` when it was ignored (over one a
    /// second). Measured against the room's state on this node.
    pub fn report_drift(
        &self,
        room: &RoomId,
        user: &UserId,
        position: f64,
        rtt_ms: Option<f64>,
    ) -> bool {
        if !self.drift.take(room, user, Instant::now()) {
            return false;
        }
        let Some((_, _, state)) = self.hub.position(room) else {
            return false;
        };
        let now = now_ms();
        self.drift
            .record(room, user, drift_ms(&state, position, rtt_ms, now), now);
        true
    }
}
