//! `ClusterView`: what one node knows of the others on the NATS bus, built from their
//! heartbeats and presence announcements alone (core NATS keeps no state). Each other node
//! is an entry: its `NodeInfo` (from its last heartbeat), when it was last heard from, and
//! its share of presence (per room, its users and their connection counts). A node not
//! heard from for three heartbeats is dead; its share no longer counts.
//!
//! This node's own share is kept here too, so that arrivals and departures are decided
//! against the whole cluster in one place. Pure logic: no I/O, unit-tested below.

use super::messages::{NodeShare, RoomShare};
use crate::node_registry::NodeInfo;
use crate::presence::Arrival;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use synctv_core::{Actor, RoomId, UserId};

/// A room's users on one node: id -> (name, connections).
type RoomUsers = HashMap<UserId, (String, usize)>;

struct Peer {
    info: Option<NodeInfo>,
    heard: Instant,
    rooms: HashMap<RoomId, RoomUsers>,
}

pub struct ClusterView {
    node_id: String,
    ttl: Duration,
    own: HashMap<RoomId, RoomUsers>,
    peers: HashMap<String, Peer>,
    unsure: Vec<UnsureDeparture>,
}

/// A user's last connection here left while the view said a peer still held them. The
/// peer may have let them go in the same instant (within the link's delay), each node
/// then believing the other still holds them, and nobody would record `member_left`:
/// looked at again once every announcement has arrived.
struct UnsureDeparture {
    room: RoomId,
    actor: Actor,
    holders: Vec<String>,
    at: Instant,
}

impl ClusterView {
    /// `ttl`: silence after which a peer is dead (three heartbeats).
    pub fn new(node_id: &str, ttl: Duration) -> Self {
        Self {
            node_id: node_id.to_owned(),
            ttl,
            own: HashMap::new(),
            peers: HashMap::new(),
            unsure: Vec::new(),
        }
    }

    fn live_peers(&self, now: Instant) -> impl Iterator<Item = (&String, &Peer)> {
        self.peers
            .iter()
            .filter(move |(_, p)| now.duration_since(p.heard) < self.ttl)
    }

    /// The room's users across this node and every live peer, sorted by id.
    fn room_users(&self, room: &RoomId, now: Instant) -> BTreeMap<UserId, String> {
        let mut users = BTreeMap::new();
        let shares = self
            .live_peers(now)
            .filter_map(|(_, p)| p.rooms.get(room))
            .chain(self.own.get(room));
        for share in shares {
            for (id, (name, _)) in share {
                users.entry(id.clone()).or_insert_with(|| name.clone());
            }
        }
        users
    }

    fn held_by_a_live_peer(&self, room: &RoomId, user: &UserId, now: Instant) -> bool {
        self.live_peers(now)
            .any(|(_, p)| p.rooms.get(room).is_some_and(|u| u.contains_key(user)))
    }

    /// One more connection of `who` in `room` on this node, unless the room holds `limit`
    /// users already.
    pub fn arrive(&mut self, room: &RoomId, who: &Actor, limit: usize, now: Instant) -> Arrival {
        let here = self
            .own
            .get(room)
            .is_some_and(|u| u.contains_key(&who.user_id));
        let elsewhere = self.held_by_a_live_peer(room, &who.user_id, now);
        if !here && !elsewhere && self.room_users(room, now).len() >= limit {
            return Arrival::Full;
        }
        let entry = self
            .own
            .entry(room.clone())
            .or_default()
            .entry(who.user_id.clone())
            .or_insert_with(|| (who.name.clone(), 0));
        entry.1 += 1;
        if here || elsewhere {
            Arrival::Again
        } else {
            Arrival::First
        }
    }

    /// One connection of `user` fewer here; `true` when it was the user's last in the
    /// cluster.
    pub fn depart(&mut self, room: &RoomId, user: &UserId, now: Instant) -> bool {
        let Some(users) = self.own.get_mut(room) else {
            return false;
        };
        let gone_here = match users.get_mut(user) {
            Some((_, n)) if *n > 1 => {
                *n -= 1;
                None
            }
            Some(_) => users.remove(user).map(|(name, _)| name),
            None => None,
        };
        if users.is_empty() {
            self.own.remove(room);
        }
        let Some(name) = gone_here else {
            return false;
        };
        let holders: Vec<String> = self
            .live_peers(now)
            .filter(|(_, p)| p.rooms.get(room).is_some_and(|u| u.contains_key(user)))
            .map(|(id, _)| id.clone())
            .collect();
        if holders.is_empty() {
            return true;
        }
        self.unsure.push(UnsureDeparture {
            room: room.clone(),
            actor: Actor {
                user_id: user.clone(),
                name,
            },
            holders,
            at: now,
        });
        false
    }

    /// Unsure departures whose time has come (a lifetime after), where nobody holds the
    /// user now: the node with the smallest id among this one and the holders of the
    /// time returns them, so that one node records the departure.
    pub fn due_departures(&mut self, now: Instant) -> Vec<(RoomId, Actor)> {
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.unsure)
            .into_iter()
            .partition(|u| now.duration_since(u.at) >= self.ttl);
        self.unsure = waiting;
        due.into_iter()
            .filter(|u| {
                let here = self
                    .own
                    .get(&u.room)
                    .is_some_and(|users| users.contains_key(&u.actor.user_id));
                !here
                    && !self.held_by_a_live_peer(&u.room, &u.actor.user_id, now)
                    && u.holders.iter().all(|h| *h > self.node_id)
            })
            .map(|u| (u.room, u.actor))
            .collect()
    }

    pub fn members(&self, room: &RoomId, now: Instant) -> Vec<Actor> {
        self.room_users(room, now)
            .into_iter()
            .map(|(user_id, name)| Actor { user_id, name })
            .collect()
    }

    pub fn count(&self, room: &RoomId, now: Instant) -> usize {
        self.room_users(room, now).len()
    }

    /// Sets this node's share of `room` (after an outage); returns the users no live peer
    /// holds.
    pub fn restore(&mut self, room: &RoomId, users: &[(Actor, usize)], now: Instant) -> Vec<Actor> {
        let share: RoomUsers = users
            .iter()
            .map(|(a, n)| (a.user_id.clone(), (a.name.clone(), *n)))
            .collect();
        if share.is_empty() {
            self.own.remove(room);
        } else {
            self.own.insert(room.clone(), share);
        }
        users
            .iter()
            .filter(|(a, _)| !self.held_by_a_live_peer(room, &a.user_id, now))
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// This node's share of `room`, as announced to the others.
    pub fn own_room(&self, room: &RoomId) -> RoomShare {
        RoomShare::of(room, self.own.get(room))
    }

    /// This node's whole share, for its heartbeat.
    pub fn own_rooms(&self) -> Vec<RoomShare> {
        self.own
            .iter()
            .map(|(room, users)| RoomShare::of(room, Some(users)))
            .collect()
    }

    /// A peer's heartbeat: its info and its whole share.
    pub fn heartbeat(&mut self, info: NodeInfo, rooms: Vec<RoomShare>, now: Instant) {
        if info.node_id == self.node_id {
            return;
        }
        let rooms = rooms.into_iter().map(RoomShare::into_users).collect();
        self.peers.insert(
            info.node_id.clone(),
            Peer {
                info: Some(info),
                heard: now,
                rooms,
            },
        );
    }

    /// A peer's share of one room changed.
    pub fn share(&mut self, share: NodeShare, now: Instant) {
        if share.node == self.node_id {
            return;
        }
        let peer = self.peers.entry(share.node).or_insert_with(|| Peer {
            info: None,
            heard: now,
            rooms: HashMap::new(),
        });
        peer.heard = now;
        let (room, users) = share.room.into_users();
        if users.is_empty() {
            peer.rooms.remove(&room);
        } else {
            peer.rooms.insert(room, users);
        }
    }

    /// Live peers' infos (sorted by id), and the ids of the dead ones.
    pub fn scan(&self, now: Instant) -> (Vec<NodeInfo>, Vec<String>) {
        let mut live: Vec<NodeInfo> = self
            .live_peers(now)
            .filter_map(|(_, p)| p.info.clone())
            .collect();
        live.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        let dead = self
            .peers
            .iter()
            .filter(|(_, p)| now.duration_since(p.heard) >= self.ttl)
            .map(|(id, _)| id.clone())
            .collect();
        (live, dead)
    }

    /// Whether this node cleans up after the dead `node`: the live node with the smallest
    /// id does, so one survivor records the departures.
    pub fn reaps(&self, now: Instant) -> bool {
        self.live_peers(now).all(|(id, _)| *id > self.node_id)
    }

    /// The dead `node`'s users that no live node (this one included) holds, per room.
    pub fn departed_with(&self, node: &str, now: Instant) -> Vec<(RoomId, Vec<Actor>)> {
        let Some(dead) = self.peers.get(node) else {
            return Vec::new();
        };
        let mut departed = Vec::new();
        for (room, users) in &dead.rooms {
            let mut gone: Vec<Actor> = users
                .iter()
                .filter(|(id, _)| {
                    !self.held_by_a_live_peer(room, id, now)
                        && !self.own.get(room).is_some_and(|u| u.contains_key(*id))
                })
                .map(|(id, (name, _))| Actor {
                    user_id: id.clone(),
                    name: name.clone(),
                })
                .collect();
            gone.sort_by(|a, b| a.user_id.cmp(&b.user_id));
            if !gone.is_empty() {
                departed.push((room.clone(), gone));
            }
        }
        departed
    }

    pub fn forget(&mut self, node: &str) {
        self.peers.remove(node);
    }

    /// After this node's own outage: it could not hear the others, which says nothing
    /// about them, so each gets a full lifetime to be heard from again before it counts
    /// as dead.
    pub fn pardon(&mut self, now: Instant) {
        for peer in self.peers.values_mut() {
            peer.heard = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(id: &str) -> Actor {
        Actor {
            user_id: id.into(),
            name: format!("name of {id}"),
        }
    }

    fn info(id: &str) -> NodeInfo {
        NodeInfo {
            node_id: id.into(),
            address: format!("http://{id}"),
            region: "r".into(),
            connections: 0,
            rooms: 0,
            last_seen: 1,
            deliveries_total: 0,
            refusals_total: 0,
        }
    }

    fn share_of(node: &str, room: &RoomId, users: &[(&str, usize)]) -> NodeShare {
        let users: Vec<(Actor, usize)> = users.iter().map(|(id, n)| (actor(id), *n)).collect();
        NodeShare {
            node: node.into(),
            room: RoomShare::from_actors(room, &users),
        }
    }

    #[test]
    fn first_and_last_connections_are_decided_across_nodes() {
        let now = Instant::now();
        let room = RoomId::from("r");
        let mut view = ClusterView::new("a", Duration::from_secs(3));
        view.share(share_of("b", &room, &[("u1", 1)]), now);
        assert_eq!(view.arrive(&room, &actor("u1"), 10, now), Arrival::Again);
        assert_eq!(view.arrive(&room, &actor("u2"), 10, now), Arrival::First);
        assert_eq!(view.arrive(&room, &actor("u3"), 2, now), Arrival::Full);
        assert_eq!(view.count(&room, now), 2);
        assert_eq!(view.members(&room, now), vec![actor("u1"), actor("u2")]);
        // u1 still has its connection on b: not the last.
        assert!(!view.depart(&room, &"u1".into(), now));
        assert!(view.depart(&room, &"u2".into(), now));
        assert_eq!(view.count(&room, now), 1);
    }

    #[test]
    fn two_last_connections_leaving_at_once_in_two_places_make_one_departure() {
        let now = Instant::now();
        let ttl = Duration::from_secs(3);
        let room = RoomId::from("r");
        let mut a = ClusterView::new("a", ttl);
        let mut b = ClusterView::new("b", ttl);
        a.arrive(&room, &actor("u"), 10, now);
        b.arrive(&room, &actor("u"), 10, now);
        a.share(
            NodeShare {
                node: "b".into(),
                room: b.own_room(&room),
            },
            now,
        );
        b.share(
            NodeShare {
                node: "a".into(),
                room: a.own_room(&room),
            },
            now,
        );
        // Both leave before either hears of the other's departure.
        assert!(!a.depart(&room, &"u".into(), now));
        assert!(!b.depart(&room, &"u".into(), now));
        let later = now + ttl;
        a.share(
            NodeShare {
                node: "b".into(),
                room: b.own_room(&room),
            },
            later,
        );
        b.share(
            NodeShare {
                node: "a".into(),
                room: a.own_room(&room),
            },
            later,
        );
        assert!(
            a.due_departures(now).is_empty(),
            "not before every announcement is in"
        );
        assert_eq!(a.due_departures(later), vec![(room.clone(), actor("u"))]);
        assert!(b.due_departures(later).is_empty(), "a records it, not b");
        assert!(a.due_departures(later).is_empty(), "once");
    }

    #[test]
    fn a_silent_peer_dies_and_the_smallest_survivor_reaps_what_only_it_held() {
        let now = Instant::now();
        let ttl = Duration::from_secs(3);
        let room = RoomId::from("r");
        let mut a = ClusterView::new("a", ttl);
        let mut b = ClusterView::new("b", ttl);
        for view in [&mut a, &mut b] {
            view.heartbeat(info("c"), Vec::new(), now);
            view.share(share_of("c", &room, &[("gone", 1), ("kept", 1)]), now);
        }
        a.heartbeat(info("b"), Vec::new(), now);
        b.heartbeat(info("a"), vec![], now);
        a.arrive(&room, &actor("kept"), 10, now);
        assert_eq!(a.scan(now).0.len(), 2);
        let later = now + ttl;
        a.heartbeat(info("b"), Vec::new(), later);
        b.heartbeat(info("a"), a.own_rooms(), later);
        assert_eq!(a.scan(later).1, vec!["c".to_owned()]);
        assert!(a.reaps(later) && !b.reaps(later));
        assert_eq!(
            a.departed_with("c", later),
            vec![(room.clone(), vec![actor("gone")])]
        );
        a.forget("c");
        let (live, dead) = a.scan(later);
        let live: Vec<&str> = live.iter().map(|n| n.node_id.as_str()).collect();
        assert_eq!((live, dead), (vec!["b"], Vec::<String>::new()));
        assert_eq!(
            a.count(&room, later),
            1,
            "the dead node's share no longer counts"
        );
    }

    #[test]
    fn a_heartbeat_replaces_the_whole_share_and_restore_names_who_only_this_node_holds() {
        let now = Instant::now();
        let room = RoomId::from("r");
        let mut view = ClusterView::new("a", Duration::from_secs(3));
        view.share(share_of("b", &room, &[("u1", 2)]), now);
        view.heartbeat(info("b"), Vec::new(), now);
        assert_eq!(view.count(&room, now), 0);
        view.share(share_of("b", &room, &[("u1", 1)]), now);
        let back = view.restore(&room, &[(actor("u1"), 1), (actor("u2"), 1)], now);
        assert_eq!(back, vec![actor("u2")]);
        assert_eq!(view.own_room(&room).users.len(), 2);
    }
}
