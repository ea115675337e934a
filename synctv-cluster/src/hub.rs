//! `RoomMessageHub`: the local fan-out of room events to the connections of this node.
//!
//! Each room has a channel holding its last seq, its state, the members on this node and
//! a ring of recent encoded events. Events are applied strictly in seq order: a duplicate
//! is ignored, an event past a gap waits until the gap is filled. Joining queues the
//! `joined` frame and adds the member under the room's lock, so a member sees every event
//! after `joined.seq` exactly once, whatever is published meanwhile.

use crate::delivery::Delivery;
use crate::outbox::Outbox;
use crate::wait_timer::WaitAlarms;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use synctv_core::{Epoch, PlaybackState, RoomId, UserId};

/// The most bytes of events one `joined` hands back; a client further behind is told
/// `recovered: false` (and reads the history endpoint), so a frame stays writable.
pub const MAX_RECOVERY_BYTES: usize = 16 * 1024 * 1024;

/// Identifies one WebSocket connection on this node.
pub type ConnectionId = u64;

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
    /// Events read from the durable history after a `NeedHistory` (oldest first, encoded).
    pub history: &'a [(i64, Bytes)],
}

pub enum SubscribeOutcome {
    /// `joined` is queued and the member receives every later event.
    Subscribed { seq: i64, recovered: bool },
    /// What the join read from the database (at seq `read_at`) is not what this node's
    /// channel stands at: `behind` when the channel has not applied up to it yet (catch
    /// up), else a change of roles or queue came after it (read again).
    Moved { behind: bool },
    /// Recovery needs the events after `after` that the recent ring no longer holds:
    /// read them from the durable history and subscribe again with them.
    NeedHistory { after: i64 },
}

/// A room's channel held open for a join: the sweeper leaves it alone while held, so the
/// join reads the database, catches up and subscribes on the one channel.
pub struct HeldChannel<'a> {
    hub: &'a RoomMessageHub,
    channel: Arc<Mutex<RoomChannel>>,
}

struct RoomChannel {
    epoch: Epoch,
    last_seq: i64,
    state: Arc<PlaybackState>,
    members: HashMap<ConnectionId, Outbox>,
    /// Who each member connection is, for a kick.
    users: HashMap<ConnectionId, UserId>,
    /// The seq of the last event applied here that changed roles or the queue (see
    /// `Delivery::changes_snapshot`); a channel opened from the database takes its seq.
    snapshot_seq: i64,
    recent: VecDeque<(i64, Bytes)>,
    pending: BTreeMap<i64, Delivery>,
    touched: Instant,
    /// Joins in progress holding the channel; it is not swept while any are.
    joining: usize,
}

pub struct RoomMessageHub {
    rooms: Mutex<HashMap<RoomId, Arc<Mutex<RoomChannel>>>>,
    recent_capacity: usize,
    max_recovery: usize,
    /// Told of every wait a room starts, so this node arms a timer for its end.
    waits: WaitAlarms,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a hub lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RoomMessageHub {
    pub fn new(recent_capacity: usize, max_recovery: usize, waits: WaitAlarms) -> Self {
        Self {
            rooms: Mutex::new(HashMap::new()),
            recent_capacity: recent_capacity.max(1),
            max_recovery,
            waits,
        }
    }

    fn channel(&self, room: &RoomId) -> Option<Arc<Mutex<RoomChannel>>> {
        lock(&self.rooms).get(room).cloned()
    }

    /// The room's channel, held for a join; `None` when this node has none open.
    pub fn hold(&self, room: &RoomId) -> Option<HeldChannel<'_>> {
        let rooms = lock(&self.rooms);
        rooms.get(room).map(|channel| self.held(channel.clone()))
    }

    /// Opens the room's channel at a position read from the database (unless another
    /// path opened it meanwhile), and holds it for a join.
    pub fn open(
        &self,
        room: &RoomId,
        epoch: Epoch,
        last_seq: i64,
        state: PlaybackState,
    ) -> HeldChannel<'_> {
        let mut rooms = lock(&self.rooms);
        let channel = rooms.entry(room.clone()).or_insert_with(|| {
            self.waits.arm_if_waiting(room, &state);
            Arc::new(Mutex::new(RoomChannel {
                epoch,
                last_seq,
                state: Arc::new(state),
                members: HashMap::new(),
                users: HashMap::new(),
                snapshot_seq: last_seq,
                recent: VecDeque::new(),
                pending: BTreeMap::new(),
                touched: Instant::now(),
                joining: 0,
            }))
        });
        self.held(channel.clone())
    }

    /// Called with the hub's map locked, so the sweeper cannot remove the channel first.
    fn held(&self, channel: Arc<Mutex<RoomChannel>>) -> HeldChannel<'_> {
        lock(&channel).joining += 1;
        HeldChannel { hub: self, channel }
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
                            users: HashMap::new(),
                            snapshot_seq: delivery.seq - 1,
                            recent: VecDeque::new(),
                            pending: BTreeMap::new(),
                            touched: Instant::now(),
                            joining: 0,
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

    /// Removes `conn` from `room`; `true` when it was a member.
    pub fn unsubscribe(&self, room: &RoomId, conn: ConnectionId) -> bool {
        match self.channel(room) {
            Some(channel) => {
                let mut ch = lock(&channel);
                ch.users.remove(&conn);
                ch.members.remove(&conn).is_some()
            }
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
            !ch.members.is_empty() || ch.joining > 0 || ch.touched.elapsed() < idle
        });
        before - rooms.len()
    }

    /// Jumps the room to a position read from the database when the events in between
    /// cannot be handed over in order: each member gets `resync` (the `notice` frame) and
    /// then live events from `last_seq + 1`. The recent ring restarts, since it must stay
    /// contiguous.
    pub fn resync(
        &self,
        room: &RoomId,
        epoch: Epoch,
        last_seq: i64,
        state: PlaybackState,
        notice: Bytes,
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
        for outbox in ch.members.values() {
            outbox.push(&notice, Instant::now());
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
            self.waits.arm_if_waiting(&d.room, state);
        }
        if d.changes_snapshot {
            ch.snapshot_seq = d.seq;
        }
        if let Some(user) = &d.unwaits {
            if ch.state.waiting_for.contains(user) {
                // The sequencer's rule, mirrored: the user is no longer waited for (when
                // it was the last, the start event that follows brings the new state).
                let mut state = (*ch.state).clone();
                state.waiting_for.retain(|u| u != user);
                ch.state = Arc::new(state);
            }
        }
        if ch.recent.len() == self.recent_capacity {
            ch.recent.pop_front();
        }
        ch.recent.push_back((d.seq, d.frame.clone()));
        for outbox in ch.members.values() {
            outbox.push(&d.frame, d.accepted);
        }
        let count = ch.members.len();
        if d.closes_room {
            for outbox in ch.members.values() {
                outbox.room_closed(&d.room);
            }
            ch.members.clear();
            ch.users.clear();
        }
        if let Some(kicked) = &d.kicked {
            remove_user(ch, &d.room, kicked);
        }
        count
    }
}

/// A kicked user's connections leave the room with the kick: they had its event, they
/// get nothing more, and each connection is told the room is closed to it.
fn remove_user(ch: &mut RoomChannel, room: &RoomId, user: &UserId) {
    let conns: Vec<ConnectionId> = ch
        .users
        .iter()
        .filter(|(_, u)| *u == user)
        .map(|(conn, _)| *conn)
        .collect();
    for conn in conns {
        ch.users.remove(&conn);
        if let Some(outbox) = ch.members.remove(&conn) {
            outbox.room_closed(room);
        }
    }
}

impl HeldChannel<'_> {
    /// Whether the client, recovering from `(epoch, seq)`, has seen events this node has
    /// not applied yet (they are on their way from another node, or were lost).
    pub fn is_behind(&self, epoch: &Epoch, seq: i64) -> bool {
        let ch = lock(&self.channel);
        *epoch == ch.epoch && seq > ch.last_seq
    }

    /// Makes `conn` a member, queueing `joined` (built by `make_joined`) first, under the
    /// room's lock: the member then receives every event after `joined.seq` exactly once.
    /// With a recovery point, hands back the missed events when they are all at hand.
    ///
    /// `read_at` is the seq at which the join read the room's roles and queue: the
    /// subscription happens only if this channel stands at or after it with no change of
    /// them since, so `joined` never shows a queue a live event then changes twice.
    pub fn subscribe(
        &self,
        conn: ConnectionId,
        user: &UserId,
        outbox: &Outbox,
        read_at: i64,
        recovery: RecoveryRequest<'_>,
        make_joined: impl FnOnce(JoinView<'_>) -> Bytes,
    ) -> SubscribeOutcome {
        let mut ch = lock(&self.channel);
        ch.touched = Instant::now();
        if ch.last_seq < read_at || ch.snapshot_seq > read_at {
            return SubscribeOutcome::Moved {
                behind: ch.last_seq < read_at,
            };
        }
        let last = ch.last_seq;
        let mut events = Vec::new();
        let mut recovered = false;
        if let Some((epoch, after)) = recovery.recover {
            let reachable = *epoch == ch.epoch && (0..=last).contains(&after);
            if reachable && ((last - after) as usize) <= self.hub.max_recovery {
                let ring_start = ch.recent.front().map_or(last + 1, |(seq, _)| *seq);
                if after + 1 < ring_start {
                    let fetched: Vec<&Bytes> = recovery
                        .history
                        .iter()
                        .filter(|(seq, _)| *seq > after && *seq < ring_start)
                        .map(|(_, f)| f)
                        .collect();
                    if fetched.len() as i64 != ring_start - after - 1 {
                        return SubscribeOutcome::NeedHistory { after };
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
        outbox.push(&joined, Instant::now());
        ch.members.insert(conn, outbox.clone());
        ch.users.insert(conn, user.clone());
        SubscribeOutcome::Subscribed {
            seq: last,
            recovered,
        }
    }
}

impl Drop for HeldChannel<'_> {
    fn drop(&mut self) {
        let mut ch = lock(&self.channel);
        ch.joining -= 1;
        // The sweeper measures idleness from the end of the join.
        ch.touched = Instant::now();
    }
}
