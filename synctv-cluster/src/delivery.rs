//! How a committed event travels to members: [`encode_event`] turns it into the frame
//! every member receives, and [`Delivery::of`] wraps event and frame for the hub. Every
//! path calls these two: the fan-out of a local commit, the Redis receive loop, catch-up
//! from the history, recovery and the `resync` notice.

use bytes::Bytes;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Instant;
use synctv_core::{Epoch, Event, EventKind, PlaybackState, RoomId, UserId};

/// The event's frame: its JSON text, exactly the contract's `Event`, shared by every
/// member's queue. An `Event` always serializes (its data is already a JSON value); should
/// serde ever disagree, the event is logged and not sent.
pub fn encode_event(event: &Event) -> Option<Bytes> {
    match serde_json::to_vec(event) {
        Ok(json) => Some(Bytes::from(json)),
        Err(e) => {
            tracing::error!(room = %event.room, seq = event.seq, error = %e, "an event could not be encoded");
            None
        }
    }
}

/// A committed event, ready to fan out: encoded once, with the state right after it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub room: RoomId,
    pub epoch: Epoch,
    pub seq: i64,
    /// The state right after the event, for the kinds that change it (`playback` and
    /// `media`, whose data carries it); `None` for the kinds that leave it unchanged.
    pub state: Option<Arc<PlaybackState>>,
    /// The event's frame, from [`encode_event`].
    pub frame: Bytes,
    /// A `room_archived` event: members are removed after it.
    pub closes_room: bool,
    /// A `member_kicked` event: that user's connections are removed after it.
    pub kicked: Option<UserId>,
    /// An event that changes what a `joined` reads besides the state (roles, the
    /// queue): a join checks none came between its read and its subscription.
    pub changes_snapshot: bool,
    /// A user no longer waited for (`ready`, left, kicked): the sequencer took it out of
    /// the state's `waiting_for` with this event, and the hub's copy of the state follows.
    pub unwaits: Option<UserId>,
    /// When this node took the event in (for the delivery latency histogram).
    pub accepted: Instant,
}

impl Delivery {
    /// The hub's delivery of `event`, whose encoded form is `frame`.
    pub fn of(event: &Event, frame: Bytes) -> Self {
        let state = match event.kind {
            EventKind::Playback | EventKind::Media => event
                .data
                .get("state")
                .and_then(|state| PlaybackState::deserialize(state).ok())
                .map(Arc::new),
            _ => None,
        };
        Delivery {
            room: event.room.clone(),
            epoch: event.epoch.clone(),
            seq: event.seq,
            state,
            frame,
            closes_room: event.kind == EventKind::RoomArchived,
            kicked: (event.kind == EventKind::MemberKicked)
                .then(|| event.data.get("user_id").and_then(|u| u.as_str()))
                .flatten()
                .map(UserId::from),
            unwaits: match event.kind {
                EventKind::MemberStatus if event.data.get("state") != Some(&"ready".into()) => None,
                EventKind::MemberStatus | EventKind::MemberLeft | EventKind::MemberKicked => event
                    .data
                    .get("user_id")
                    .and_then(|u| u.as_str())
                    .map(UserId::from),
                _ => None,
            },
            changes_snapshot: matches!(
                event.kind,
                EventKind::Role | EventKind::Queue | EventKind::Media
            ),
            accepted: Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: EventKind, data: serde_json::Value) -> Event {
        Event {
            room: "r".into(),
            epoch: "e".into(),
            seq: 3,
            kind,
            by: None,
            data,
            server_time: 1,
        }
    }

    #[test]
    fn the_state_travels_with_the_kinds_that_change_it() {
        let state = PlaybackState::initial(7);
        let media = event(EventKind::Media, json!({"state": state}));
        let delivery = Delivery::of(&media, encode_event(&media).unwrap());
        assert_eq!(delivery.state.as_deref(), Some(&state));
        assert!(!delivery.closes_room);
        let chat = event(EventKind::Chat, json!({"text": "hi"}));
        assert!(Delivery::of(&chat, Bytes::new()).state.is_none());
        let archived = event(EventKind::RoomArchived, json!({}));
        assert!(Delivery::of(&archived, Bytes::new()).closes_room);
        let kicked = event(
            EventKind::MemberKicked,
            json!({"user_id": "u", "banned_until": null}),
        );
        assert_eq!(
            Delivery::of(&kicked, Bytes::new()).kicked,
            Some(UserId::from("u"))
        );
        assert!(Delivery::of(&chat, Bytes::new()).kicked.is_none());
        let ready = event(
            EventKind::MemberStatus,
            json!({"user_id": "u", "state": "ready"}),
        );
        assert_eq!(
            Delivery::of(&ready, Bytes::new()).unwaits,
            Some(UserId::from("u"))
        );
        let buffering = event(
            EventKind::MemberStatus,
            json!({"user_id": "u", "state": "buffering"}),
        );
        assert!(Delivery::of(&buffering, Bytes::new()).unwaits.is_none());
    }

    #[test]
    fn the_frame_is_the_contract_event() {
        let chat = event(EventKind::Chat, json!({"text": "hi"}));
        let frame = encode_event(&chat).unwrap();
        let back: Event = serde_json::from_slice(&frame).unwrap();
        assert_eq!(back, chat);
    }
}
