//! Conformance suites: one per port, checking every clause of its "Contract" against any
//! adapter. Each clause is a public async fn (so a failing one can be run alone); the suite
//! runs them all and reports every failing clause by name.
//!
//! Every clause works under its own random key prefix, so the suites can run against a
//! shared real server (etcd, an S3 bucket) next to other tests.

pub mod metadata;
pub mod metadata_live;
pub mod metadata_txn;
pub mod object_store;

use futures::future::BoxFuture;
use futures::FutureExt;
use std::any::Any;
use std::panic::AssertUnwindSafe;

pub use metadata::{metadata_suite, metadata_suite_with, MetadataSuiteOptions};
pub use object_store::{object_store_suite, object_store_suite_with, ObjectStoreSuiteOptions};

/// A named clause of a suite.
pub type Clause<S, O> = (&'static str, fn(S, O) -> BoxFuture<'static, ()>);

/// A fresh prefix for one clause: `conformance/<clause>/<uuid>/`.
pub fn unique_prefix(clause: &str) -> String {
    format!("conformance/{clause}/{}/", uuid::Uuid::new_v4().simple())
}

/// Runs every clause (even after one failed) and panics listing those that failed.
pub async fn run_clauses<S: Clone, O: Clone>(
    suite: &str,
    store: S,
    options: O,
    clauses: &[Clause<S, O>],
) {
    let mut failed = Vec::new();
    for (name, clause) in clauses {
        let outcome = AssertUnwindSafe(clause(store.clone(), options.clone()))
            .catch_unwind()
            .await;
        if let Err(panic) = outcome {
            failed.push(format!("{name}: {}", panic_message(panic.as_ref())));
        }
    }
    assert!(
        failed.is_empty(),
        "{suite} conformance: {} of {} clauses failed:\n  {}",
        failed.len(),
        clauses.len(),
        failed.join("\n  ")
    );
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        "panicked".to_owned()
    }
}

/// Builds a clause table from async fns taking `(store, options)`.
macro_rules! clauses {
    ($($name:ident),* $(,)?) => {
        &[$((
            stringify!($name),
            |store, options| -> ::futures::future::BoxFuture<'static, ()> {
                Box::pin($name(store, options))
            },
        )),*]
    };
}
pub(crate) use clauses;
