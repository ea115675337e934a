//! A token bucket for the per-connection message rate: `rate` per second sustained, with
//! a burst of twice that.

use std::time::Instant;

#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    pub fn new(rate_per_second: u32) -> Self {
        let rate = f64::from(rate_per_second);
        Self {
            rate,
            capacity: rate * 2.0,
            tokens: rate * 2.0,
            refilled: Instant::now(),
        }
    }

    /// Takes one token; `false` when the message is over the rate.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_is_twice_the_rate_then_refills() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(20);
        assert_eq!((0..50).filter(|_| bucket.try_take(start)).count(), 40);
        assert!(!bucket.try_take(start));
        assert_eq!(
            (0..50)
                .filter(|_| bucket.try_take(start + Duration::from_millis(500)))
                .count(),
            10
        );
    }

    /// The WebSocket flood test's bucket (5 a second) at explicit instants: the counts that
    /// test can only bound, here exact.
    #[test]
    fn a_flood_passes_the_burst_then_one_token_per_fifth_of_a_second() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(5);
        let passed: Vec<bool> = (0..15).map(|_| bucket.try_take(t0)).collect();
        assert_eq!(passed, [[true; 10].as_slice(), &[false; 5]].concat());
        assert!(!bucket.try_take(t0 + Duration::from_millis(100)));
        assert!(bucket.try_take(t0 + Duration::from_millis(250)));
        assert!(!bucket.try_take(t0 + Duration::from_millis(250)));
        // However long it rested, the burst is the most that passes at once.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..15).filter(|_| bucket.try_take(later)).count(), 10);
    }
}
