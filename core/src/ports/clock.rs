//! Clock port: wall time and sleeping, replaceable by a manual clock in tests.

use futures::future::BoxFuture;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::watch;

use crate::types::Millis;

/// # Contract
/// `now_ms` never goes backwards within one process; `sleep` completes once `now_ms` has
/// advanced by at least the duration.
pub trait Clock: Send + Sync + Debug + 'static {
    fn now_ms(&self) -> Millis;
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// Conveniences every clock has, built on [`Clock::sleep`] so that a manual clock drives
/// them too.
pub trait ClockExt: Clock {
    /// Runs `future` until it completes or `duration` has passed on this clock, whichever
    /// comes first; the deadline is fixed when this is called.
    fn timeout<F: Future>(&self, duration: Duration, future: F) -> Timeout<F> {
        Timeout {
            // Boxed so that the future needs no pin projection; timeouts are not on hot paths.
            future: Box::pin(future),
            deadline: self.sleep(duration),
        }
    }
}

impl<C: Clock + ?Sized> ClockExt for C {}

/// The deadline of a [`ClockExt::timeout`] passed before its future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline elapsed")]
pub struct Elapsed;

/// Future of [`ClockExt::timeout`].
#[must_use = "futures do nothing unless awaited"]
pub struct Timeout<F> {
    future: Pin<Box<F>>,
    deadline: BoxFuture<'static, ()>,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The future goes first: one that is ready at the deadline still counts.
        if let Poll::Ready(out) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        self.deadline.as_mut().poll(cx).map(|()| Err(Elapsed))
    }
}

impl<F> Debug for Timeout<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeout").finish_non_exhaustive()
    }
}

/// A clock that moves only when told to; sleepers wake when it passes their deadline.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<AtomicI64>,
    tick: watch::Sender<Millis>,
}

impl ManualClock {
    pub fn new(start_ms: Millis) -> ManualClock {
        let (tick, _) = watch::channel(start_ms);
        ManualClock {
            now: Arc::new(AtomicI64::new(start_ms)),
            tick,
        }
    }

    pub fn advance(&self, duration: Duration) {
        let delta = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let now = self.now.fetch_add(delta, Ordering::SeqCst) + delta;
        self.tick.send_replace(now);
    }

    /// Runs `future` to completion, moving this clock on by 1 ms whenever it waits, for at
    /// most `limit` of clock time; `None` if it still waits then. For tests: no real time
    /// passes, and the clock reads when each step ran.
    pub async fn run<T>(&self, limit: Duration, future: impl Future<Output = T>) -> Option<T> {
        let mut future = std::pin::pin!(future);
        let end = self.now_ms().saturating_add(duration_ms(limit));
        loop {
            if let Poll::Ready(out) = futures::poll!(future.as_mut()) {
                return Some(out);
            }
            if self.now_ms() >= end {
                return None;
            }
            // Lets spawned tasks the future waits for run before time moves.
            tokio::task::yield_now().await;
            self.advance(Duration::from_millis(1));
        }
    }
}

fn duration_ms(duration: Duration) -> Millis {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2)
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let deadline = self.now_ms() + duration_ms(duration);
        let mut rx = self.tick.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; if it is gone nobody can advance time.
            let _ = rx.wait_for(|now| *now >= deadline).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn timeout_fires_once_the_manual_time_passes_the_deadline() {
        let clock = ManualClock::new(0);
        let mut waiting = std::pin::pin!(
            clock.timeout(Duration::from_millis(100), futures::future::pending::<()>())
        );
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        clock.advance(Duration::from_millis(99));
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        clock.advance(Duration::from_millis(1));
        assert_eq!(waiting.await, Err(Elapsed));
    }

    #[tokio::test]
    async fn timeout_returns_the_output_of_a_future_that_finishes_first() {
        let clock = ManualClock::new(0);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut waiting = std::pin::pin!(clock.timeout(Duration::from_millis(100), rx));
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        clock.advance(Duration::from_millis(50));
        let _ = tx.send(7);
        assert_eq!(waiting.await, Ok(Ok(7)));
    }

    #[tokio::test]
    async fn run_moves_the_clock_until_the_future_finishes_or_the_limit() {
        let clock = ManualClock::new(0);
        let slept = clock.run(
            Duration::from_secs(1),
            clock.sleep(Duration::from_millis(30)),
        );
        assert_eq!(slept.await, Some(()));
        assert_eq!(clock.now_ms(), 30);
        let stuck = clock.run(Duration::from_millis(10), futures::future::pending::<()>());
        assert_eq!(stuck.await, None);
        assert_eq!(clock.now_ms(), 40);
    }

    #[tokio::test]
    async fn a_future_ready_at_the_deadline_still_counts() {
        let clock = ManualClock::new(0);
        let waiting = clock.timeout(Duration::ZERO, async { 7 });
        assert_eq!(waiting.now_or_never(), Some(Ok(7)));
        // Through the port object too, as core holds its clock.
        let dynamic: Arc<dyn Clock> = Arc::new(clock.clone());
        let late = dynamic.timeout(Duration::ZERO, futures::future::pending::<()>());
        assert_eq!(late.now_or_never(), Some(Err(Elapsed)));
    }
}
