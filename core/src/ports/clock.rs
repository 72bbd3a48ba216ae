//! Clock port: wall time and sleeping, replaceable by a manual clock in tests.

use futures::future::BoxFuture;
use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
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
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let deadline = self.now_ms() + i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2);
        let mut rx = self.tick.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; if it is gone nobody can advance time.
            let _ = rx.wait_for(|now| *now >= deadline).await;
        })
    }
}
