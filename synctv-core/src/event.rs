//! Room events: the entries of a room's history, shaped exactly as the contract's `Event`.

use crate::ids::{Epoch, RoomId, UserId};
use crate::playback::PlaybackState;
use serde::{Deserialize, Serialize};

/// Who produced an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user_id: UserId,
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Playback,
    Media,
    Chat,
    MemberJoined,
    MemberLeft,
    RoomArchived,
    /// 1.1: a role given (data: `user_id`, `role`).
    Role,
    /// 1.1: a member kicked, perhaps banned (data: `user_id`, `banned_until`).
    MemberKicked,
    /// 1.1: a mute set or lifted (data: `user_id`, `muted_until`).
    MemberMuted,
    /// 1.1: the queue changed (data: `action` and what it changed).
    Queue,
    /// 1.1: a member's player status changed (data: `user_id`, `state`).
    MemberStatus,
    /// A notice to one member; never stored and never given a seq.
    Resync,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Playback => "playback",
            EventKind::Media => "media",
            EventKind::Chat => "chat",
            EventKind::MemberJoined => "member_joined",
            EventKind::MemberLeft => "member_left",
            EventKind::RoomArchived => "room_archived",
            EventKind::Role => "role",
            EventKind::MemberKicked => "member_kicked",
            EventKind::MemberMuted => "member_muted",
            EventKind::Queue => "queue",
            EventKind::MemberStatus => "member_status",
            EventKind::Resync => "resync",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "playback" => EventKind::Playback,
            "media" => EventKind::Media,
            "chat" => EventKind::Chat,
            "member_joined" => EventKind::MemberJoined,
            "member_left" => EventKind::MemberLeft,
            "room_archived" => EventKind::RoomArchived,
            "role" => EventKind::Role,
            "member_kicked" => EventKind::MemberKicked,
            "member_muted" => EventKind::MemberMuted,
            "queue" => EventKind::Queue,
            "member_status" => EventKind::MemberStatus,
            "resync" => EventKind::Resync,
            _ => return None,
        })
    }
}

/// The `seq` of a notice that is not part of the history (`resync`); no event has it.
pub const NO_SEQ: i64 = 0;

fn has_no_seq(seq: &i64) -> bool {
    *seq == NO_SEQ
}

/// One entry of a room's history. Serializes to the contract's wire form, `"type":
/// "event"` included, so the same value is both stored and sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "event")]
pub struct Event {
    pub room: RoomId,
    pub epoch: Epoch,
    /// The event's place in the room's history, from 1. A `resync` notice takes none: it
    /// holds [`NO_SEQ`] and is sent without the field.
    #[serde(default, skip_serializing_if = "has_no_seq")]
    pub seq: i64,
    pub kind: EventKind,
    pub by: Option<Actor>,
    pub data: serde_json::Value,
    pub server_time: i64,
}

impl Event {
    /// The `resync` notice: the room's state and `seq`, the last seq that state reflects.
    pub fn resync(
        room: RoomId,
        epoch: Epoch,
        state: &PlaybackState,
        seq: i64,
        server_time: i64,
    ) -> Self {
        Event {
            room,
            epoch,
            seq: NO_SEQ,
            kind: EventKind::Resync,
            by: None,
            data: serde_json::json!({"state": state, "seq": seq}),
            server_time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_serializes_to_the_contract_shape() {
        let event = Event {
            room: "r1".into(),
            epoch: "e1".into(),
            seq: 7,
            kind: EventKind::MemberJoined,
            by: None,
            data: serde_json::json!({"user_id": "u", "name": "n"}),
            server_time: 5,
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "event", "room": "r1", "epoch": "e1", "seq": 7,
                "kind": "member_joined", "by": null, "data": {"user_id": "u", "name": "n"},
                "server_time": 5})
        );
    }

    #[test]
    fn a_resync_notice_has_no_seq_field() {
        let notice = Event::resync("r1".into(), "e1".into(), &PlaybackState::initial(1), 9, 5);
        let json = serde_json::to_value(&notice).unwrap();
        assert_eq!(json["kind"], "resync");
        assert_eq!(json["data"]["seq"], 9);
        assert!(json.get("seq").is_none());
        assert_eq!(json["by"], serde_json::Value::Null);
    }
}
