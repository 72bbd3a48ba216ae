//! In-process watches: one bounded channel per watcher, fed under the store's write lock
//! so that every watcher sees changes in revision order.

use futures::StreamExt;
use kafscale_core::ports::{MetadataError, WatchEvent, WatchStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Events a watcher may have pending before it is cut off as too slow.
const WATCH_BUFFER: usize = 16 * 1024;

#[derive(Debug)]
struct Watcher {
    prefix: String,
    tx: mpsc::Sender<WatchEvent>,
    /// Set when the watcher was dropped for falling behind; its stream then ends with an
    /// error instead of silently missing events.
    lagged: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
pub(crate) struct WatchHub {
    watchers: Vec<Watcher>,
}

impl WatchHub {
    pub(crate) fn subscribe(&mut self, prefix: &str) -> WatchStream {
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let lagged = Arc::new(AtomicBool::new(false));
        self.watchers.push(Watcher {
            prefix: prefix.to_owned(),
            tx,
            lagged: Arc::clone(&lagged),
        });
        futures::stream::unfold((rx, lagged), |(mut rx, lagged)| async move {
            match rx.recv().await {
                Some(event) => Some((Ok(event), (rx, lagged))),
                // Reported once; the next poll finds the flag cleared and ends the stream.
                None if lagged.swap(false, Ordering::SeqCst) => Some((
                    Err(MetadataError::Unavailable {
                        message: "watch fell behind and was cancelled; range and watch again"
                            .to_owned(),
                    }),
                    (rx, lagged),
                )),
                // The store was dropped.
                None => None,
            }
        })
        .boxed()
    }

    /// Delivers `events` (of one committed transaction) to every watcher whose prefix they
    /// match; drops watchers whose stream is gone or whose buffer is full.
    pub(crate) fn publish<'a>(&mut self, events: impl IntoIterator<Item = &'a WatchEvent> + Clone) {
        self.watchers.retain(|watcher| {
            for event in events.clone() {
                if !event.kv.key.starts_with(&watcher.prefix) {
                    continue;
                }
                match watcher.tx.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        tracing::warn!(prefix = %watcher.prefix, "metadata watcher fell behind, cancelling it");
                        watcher.lagged.store(true, Ordering::SeqCst);
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            true
        });
    }
}
