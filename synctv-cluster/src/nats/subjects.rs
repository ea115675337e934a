//! Subject names. A room's events go on `{prefix}.room.{id}`: a node subscribes only to
//! the rooms it serves, so a gateway forwards a room's events only to the regions that
//! have members in it (interest-only forwarding). Heartbeats and presence go on
//! `{prefix}.cluster`, which every node hears.

use synctv_core::RoomId;

#[derive(Clone, Debug)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.trim_end_matches('.').to_owned(),
        }
    }

    pub fn room(&self, room: &RoomId) -> String {
        format!("{}.room.{}", self.prefix, token(room.as_str()))
    }

    pub fn cluster(&self) -> String {
        format!("{}.cluster", self.prefix)
    }
}

/// A room id as one subject token. Ids are hex, but a client may name any room: anything
/// that could act as a separator or wildcard is hex-encoded instead.
fn token(id: &str) -> String {
    let plain = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        id.to_owned()
    } else {
        let hex: String = id.bytes().map(|b| format!("{b:02x}")).collect();
        format!("x{hex}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_id_is_always_one_token() {
        let s = Subjects::new("synctv");
        assert_eq!(s.room(&"0192ab".into()), "synctv.room.0192ab");
        assert_eq!(s.room(&"a.>".into()), "synctv.room.x612e3e");
        assert_eq!(s.room(&"".into()), "synctv.room.x");
        assert_eq!(s.cluster(), "synctv.cluster");
    }
}
