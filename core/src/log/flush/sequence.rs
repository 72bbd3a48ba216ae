//! The idempotence check of a flush: each idempotent batch's sequence against the producer
//! state after the flushes under way.

use super::{PendingBatch, Reply};
use crate::log::producers::{ProducerStates, SeqCheck};
use crate::log::Appended;
use crate::types::Offset;

/// A partition's pending batches after the idempotence check.
pub(super) struct Sequenced {
    /// To append, in order.
    pub kept: Vec<PendingBatch>,
    /// Retries of batches kept in this same flush: answered with their offset at commit.
    pub in_flush_duplicates: Vec<(Reply, Offset)>,
    /// The producer state once `kept` is committed; `None` when no idempotent producer wrote.
    pub producers: Option<ProducerStates>,
}

/// Checks the sequence of each idempotent batch against the state `before` it (after the
/// flushes under way) and the batches ahead of it: retries of committed batches are
/// answered at once with their offset, out-of-order or fenced batches are refused.
pub(super) fn sequence(
    pending: Vec<PendingBatch>,
    before: ProducerStates,
    committed_end: Offset,
    base: Offset,
    log_start_offset: Offset,
    now: crate::types::Millis,
) -> Sequenced {
    if pending.iter().all(|b| b.header.producer_id < 0) {
        return Sequenced {
            kept: pending,
            in_flush_duplicates: Vec::new(),
            producers: None,
        };
    }
    let mut working = before;
    let mut next = base;
    let mut kept = Vec::with_capacity(pending.len());
    let mut in_flush_duplicates = Vec::new();
    for b in pending {
        match working.check(&b.header) {
            SeqCheck::Append => {
                let role = crate::batch::TxnRole::of(&b.header, &b.batch);
                working.record(&b.header, role, next, now);
                next = next.plus(b.header.offset_count());
                kept.push(b);
            }
            // Committed already: answered now. A retry of a batch in a flush under way
            // is answered when that one has committed (in this flush's turn).
            SeqCheck::Duplicate(at) if at < committed_end => {
                if let Some(reply) = b.reply {
                    let _ = reply.send(Ok(Appended {
                        base_offset: at,
                        log_start_offset,
                    }));
                }
            }
            SeqCheck::Duplicate(at) => in_flush_duplicates.push((b.reply, at)),
            SeqCheck::Reject(e) => {
                tracing::debug!(error = %e, "idempotent batch refused");
                if let Some(reply) = b.reply {
                    let _ = reply.send(Err(e));
                }
            }
        }
    }
    Sequenced {
        kept,
        in_flush_duplicates,
        producers: Some(working),
    }
}
