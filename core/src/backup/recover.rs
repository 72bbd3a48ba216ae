//! Re-attaching what was written after a backup: after [`Backup::restore`], the flush
//! objects the restored metadata does not reference are read, [`reattach::decide`] picks
//! each partition's continuation, and flush records naming those chunks are written after
//! the partition's checkpoint, as the lost ones were. A broker taking the partition over then
//! reads them like any flush records (the object indexes give it the producers' sequences
//! too). Leader epochs and the producer id counter are raised above what the attached
//! batches carry, so that clients see epochs grow and no producer id is handed out twice.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

use super::reattach::{self, BatchMark, Decision, Found, Reason, Restored};
use super::{Backup, BackupError, Result, RESTORE_BATCH};
use crate::log::producer_ids;
use crate::log::state::LeaderRecord;
use crate::object_format;
use crate::ports::metadata::{decode_json, encode_json};
use crate::ports::{Compare, KeyValue, MetadataStore, ObjectStore, Txn, TxnOp};
use crate::schema::{keys, Checkpoint, FlushPart, FlushRecord, Tail};
use crate::topic::TopicRecord;
use crate::types::{BrokerId, LeaderEpoch, Offset, PartitionKey, TopicId};

/// Objects read at once.
const READS_AT_ONCE: usize = 16;

/// What was brought back after the backup, and what was not and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Recovery {
    /// Objects read: written after the backup or otherwise not referenced by it.
    pub objects_read: usize,
    pub reattached: Vec<Reattached>,
    pub not_reattached: Vec<NotReattached>,
    /// Chunks of topics (or partitions) the backup does not know.
    pub unknown: Vec<NotReattached>,
    /// Objects that are not flush objects (merged segments) or cannot be read.
    pub unreadable: Vec<Unreadable>,
    /// Chunks that hold only offsets the backup already has.
    pub already_restored: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reattached {
    pub topic: String,
    pub partition: i32,
    /// The restored end: the first offset attached.
    pub from: i64,
    /// The end after attaching.
    pub to: i64,
    /// Offsets below this are proven committed (a later leader took over above them);
    /// from it to `to` they are as found: their producer may have been told they failed.
    pub confirmed_to: i64,
    pub chunks: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotReattached {
    /// The topic's name, or its id when the backup does not know it.
    pub topic: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub object: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    pub object: String,
    pub reason: String,
}

/// The restored metadata, as the backup holds it.
struct State {
    topics: HashMap<TopicId, (String, i32)>,
    checkpoints: HashMap<PartitionKey, Checkpoint>,
    /// The highest flush sequence of each (broker, incarnation).
    last_seq: HashMap<(BrokerId, u64), u64>,
    ends: HashMap<PartitionKey, Offset>,
    leaders: HashMap<PartitionKey, LeaderRecord>,
}

impl State {
    fn of(backup: &Backup) -> Result<State> {
        let kv = |(key, value): &(String, Bytes)| KeyValue {
            key: key.clone(),
            value: value.clone(),
            create_revision: 0,
            mod_revision: 0,
            lease: None,
        };
        let corrupt =
            |key: &str, e: &dyn std::fmt::Display| BackupError::References(format!("{key}: {e}"));
        let mut s = State {
            topics: HashMap::new(),
            checkpoints: HashMap::new(),
            last_seq: HashMap::new(),
            ends: HashMap::new(),
            leaders: HashMap::new(),
        };
        let mut flushes = Vec::new();
        for entry @ (key, value) in &backup.entries {
            if key.starts_with(&keys::topics_prefix()) {
                let t: TopicRecord = decode_json(&kv(entry)).map_err(|e| corrupt(key, &e))?;
                s.topics.insert(t.id, (t.name, t.partitions));
            } else if let Some(p) = keys::parse_checkpoint(key) {
                let c = Checkpoint::decode(value).map_err(|e| corrupt(key, &e))?;
                s.ends.insert(p, c.log_end_offset);
                s.checkpoints.insert(p, c);
            } else if let Some(p) = keys::parse_leader(key) {
                let l = decode_json(&kv(entry)).map_err(|e| corrupt(key, &e))?;
                s.leaders.insert(p, l);
            } else if let Some((broker, incarnation, seq)) = keys::parse_flush(key) {
                let last = s.last_seq.entry((broker, incarnation)).or_default();
                *last = (*last).max(seq);
                if !value.is_empty() {
                    let r = FlushRecord::decode(value).map_err(|e| corrupt(key, &e))?;
                    flushes.push((broker, incarnation, seq, r));
                }
            }
        }
        // A partition's end: its checkpoint, then the flush records after its tail.
        for (broker, incarnation, seq, r) in flushes {
            for part in &r.parts {
                let Some(c) = s.checkpoints.get(&part.partition) else {
                    continue;
                };
                let t = c.tail;
                if (t.broker, t.incarnation) == (broker, incarnation) && seq > t.after {
                    let end = s.ends.entry(part.partition).or_default();
                    *end = (*end).max(part.end);
                }
            }
        }
        Ok(s)
    }

    fn restored(&self, p: PartitionKey) -> Restored {
        Restored {
            end: self.ends.get(&p).copied().unwrap_or_default(),
            epoch: self.checkpoints.get(&p).map(|c| c.leader_epoch),
        }
    }

    fn name(&self, p: PartitionKey) -> Option<&str> {
        self.topics
            .get(&p.topic)
            .filter(|(_, n)| p.partition.0 < *n)
            .map(|(name, _)| name.as_str())
    }
}

impl Backup {
    /// Re-attaches the records written after this backup that the bucket holds, into `meta`
    /// where this backup was just restored (before any broker starts on it).
    pub async fn reattach(
        &self,
        meta: &dyn MetadataStore,
        store: &dyn ObjectStore,
    ) -> Result<Recovery> {
        let state = State::of(self)?;
        let referenced = crate::log::gc::referenced_objects(meta, store)
            .await
            .map_err(|e| BackupError::References(e.to_string()))?;
        let candidates: Vec<String> = store
            .list(keys::DATA_PREFIX)
            .await?
            .into_iter()
            .map(|o| o.key)
            .filter(|k| k.ends_with(".ksf") && !referenced.contains(k))
            .collect();
        let mut recovery = Recovery {
            objects_read: candidates.len(),
            ..Recovery::default()
        };
        let reads = candidates.into_iter().map(|key| async move {
            let bytes = store.get(&key).await;
            (key, bytes)
        });
        let mut reads = futures::stream::iter(reads).buffer_unordered(READS_AT_ONCE);
        let mut found: BTreeMap<PartitionKey, Vec<Found>> = BTreeMap::new();
        while let Some((key, bytes)) = reads.next().await {
            match bytes
                .map_err(|e| e.to_string())
                .and_then(|b| chunks_of(&key, &b))
            {
                Ok(chunks) => {
                    for c in chunks {
                        let p = PartitionKey {
                            topic: c.entry.topic,
                            partition: c.entry.partition,
                        };
                        found.entry(p).or_default().push(c);
                    }
                }
                Err(reason) => recovery.unreadable.push(Unreadable {
                    object: key,
                    reason,
                }),
            }
        }
        recovery.unreadable.sort_by(|a, b| a.object.cmp(&b.object));
        let mut decided = Vec::new();
        for (p, chunks) in found {
            let Some(name) = state.name(p) else {
                recovery.unknown.extend(chunks.into_iter().map(|c| {
                    left(
                        p.topic.to_string(),
                        c,
                        "its topic or partition is not in the backup (created after it, or deleted before it): objects hold a topic's id, not its name or configs",
                    )
                }));
                continue;
            };
            let restored = state.restored(p);
            let d = reattach::decide(restored, chunks);
            recovery.already_restored += d.below;
            for (c, reason) in &d.left {
                recovery
                    .not_reattached
                    .push(left(name.to_owned(), c.clone(), explain(*reason)));
            }
            if !d.taken.is_empty() {
                recovery.reattached.push(Reattached {
                    topic: name.to_owned(),
                    partition: p.partition.0,
                    from: restored.end.0,
                    to: d.end(restored).0,
                    confirmed_to: d.confirmed_end.0,
                    chunks: d.taken.len(),
                });
                decided.push((p, d));
            }
        }
        write(meta, &state, decided).await?;
        Ok(recovery)
    }
}

fn left(topic: String, c: Found, reason: &str) -> NotReattached {
    NotReattached {
        topic,
        partition: c.entry.partition.0,
        first_offset: c.entry.base_offset.0,
        last_offset: c.entry.last_offset.0,
        object: c.object,
        reason: reason.to_owned(),
    }
}

fn explain(reason: Reason) -> &'static str {
    match reason {
        Reason::Fenced => "fenced: a later leader started at or below these offsets, so this flush never committed",
        Reason::Replaced => "replaced: its leader wrote these offsets again later, so this flush failed",
        Reason::Duplicate => "duplicate: another object attached holds the same records",
        Reason::Overlaps => "overlaps: it starts below the end reached and runs past it (only whole chunks are attached)",
        Reason::Gap => "gap: the offsets before it are in no object",
        Reason::Undecided => "undecided: two brokers wrote different records at these offsets and nothing tells which committed",
    }
}

/// A flush object's chunks, each checked against its CRC.
fn chunks_of(key: &str, object: &Bytes) -> std::result::Result<Vec<Found>, String> {
    if object.starts_with(b"KSSG") {
        return Err("a merged segment: not attached (its records are attached from the flush objects it was made of, where the bucket still has them)".into());
    }
    let index = object_format::decode_index(object).map_err(|e| e.to_string())?;
    let created_ms = crate::log::gc::created_ms(key).unwrap_or_default();
    let broker = BrokerId(i32::from_be_bytes([
        object[8], object[9], object[10], object[11],
    ]));
    let index_at = index_position(object);
    let mut out = Vec::new();
    for (i, entry) in index.entries.iter().enumerate() {
        let data = object.slice(entry.position as usize..(entry.range().end as usize));
        object_format::verify_chunk(&data, entry.length, entry.crc).map_err(|e| e.to_string())?;
        let mut batches = Vec::new();
        for b in crate::batch::iter(&data) {
            let (h, raw) = b.map_err(|e| e.to_string())?;
            // The batch's own CRC (of its records), after baseOffset, batchLength,
            // partitionLeaderEpoch and magic; peek_header checked the batch is that long.
            let crc = raw
                .get(17..21)
                .map_or(0, |c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
            batches.push(BatchMark {
                base_offset: Offset(h.base_offset),
                epoch: LeaderEpoch(h.partition_leader_epoch),
                crc,
            });
        }
        let (Some(first), Some(last)) = (batches.first(), batches.last()) else {
            return Err(format!("chunk {i} holds no batch"));
        };
        out.push(Found {
            object: key.to_owned(),
            broker,
            created_ms,
            index: index_at,
            entry: *entry,
            first_epoch: first.epoch,
            last_epoch: last.epoch,
            producers: index
                .producer_batches
                .iter()
                .filter(|b| b.entry as usize == i)
                .copied()
                .collect(),
            batches,
        });
    }
    Ok(out)
}

/// Where a flush object's index lies (position, length), from its footer.
fn index_position(object: &[u8]) -> (u64, u32) {
    let f = &object[object.len() - object_format::FOOTER_LEN..];
    let mut at = [0u8; 8];
    at.copy_from_slice(&f[0..8]);
    (
        u64::from_be_bytes(at),
        u32::from_be_bytes([f[8], f[9], f[10], f[11]]),
    )
}

/// A flush record to write after a partition's checkpoint.
struct Attach {
    tail: (BrokerId, u64),
    record: FlushRecord,
}

/// Writes the flush records of what was decided, the checkpoints of partitions that had none
/// (naming an incarnation no broker has), and raises leader epochs and the producer id counter.
async fn write(
    meta: &dyn MetadataStore,
    state: &State,
    decided: Vec<(PartitionKey, Decision)>,
) -> Result<()> {
    let mut ops: Vec<(Compare, TxnOp)> = Vec::new();
    let put = |key: String, value: Bytes, revision: i64| {
        (
            Compare::ModRevision {
                key: key.clone(),
                revision,
            },
            TxnOp::Put {
                key,
                value,
                lease: None,
            },
        )
    };
    let fresh = (BrokerId(-1), uuid::Uuid::new_v4().as_u64_pair().0);
    let mut chains: BTreeMap<(BrokerId, u64), BTreeMap<PartitionKey, Vec<Found>>> = BTreeMap::new();
    let mut max_producer = None;
    for (p, d) in decided {
        let tail = match state.checkpoints.get(&p) {
            Some(c) => (c.tail.broker, c.tail.incarnation),
            None => {
                let epoch = state
                    .leaders
                    .get(&p)
                    .map(|l| l.leader_epoch)
                    .unwrap_or_default();
                let c = Checkpoint {
                    leader_epoch: epoch,
                    tail: Tail {
                        broker: fresh.0,
                        incarnation: fresh.1,
                        after: 0,
                    },
                    ..Checkpoint::default()
                };
                ops.push(put(keys::checkpoint(p), c.encode(), 0));
                fresh
            }
        };
        let top = d
            .taken
            .iter()
            .map(|c| c.last_epoch)
            .max()
            .unwrap_or_default();
        if let Some(l) = state.leaders.get(&p).filter(|l| l.leader_epoch < top) {
            let key = keys::leader(p);
            let revision = meta.get(&key).await?.map_or(0, |kv| kv.mod_revision);
            let raised = LeaderRecord {
                leader_epoch: top,
                ..*l
            };
            ops.push(put(key, encode_json(&raised), revision));
        }
        for c in &d.taken {
            max_producer = max_producer.max(c.producers.iter().map(|b| b.producer_id).max());
        }
        chains.entry(tail).or_default().insert(p, d.taken);
    }
    for (tail, chains) in chains {
        let after = state
            .checkpoints
            .values()
            .filter(|c| (c.tail.broker, c.tail.incarnation) == tail)
            .map(|c| c.tail.after)
            .max()
            .unwrap_or(0);
        let mut seq = state.last_seq.get(&tail).copied().unwrap_or(0).max(after);
        for a in records(tail, chains) {
            seq += 1;
            ops.push(put(
                keys::flush(a.tail.0, a.tail.1, seq),
                a.record.encode(),
                0,
            ));
        }
    }
    if let Some(top) = max_producer {
        ops.extend(raise_producer_ids(meta, top).await?);
    }
    for batch in ops.chunks(RESTORE_BATCH) {
        let mut txn = Txn::new();
        for (compare, op) in batch {
            txn = txn.when(compare.clone()).then(op.clone());
        }
        if !meta.txn(txn).await?.succeeded {
            return Err(BackupError::Raced);
        }
    }
    Ok(())
}

/// One incarnation's flush records: each names one object and the partitions whose next
/// chunk is in it, so every partition's chunks come in its chain's order; objects are taken
/// oldest first, which groups a flush's partitions into one record as the flush had.
fn records(tail: (BrokerId, u64), chains: BTreeMap<PartitionKey, Vec<Found>>) -> Vec<Attach> {
    let mut heads: BTreeMap<PartitionKey, std::collections::VecDeque<Found>> =
        chains.into_iter().map(|(p, c)| (p, c.into())).collect();
    let mut out = Vec::new();
    while let Some(oldest) = heads
        .values()
        .filter_map(|q| q.front())
        .min_by(|a, b| (a.created_ms, &a.object).cmp(&(b.created_ms, &b.object)))
        .cloned()
    {
        let mut parts = Vec::new();
        for (p, q) in heads.iter_mut() {
            if q.front().is_some_and(|c| c.object == oldest.object) {
                if let Some(c) = q.pop_front() {
                    parts.push(FlushPart {
                        partition: *p,
                        end: c.entry.last_offset.next(),
                    });
                }
            }
        }
        out.push(Attach {
            tail,
            record: FlushRecord {
                object: oldest.object.clone(),
                index_position: oldest.index.0,
                index_length: oldest.index.1,
                created_ms: oldest.created_ms,
                parts,
            },
        });
    }
    out
}

/// Raises the next free producer id above `top` (ids handed out after the backup would
/// otherwise be handed out again).
async fn raise_producer_ids(meta: &dyn MetadataStore, top: i64) -> Result<Vec<(Compare, TxnOp)>> {
    let current = meta.get(&keys::producer_ids()).await?;
    let next = match &current {
        Some(kv) => producer_ids::decode_next(kv)?,
        None => 0,
    };
    if next > top {
        return Ok(Vec::new());
    }
    Ok(vec![(
        Compare::ModRevision {
            key: keys::producer_ids(),
            revision: current.map_or(0, |kv| kv.mod_revision),
        },
        TxnOp::Put {
            key: keys::producer_ids(),
            value: producer_ids::encode_next(top + 1),
            lease: None,
        },
    )])
}
