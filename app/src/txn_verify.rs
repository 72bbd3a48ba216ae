//! Transaction verification on the produce path (KIP-890 part 1) where another broker
//! coordinates the transactional id: before the first transactional batch of a producer
//! (id and epoch) is appended to a partition this broker leads, the coordinator is asked
//! whether the partition is in the producer's ongoing transaction (AddPartitionsToTxn v4,
//! `verify_only`), and the answer is kept until the transaction's marker is written into
//! the partition. A partition not in the transaction is refused (INVALID_TXN_STATE), so a
//! late batch of a transaction that ended, or of a producer that never added the
//! partition, cannot open a transaction no coordinator would ever end. A coordinator that
//! cannot answer now makes the batch fail with a retriable error (NOT_ENOUGH_REPLICAS, as
//! Kafka answers). Where this broker coordinates the id, `TxnCoordinator::verify_now`
//! answers instead, without a request.

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, ProduceRequest, ProducerId};
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use kafscale_core::batch;
use kafscale_core::group::{keys, GroupId};
use kafscale_core::txn::ProducerIdentity;
use kafscale_core::{LeaderEpoch, PartitionId, PartitionKey};

use crate::cli::client::topic_name;
use crate::context::Context;
use crate::errors::{error_name, RequestError};

/// AddPartitionsToTxn v4: the first version brokers send, with `verify_only`.
const VERIFY_VERSION: i16 = 4;
/// Verified transactions kept at most; beyond, all are forgotten (and asked again).
const MAX_VERIFIED: usize = 100_000;

/// What the verification of a produce request refused, by (topic, partition); each entry is
/// taken by the staging of that partition.
pub type Verdicts = HashMap<(String, i32), RequestError>;

/// Transactions verified with their coordinator, by partition and producer id: the leader
/// epoch of the partition then (a partition that moved away and back is asked again) and
/// the producer epoch. A marker for the producer in the partition forgets it.
#[derive(Debug, Default)]
pub struct Verified {
    entries: Mutex<HashMap<(PartitionKey, i64), (LeaderEpoch, i16)>>,
}

impl Verified {
    fn holds(&self, key: PartitionKey, leader_epoch: LeaderEpoch, p: ProducerIdentity) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(&(key, p.producer_id)) == Some(&(leader_epoch, p.epoch))
    }

    fn insert(&self, key: PartitionKey, leader_epoch: LeaderEpoch, p: ProducerIdentity) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_VERIFIED {
            entries.clear();
        }
        entries.insert((key, p.producer_id), (leader_epoch, p.epoch));
    }

    /// A marker of the producer is written into the partition: its transaction there ended,
    /// and the next one is verified again.
    pub fn ended(&self, key: PartitionKey, producer_id: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&(key, producer_id));
    }
}

/// A partition to verify.
struct Pending {
    topic: String,
    partition: i32,
    key: PartitionKey,
    leader_epoch: LeaderEpoch,
}

/// Verifies with the transaction's coordinator, when it is another broker, the
/// transactional batches of `req` for partitions this broker leads that are not verified
/// yet; returns the refusals.
pub async fn verify(ctx: &Context, req: &ProduceRequest) -> Verdicts {
    let mut verdicts = Verdicts::new();
    let Some(id) = req.transactional_id.as_ref().map(|t| t.as_str()) else {
        return verdicts;
    };
    if ctx.txns.check_coordinator(id).is_ok() {
        return verdicts;
    }
    let me = ctx.log.broker_id();
    let mut pending: BTreeMap<(i64, i16), Vec<Pending>> = BTreeMap::new();
    for t in &req.topic_data {
        let Some(record) = ctx.log.topic(t.name.0.as_str()) else {
            continue;
        };
        for p in &t.partition_data {
            let Some(header) = p.records.as_ref().and_then(|r| batch::peek_header(r).ok()) else {
                continue;
            };
            if !header.is_transactional() || header.is_control() {
                continue;
            }
            let key = PartitionKey {
                topic: record.id,
                partition: PartitionId(p.index),
            };
            // Led elsewhere or unknown: the append answers why.
            let Some(info) = ctx
                .log
                .partition_info(key)
                .ok()
                .filter(|i| i.leader == Some(me))
            else {
                continue;
            };
            let producer = ProducerIdentity {
                producer_id: header.producer_id,
                epoch: header.producer_epoch,
            };
            if ctx.verified.holds(key, info.leader_epoch, producer) {
                continue;
            }
            pending
                .entry((producer.producer_id, producer.epoch))
                .or_default()
                .push(Pending {
                    topic: t.name.0.to_string(),
                    partition: p.index,
                    key,
                    leader_epoch: info.leader_epoch,
                });
        }
    }
    if pending.is_empty() {
        return verdicts;
    }
    let unverified = |verdicts: &mut Verdicts, reason: String| {
        tracing::debug!(transactional_id = id, %reason, "cannot verify the transaction now");
        for p in pending.values().flatten() {
            let e = RequestError::TxnUnverified(reason.clone());
            verdicts.insert((p.topic.clone(), p.partition), e);
        }
    };
    let shard = keys::shard_of(&GroupId(id.to_owned()));
    let owner = ctx
        .cluster
        .shard_owner(shard.0)
        .map(|b| b.id)
        .filter(|b| *b != me);
    let Some(owner) = owner else {
        unverified(&mut verdicts, "its coordinator is not known now".to_owned());
        return verdicts;
    };
    let request = verify_request(id, &pending);
    let resp = match ctx.peers.call(owner.0, VERIFY_VERSION, &request).await {
        Ok(resp) if resp.error_code == 0 => resp,
        Ok(resp) => {
            let reason = format!("its coordinator answered {}", error_name(resp.error_code));
            tracing::warn!(transactional_id = id, broker = owner.0, %reason, "transaction verification refused");
            unverified(&mut verdicts, reason);
            return verdicts;
        }
        Err(e) => {
            unverified(&mut verdicts, e.to_string());
            return verdicts;
        }
    };
    let mut codes: HashMap<(String, i32), i16> = HashMap::new();
    for t in resp
        .results_by_transaction
        .iter()
        .flat_map(|r| &r.topic_results)
    {
        for p in &t.results_by_partition {
            codes.insert(
                (t.name.0.to_string(), p.partition_index),
                p.partition_error_code,
            );
        }
    }
    for ((producer_id, epoch), parts) in &pending {
        let producer = ProducerIdentity {
            producer_id: *producer_id,
            epoch: *epoch,
        };
        for p in parts {
            let code = codes.get(&(p.topic.clone(), p.partition)).copied();
            match code.map(refusal) {
                Some(None) => ctx.verified.insert(p.key, p.leader_epoch, producer),
                Some(Some(e)) => {
                    verdicts.insert((p.topic.clone(), p.partition), e);
                }
                None => {
                    let e = RequestError::TxnUnverified("its coordinator did not answer".into());
                    verdicts.insert((p.topic.clone(), p.partition), e);
                }
            }
        }
    }
    verdicts
}

/// One verify-only transaction per producer (id and epoch) of the request.
fn verify_request(
    id: &str,
    pending: &BTreeMap<(i64, i16), Vec<Pending>>,
) -> AddPartitionsToTxnRequest {
    let mut req = AddPartitionsToTxnRequest::default();
    for ((producer_id, epoch), parts) in pending {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for p in parts {
            by_topic.entry(&p.topic).or_default().push(p.partition);
        }
        let mut txn = AddPartitionsToTxnTransaction::default();
        txn.transactional_id = kafka_protocol::messages::TransactionalId(
            kafka_protocol::protocol::StrBytes::from_string(id.to_owned()),
        );
        txn.producer_id = ProducerId(*producer_id);
        txn.producer_epoch = *epoch;
        txn.verify_only = true;
        txn.topics = by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                let mut t = AddPartitionsToTxnTopic::default();
                t.name = topic_name(topic);
                t.partitions = partitions;
                t
            })
            .collect();
        req.transactions.push(txn);
    }
    req
}

/// The coordinator's answers that say it cannot tell yet.
const TRANSIENT: [ResponseError; 6] = [
    ResponseError::ConcurrentTransactions,
    ResponseError::CoordinatorLoadInProgress,
    ResponseError::CoordinatorNotAvailable,
    ResponseError::NotCoordinator,
    ResponseError::NetworkException,
    ResponseError::RequestTimedOut,
];

/// What the coordinator's code for a partition means for the batch: None, verified.
/// Its transient errors become a retriable one the producer knows (Kafka answers
/// NOT_ENOUGH_REPLICAS), its refusals of the producer are passed on.
fn refusal(code: i16) -> Option<RequestError> {
    use ResponseError as R;
    if code == 0 {
        None
    } else if code == R::InvalidTxnState.code() {
        Some(RequestError::PartitionNotInTransaction)
    } else if TRANSIENT.iter().any(|r| r.code() == code) {
        Some(RequestError::TxnUnverified(format!(
            "its coordinator answered {}",
            error_name(code)
        )))
    } else {
        Some(RequestError::RefusedByCoordinator(code))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kafscale_core::TopicId;

    #[test]
    fn the_coordinators_answers_become_the_batchs_codes() {
        use ResponseError as R;
        assert!(refusal(0).is_none());
        let code = |c: R| refusal(c.code()).unwrap().code();
        assert_eq!(code(R::InvalidTxnState), R::InvalidTxnState.code());
        for transient in TRANSIENT {
            assert_eq!(
                code(transient),
                R::NotEnoughReplicas.code(),
                "{transient:?}"
            );
        }
        for passed_on in [
            R::ProducerFenced,
            R::InvalidProducerEpoch,
            R::InvalidProducerIdMapping,
        ] {
            assert_eq!(code(passed_on), passed_on.code());
        }
    }

    #[test]
    fn a_marker_or_a_new_leader_epoch_forgets_a_verification() {
        let verified = Verified::default();
        let key = PartitionKey {
            topic: TopicId(uuid::Uuid::nil()),
            partition: PartitionId(3),
        };
        let producer = ProducerIdentity {
            producer_id: 7,
            epoch: 2,
        };
        verified.insert(key, LeaderEpoch(5), producer);
        assert!(verified.holds(key, LeaderEpoch(5), producer));
        assert!(!verified.holds(key, LeaderEpoch(6), producer));
        let next = ProducerIdentity {
            epoch: 3,
            ..producer
        };
        assert!(!verified.holds(key, LeaderEpoch(5), next));
        verified.ended(key, producer.producer_id);
        assert!(!verified.holds(key, LeaderEpoch(5), producer));
    }
}
