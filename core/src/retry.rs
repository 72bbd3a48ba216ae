//! Retrying on a [`Clock`]: one backoff formula and one place that counts attempts and waits
//! between them, so that every retry loop is driven by the manual clock in tests.
//!
//! ```
//! use kafscale_core::ports::{Clock, ManualClock};
//! use kafscale_core::retry::{retry, Backoff};
//! use std::time::Duration;
//!
//! const READ_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let clock = ManualClock::new(0);
//! // At most three attempts; every error here is worth another one.
//! let read = retry(&clock, READ_BACKOFF, 3, |_: &&str, _| true, |attempt| async move {
//!     if attempt < 2 { Err("busy") } else { Ok(attempt) }
//! });
//! assert_eq!(clock.run(Duration::from_secs(1), read).await, Some(Ok(2)));
//! assert_eq!(clock.now_ms(), 100, "one wait, on the clock");
//! # });
//! ```

use std::future::Future;
use std::time::Duration;

use crate::ports::Clock;

/// Waits between attempts that double from `initial` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failure.
    pub initial: Duration,
    /// No wait is longer.
    pub max: Duration,
}

impl Backoff {
    pub const fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max }
    }

    /// Doubles without a cap: for loops whose attempt limit bounds the wait.
    pub const fn uncapped(initial: Duration) -> Backoff {
        Backoff::new(initial, Duration::MAX)
    }

    /// The wait after `failures` failures in a row (1 for the first): `initial` doubled
    /// `failures - 1` times, at most `max`.
    pub fn delay(&self, failures: u32) -> Duration {
        // 2^31 times any wait already saturates; the shift must not overflow.
        let doublings = failures.saturating_sub(1).min(31);
        self.initial.saturating_mul(1u32 << doublings).min(self.max)
    }
}

/// The attempts at one operation: numbers them, bounds them and waits the backoff between
/// them on the clock. For loops with exits of their own; [`retry`] covers the plain case.
#[derive(Debug)]
pub struct Retry<'c> {
    clock: &'c dyn Clock,
    backoff: Backoff,
    /// Attempts allowed, the first included; `None`: no limit.
    limit: Option<u32>,
    /// Number of the attempt being made, from 1.
    attempt: u32,
}

impl<'c> Retry<'c> {
    /// Attempts without a limit.
    pub fn new(clock: &'c dyn Clock, backoff: Backoff) -> Retry<'c> {
        Retry {
            clock,
            backoff,
            limit: None,
            attempt: 1,
        }
    }

    /// At most `attempts` attempts, the first included.
    pub fn limit(mut self, attempts: u32) -> Retry<'c> {
        self.limit = Some(attempts);
        self
    }

    /// Number of the attempt being made, from 1; after a failure, the failures in a row.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether the attempt being made is the last one allowed.
    pub fn exhausted(&self) -> bool {
        self.limit.is_some_and(|limit| self.attempt >= limit)
    }

    /// The attempt being made failed: waits its backoff, then moves to the next attempt.
    pub async fn wait(&mut self) {
        self.clock.sleep(self.backoff.delay(self.attempt)).await;
        self.attempt = self.attempt.saturating_add(1);
    }

    /// An attempt succeeded: the next failure waits the shortest time again.
    pub fn reset(&mut self) {
        self.attempt = 1;
    }
}

/// Runs `op` (given the attempt number, from 1) until it succeeds, fails with an error that
/// `retriable` (given the error and the attempt number) rejects, or `attempts` attempts have
/// failed; returns the last result. `retriable` is asked only when another attempt is
/// allowed, so it is the place to log the retry.
pub async fn retry<T, E, Fut>(
    clock: &dyn Clock,
    backoff: Backoff,
    attempts: u32,
    mut retriable: impl FnMut(&E, u32) -> bool,
    mut op: impl FnMut(u32) -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempts = Retry::new(clock, backoff).limit(attempts);
    loop {
        match op(attempts.attempt()).await {
            Err(e) if !attempts.exhausted() && retriable(&e, attempts.attempt()) => {
                attempts.wait().await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests;
