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
}
