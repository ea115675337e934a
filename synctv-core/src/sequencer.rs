//! The sequencer: one room change applied to the room's stored row, inside the commit
//! that locked it. It checks who may do it (roles, control, mutes, bans), changes the
//! state, the moderation, the queue and the waiters, and yields the events (0..n) it
//! produced, each with the next seq. Every decision is made here, in the room's order,
//! against the stored row (the timed start of a wait included), so two nodes can never
//! disagree or start a room twice.

use crate::event::{Actor, Event, EventKind};
use crate::ids::{Epoch, RoomId, UserId};
use crate::moderation::{may, may_control, Act, Moderation, Role};
use crate::playback::{apply_media, Media, PlaybackAction, PlaybackCommand, PlaybackState};
use crate::queue::{NewItem, Queue, QueueError};
use crate::room::Control;
use crate::waiting::{self, PlayerStatus, Waiters};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One change a client (or the server) asks of a room.
#[derive(Clone, Debug)]
pub struct RoomChange {
    pub room: RoomId,
    /// Who asks; `None` is the server itself.
    pub by: Option<Actor>,
    pub kind: RoomChangeKind,
}

#[derive(Clone, Debug)]
pub enum RoomChangeKind {
    Playback(PlaybackCommand),
    Media(Media),
    Chat(String),
    MemberJoined(Actor),
    MemberLeft(Actor),
    Archive,
    SetRole {
        user: UserId,
        role: Role,
    },
    Kick {
        user: UserId,
        ban_secs: i64,
    },
    Mute {
        user: UserId,
        secs: i64,
    },
    QueueAdd(NewItem),
    QueueRemove {
        item_id: String,
    },
    QueueMove {
        item_id: String,
        index: usize,
    },
    Next {
        if_version: Option<i64>,
    },
    Status(PlayerStatus),
    /// A node's timer reached the `wait_until` it was armed for: start the room if that
    /// wait is still the room's (the first node to ask does it, the others find it over).
    WaitTimeout {
        until: i64,
    },
}

/// What became of one change, in the order the changes were given.
#[derive(Clone, Debug)]
pub enum ChangeOutcome {
    Committed(CommittedChange),
    Rejected(Rejection),
}

/// The durable events a change produced (none when it changed nothing: then its `ack`
/// carries `seq: null`) and the room's state right after them. The first event is the
/// one the change itself produced; a decision it led to (a waited start) follows.
#[derive(Clone, Debug)]
pub struct CommittedChange {
    pub events: Vec<Event>,
    pub state: PlaybackState,
}

impl CommittedChange {
    /// The seq of the event the change produced, for its `ack`.
    pub fn seq(&self) -> Option<i64> {
        self.events.first().map(|e| e.seq)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Rejection {
    /// No such room, or it is archived.
    NotFound,
    /// `if_version` did not match; here is the current state.
    Conflict(Box<PlaybackState>),
    /// Not allowed to this user; says why.
    Forbidden(&'static str),
    /// The user is banned from the room until then (ms).
    Banned(i64),
    QueueFull,
    /// No such queue item, or an empty queue for `next`.
    QueueItemNotFound(&'static str),
    /// An `index` past the end of the queue.
    IndexPastEnd,
}

/// The parts of a room's row that are not the playback state, stored as one JSON value:
/// small, read and written with every change that needs them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoomRules {
    #[serde(default)]
    pub moderation: Moderation,
    #[serde(default)]
    pub waiters: Waiters,
}

/// A room's stored row as locked by the commit, changed in memory as changes apply.
#[derive(Debug)]
pub struct RoomRow {
    pub epoch: Epoch,
    pub last_seq: i64,
    pub state: PlaybackState,
    pub archived: bool,
    pub owner: UserId,
    pub control: Control,
    pub rules: RoomRules,
    /// The queue as stored (JSON), parsed only by a change that needs it.
    pub queue_json: Option<String>,
    pub queue: Option<Queue>,
    /// What must be written back besides the state.
    pub rules_changed: bool,
    pub queue_changed: bool,
}

/// The context every change of a commit shares.
#[derive(Clone, Copy, Debug)]
pub struct Sequencer {
    pub now_ms: i64,
    /// How long a start waits for buffering members (`rooms.ready_timeout_secs`).
    pub ready_timeout_ms: i64,
}

type Applied = Result<Vec<(EventKind, Option<Actor>, Value)>, Rejection>;

impl Sequencer {
    /// Applies one change to `row`: the events it made (with their seqs), or why not.
    pub fn apply(&self, row: &mut RoomRow, change: &RoomChange) -> ChangeOutcome {
        if row.archived {
            return ChangeOutcome::Rejected(Rejection::NotFound);
        }
        match self.decide(row, change) {
            Ok(made) => {
                let events = made
                    .into_iter()
                    .map(|(kind, by, data)| {
                        row.last_seq += 1;
                        Event {
                            room: change.room.clone(),
                            epoch: row.epoch.clone(),
                            seq: row.last_seq,
                            kind,
                            by,
                            data,
                            server_time: self.now_ms,
                        }
                    })
                    .collect();
                ChangeOutcome::Committed(CommittedChange {
                    events,
                    state: row.state.clone(),
                })
            }
            Err(rejection) => ChangeOutcome::Rejected(rejection),
        }
    }

    fn decide(&self, row: &mut RoomRow, change: &RoomChange) -> Applied {
        let by = change.by.clone();
        let one = |kind, data| Ok(vec![(kind, by.clone(), data)]);
        match &change.kind {
            RoomChangeKind::Playback(cmd) => {
                row.check_control(&by)?;
                self.playback(row, cmd, by)
            }
            RoomChangeKind::Media(media) => {
                row.check_control(&by)?;
                row.state = apply_media(&row.state, media.clone(), self.now_ms);
                row.all_buffering();
                one(EventKind::Media, json!({"state": &row.state}))
            }
            RoomChangeKind::Chat(text) => {
                if let Some(actor) = &by {
                    if row
                        .rules
                        .moderation
                        .muted_until(&actor.user_id, self.now_ms)
                        .is_some()
                    {
                        return Err(Rejection::Forbidden("you are muted in this room"));
                    }
                }
                one(EventKind::Chat, json!({"text": text}))
            }
            RoomChangeKind::MemberJoined(who) => {
                if let Some(until) = row.rules.moderation.banned_until(&who.user_id, self.now_ms) {
                    return Err(Rejection::Banned(until));
                }
                one(
                    EventKind::MemberJoined,
                    json!({"user_id": who.user_id, "name": who.name}),
                )
            }
            RoomChangeKind::MemberLeft(who) => {
                let mut made = vec![(
                    EventKind::MemberLeft,
                    by.clone(),
                    json!({"user_id": who.user_id, "name": who.name}),
                )];
                made.extend(self.stop_waiting_for(row, &who.user_id, true));
                Ok(made)
            }
            RoomChangeKind::Archive => {
                row.archived = true;
                one(EventKind::RoomArchived, json!({}))
            }
            RoomChangeKind::SetRole { user, role } => {
                row.check_may(&by, user, Act::GiveRole)?;
                row.rules.moderation.set_role(user, *role);
                row.rules_changed = true;
                one(
                    EventKind::Role,
                    json!({"user_id": user, "role": role.as_str()}),
                )
            }
            RoomChangeKind::Kick { user, ban_secs } => {
                row.check_may(&by, user, Act::Kick)?;
                let until = (*ban_secs > 0).then(|| self.now_ms + ban_secs * 1000);
                row.rules.moderation.prune(self.now_ms);
                row.rules.moderation.set_ban(user, until);
                row.rules_changed = true;
                let mut made = vec![(
                    EventKind::MemberKicked,
                    by.clone(),
                    json!({"user_id": user, "banned_until": until}),
                )];
                made.extend(self.stop_waiting_for(row, user, true));
                Ok(made)
            }
            RoomChangeKind::Mute { user, secs } => {
                row.check_may(&by, user, Act::Mute)?;
                let until = (*secs > 0).then(|| self.now_ms + secs * 1000);
                row.rules.moderation.prune(self.now_ms);
                row.rules.moderation.set_mute(user, until);
                row.rules_changed = true;
                one(
                    EventKind::MemberMuted,
                    json!({"user_id": user, "muted_until": until}),
                )
            }
            RoomChangeKind::QueueAdd(new) => {
                row.check_control(&by)?;
                let Some(actor) = by.clone() else {
                    return Err(Rejection::Forbidden("only a member adds to the queue"));
                };
                let (item, index) = row
                    .queue_mut()
                    .add(new.clone(), actor)
                    .map_err(queue_error)?;
                row.queue_changed = true;
                one(
                    EventKind::Queue,
                    json!({"action": "add", "item": item, "index": index}),
                )
            }
            RoomChangeKind::QueueRemove { item_id } => {
                row.check_control(&by)?;
                row.queue_mut().remove(item_id).map_err(queue_error)?;
                row.queue_changed = true;
                one(
                    EventKind::Queue,
                    json!({"action": "remove", "item_id": item_id}),
                )
            }
            RoomChangeKind::QueueMove { item_id, index } => {
                row.check_control(&by)?;
                row.queue_mut()
                    .move_to(item_id, *index)
                    .map_err(queue_error)?;
                row.queue_changed = true;
                one(
                    EventKind::Queue,
                    json!({"action": "move", "item_id": item_id, "index": index}),
                )
            }
            RoomChangeKind::Next { if_version } => {
                row.check_control(&by)?;
                if if_version.is_some_and(|v| v != row.state.version) {
                    return Err(Rejection::Conflict(Box::new(row.state.clone())));
                }
                let item = row.queue_mut().pop_front().map_err(queue_error)?;
                row.queue_changed = true;
                let media = Media {
                    url: item.url.clone(),
                    title: item.title.clone(),
                    duration: item.duration,
                };
                let running = row.state.playing || waiting::is_waiting(&row.state);
                let mut next = apply_media(&row.state, media, self.now_ms);
                next.playing = running;
                row.state = next;
                row.all_buffering();
                if running {
                    self.hold_if_anyone_buffers(row);
                }
                one(
                    EventKind::Media,
                    json!({"state": &row.state, "from_queue": item}),
                )
            }
            RoomChangeKind::Status(status) => {
                let Some(actor) = &by else {
                    return Ok(Vec::new());
                };
                if !row.rules.waiters.report(&actor.user_id, *status) {
                    return Ok(Vec::new());
                }
                row.rules_changed = true;
                let mut made = vec![(
                    EventKind::MemberStatus,
                    by.clone(),
                    json!({"user_id": actor.user_id, "state": status.as_str()}),
                )];
                if *status == PlayerStatus::Ready {
                    made.extend(self.stop_waiting_for(row, &actor.user_id, false));
                }
                Ok(made)
            }
            RoomChangeKind::WaitTimeout { until } => {
                if waiting::is_waiting(&row.state) && row.state.wait_until == Some(*until) {
                    Ok(vec![self.start(row)])
                } else {
                    Ok(Vec::new())
                }
            }
        }
    }

    fn playback(&self, row: &mut RoomRow, cmd: &PlaybackCommand, by: Option<Actor>) -> Applied {
        let was_running = row.state.playing || waiting::is_waiting(&row.state);
        let Some(mut next) = cmd.apply(&row.state, self.now_ms) else {
            return Err(Rejection::Conflict(Box::new(row.state.clone())));
        };
        match cmd.action {
            PlaybackAction::Play if cmd.force => waiting::clear(&mut next),
            PlaybackAction::Play => {
                let buffering = row.rules.waiters.buffering();
                if !buffering.is_empty() {
                    waiting::hold(&mut next, buffering, self.now_ms, self.ready_timeout_ms);
                }
            }
            PlaybackAction::Pause => waiting::clear(&mut next),
            PlaybackAction::Seek => {
                row.all_buffering();
                if was_running {
                    waiting::clear(&mut next);
                    next.playing = true;
                    let buffering = row.rules.waiters.buffering();
                    if !buffering.is_empty() {
                        waiting::hold(&mut next, buffering, self.now_ms, self.ready_timeout_ms);
                    }
                }
            }
            PlaybackAction::Rate => {}
        }
        row.state = next;
        Ok(vec![(
            EventKind::Playback,
            by,
            json!({"action": cmd.action.as_str(), "state": &row.state}),
        )])
    }

    /// After new media while the room runs: hold the start for the buffering waiters.
    fn hold_if_anyone_buffers(&self, row: &mut RoomRow) {
        let buffering = row.rules.waiters.buffering();
        if !buffering.is_empty() {
            waiting::hold(
                &mut row.state,
                buffering,
                self.now_ms,
                self.ready_timeout_ms,
            );
        }
    }

    /// `user` is ready (`leaving` false), left or was kicked: it is no longer waited
    /// for; when it was the last, the room starts (the waited start event).
    fn stop_waiting_for(
        &self,
        row: &mut RoomRow,
        user: &UserId,
        leaving: bool,
    ) -> Option<(EventKind, Option<Actor>, Value)> {
        if leaving && row.rules.waiters.remove(user) {
            row.rules_changed = true;
        }
        if !row.state.waiting_for.contains(user) {
            return None;
        }
        row.state.waiting_for.retain(|u| u != user);
        if waiting::is_waiting(&row.state) {
            return None;
        }
        Some(self.start(row))
    }

    fn start(&self, row: &mut RoomRow) -> (EventKind, Option<Actor>, Value) {
        row.state = waiting::start(&row.state, self.now_ms);
        (
            EventKind::Playback,
            None,
            json!({"action": "play", "state": &row.state, "waited": true}),
        )
    }
}

fn queue_error(e: QueueError) -> Rejection {
    match e {
        QueueError::Full => Rejection::QueueFull,
        QueueError::UnknownItem => Rejection::QueueItemNotFound("no such item in the queue"),
        QueueError::Empty => Rejection::QueueItemNotFound("the queue is empty"),
        QueueError::IndexPastEnd => Rejection::IndexPastEnd,
    }
}

impl RoomRow {
    fn role(&self, user: &UserId) -> Role {
        self.rules.moderation.role(&self.owner, user)
    }

    /// Playback, media and the queue, under the room's `control`.
    fn check_control(&self, by: &Option<Actor>) -> Result<(), Rejection> {
        match by {
            Some(actor) if !may_control(self.control, self.role(&actor.user_id)) => {
                Err(Rejection::Forbidden(match self.control {
                    Control::Owner => "only the room's owner controls playback",
                    _ => "only the room's owner and admins control playback",
                }))
            }
            _ => Ok(()),
        }
    }

    fn check_may(&self, by: &Option<Actor>, target: &UserId, act: Act) -> Result<(), Rejection> {
        let actor = by.as_ref().map(|a| self.role(&a.user_id));
        let on_self = by.as_ref().is_some_and(|a| &a.user_id == target);
        if may(actor, on_self, act, self.role(target)) {
            Ok(())
        } else {
            Err(Rejection::Forbidden(match act {
                Act::GiveRole => "only the owner gives roles, to anyone but itself",
                Act::Kick | Act::Mute => {
                    "the owner may kick and mute anyone else, an admin only members"
                }
            }))
        }
    }

    /// The queue, parsed from its stored JSON the first time a change needs it.
    pub fn queue_mut(&mut self) -> &mut Queue {
        let stored = &self.queue_json;
        self.queue
            .get_or_insert_with(|| parse_queue(stored.as_deref()))
    }

    fn all_buffering(&mut self) {
        if !self.rules.waiters.statuses.is_empty() {
            self.rules.waiters.mark_all_buffering();
            self.rules_changed = true;
        }
    }
}

/// A stored queue; `None` (a room from before 1.1, or never queued to) is empty. A value
/// that does not parse is logged and read as empty rather than blocking the room.
pub fn parse_queue(stored: Option<&str>) -> Queue {
    match stored {
        None => Queue::default(),
        Some(json) => serde_json::from_str(json).unwrap_or_else(|e| {
            tracing::error!(error = %e, "a stored queue does not parse; read as empty");
            Queue::default()
        }),
    }
}

/// Stored rules; `None` (a room from before 1.1) is the default. A value that does not
/// parse is an error: reading it as empty would lift every ban.
pub fn parse_rules(stored: Option<&str>) -> Result<RoomRules, serde_json::Error> {
    stored.map_or(Ok(RoomRules::default()), serde_json::from_str)
}

#[cfg(test)]
#[path = "sequencer_tests.rs"]
mod tests;
