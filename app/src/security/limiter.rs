//! Failed logins, counted per client address: an address that keeps failing waits longer
//! and longer for each further refusal, whichever connection it uses, so that guessing
//! passwords costs time and connections. The count is forgotten once the address has not
//! failed for a while.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures an address may have before its attempts are slowed.
const FREE_FAILURES: u32 = 5;
/// The longest wait.
const MAX_PENALTY: Duration = Duration::from_secs(10);
/// An address that has not failed for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(60);
/// Addresses tracked at most; beyond that, the stale ones are dropped first.
const MAX_ADDRESSES: usize = 100_000;

#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginLimiter {
    /// How long a refusal of `ip` is held before it is answered: `base` (the listener's
    /// `connection.failed.authentication.delay.ms`; zero turns slowing off), doubled for each
    /// failure beyond the free ones, up to [`MAX_PENALTY`].
    pub fn penalty(&self, ip: IpAddr, now: Instant, base: Duration) -> Duration {
        if base.is_zero() {
            return Duration::ZERO;
        }
        let Ok(failures) = self.failures.lock() else {
            return base;
        };
        match failures.get(&ip) {
            Some((count, last))
                if now.duration_since(*last) < FORGET_AFTER && *count >= FREE_FAILURES =>
            {
                let doublings = (*count - FREE_FAILURES + 1).min(16);
                base.saturating_mul(1 << doublings)
                    .min(MAX_PENALTY)
                    .max(base)
            }
            _ => base,
        }
    }

    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        if failures.len() >= MAX_ADDRESSES {
            failures.retain(|_, (_, last)| now.duration_since(*last) < FORGET_AFTER);
        }
        let entry = failures.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= FORGET_AFTER {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_that_keeps_failing_waits_longer_and_is_forgotten_later() {
        let limiter = LoginLimiter::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let base = Duration::from_millis(100);
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(limiter.penalty(ip, t0, base), base);
            limiter.failed(ip, t0);
        }
        assert_eq!(limiter.penalty(ip, t0, base), base * 2);
        limiter.failed(ip, t0);
        assert_eq!(limiter.penalty(ip, t0, base), base * 4);
        for _ in 0..20 {
            limiter.failed(ip, t0);
        }
        assert_eq!(limiter.penalty(ip, t0, base), MAX_PENALTY);
        assert_eq!(limiter.penalty(ip, t0, Duration::ZERO), Duration::ZERO);
        assert_eq!(limiter.penalty(other, t0, base), base);
        let later = t0 + FORGET_AFTER;
        assert_eq!(limiter.penalty(ip, later, base), base);
        limiter.failed(ip, later);
        assert_eq!(limiter.penalty(ip, later, base), base);
    }
}
