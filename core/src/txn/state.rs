//! The state machine of one transactional id, without I/O: what each request does to the
//! stored [`TxnRecord`], or why it is refused. The coordinator persists what these
//! functions return, one metadata transaction per change.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use super::{TxnError, TxnResult};
use crate::types::Millis;

/// Where a transaction stands, as Kafka names the states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    /// No transaction under way (after InitProducerId).
    Empty,
    /// Partitions or groups were added; records may be written.
    Ongoing,
    /// EndTxn(commit) is durable; markers are being written.
    PrepareCommit,
    /// EndTxn(abort) or a timeout is durable; markers are being written.
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// Kafka's name (DescribeTransactions, ListTransactions, the CLI).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    pub fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// A partition of a transaction, by topic name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxnPartition {
    pub topic: String,
    pub partition: i32,
}

/// A transactional id's state, as stored under `txns/<shard>/<id>` (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRecord {
    pub producer_id: i64,
    pub epoch: i16,
    /// The producer id and epoch before the last bump: a producer retrying its
    /// InitProducerId (KIP-360) after the bump's response was lost is recognised by them.
    #[serde(default)]
    pub last_producer_id: Option<i64>,
    #[serde(default)]
    pub last_epoch: Option<i16>,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    /// Consumer groups whose offsets the transaction commits (AddOffsetsToTxn).
    pub groups: BTreeSet<String>,
    /// When the ongoing transaction started (its first AddPartitions/AddOffsets).
    pub started_ms: Millis,
    pub updated_ms: Millis,
}

/// The producer a request says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    pub producer_id: i64,
    pub epoch: i16,
}

/// What InitProducerId needs done next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitStep {
    /// Store this record and answer with its id and epoch.
    Store(TxnRecord),
    /// A producer id must be allocated first: call again with it.
    NeedsId,
    /// A transaction is open: abort it with this record (PrepareAbort, epoch bumped), write
    /// its markers, complete it, then call again.
    AbortFirst(TxnRecord),
    /// A transaction is between prepare and complete: finish it, then call again.
    Complete,
}

/// Epochs stop below i16::MAX: a producer whose epoch would reach it gets a new id.
const MAX_EPOCH: i16 = i16::MAX - 1;

/// InitProducerId with a transactional id. `producer`: the id and epoch the producer has
/// (KIP-360), if any; `fresh_id`: a newly allocated id, when [`InitStep::NeedsId`] asked.
pub fn init(
    current: Option<&TxnRecord>,
    timeout_ms: i32,
    producer: Option<ProducerIdentity>,
    fresh_id: Option<i64>,
    now: Millis,
) -> TxnResult<InitStep> {
    let Some(cur) = current else {
        if producer.is_some() {
            // A producer that had an id for a transactional id this coordinator does not
            // know: its state is gone (Kafka answers the same).
            return Err(TxnError::InvalidProducerIdMapping);
        }
        return Ok(match fresh_id {
            None => InitStep::NeedsId,
            Some(id) => InitStep::Store(empty(id, 0, None, timeout_ms, now)),
        });
    };
    if let Some(p) = producer {
        let retry = cur.last_producer_id == Some(p.producer_id) && cur.last_epoch == Some(p.epoch);
        let same = cur.producer_id == p.producer_id && cur.epoch == p.epoch;
        if retry && cur.state == TxnState::Empty {
            // The bump already happened; its answer was lost.
            return Ok(InitStep::Store(cur.clone()));
        }
        if !same {
            return Err(TxnError::ProducerFenced {
                producer_id: p.producer_id,
                epoch: p.epoch,
            });
        }
    }
    match cur.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => return Ok(InitStep::Complete),
        TxnState::Ongoing => return Ok(InitStep::AbortFirst(fence_abort(cur, now)?)),
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {}
    }
    if cur.epoch >= MAX_EPOCH {
        return Ok(match fresh_id {
            None => InitStep::NeedsId,
            Some(id) => InitStep::Store(empty(
                id,
                0,
                Some((cur.producer_id, cur.epoch)),
                timeout_ms,
                now,
            )),
        });
    }
    Ok(InitStep::Store(empty(
        cur.producer_id,
        cur.epoch + 1,
        Some((cur.producer_id, cur.epoch)),
        timeout_ms,
        now,
    )))
}

fn empty(
    producer_id: i64,
    epoch: i16,
    last: Option<(i64, i16)>,
    timeout_ms: i32,
    now: Millis,
) -> TxnRecord {
    TxnRecord {
        producer_id,
        epoch,
        last_producer_id: last.map(|l| l.0),
        last_epoch: last.map(|l| l.1),
        timeout_ms,
        state: TxnState::Empty,
        partitions: BTreeSet::new(),
        groups: BTreeSet::new(),
        started_ms: now,
        updated_ms: now,
    }
}

/// The open transaction aborted by the coordinator (a newer producer or a timeout): the
/// epoch is bumped, so that the producer that opened it is fenced, and its markers carry
/// the new epoch.
pub fn fence_abort(cur: &TxnRecord, now: Millis) -> TxnResult<TxnRecord> {
    if cur.state != TxnState::Ongoing {
        return Err(TxnError::InvalidTxnState {
            state: cur.state,
            action: "abort",
        });
    }
    let mut next = cur.clone();
    if cur.epoch < MAX_EPOCH {
        next.epoch += 1;
        next.last_producer_id = Some(cur.producer_id);
        next.last_epoch = Some(cur.epoch);
    }
    next.state = TxnState::PrepareAbort;
    next.updated_ms = now;
    Ok(next)
}

/// Checks that a request comes from the transactional id's current producer.
pub fn check_producer(current: Option<&TxnRecord>, p: ProducerIdentity) -> TxnResult<&TxnRecord> {
    let Some(cur) = current else {
        return Err(TxnError::InvalidProducerIdMapping);
    };
    if cur.producer_id != p.producer_id {
        return Err(TxnError::InvalidProducerIdMapping);
    }
    if cur.epoch != p.epoch {
        return Err(TxnError::ProducerFenced {
            producer_id: p.producer_id,
            epoch: p.epoch,
        });
    }
    Ok(cur)
}

/// AddPartitionsToTxn / AddOffsetsToTxn: the record with the partitions and groups added
/// (None: nothing changed, nothing to write).
pub fn add(
    current: Option<&TxnRecord>,
    p: ProducerIdentity,
    partitions: &[TxnPartition],
    groups: &[String],
    now: Millis,
) -> TxnResult<Option<TxnRecord>> {
    let cur = check_producer(current, p)?;
    if cur.state.is_prepare() {
        return Err(TxnError::ConcurrentTransactions);
    }
    let mut next = cur.clone();
    if cur.state != TxnState::Ongoing {
        next.state = TxnState::Ongoing;
        next.partitions.clear();
        next.groups.clear();
        next.started_ms = now;
    }
    next.partitions.extend(partitions.iter().cloned());
    next.groups.extend(groups.iter().cloned());
    if next == *cur {
        return Ok(None);
    }
    next.updated_ms = now;
    Ok(Some(next))
}

/// What EndTxn needs done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndStep {
    /// Store this Prepare* record, write the markers, complete.
    Prepare(TxnRecord),
    /// The transaction already ended this way (a retried EndTxn): answer success.
    Done,
}

pub fn end(
    current: Option<&TxnRecord>,
    p: ProducerIdentity,
    commit: bool,
    now: Millis,
) -> TxnResult<EndStep> {
    let cur = check_producer(current, p)?;
    let action = if commit { "commit" } else { "abort" };
    match (cur.state, commit) {
        (TxnState::Ongoing, _) => {
            let mut next = cur.clone();
            next.state = if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            };
            next.updated_ms = now;
            Ok(EndStep::Prepare(next))
        }
        (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
            Err(TxnError::ConcurrentTransactions)
        }
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(EndStep::Done),
        (state, _) => Err(TxnError::InvalidTxnState { state, action }),
    }
}

/// The record once the markers of its Prepare* state are written.
pub fn complete(prepared: &TxnRecord, now: Millis) -> TxnRecord {
    let mut next = prepared.clone();
    next.state = match prepared.state {
        TxnState::PrepareCommit => TxnState::CompleteCommit,
        TxnState::PrepareAbort => TxnState::CompleteAbort,
        other => other,
    };
    next.partitions.clear();
    next.groups.clear();
    next.updated_ms = now;
    next
}

/// Whether an ongoing transaction has outlived its timeout.
pub fn expired(record: &TxnRecord, now: Millis) -> bool {
    record.state == TxnState::Ongoing && now - record.started_ms > Millis::from(record.timeout_ms)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
