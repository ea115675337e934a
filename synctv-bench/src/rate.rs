//! Pure pacing arithmetic: how a total publish rate is spread over senders without any
//! connection going over the server's per-connection limit, which connections send, and how
//! many sends are due after a given time.

use serde::Serialize;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RateError {
    #[error("rate must be positive, got {0}")]
    NotPositive(f64),
    #[error("{rate} events/s over {senders} senders is {per:.2}/s each, over the limit of {max}/s per connection: add members or rooms")]
    OverLimit {
        rate: f64,
        senders: usize,
        per: f64,
        max: f64,
    },
}

/// How a rate is spread.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SendPlan {
    pub senders: usize,
    pub per_sender_rate: f64,
}

/// Spread `rate` events/s over `senders` connections (all `members` when not given),
/// refusing a plan that puts any connection above `max_per_conn` events/s.
pub fn plan(
    rate: f64,
    members: usize,
    senders: Option<usize>,
    max_per_conn: f64,
) -> Result<SendPlan, RateError> {
    if rate.is_nan() || rate <= 0.0 {
        return Err(RateError::NotPositive(rate));
    }
    let senders = senders.unwrap_or(members).clamp(1, members.max(1));
    let per = rate / senders as f64;
    if per > max_per_conn {
        return Err(RateError::OverLimit {
            rate,
            senders,
            per,
            max: max_per_conn,
        });
    }
    Ok(SendPlan {
        senders,
        per_sender_rate: per,
    })
}

/// Connection indices of the senders, interleaved across rooms (room-major connection
/// numbering: connection `r * room_size + m` is member `m` of room `r`), so that consecutive
/// sends go to different rooms and every room gets its share of senders.
pub fn sender_order(rooms: usize, room_size: usize, senders: usize) -> Vec<usize> {
    let senders = senders.min(rooms * room_size);
    (0..senders)
        .map(|k| (k % rooms) * room_size + (k / rooms))
        .collect()
}

/// Sends due `elapsed_nanos` after the start at `rate` events/s.
pub fn due(elapsed_nanos: u64, rate: f64) -> u64 {
    (elapsed_nanos as f64 * rate / 1e9).floor() as u64
}

/// Nanoseconds after the start at which send number `n` (counting from 1) is due: the
/// inverse of `due`.
pub fn nanos_until(n: u64, rate: f64) -> u64 {
    (n as f64 * 1e9 / rate).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_spreads_over_all_members_by_default() {
        let p = plan(500.0, 100, None, 10.0).unwrap();
        assert_eq!(p.senders, 100);
        assert!((p.per_sender_rate - 5.0).abs() < 1e-9);
    }

    #[test]
    fn plan_refuses_to_go_over_the_limit() {
        assert!(matches!(
            plan(2000.0, 100, None, 10.0),
            Err(RateError::OverLimit { .. })
        ));
        assert!(plan(1000.0, 100, None, 10.0).is_ok());
        assert!(matches!(
            plan(100.0, 100, Some(5), 10.0),
            Err(RateError::OverLimit { .. })
        ));
        assert_eq!(plan(0.0, 10, None, 10.0), Err(RateError::NotPositive(0.0)));
    }

    #[test]
    fn senders_interleave_rooms_and_never_repeat() {
        let order = sender_order(3, 4, 7);
        assert_eq!(order, vec![0, 4, 8, 1, 5, 9, 2]);
        let all = sender_order(3, 4, 100);
        let mut sorted = all.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 12);
        assert_eq!(all.len(), 12);
    }

    #[test]
    fn due_counts_whole_sends() {
        assert_eq!(due(0, 1000.0), 0);
        assert_eq!(due(999_999, 1000.0), 0);
        assert_eq!(due(1_000_000, 1000.0), 1);
        assert_eq!(due(2_500_000_000, 200.0), 500);
    }

    #[test]
    fn nanos_until_inverts_due() {
        for rate in [1.0, 7.0, 1000.0, 33_333.0] {
            for n in [1u64, 2, 10, 12_345] {
                let at = nanos_until(n, rate);
                assert_eq!(due(at, rate), n, "rate {rate} n {n}");
                assert_eq!(due(at - 1, rate), n - 1, "rate {rate} n {n}");
            }
        }
    }
}
