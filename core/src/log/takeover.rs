//! Taking partitions over: a partition this broker was just given is loaded from its
//! checkpoint and the flush records after it, then checkpointed under this broker's name
//! before it is served.
//!
//! Loads are batched (a broker that dies leaves many partitions at once): the checkpoints of
//! a batch are read per topic, their sections and the indexes of the flush objects after them
//! in parallel, the tail's flush records once per previous leader. The new checkpoints of a
//! batch go into one checkpoint object and a few transactions. Naming this broker in the
//! checkpoint before its first flush of the partition keeps a partition's uncheckpointed
//! data in one broker's flush records, whoever led it before.

use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

use super::maintenance::Snapshot;
use super::producers::{ProducerBatchFields, ProducerStates};
use super::state::{ChunkIndex, ChunkRecord};
use super::{lock, PartitionRecord, Role, Shared};
use crate::checkpoint_format::{self, Section};
use crate::error::{Error, Result};
use crate::object_format::{self, FlushIndex};
use crate::ports::StoreError;
use crate::retry::{Backoff, Retry};
use crate::schema::{self, keys, Checkpoint, FlushRecord, SegmentRecord, Tail};
use crate::types::{BrokerId, PartitionKey, TopicId};

/// Reads of one takeover under way at once (sections, object indexes).
const PARALLEL_READS: usize = 16;
/// From this many partitions of one topic on, a batch reads the topic's keys in one range.
const RANGE_PER_TOPIC: usize = 16;
/// Partitions loaded per batch.
const BATCH: usize = 4096;
/// Waits after failed takeovers in a row: 100 ms, doubling up to 1.6 s.
const TAKEOVER_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(100), Duration::from_millis(1_600));

/// Partitions given to this broker and waiting to be loaded, with the leader record's
/// revision they were given under.
#[derive(Default)]
pub(super) struct Queue {
    waiting: Mutex<BTreeMap<PartitionKey, i64>>,
    /// Wakes the takeover task: a partition was queued.
    wake: Notify,
}

impl Queue {
    /// Takes the first `BATCH` partitions waiting.
    fn take_batch(&self) -> BTreeMap<PartitionKey, i64> {
        let mut queue = lock(&self.waiting);
        let keys: Vec<PartitionKey> = queue.keys().take(BATCH).copied().collect();
        keys.into_iter()
            .filter_map(|k| queue.remove(&k).map(|r| (k, r)))
            .collect()
    }

    /// Puts partitions back whose load failed, unless they were queued again meanwhile.
    fn put_back(&self, again: Vec<(PartitionKey, i64)>) {
        let mut queue = lock(&self.waiting);
        for (key, revision) in again {
            queue.entry(key).or_insert(revision);
        }
    }
}

pub(super) async fn run(shared: Arc<Shared>) {
    let mut failures = Retry::new(&*shared.clock, TAKEOVER_BACKOFF);
    loop {
        let batch: BTreeMap<PartitionKey, i64> = shared.takeovers.take_batch();
        if batch.is_empty() {
            tokio::select! {
                _ = shared.takeovers.wake.notified() => {}
                _ = shared.clock.sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        match shared.take_over(&batch).await {
            Ok(()) => failures.reset(),
            Err(e) => {
                tracing::warn!(error = %e, partitions = batch.len(), failures = failures.attempt(), "cannot take partitions over yet; retrying");
                // Those still waiting to load go back in the queue.
                let again: Vec<(PartitionKey, i64)> = batch
                    .into_iter()
                    .filter(|(k, r)| shared.loading_under(*k, *r))
                    .collect();
                shared.takeovers.put_back(again);
                failures.wait().await;
            }
        }
    }
}

/// What a batch read of one partition.
struct Loaded {
    key: PartitionKey,
    leader_revision: i64,
    /// The checkpoint and its key's mod revision (0: none yet).
    checkpoint: Option<Checkpoint>,
    checkpoint_revision: i64,
    segments: Vec<ChunkRecord>,
    section: Section,
}

impl Shared {
    /// Queues a partition this broker was given for loading.
    pub(super) fn queue_takeover(&self, key: PartitionKey, leader_revision: i64) {
        // Two observers of the same partition can queue it out of order; the newest
        // leadership wins, or the partition would stay loading under a revision nobody loads.
        lock(&self.takeovers.waiting)
            .entry(key)
            .and_modify(|r| *r = (*r).max(leader_revision))
            .or_insert(leader_revision);
        self.takeovers.wake.notify_one();
    }

    fn loading_under(&self, key: PartitionKey, leader_revision: i64) -> bool {
        self.partitions.get(key).is_ok_and(|p| {
            let p = lock(&p);
            p.role == Role::Loading && p.leader_revision == leader_revision
        })
    }

    /// Loads and checkpoints a batch of partitions; those whose leadership changed meanwhile
    /// are left alone.
    async fn take_over(&self, batch: &BTreeMap<PartitionKey, i64>) -> Result<()> {
        let wanted: Vec<(PartitionKey, i64)> = batch
            .iter()
            .filter(|(k, r)| self.loading_under(**k, **r))
            .map(|(k, r)| (*k, *r))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let started = self.clock.now_ms();
        let mut loaded = self.read_checkpoints(&wanted).await?;
        self.read_sections(&mut loaded).await?;
        let tails = self.read_tails(&loaded).await?;
        let indexes = self.read_indexes(&tails).await?;
        let mut states = Vec::with_capacity(loaded.len());
        for l in loaded {
            match self.assemble(l, &tails, &indexes) {
                Ok(s) => states.push(s),
                Err((key, e)) => {
                    tracing::error!(partition = %key, error = %e, "cannot rebuild the partition from its checkpoint and flush records");
                    return Err(e);
                }
            }
        }
        let count = states.len();
        self.checkpoint_takeover(states).await?;
        tracing::info!(
            partitions = count,
            ms = self.clock.now_ms() - started,
            "partitions taken over"
        );
        Ok(())
    }

    /// The checkpoint and the segments of each partition: per topic in one range each when
    /// many partitions of the topic are loaded, else per partition.
    async fn read_checkpoints(&self, wanted: &[(PartitionKey, i64)]) -> Result<Vec<Loaded>> {
        let mut by_topic: BTreeMap<TopicId, Vec<(PartitionKey, i64)>> = BTreeMap::new();
        for (k, r) in wanted {
            by_topic.entry(k.topic).or_default().push((*k, *r));
        }
        let mut out = Vec::with_capacity(wanted.len());
        for (topic, parts) in by_topic {
            let mut checkpoints: HashMap<PartitionKey, (Checkpoint, i64)> = HashMap::new();
            let mut segments: HashMap<PartitionKey, Vec<ChunkRecord>> = HashMap::new();
            let (checkpoint_kvs, segment_kvs) = if parts.len() >= RANGE_PER_TOPIC {
                (
                    self.meta
                        .range(&keys::topic_checkpoints_prefix(topic))
                        .await?
                        .kvs,
                    self.meta
                        .range(&keys::topic_segments_prefix(topic))
                        .await?
                        .kvs,
                )
            } else {
                let mut c = Vec::new();
                let mut s = Vec::new();
                for (k, _) in &parts {
                    c.extend(self.meta.get(&keys::checkpoint(*k)).await?);
                    s.extend(
                        self.meta
                            .range(&keys::partition_segments_prefix(*k))
                            .await?
                            .kvs,
                    );
                }
                (c, s)
            };
            for kv in &checkpoint_kvs {
                if let Some(k) = keys::parse_checkpoint(&kv.key) {
                    let c = Checkpoint::decode(&kv.value).map_err(|e| schema::corrupt(kv, e))?;
                    checkpoints.insert(k, (c, kv.mod_revision));
                }
            }
            for kv in &segment_kvs {
                if let Some((k, _)) = keys::parse_segment(&kv.key) {
                    let s = SegmentRecord::decode(&kv.value).map_err(|e| schema::corrupt(kv, e))?;
                    segments.entry(k).or_default().push(s);
                }
            }
            for (key, leader_revision) in parts {
                let (checkpoint, checkpoint_revision) = match checkpoints.remove(&key) {
                    Some((c, r)) => (Some(c), r),
                    None => (None, 0),
                };
                out.push(Loaded {
                    key,
                    leader_revision,
                    checkpoint,
                    checkpoint_revision,
                    segments: segments.remove(&key).unwrap_or_default(),
                    section: Section::default(),
                });
            }
        }
        Ok(out)
    }

    /// The checkpoint sections, read by range and checked against their CRCs.
    async fn read_sections(&self, loaded: &mut [Loaded]) -> Result<()> {
        let wanted: Vec<(usize, schema::SectionRef)> = loaded
            .iter()
            .enumerate()
            .filter_map(|(i, l)| Some((i, l.checkpoint.as_ref()?.section.clone()?)))
            .collect();
        let store = self.store.clone();
        let reads = wanted.into_iter().map(move |(i, s)| {
            let store = store.clone();
            async move {
                let range = s.position..s.position + u64::from(s.length);
                let bytes = store.get_range(&s.object, range).await;
                (i, s, bytes)
            }
        });
        let mut reads = futures::stream::iter(reads).buffer_unordered(PARALLEL_READS);
        while let Some((i, s, bytes)) = reads.next().await {
            let bytes = bytes.map_err(missing)?;
            let (partition, section) =
                checkpoint_format::read_section(&bytes, s.crc).map_err(|e| {
                    Error::MissingData(format!("checkpoint section in {}: {e}", s.object))
                })?;
            if partition != loaded[i].key {
                return Err(Error::MissingData(format!(
                    "checkpoint section in {} is of {partition}, not {}",
                    s.object, loaded[i].key
                )));
            }
            loaded[i].section = section;
        }
        Ok(())
    }

    /// The flush records after each tail, read once per previous leader's incarnation from
    /// the lowest sequence any of the batch's partitions needs.
    async fn read_tails(
        &self,
        loaded: &[Loaded],
    ) -> Result<BTreeMap<Tailed, Vec<(u64, FlushRecord)>>> {
        let mut from: BTreeMap<Tailed, u64> = BTreeMap::new();
        for l in loaded {
            if let Some(c) = &l.checkpoint {
                let t = Tailed::of(&c.tail);
                let after = from.entry(t).or_insert(c.tail.after);
                *after = (*after).min(c.tail.after);
            }
        }
        let mut out = BTreeMap::new();
        for (t, after) in from {
            let prefix = keys::incarnation_flushes_prefix(t.broker, t.incarnation);
            let start = keys::flush(t.broker, t.incarnation, after.saturating_add(1));
            let kvs = self.meta.range_from(&prefix, &start).await?.kvs;
            let mut records = Vec::with_capacity(kvs.len());
            for kv in &kvs {
                let Some((_, _, seq)) = keys::parse_flush(&kv.key) else {
                    continue;
                };
                if kv.value.is_empty() {
                    // A tombstone: that flush never committed.
                    continue;
                }
                let r = FlushRecord::decode(&kv.value).map_err(|e| schema::corrupt(kv, e))?;
                records.push((seq, r));
            }
            out.insert(t, records);
        }
        Ok(out)
    }

    /// The indexes of the flush objects the tails name, one ranged read each.
    async fn read_indexes(
        &self,
        tails: &BTreeMap<Tailed, Vec<(u64, FlushRecord)>>,
    ) -> Result<HashMap<String, FlushIndex>> {
        let mut wanted: BTreeMap<String, (u64, u32)> = BTreeMap::new();
        for records in tails.values() {
            for (_, r) in records {
                wanted.insert(r.object.clone(), (r.index_position, r.index_length));
            }
        }
        let store = self.store.clone();
        let reads = wanted.into_iter().map(move |(object, (at, len))| {
            let store = store.clone();
            async move {
                let end = at + u64::from(len) + object_format::FOOTER_LEN as u64;
                let bytes = store.get_range(&object, at..end).await;
                (object, bytes)
            }
        });
        let mut reads = futures::stream::iter(reads).buffer_unordered(PARALLEL_READS);
        let mut out = HashMap::new();
        while let Some((object, bytes)) = reads.next().await {
            let bytes = bytes.map_err(missing)?;
            let index =
                object_format::decode_index_tail(&bytes).map_err(|source| Error::CorruptData {
                    key: object.clone(),
                    source,
                })?;
            out.insert(object, index);
        }
        Ok(out)
    }

    /// A partition's state: its checkpoint, then every flush after it that holds it.
    fn assemble(
        &self,
        l: Loaded,
        tails: &BTreeMap<Tailed, Vec<(u64, FlushRecord)>>,
        indexes: &HashMap<String, FlushIndex>,
    ) -> std::result::Result<Snapshot, (PartitionKey, Error)> {
        let key = l.key;
        let bad = |m: String| (key, Error::MissingData(format!("{key}: {m}")));
        let (mut record, tail) = match &l.checkpoint {
            Some(c) => (
                PartitionRecord {
                    log_start_offset: c.log_start_offset,
                    log_end_offset: c.log_end_offset,
                },
                Some(c.tail),
            ),
            None => (PartitionRecord::default(), None),
        };
        let mut chunks: Vec<ChunkRecord> = l
            .segments
            .into_iter()
            .filter(|s| s.last_offset >= record.log_start_offset)
            .collect();
        chunks.extend(l.section.chunks);
        let mut producers: ProducerStates = l.section.producers;
        if let Some(tail) = tail {
            let records = tails
                .get(&Tailed::of(&tail))
                .map(Vec::as_slice)
                .unwrap_or_default();
            for (seq, r) in records {
                let Some(part) = (*seq > tail.after).then(|| r.part(key)).flatten() else {
                    continue;
                };
                if part.end <= record.log_end_offset {
                    // Already in the checkpoint (it was taken while this flush applied).
                    continue;
                }
                let index = indexes
                    .get(&r.object)
                    .ok_or_else(|| bad(format!("no index of {}", r.object)))?;
                let (i, entry) = index
                    .entries
                    .iter()
                    .enumerate()
                    .find(|(_, e)| {
                        // A coalesced object can hold several chunks of a partition (a restore
                        // re-attaches them with one record each): the one that continues it.
                        e.topic == key.topic
                            && e.partition == key.partition
                            && e.base_offset == record.log_end_offset
                    })
                    .or_else(|| {
                        index
                            .entries
                            .iter()
                            .enumerate()
                            .find(|(_, e)| e.topic == key.topic && e.partition == key.partition)
                    })
                    .ok_or_else(|| bad(format!("{} holds no chunk of it", r.object)))?;
                if entry.base_offset != record.log_end_offset
                    || entry.last_offset.next() != part.end
                {
                    return Err(bad(format!(
                        "flush {seq} covers {}..{} where {} was expected",
                        entry.base_offset.0, part.end.0, record.log_end_offset.0
                    )));
                }
                chunks.push(ChunkRecord::from_entry(&r.object, entry));
                for b in index
                    .producer_batches
                    .iter()
                    .filter(|b| b.entry as usize == i)
                {
                    producers.record_batch(
                        ProducerBatchFields {
                            producer_id: b.producer_id,
                            epoch: b.producer_epoch,
                            base_sequence: b.base_sequence,
                            last_offset_delta: b.last_offset_delta,
                            role: b.role,
                        },
                        b.base_offset,
                        r.created_ms,
                    );
                }
                record.log_end_offset = part.end;
            }
        }
        producers.expire(self.clock.now_ms() - self.config.producer_expiration_ms);
        Ok(Snapshot {
            key,
            leader_revision: l.leader_revision,
            checkpoint_revision: l.checkpoint_revision,
            record,
            index: ChunkIndex::from_chunks(chunks),
            producers,
            changes: 0,
            new_segment: None,
            cleaned: None,
            coalesced: Vec::new(),
            moved_start: false,
        })
    }

    /// Checkpoints the loaded partitions under this broker's name, then leads them.
    async fn checkpoint_takeover(&self, states: Vec<Snapshot>) -> Result<()> {
        let _maintenance = self.maintenance.hold().await;
        let committed = self.write_checkpoints(&states, true).await?;
        let all = committed.len() == states.len();
        let mut states: Vec<Option<Snapshot>> = states.into_iter().map(Some).collect();
        let mut led = 0;
        for (i, revision) in committed {
            let Some(s) = states[i].take() else {
                continue;
            };
            let Ok(partition) = self.partitions.get(s.key) else {
                continue;
            };
            let mut p = lock(&partition);
            if p.role != Role::Loading || p.leader_revision != s.leader_revision {
                continue;
            }
            p.record = s.record;
            p.index = s.index;
            p.producers = s.producers;
            p.checkpoint = super::partition::Checkpointed {
                revision,
                ..Default::default()
            };
            p.role = Role::Leader;
            led += 1;
            tracing::debug!(partition = %s.key, epoch = p.leadership.leader_epoch.0, log_end = p.record.log_end_offset.0, "leading partition");
        }
        if led > 0 {
            self.partitions.leadership_changed();
        }
        if all {
            Ok(())
        } else {
            // A fence change or a checkpoint written elsewhere: the rest loads again.
            Err(Error::Metadata(crate::ports::MetadataError::Unavailable {
                message: "some takeover checkpoints did not commit".into(),
            }))
        }
    }
}

/// A previous leader's incarnation, whose flush records follow some checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Tailed {
    broker: BrokerId,
    incarnation: u64,
}

impl Tailed {
    fn of(t: &Tail) -> Tailed {
        Tailed {
            broker: t.broker,
            incarnation: t.incarnation,
        }
    }
}

fn missing(e: StoreError) -> Error {
    match e {
        StoreError::NotFound { key } => Error::MissingData(key),
        other => Error::Store(other),
    }
}
