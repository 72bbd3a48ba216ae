//! The three ports through which core reaches the outside world.

pub mod clock;
pub mod metadata;
pub mod object_store;

pub use clock::{Clock, ClockExt, Elapsed, ManualClock, Timeout};
pub use metadata::{
    Compare, KeyValue, LeaseId, MetadataError, MetadataStore, MetadataStoreExt, RangeResult,
    StoreStatus, Txn, TxnOp, TxnOutcome, WatchEvent, WatchEventKind, WatchStream,
};
pub use object_store::{ObjectMeta, ObjectStore, PutMode, StoreError};
