//! Rooms: the stored record and the contract's `Room` answer.

use crate::ids::{RoomId, UserId};
use crate::playback::PlaybackState;
use serde::{Deserialize, Serialize};

/// Longest accepted room name, in characters after trimming.
pub const MAX_ROOM_NAME_CHARS: usize = 100;

/// Who may change playback, media and the queue: everyone, the owner and admins
/// (`hosts`, 1.1), or the owner alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    #[default]
    Everyone,
    Hosts,
    Owner,
}

impl Control {
    pub fn as_str(self) -> &'static str {
        match self {
            Control::Everyone => "everyone",
            Control::Hosts => "hosts",
            Control::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "everyone" => Some(Control::Everyone),
            "hosts" => Some(Control::Hosts),
            "owner" => Some(Control::Owner),
            _ => None,
        }
    }
}

/// A room as stored: never erased, only archived. The password hash stays inside the
/// server (it is not `Serialize`).
#[derive(Clone, Debug, PartialEq)]
pub struct RoomRecord {
    pub id: RoomId,
    pub name: String,
    pub owner_id: UserId,
    pub control: Control,
    pub password_hash: Option<String>,
    pub created_at: i64,
    pub archived_at: Option<i64>,
    pub state: PlaybackState,
    /// 1.1: items in the room's queue.
    pub queue_length: usize,
}

impl RoomRecord {
    /// The contract's `Room`, with the cluster-wide member count filled in by the caller.
    pub fn to_room(&self, members: usize) -> Room {
        Room {
            id: self.id.clone(),
            name: self.name.clone(),
            owner_id: self.owner_id.clone(),
            control: self.control,
            has_password: self.password_hash.is_some(),
            created_at: self.created_at,
            members,
            state: self.state.clone(),
            queue_length: self.queue_length,
        }
    }
}

/// The contract's `Room`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Room {
    pub id: RoomId,
    pub name: String,
    pub owner_id: UserId,
    pub control: Control,
    pub has_password: bool,
    pub created_at: i64,
    pub members: usize,
    pub state: PlaybackState,
    pub queue_length: usize,
}
