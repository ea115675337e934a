//! Drift reports (contract 1.1): how far a member's player is from where the room's
//! state says playback stands. Pure; the node that receives a report computes it.

use crate::playback::PlaybackState;

/// A member's drift in milliseconds (positive: ahead of the room) from a report of its
/// player's `position` (seconds) received at `now_ms`. The report left the client about
/// half a round trip (`rtt_ms`) earlier, so the room is taken where it stood then.
pub fn drift_ms(state: &PlaybackState, position: f64, rtt_ms: Option<f64>, now_ms: i64) -> f64 {
    let half_trip = rtt_ms.filter(|r| r.is_finite() && *r > 0.0).unwrap_or(0.0) / 2.0;
    let sent_at = now_ms - half_trip.round() as i64;
    (position - state.position_at(sent_at)) * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_allows_half_the_round_trip() {
        let mut s = PlaybackState::initial(0);
        s.playing = true;
        s.position = 10.0;
        // At 2 s the room is at 12 s; the report left 100 ms earlier, at 11.9 s.
        assert!((drift_ms(&s, 11.9, Some(200.0), 2_000)).abs() < 1e-6);
        assert!((drift_ms(&s, 12.0, None, 2_000)).abs() < 1e-6);
        assert!((drift_ms(&s, 11.95, None, 2_000) + 50.0).abs() < 1e-6);
        s.playing = false;
        assert!((drift_ms(&s, 10.5, Some(80.0), 9_000) - 500.0).abs() < 1e-6);
    }
}
