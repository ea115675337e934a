//! Redis key and channel names. Everything of one room shares the hash tag `{room:<id>}`,
//! so in a Redis Cluster a room's channel and keys live on one shard.

use synctv_core::RoomId;

#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The pub/sub channel of a room's events.
    pub fn room_channel(&self, room: &RoomId) -> String {
        format!("{}{{room:{}}}:events", self.prefix, room)
    }

    /// The room id named by a channel from [`Keys::room_channel`].
    pub fn room_of_channel(&self, channel: &str) -> Option<RoomId> {
        let rest = channel.strip_prefix(&self.prefix)?.strip_prefix("{room:")?;
        let (id, tail) = rest.split_once('}')?;
        (tail == ":events").then(|| RoomId::from(id))
    }

    /// Users present in a room, cluster-wide: user id -> connections.
    pub fn room_members(&self, room: &RoomId) -> String {
        format!("{}{{room:{}}}:members", self.prefix, room)
    }

    /// Names of the users present in a room: user id -> name.
    pub fn room_names(&self, room: &RoomId) -> String {
        format!("{}{{room:{}}}:names", self.prefix, room)
    }

    /// One node's share of a room's presence: user id -> connections on that node.
    pub fn room_node_share(&self, room: &RoomId, node: &str) -> String {
        format!("{}{{room:{}}}:node:{}", self.prefix, room, node)
    }

    /// A node's heartbeat (expires when the node stops beating).
    pub fn node_heartbeat(&self, node: &str) -> String {
        format!("{}{{node:{}}}:alive", self.prefix, node)
    }

    /// The rooms where a node holds presence, for cleaning up after it dies.
    pub fn node_rooms(&self, node: &str) -> String {
        format!("{}{{node:{}}}:rooms", self.prefix, node)
    }

    /// A short lock taken by the one survivor that cleans up after a dead node.
    pub fn node_reaper(&self, node: &str) -> String {
        format!("{}{{node:{}}}:reaper", self.prefix, node)
    }

    /// Every node that ever registered and has not been reaped.
    pub fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_round_trip_and_share_the_room_tag() {
        let keys = Keys::new("synctv:");
        let room = RoomId::from("abc");
        let channel = keys.room_channel(&room);
        assert_eq!(channel, "synctv:{room:abc}:events");
        assert_eq!(keys.room_of_channel(&channel), Some(room.clone()));
        assert_eq!(keys.room_of_channel("other:{room:abc}:events"), None);
        assert!(keys.room_members(&room).contains("{room:abc}"));
        assert!(keys.room_node_share(&room, "n1").contains("{room:abc}"));
    }
}
