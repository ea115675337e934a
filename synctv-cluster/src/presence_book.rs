//! `PresenceBook`: presence as the cluster manager sees it. This node's own count is
//! always kept; in cluster mode the bus holds the cluster-wide one and decides first and
//! last connections. While the bus is unreachable, this node's count decides (degraded).

use crate::bus::{Bus, BusError};
use crate::presence::{Arrival, Presence};
use std::sync::Arc;
use synctv_core::{Actor, RoomId, UserId};

pub struct PresenceBook {
    local: Presence,
    bus: Option<Arc<Bus>>,
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
    pub fn new(bus: Option<Arc<Bus>>, per_room: usize) -> Self {
        Self {
            local: Presence::default(),
            bus,
            per_room,
        }
    }

    /// The bus, when configured and reachable.
    fn cluster(&self) -> Option<&Bus> {
        self.bus.as_deref().filter(|bus| bus.is_up())
    }

    pub async fn arrive(&self, room: &RoomId, who: &Actor) -> Arrival {
        let Some(bus) = self.cluster() else {
            return self.local.arrive(room, who, self.per_room);
        };
        let local = self.local.arrive(room, who, usize::MAX);
        match bus.arrive(room, who, self.per_room).await {
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
            Some(bus) => bus.depart(room, user).await.unwrap_or(last_here),
        };
        Departure {
            last,
            room_empty_here,
        }
    }

    pub async fn members(&self, room: &RoomId) -> Vec<Actor> {
        if let Some(bus) = self.cluster() {
            if let Ok(list) = bus.members(room).await {
                return list;
            }
        }
        self.local.members(room)
    }

    pub async fn count(&self, room: &RoomId) -> usize {
        if let Some(bus) = self.cluster() {
            if let Ok(count) = bus.count(room).await {
                return count;
            }
        }
        self.local.count(room)
    }

    /// Writes this node's presence to the bus again, room by room (after an outage), and
    /// returns, per room, the users the rest of the cluster had counted as gone.
    pub async fn restore(&self) -> Vec<(RoomId, Vec<Actor>)> {
        let Some(bus) = self.cluster() else {
            return Vec::new();
        };
        let mut arrived = Vec::new();
        for (room, users) in self.local.snapshot() {
            match bus.restore(&room, &users).await {
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
    pub async fn reap(&self, node: &str) -> Result<Vec<(RoomId, Vec<Actor>)>, BusError> {
        match &self.bus {
            Some(bus) => bus.reap(node).await,
            None => Ok(Vec::new()),
        }
    }
}
