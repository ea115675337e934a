//! `RoomMessageHub`: the local fan-out of room events to the connections of this node.
//!
//! Each room has a channel holding its last seq, its state, the members on this node and
//! a ring of recent encoded events. Events are applied strictly in seq order: a duplicate
//! is ignored, an event past a gap waits until the gap is filled. Joining queues the
//! `joined` frame and adds the member under the room's lock, so a member sees every event
//! after `joined.seq` exactly once, whatever is published meanwhile.

use crate::outbox::{Outbound, Outbox};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use synctv_core::{Epoch, PlaybackState, RoomId};

/// The most bytes of events one `joined` hands back; a client further behind is told
/// `recovered: false` (and reads the history endpoint), so a frame stays writable.
pub const MAX_RECOVERY_BYTES: usize = 16 * 1024 * 1024;

/// Identifies one WebSocket connection on this node.
pub type ConnectionId = u64;

/// A committed event, ready to fan out: encoded once, with the state right after it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub room: RoomId,
    pub epoch: Epoch,
    pub seq: i64,
    /// The state right after the event; `None` for kinds that leave it unchanged.
    pub state: Option<Arc<PlaybackState>>,
    /// The event's JSON text, shared by every member's queue.
    pub frame: Bytes,
    /// A `room_archived` event: members are removed after it.
    pub closes_room: bool,
    pub accepted: Instant,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    Delivered {
        members: usize,
    },
    /// Already applied (an echo, or an overlap between live and catch-up).
    Duplicate,
    /// Held back: events after `after` and before `before` are missing.
    Gap {
        after: i64,
        before: i64,
    },
}

/// What a joiner is told, built into `joined` by the caller.
pub struct JoinView<'a> {
    pub epoch: &'a Epoch,
    pub seq: i64,
    pub state: &'a PlaybackState,
    pub recovered: bool,
    /// The missed events (encoded), oldest first, when `recovered`.
    pub events: Vec<&'a Bytes>,
}

/// What a joiner asks to recover, and what the caller already fetched for it.
pub struct RecoveryRequest<'a> {
    /// The client's last epoch and seq, if it asked to recover.
    pub recover: Option<(&'a Epoch, i64)>,
    /// Events fetched from the durable history after a `NeedHistory`.
    pub history: &'a [(i64, Bytes)],
    /// Answer `Behind` (rather than "never reached") for a seq past this node's.
    pub may_be_behind: bool,
}

pub enum SubscribeOutcome {
    /// `joined` is queued and the member receives every later event.
    Subscribed { seq: i64, recovered: bool },
    /// This node holds no channel for the room: open one from the database, then retry.
    NoChannel,
    /// Recovery needs events `after < seq <= up_to` from the durable history: retry with them.
    NeedHistory { after: i64, up_to: i64 },
    /// The client has seen events this node has not applied yet: catch up, then retry.
    Behind,
}

struct RoomChannel {
    epoch: Epoch,
    last_seq: i64,
    state: Arc<PlaybackState>,
    members: HashMap<ConnectionId, Outbox>,
    recent: VecDeque<(i64, Bytes)>,
    pending: BTreeMap<i64, Delivery>,
    touched: Instant,
}

pub struct RoomMessageHub {
    rooms: Mutex<HashMap<RoomId, Arc<Mutex<RoomChannel>>>>,
    recent_capacity: usize,
    max_recovery: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a hub lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RoomMessageHub {
    pub fn new(recent_capacity: usize, max_recovery: usize) -> Self {
        Self {
            rooms: Mutex::new(HashMap::new()),
            recent_capacity: recent_capacity.max(1),
            max_recovery,
        }
    }

    fn channel(&self, room: &RoomId) -> Option<Arc<Mutex<RoomChannel>>> {
        lock(&self.rooms).get(room).cloned()
    }

    /// Opens the room's channel at a position read from the database, unless it is open.
    pub fn open(&self, room: &RoomId, epoch: Epoch, last_seq: i64, state: PlaybackState) {
        lock(&self.rooms).entry(room.clone()).or_insert_with(|| {
            Arc::new(Mutex::new(RoomChannel {
                epoch,
                last_seq,
                state: Arc::new(state),
                members: HashMap::new(),
                recent: VecDeque::new(),
                pending: BTreeMap::new(),
                touched: Instant::now(),
            }))
        });
    }

    /// Applies a committed event in seq order and queues it for every member. An event
    /// for a room this node has no channel for opens one only if it carries the state.
    pub fn publish(&self, delivery: Delivery) -> PublishOutcome {
        let channel = {
            let mut rooms = lock(&self.rooms);
            match (rooms.get(&delivery.room), &delivery.state) {
                (Some(channel), _) => channel.clone(),
                (None, Some(state)) => rooms
                    .entry(delivery.room.clone())
                    .or_insert_with(|| {
                        Arc::new(Mutex::new(RoomChannel {
                            epoch: delivery.epoch.clone(),
                            last_seq: delivery.seq - 1,
                            state: state.clone(),
                            members: HashMap::new(),
                            recent: VecDeque::new(),
                            pending: BTreeMap::new(),
                            touched: Instant::now(),
                        }))
                    })
                    .clone(),
                (None, None) => return PublishOutcome::Duplicate,
            }
        };
        let mut ch = lock(&channel);
        ch.touched = Instant::now();
        if delivery.seq <= ch.last_seq || ch.pending.contains_key(&delivery.seq) {
            return PublishOutcome::Duplicate;
        }
        if delivery.seq > ch.last_seq + 1 {
            let gap = PublishOutcome::Gap {
                after: ch.last_seq,
                before: delivery.seq,
            };
            ch.pending.insert(delivery.seq, delivery);
            return gap;
        }
        let ch = &mut *ch;
        let mut delivered = self.apply(ch, delivery);
        loop {
            let wanted = ch.last_seq + 1;
            let Some(next) = ch.pending.remove(&wanted) else {
                break;
            };
            delivered += self.apply(ch, next);
        }
        PublishOutcome::Delivered { members: delivered }
    }

    /// Makes `conn` a member of `room`, queueing `joined` (built by `make_joined`) first.
    /// With a recovery point, hands back the missed events when they are all at hand.
    pub fn subscribe(
        &self,
        room: &RoomId,
        conn: ConnectionId,
        outbox: &Outbox,
        recovery: RecoveryRequest<'_>,
        make_joined: impl FnOnce(JoinView<'_>) -> Bytes,
    ) -> SubscribeOutcome {
        let RecoveryRequest {
            recover,
            history,
            may_be_behind,
        } = recovery;
        let Some(channel) = self.channel(room) else {
            return SubscribeOutcome::NoChannel;
        };
        let mut ch = lock(&channel);
        ch.touched = Instant::now();
        let last = ch.last_seq;
        let mut events = Vec::new();
        let mut recovered = false;
        if let Some((epoch, after)) = recover {
            if may_be_behind && *epoch == ch.epoch && after > last {
                return SubscribeOutcome::Behind;
            }
            let reachable = *epoch == ch.epoch && (0..=last).contains(&after);
            if reachable && ((last - after) as usize) <= self.max_recovery {
                let ring_start = ch.recent.front().map_or(last + 1, |(seq, _)| *seq);
                if after + 1 < ring_start {
                    let fetched: Vec<&Bytes> = history
                        .iter()
                        .filter(|(seq, _)| *seq > after && *seq < ring_start)
                        .map(|(_, f)| f)
                        .collect();
                    if fetched.len() as i64 != ring_start - after - 1 {
                        return SubscribeOutcome::NeedHistory {
                            after,
                            up_to: ring_start - 1,
                        };
                    }
                    events.extend(fetched);
                }
                events.extend(
                    ch.recent
                        .iter()
                        .filter(|(seq, _)| *seq > after)
                        .map(|(_, f)| f),
                );
                recovered = events.iter().map(|f| f.len()).sum::<usize>() <= MAX_RECOVERY_BYTES;
                if !recovered {
                    events.clear();
                }
            }
        }
        let joined = make_joined(JoinView {
            epoch: &ch.epoch,
            seq: last,
            state: &ch.state,
            recovered,
            events,
        });
        outbox.push(joined, Instant::now());
        ch.members.insert(conn, outbox.clone());
        SubscribeOutcome::Subscribed {
            seq: last,
            recovered,
        }
    }

    /// Removes `conn` from `room`; `true` when it was a member.
    pub fn unsubscribe(&self, room: &RoomId, conn: ConnectionId) -> bool {
        match self.channel(room) {
            Some(channel) => lock(&channel).members.remove(&conn).is_some(),
            None => false,
        }
    }

    /// The room's position on this node: epoch, last seq and state.
    pub fn position(&self, room: &RoomId) -> Option<(Epoch, i64, Arc<PlaybackState>)> {
        let channel = self.channel(room)?;
        let ch = lock(&channel);
        Some((ch.epoch.clone(), ch.last_seq, ch.state.clone()))
    }

    /// Drops channels that have had no members and no events for `idle`; they are opened
    /// again from the database when needed.
    pub fn sweep(&self, idle: Duration) -> usize {
        let mut rooms = lock(&self.rooms);
        let before = rooms.len();
        rooms.retain(|_, channel| {
            let ch = lock(channel);
            !ch.members.is_empty() || ch.touched.elapsed() < idle
        });
        before - rooms.len()
    }

    /// Jumps the room to a position read from the database when the events in between
    /// cannot be handed over in order: each member gets `resync` (built by `notice`) and
    /// then live events from `last_seq + 1`. The recent ring restarts, since it must stay
    /// contiguous.
    pub fn resync(
        &self,
        room: &RoomId,
        epoch: Epoch,
        last_seq: i64,
        state: PlaybackState,
        notice: impl Fn(&PlaybackState, i64) -> Bytes,
    ) {
        let Some(channel) = self.channel(room) else {
            return;
        };
        let mut ch = lock(&channel);
        if last_seq <= ch.last_seq {
            return;
        }
        ch.epoch = epoch;
        ch.last_seq = last_seq;
        ch.state = Arc::new(state);
        ch.recent.clear();
        ch.pending.retain(|seq, _| *seq > last_seq);
        let frame = notice(&ch.state, last_seq);
        for outbox in ch.members.values() {
            outbox.push(frame.clone(), Instant::now());
        }
        metrics::counter!("synctv_resyncs_total").increment(ch.members.len() as u64);
        let ch = &mut *ch;
        loop {
            let wanted = ch.last_seq + 1;
            let Some(next) = ch.pending.remove(&wanted) else {
                break;
            };
            self.apply(ch, next);
        }
    }

    /// Rooms with members on this node, with the last seq applied here.
    pub fn member_rooms(&self) -> Vec<(RoomId, i64)> {
        let rooms: Vec<(RoomId, Arc<Mutex<RoomChannel>>)> = lock(&self.rooms)
            .iter()
            .map(|(id, c)| (id.clone(), c.clone()))
            .collect();
        rooms
            .into_iter()
            .filter_map(|(id, channel)| {
                let ch = lock(&channel);
                (!ch.members.is_empty()).then_some((id, ch.last_seq))
            })
            .collect()
    }

    /// Whether `room` has events held back behind a gap.
    pub fn has_gap(&self, room: &RoomId) -> bool {
        self.channel(room)
            .is_some_and(|c| !lock(&c).pending.is_empty())
    }

    /// Rooms with at least one member on this node.
    pub fn active_rooms(&self) -> usize {
        lock(&self.rooms)
            .values()
            .filter(|c| !lock(c).members.is_empty())
            .count()
    }

    fn apply(&self, ch: &mut RoomChannel, d: Delivery) -> usize {
        ch.last_seq = d.seq;
        ch.epoch = d.epoch.clone();
        if let Some(state) = &d.state {
            ch.state = state.clone();
        }
        if ch.recent.len() == self.recent_capacity {
            ch.recent.pop_front();
        }
        ch.recent.push_back((d.seq, d.frame.clone()));
        for outbox in ch.members.values() {
            outbox.push(d.frame.clone(), d.accepted);
        }
        let count = ch.members.len();
        if d.closes_room {
            for outbox in ch.members.values() {
                outbox.push_outbound(Outbound::RoomClosed(d.room.clone()));
            }
            ch.members.clear();
        }
        count
    }
}
