//! Who is in which room. Presence is per user: a user's first connection in a room makes
//! them present (`member_joined`), their last one leaving makes them absent (`member_left`).

use std::collections::HashMap;
use std::sync::Mutex;
use synctv_core::{Actor, RoomId, UserId};

/// A room's present users: id -> (name, connections).
type RoomUsers = HashMap<UserId, (String, usize)>;

#[derive(Default)]
pub struct Presence {
    rooms: Mutex<HashMap<RoomId, RoomUsers>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Arrival {
    /// The user's first connection in the room.
    First,
    /// The user was already present through another connection.
    Again,
    /// The room already holds `limit` users.
    Full,
}

impl Presence {
    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, RoomUsers>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one more connection of `who` in `room`, unless the room is full.
    pub fn arrive(&self, room: &RoomId, who: &Actor, limit: usize) -> Arrival {
        let mut rooms = self.rooms();
        let users = rooms.entry(room.clone()).or_default();
        if let Some((_, count)) = users.get_mut(&who.user_id) {
            *count += 1;
            return Arrival::Again;
        }
        if users.len() >= limit {
            return Arrival::Full;
        }
        users.insert(who.user_id.clone(), (who.name.clone(), 1));
        Arrival::First
    }

    /// Counts one connection of `user` fewer; `true` when it was the user's last.
    pub fn depart(&self, room: &RoomId, user: &UserId) -> bool {
        let mut rooms = self.rooms();
        let Some(users) = rooms.get_mut(room) else {
            return false;
        };
        let last = match users.get_mut(user) {
            Some((_, count)) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                users.remove(user);
                true
            }
            None => false,
        };
        if users.is_empty() {
            rooms.remove(room);
        }
        last
    }

    /// Distinct users present in `room`.
    pub fn count(&self, room: &RoomId) -> usize {
        self.rooms().get(room).map_or(0, HashMap::len)
    }

    pub fn members(&self, room: &RoomId) -> Vec<Actor> {
        let rooms = self.rooms();
        let mut list: Vec<Actor> = rooms
            .get(room)
            .map(|users| {
                users
                    .iter()
                    .map(|(id, (name, _))| Actor {
                        user_id: id.clone(),
                        name: name.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        list.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        list
    }

    /// Every room's users on this node with their connection counts.
    pub fn snapshot(&self) -> Vec<(RoomId, Vec<(Actor, usize)>)> {
        self.rooms()
            .iter()
            .map(|(room, users)| {
                let users = users
                    .iter()
                    .map(|(id, (name, n))| {
                        (
                            Actor {
                                user_id: id.clone(),
                                name: name.clone(),
                            },
                            *n,
                        )
                    })
                    .collect();
                (room.clone(), users)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(id: &str) -> Actor {
        Actor {
            user_id: id.into(),
            name: id.into(),
        }
    }

    #[test]
    fn presence_is_per_user_and_bounded() {
        let p = Presence::default();
        let room = RoomId::from("r");
        assert_eq!(p.arrive(&room, &actor("a"), 2), Arrival::First);
        assert_eq!(p.arrive(&room, &actor("a"), 2), Arrival::Again);
        assert_eq!(p.arrive(&room, &actor("b"), 2), Arrival::First);
        assert_eq!(p.arrive(&room, &actor("c"), 2), Arrival::Full);
        assert_eq!(p.count(&room), 2);
        assert!(!p.depart(&room, &"a".into()));
        assert!(p.depart(&room, &"a".into()));
        assert_eq!(p.members(&room), vec![actor("b")]);
    }
}
