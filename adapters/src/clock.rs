//! The system clock.

use futures::future::BoxFuture;
use kafscale_core::ports::Clock;
use kafscale_core::Millis;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Highest time handed out so far: wall time can step backwards (NTP), the port's
/// `now_ms` must not.
static LAST_NOW_MS: AtomicI64 = AtomicI64::new(0);

/// [`Clock`] reading the wall clock; sleeps with tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock
    }
}

fn wall_ms() -> Millis {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

fn now_ms() -> Millis {
    let wall = wall_ms();
    let previous = LAST_NOW_MS.fetch_max(wall, Ordering::SeqCst);
    previous.max(wall)
}

/// Whole milliseconds covering `duration`, so a sleep never ends early on `now_ms`.
fn ceil_ms(duration: Duration) -> i64 {
    let ms = duration.as_nanos().div_ceil(1_000_000);
    i64::try_from(ms).unwrap_or(i64::MAX / 2)
}

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        now_ms()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let deadline = now_ms().saturating_add(ceil_ms(duration));
        Box::pin(async move {
            // tokio's timer is monotonic; the wall clock may lag it (slewing, a step back),
            // so sleep again until `now_ms` has really moved by the duration.
            let mut remaining = duration;
            loop {
                tokio::time::sleep(remaining).await;
                let now = now_ms();
                if now >= deadline {
                    return;
                }
                remaining = Duration::from_millis(u64::try_from(deadline - now).unwrap_or(1));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleep_advances_now_by_at_least_the_duration() {
        let clock = SystemClock::new();
        let start = clock.now_ms();
        clock.sleep(Duration::from_micros(20_500)).await;
        assert!(clock.now_ms() - start >= 21);
    }

    #[test]
    fn now_never_goes_backwards() {
        let clock = SystemClock::new();
        let mut last = clock.now_ms();
        for _ in 0..1000 {
            let now = clock.now_ms();
            assert!(now >= last);
            last = now;
        }
    }
}
