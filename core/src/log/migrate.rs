//! Conversion of the first release's metadata layout, once, at start-up.
//!
//! That release kept, per partition, `partitions/<topic>/<p>` (log start and end, JSON), one
//! `chunks/<topic>/<p>/<base>` per flush chunk or segment (JSON) and `producers/<topic>/<p>`
//! (JSON). A store it wrote becomes checkpoints and segment keys: the segments keep their
//! objects; the unmerged chunks and the producer states go into one checkpoint object; each
//! partition's checkpoint is written in one transaction with the deletion of its old keys,
//! comparing that neither changed meanwhile (another broker migrating at the same time
//! loses the compare and finds the work done). Objects are not touched.

use std::collections::BTreeMap;

use super::producers::ProducerStates;
use super::state::{ChunkRecord, LeaderRecord, PartitionRecord};
use super::Shared;
use crate::checkpoint_format::{CheckpointObjectBuilder, Section};
use crate::error::Result;
use crate::ports::metadata::decode_json;
use crate::ports::{Compare, PutMode, Txn, TxnOp};
use crate::schema::{keys, Checkpoint, SectionRef, SegmentRecord, Tail};
use crate::types::{BrokerId, PartitionKey};

/// One partition in the old layout.
#[derive(Default)]
struct Legacy {
    record: Option<(PartitionRecord, i64)>,
    chunks: Vec<ChunkRecord>,
    producers: Option<(ProducerStates, String)>,
}

impl Shared {
    /// Converts partitions kept in the first release's layout; returns how many.
    pub(super) async fn migrate_legacy(&self) -> Result<usize> {
        let records = self.meta.range(&keys::legacy::partitions_prefix()).await?;
        if records.kvs.is_empty() {
            return Ok(0);
        }
        let chunks = self.meta.range(&keys::legacy::chunks_prefix()).await?;
        let producers = self.meta.range(&keys::legacy::producers_prefix()).await?;
        let mut all: BTreeMap<PartitionKey, Legacy> = BTreeMap::new();
        for kv in &records.kvs {
            if let Some(p) = legacy_partition(&kv.key, "partitions/") {
                all.entry(p).or_default().record = Some((decode_json(kv)?, kv.mod_revision));
            }
        }
        for kv in &chunks.kvs {
            if let Some((p, _)) = legacy_chunk(&kv.key) {
                let entry = all.entry(p).or_default();
                entry.chunks.push(decode_json(kv)?);
            }
        }
        for kv in &producers.kvs {
            if let Some(p) = legacy_partition(&kv.key, "producers/") {
                all.entry(p).or_default().producers = Some((decode_json(kv)?, kv.key.clone()));
            }
        }
        let mut builder = CheckpointObjectBuilder::new(self.config.broker_id);
        let mut placed = BTreeMap::new();
        for (p, legacy) in all.iter_mut() {
            legacy.chunks.sort_by_key(|c| c.base_offset);
            let section = Section {
                chunks: legacy
                    .chunks
                    .iter()
                    .filter(|c| c.segment.is_none())
                    .cloned()
                    .collect(),
                producers: legacy
                    .producers
                    .as_ref()
                    .map(|(s, _)| s.clone())
                    .unwrap_or_default(),
            };
            if !section.chunks.is_empty() || !section.producers.is_empty() {
                placed.insert(*p, builder.add(*p, &section));
            }
        }
        let object = keys::checkpoint_object(self.config.broker_id, uuid::Uuid::now_v7());
        if !builder.is_empty() {
            let (bytes, _) = builder.finish();
            self.store.put(&object, bytes, PutMode::Create).await?;
        }
        let mut migrated = 0;
        for (p, legacy) in all {
            let Some((record, record_revision)) = legacy.record else {
                // Chunks without a partition record: left by a deleted topic; the orphan
                // cleanup removes them with the topic's other keys.
                continue;
            };
            // Segments first: a crash before the checkpoint leaves the old keys, and the next
            // start does it all again.
            for c in legacy.chunks.iter().filter(|c| c.segment.is_some()) {
                self.meta
                    .txn(Txn::new().then(TxnOp::Put {
                        key: keys::segment(p, c.base_offset),
                        value: SegmentRecord::encode(c),
                        lease: None,
                    }))
                    .await?;
            }
            let epoch = match self.meta.get(&keys::leader(p)).await? {
                Some(kv) => decode_json::<LeaderRecord>(&kv)?.leader_epoch,
                None => Default::default(),
            };
            let checkpoint = Checkpoint {
                leader_epoch: epoch,
                log_start_offset: record.log_start_offset,
                log_end_offset: record.log_end_offset,
                // No flush record follows it.
                tail: Tail {
                    broker: BrokerId(-1),
                    incarnation: 0,
                    after: 0,
                },
                section: placed.get(&p).map(|s| SectionRef {
                    object: object.clone(),
                    position: s.position,
                    length: s.length,
                    crc: s.crc,
                }),
            };
            let legacy_key = format!(
                "{}{}/{:05}",
                keys::legacy::partitions_prefix(),
                p.topic,
                p.partition.0
            );
            let mut txn = Txn::new()
                .when(Compare::ModRevision {
                    key: keys::checkpoint(p),
                    revision: 0,
                })
                .when(Compare::ModRevision {
                    key: legacy_key.clone(),
                    revision: record_revision,
                })
                .then(TxnOp::Put {
                    key: keys::checkpoint(p),
                    value: checkpoint.encode(),
                    lease: None,
                })
                .then(TxnOp::Delete { key: legacy_key })
                .then(TxnOp::DeletePrefix {
                    prefix: format!(
                        "{}{}/{:05}/",
                        keys::legacy::chunks_prefix(),
                        p.topic,
                        p.partition.0
                    ),
                });
            if let Some((_, key)) = legacy.producers {
                txn = txn.then(TxnOp::Delete { key });
            }
            if self.meta.txn(txn).await?.succeeded {
                migrated += 1;
            }
        }
        if migrated > 0 {
            tracing::info!(
                partitions = migrated,
                "converted the first release's metadata layout to checkpoints"
            );
        }
        Ok(migrated)
    }
}

fn legacy_partition(key: &str, kind: &str) -> Option<PartitionKey> {
    keys::parse_topic_partition(key.strip_prefix(keys::ROOT)?.strip_prefix(kind)?)
}

fn legacy_chunk(key: &str) -> Option<(PartitionKey, u64)> {
    let rest = key.strip_prefix(keys::ROOT)?.strip_prefix("chunks/")?;
    let (partition, base) = rest.rsplit_once('/')?;
    Some((keys::parse_topic_partition(partition)?, base.parse().ok()?))
}
