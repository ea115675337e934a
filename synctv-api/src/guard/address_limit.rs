//! Per-address limits: a token bucket per client address, holding a minute's allowance
//! and refilled evenly over the minute. Over it, the caller answers 429 `rate_limited`
//! with `Retry-After`: the seconds until the next request would pass.
//!
//! IPv6 clients are counted per /64, the block one subscriber usually holds, or a single
//! host could mint a fresh address for each request. Counts are per node: a cluster
//! behind a load balancer allows at most the limit times the number of nodes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Above this many tracked addresses, buckets that have refilled are forgotten (they
/// are indistinguishable from new ones), so memory stays bounded by recent clients.
const PRUNE_ABOVE: usize = 10_000;

pub struct AddressLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A refusal: retry after this many whole seconds (at least 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

impl AddressLimiter {
    pub fn per_minute(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `addr`'s allowance.
    pub fn check(&self, addr: IpAddr) -> Result<(), RetryAfter> {
        self.check_at(addr, Instant::now())
    }

    pub fn check_at(&self, addr: IpAddr, now: Instant) -> Result<(), RetryAfter> {
        let capacity = f64::from(self.per_minute);
        let per_sec = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, b| b.refilled(now, per_sec) < capacity);
        }
        let bucket = buckets.entry(subscriber(addr)).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        bucket.tokens = bucket.refilled(now, per_sec).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - bucket.tokens) / per_sec);
        Err(RetryAfter(wait.as_secs_f64().ceil().max(1.0) as u64))
    }
}

impl Bucket {
    fn refilled(&self, now: Instant, per_sec: f64) -> f64 {
        self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * per_sec
    }
}

/// The key an address is counted under: itself for IPv4, its /64 for IPv6.
fn subscriber(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_minutes_allowance_then_retry_after_the_refill() {
        let limiter = AddressLimiter::per_minute(10);
        let start = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..10 {
            assert_eq!(limiter.check_at(a, start), Ok(()));
        }
        // One token comes back every 6 s.
        assert_eq!(limiter.check_at(a, start), Err(RetryAfter(6)));
        assert_eq!(
            limiter.check_at(a, start + Duration::from_secs(4)),
            Err(RetryAfter(2))
        );
        assert_eq!(limiter.check_at(a, start + Duration::from_secs(6)), Ok(()));
        // Another address has its own allowance.
        assert_eq!(limiter.check_at(ip("192.0.2.2"), start), Ok(()));
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        let limiter = AddressLimiter::per_minute(1);
        let now = Instant::now();
        assert_eq!(limiter.check_at(ip("2001:db8:1:2::1"), now), Ok(()));
        assert!(limiter.check_at(ip("2001:db8:1:2:ffff::9"), now).is_err());
        assert_eq!(limiter.check_at(ip("2001:db8:1:3::1"), now), Ok(()));
    }

    #[test]
    fn refilled_buckets_are_pruned() {
        let limiter = AddressLimiter::per_minute(5);
        let start = Instant::now();
        for i in 0..=PRUNE_ABOVE as u32 {
            let addr = IpAddr::V4(i.into());
            limiter.check_at(addr, start).unwrap();
        }
        limiter
            .check_at(ip("192.0.2.1"), start + Duration::from_secs(60))
            .unwrap();
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1);
    }
}
