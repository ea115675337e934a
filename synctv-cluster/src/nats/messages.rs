//! What nodes tell each other on the NATS bus besides room events (which travel as the
//! event's own JSON on the room's subject): heartbeats carrying the node's info and its
//! whole presence share, and announcements of one room's share when it changes. Both go
//! on one subject, so a receiver sees one sender's messages in the order they were sent.

use crate::node_registry::NodeInfo;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use synctv_core::{Actor, RoomId, UserId};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClusterMessage {
    /// Every heartbeat: who the sender is and everyone it holds.
    Heartbeat {
        info: NodeInfo,
        rooms: Vec<RoomShare>,
    },
    /// The sender's share of one room, after an arrival or a departure there.
    Share(NodeShare),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeShare {
    pub node: String,
    pub room: RoomShare,
}

/// One node's users in one room: (id, name, connections).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RoomShare {
    pub room: RoomId,
    pub users: Vec<(UserId, String, usize)>,
}

impl RoomShare {
    pub fn of(room: &RoomId, users: Option<&HashMap<UserId, (String, usize)>>) -> Self {
        Self {
            room: room.clone(),
            users: users
                .into_iter()
                .flatten()
                .map(|(id, (name, n))| (id.clone(), name.clone(), *n))
                .collect(),
        }
    }

    pub fn from_actors(room: &RoomId, users: &[(Actor, usize)]) -> Self {
        Self {
            room: room.clone(),
            users: users
                .iter()
                .map(|(a, n)| (a.user_id.clone(), a.name.clone(), *n))
                .collect(),
        }
    }

    pub fn into_users(self) -> (RoomId, HashMap<UserId, (String, usize)>) {
        let users = self
            .users
            .into_iter()
            .filter(|(_, _, n)| *n > 0)
            .map(|(id, name, n)| (id, (name, n)))
            .collect();
        (self.room, users)
    }
}
