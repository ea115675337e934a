//! `PresenceBook`: presence as the cluster manager sees it. This node's own count is
//! always kept; in cluster mode Redis holds the cluster-wide one and decides first and
//! last connections. While Redis is unreachable, this node's count decides (degraded).

use crate::presence::{Arrival, Presence};
use crate::redis::presence::ClusterPresence;
use crate::redis::RedisLayer;
use std::sync::Arc;
use synctv_core::{Actor, RoomId, UserId};

pub struct PresenceBook {
    local: Presence,
    cluster: Option<(Arc<RedisLayer>, ClusterPresence)>,
    per_room: usize,
}

/// What a departure changed.
pub struct Departure {
    /// The user's last connection in the room (cluster-wide when known).
    pub last: bool,
    /// No member of the room is left on this node.
    pub room_empty_here: bool,
}

impl PresenceBook {
    pub fn new(redis: Option<Arc<RedisLayer>>, node_id: &str, per_room: usize) -> Self {
        let cluster = redis.map(|redis| {
            let presence = ClusterPresence::new(redis.keys.clone(), node_id);
            (redis, presence)
        });
        Self {
            local: Presence::default(),
            cluster,
            per_room,
        }
    }

    /// Redis, when configured and reachable.
    fn cluster(&self) -> Option<&(Arc<RedisLayer>, ClusterPresence)> {
        self.cluster.as_ref().filter(|(redis, _)| redis.is_up())
    }

    pub async fn arrive(&self, room: &RoomId, who: &Actor) -> Arrival {
        let Some((redis, presence)) = self.cluster() else {
            return self.local.arrive(room, who, self.per_room);
        };
        let local = self.local.arrive(room, who, usize::MAX);
        match presence
            .arrive(&mut redis.link(), room, who, self.per_room)
            .await
        {
            Ok(Arrival::Full) => {
                self.local.depart(room, &who.user_id);
                Arrival::Full
            }
            Ok(arrival) => arrival,
            Err(e) => {
                tracing::debug!(error = %e, "presence falls back to this node");
                local
            }
        }
    }

    pub async fn depart(&self, room: &RoomId, user: &UserId) -> Departure {
        let last_here = self.local.depart(room, user);
        let room_empty_here = self.local.count(room) == 0;
        let last = match self.cluster() {
            None => last_here,
            Some((redis, presence)) => presence
                .depart(&mut redis.link(), room, user)
                .await
                .unwrap_or(last_here),
        };
        Departure {
            last,
            room_empty_here,
        }
    }

    pub async fn members(&self, room: &RoomId) -> Vec<Actor> {
        if let Some((redis, presence)) = self.cluster() {
            if let Ok(list) = presence.members(&mut redis.link(), room).await {
                return list;
            }
        }
        self.local.members(room)
    }

    pub async fn count(&self, room: &RoomId) -> usize {
        if let Some((redis, presence)) = self.cluster() {
            if let Ok(count) = presence.count(&mut redis.link(), room).await {
                return count;
            }
        }
        self.local.count(room)
    }

    /// Writes this node's presence into Redis again, room by room (after an outage), and
    /// returns, per room, the users Redis had counted as gone.
    pub async fn restore(&self) -> Vec<(RoomId, Vec<Actor>)> {
        let Some((redis, presence)) = self.cluster() else {
            return Vec::new();
        };
        let mut link = redis.link();
        let mut arrived = Vec::new();
        for (room, users) in self.local.snapshot() {
            match presence.restore(&mut link, &room, &users).await {
                Ok(users) if !users.is_empty() => arrived.push((room, users)),
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(room = %room, error = %e, "restoring presence failed");
                    break;
                }
            }
        }
        arrived
    }

    /// Removes a dead node's share of presence: the users it alone held, per room.
    pub async fn reap(&self, node: &str) -> redis::RedisResult<Vec<(RoomId, Vec<Actor>)>> {
        match &self.cluster {
            Some((redis, presence)) => presence.reap(&mut redis.link(), node).await,
            None => Ok(Vec::new()),
        }
    }
}
