//! What the API refuses, counted in `synctv_refusals_total{reason}` beside the cluster
//! layer's own refusals (admission, a full room), which it labels itself.

use synctv_cluster::NodeCounters;

/// Why the API refused an upgrade, a message or a connection's further life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Draining,
    BadToken,
    RateLimited,
    TooLarge,
    TooManyRooms,
    IdleTimeout,
    MaxDuration,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Draining => "draining",
            Refusal::BadToken => "bad_token",
            Refusal::RateLimited => "rate_limited",
            Refusal::TooLarge => "too_large",
            Refusal::TooManyRooms => "too_many_rooms",
            Refusal::IdleTimeout => "idle_timeout",
            Refusal::MaxDuration => "max_duration",
        }
    }

    /// Counts this refusal in `/metrics` and in the node's totals.
    pub fn record(self, counters: &NodeCounters) {
        counters.refused(self.as_str());
    }
}
