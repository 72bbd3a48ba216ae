#![allow(clippy::unwrap_used)]
use super::*;

fn tp(topic: &str, partition: i32) -> TxnPartition {
    TxnPartition {
        topic: topic.into(),
        partition,
    }
}

fn stored(step: InitStep) -> TxnRecord {
    match step {
        InitStep::Store(r) => r,
        other => panic!("expected Store, got {other:?}"),
    }
}

fn me(r: &TxnRecord) -> ProducerIdentity {
    ProducerIdentity {
        producer_id: r.producer_id,
        epoch: r.epoch,
    }
}

#[test]
fn a_new_id_needs_a_producer_id_then_starts_empty_at_epoch_0() {
    assert_eq!(init(None, 1000, None, None, 5).unwrap(), InitStep::NeedsId);
    let r = stored(init(None, 1000, None, Some(7), 5).unwrap());
    assert_eq!((r.producer_id, r.epoch, r.state), (7, 0, TxnState::Empty));
    // A producer claiming an id for an unknown transactional id.
    let p = ProducerIdentity {
        producer_id: 7,
        epoch: 0,
    };
    assert!(matches!(
        init(None, 1000, Some(p), None, 5),
        Err(TxnError::InvalidProducerIdMapping)
    ));
}

#[test]
fn init_again_bumps_the_epoch_and_fences_the_older_producer() {
    let r0 = stored(init(None, 1000, None, Some(7), 0).unwrap());
    let r1 = stored(init(Some(&r0), 1000, None, None, 1).unwrap());
    assert_eq!((r1.producer_id, r1.epoch), (7, 1));
    // The older producer is fenced on every request.
    let err = add(Some(&r1), me(&r0), &[tp("t", 0)], &[], 2).unwrap_err();
    assert!(matches!(err, TxnError::ProducerFenced { epoch: 0, .. }));
    assert!(matches!(
        end(Some(&r1), me(&r0), true, 2),
        Err(TxnError::ProducerFenced { .. })
    ));
    // Another producer id is not this transactional id's.
    let stranger = ProducerIdentity {
        producer_id: 8,
        epoch: 1,
    };
    assert!(matches!(
        add(Some(&r1), stranger, &[], &[], 2),
        Err(TxnError::InvalidProducerIdMapping)
    ));
}

#[test]
fn kip_360_recovery_bumps_a_known_producer_and_recognises_a_retry() {
    let r0 = stored(init(None, 1000, None, Some(7), 0).unwrap());
    let r1 = stored(init(Some(&r0), 1000, Some(me(&r0)), None, 1).unwrap());
    assert_eq!(r1.epoch, 1);
    // The same request again (its answer was lost): the same answer, nothing bumped.
    let again = stored(init(Some(&r1), 1000, Some(me(&r0)), None, 2).unwrap());
    assert_eq!(again, r1);
    // An epoch that is neither current nor the last one is fenced.
    let old = ProducerIdentity {
        producer_id: 7,
        epoch: 5,
    };
    assert!(matches!(
        init(Some(&r1), 1000, Some(old), None, 2),
        Err(TxnError::ProducerFenced { .. })
    ));
}

#[test]
fn an_exhausted_epoch_gets_a_new_producer_id() {
    let mut r = stored(init(None, 1000, None, Some(7), 0).unwrap());
    r.epoch = i16::MAX - 1;
    assert_eq!(
        init(Some(&r), 1000, None, None, 1).unwrap(),
        InitStep::NeedsId
    );
    let next = stored(init(Some(&r), 1000, None, Some(9), 1).unwrap());
    assert_eq!((next.producer_id, next.epoch), (9, 0));
    assert_eq!(next.last_producer_id, Some(7));
}

#[test]
fn a_transaction_runs_ongoing_prepare_complete() {
    let r = stored(init(None, 1000, None, Some(7), 0).unwrap());
    let p = me(&r);
    let r = add(Some(&r), p, &[tp("t", 0)], &[], 10).unwrap().unwrap();
    assert_eq!((r.state, r.started_ms), (TxnState::Ongoing, 10));
    // Adding what is there already writes nothing.
    assert_eq!(add(Some(&r), p, &[tp("t", 0)], &[], 11).unwrap(), None);
    let r = add(Some(&r), p, &[tp("t", 1)], &["g".into()], 12)
        .unwrap()
        .unwrap();
    assert_eq!(r.partitions.len(), 2);
    assert_eq!(r.started_ms, 10);
    let EndStep::Prepare(prepared) = end(Some(&r), p, true, 13).unwrap() else {
        panic!("expected a prepare");
    };
    assert_eq!(prepared.state, TxnState::PrepareCommit);
    // While prepared: adds and a second EndTxn wait, the opposite outcome is refused.
    assert!(matches!(
        add(Some(&prepared), p, &[tp("t", 2)], &[], 14),
        Err(TxnError::ConcurrentTransactions)
    ));
    assert!(matches!(
        end(Some(&prepared), p, true, 14),
        Err(TxnError::ConcurrentTransactions)
    ));
    assert!(matches!(
        end(Some(&prepared), p, false, 14),
        Err(TxnError::InvalidTxnState { .. })
    ));
    let done = complete(&prepared, 15);
    assert_eq!(done.state, TxnState::CompleteCommit);
    assert!(done.partitions.is_empty() && done.groups.is_empty());
    // A retried EndTxn of the finished commit succeeds; an abort of it is refused.
    assert_eq!(end(Some(&done), p, true, 16).unwrap(), EndStep::Done);
    assert!(end(Some(&done), p, false, 16).is_err());
    // The next transaction starts afresh.
    let next = add(Some(&done), p, &[tp("u", 0)], &[], 20)
        .unwrap()
        .unwrap();
    assert_eq!(next.partitions.len(), 1);
    assert_eq!(next.started_ms, 20);
}

#[test]
fn ending_an_empty_transaction_is_an_invalid_state() {
    let r = stored(init(None, 1000, None, Some(7), 0).unwrap());
    assert!(matches!(
        end(Some(&r), me(&r), true, 1),
        Err(TxnError::InvalidTxnState {
            state: TxnState::Empty,
            ..
        })
    ));
}

#[test]
fn a_newer_producer_aborts_the_open_transaction_with_a_bumped_epoch() {
    let r = stored(init(None, 1000, None, Some(7), 0).unwrap());
    let r = add(Some(&r), me(&r), &[tp("t", 0)], &[], 1)
        .unwrap()
        .unwrap();
    let InitStep::AbortFirst(abort) = init(Some(&r), 1000, None, None, 2).unwrap() else {
        panic!("expected an abort first");
    };
    assert_eq!((abort.state, abort.epoch), (TxnState::PrepareAbort, 1));
    assert_eq!(
        init(Some(&abort), 1000, None, None, 3).unwrap(),
        InitStep::Complete
    );
    let done = complete(&abort, 4);
    let next = stored(init(Some(&done), 1000, None, None, 5).unwrap());
    assert_eq!(next.epoch, 2);
}

#[test]
fn expiry_counts_from_the_start_of_the_transaction() {
    let r = stored(init(None, 1000, None, Some(7), 0).unwrap());
    assert!(!expired(&r, 1_000_000));
    let r = add(Some(&r), me(&r), &[tp("t", 0)], &[], 100)
        .unwrap()
        .unwrap();
    assert!(!expired(&r, 1100));
    assert!(expired(&r, 1101));
    let abort = fence_abort(&r, 1101).unwrap();
    assert_eq!(abort.epoch, 1);
    assert!(!expired(&abort, 5000));
}
