//! Waiting for everyone (contract 1.1): which members are waiters, which of them are
//! buffering, and when a waiting room starts. Pure; the sequencer applies it inside the
//! room's commit, so the start (the timed one too) is decided once, in the room's order.

use crate::ids::UserId;
use crate::playback::PlaybackState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How far ahead of the clock a waited start sets `updated_at` (the contract allows up
/// to 1 s), so that members whose event arrives a little later still start together.
pub const START_LEAD_MS: i64 = 300;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlayerStatus {
    Buffering,
    Ready,
}

impl PlayerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PlayerStatus::Buffering => "buffering",
            PlayerStatus::Ready => "ready",
        }
    }
}

/// The members who have reported a status (the waiters), with their latest one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Waiters {
    #[serde(default)]
    pub statuses: BTreeMap<UserId, PlayerStatus>,
}

impl Waiters {
    /// Records a report; `true` when the member's status changed.
    pub fn report(&mut self, user: &UserId, status: PlayerStatus) -> bool {
        self.statuses.insert(user.clone(), status) != Some(status)
    }

    /// The member left the room: it is no longer waited for.
    pub fn remove(&mut self, user: &UserId) -> bool {
        self.statuses.remove(user).is_some()
    }

    /// A `seek`, `media` or `next`: every waiter must load again.
    pub fn mark_all_buffering(&mut self) {
        for status in self.statuses.values_mut() {
            *status = PlayerStatus::Buffering;
        }
    }

    pub fn buffering(&self) -> Vec<UserId> {
        self.statuses
            .iter()
            .filter(|(_, s)| **s == PlayerStatus::Buffering)
            .map(|(u, _)| u.clone())
            .collect()
    }

    pub fn status(&self, user: &UserId) -> Option<PlayerStatus> {
        self.statuses.get(user).copied()
    }
}

/// Whether the room is holding a start for buffering members.
pub fn is_waiting(state: &PlaybackState) -> bool {
    !state.waiting_for.is_empty()
}

/// Holds a start that the clock would otherwise begin: paused at the position, waiting
/// for `buffering` until `wait_until` (an already running wait keeps its deadline).
pub fn hold(state: &mut PlaybackState, buffering: Vec<UserId>, now_ms: i64, timeout_ms: i64) {
    state.playing = false;
    if state.wait_until.is_none() {
        state.wait_until = Some(now_ms + timeout_ms);
    }
    state.waiting_for = buffering;
}

/// Ends a wait without starting (a `pause`, new media).
pub fn clear(state: &mut PlaybackState) {
    state.waiting_for.clear();
    state.wait_until = None;
}

/// The waited start: playing from the held position, `updated_at` a little ahead.
pub fn start(state: &PlaybackState, now_ms: i64) -> PlaybackState {
    let mut next = state.clone();
    clear(&mut next);
    next.playing = true;
    next.updated_at = now_ms + START_LEAD_MS;
    next.version = state.version + 1;
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_change_and_all_buffer_after_a_seek() {
        let mut w = Waiters::default();
        let (a, b) = (UserId::from("a"), UserId::from("b"));
        assert!(w.report(&a, PlayerStatus::Ready));
        assert!(
            !w.report(&a, PlayerStatus::Ready),
            "a repeat changes nothing"
        );
        assert!(w.report(&b, PlayerStatus::Ready));
        assert!(w.buffering().is_empty());
        w.mark_all_buffering();
        assert_eq!(w.buffering(), vec![a.clone(), b.clone()]);
        assert!(w.remove(&a));
        assert_eq!(w.buffering(), vec![b]);
    }

    #[test]
    fn a_hold_keeps_its_deadline_and_a_start_clears_it() {
        let mut s = PlaybackState::initial(0);
        s.position = 5.0;
        hold(&mut s, vec!["b".into()], 1_000, 10_000);
        assert!(!s.playing && is_waiting(&s));
        assert_eq!(s.wait_until, Some(11_000));
        hold(&mut s, vec!["b".into(), "c".into()], 5_000, 10_000);
        assert_eq!(s.wait_until, Some(11_000));
        let started = start(&s, 12_000);
        assert!(started.playing && !is_waiting(&started));
        assert_eq!(started.wait_until, None);
        assert_eq!(started.position_at(12_000 + START_LEAD_MS + 1_000), 6.0);
        assert_eq!(started.version, s.version + 1);
    }
}
