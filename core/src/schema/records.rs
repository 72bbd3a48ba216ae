//! The binary records of the write path: what one flush commits, a partition's checkpoint,
//! a segment, and the chunk descriptors they share. Each encodes to a compact versioned value
//! (see [`super::codec`]); decoding checks every length and count against the bytes.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::codec::{CodecError, Reader, Writer};
use crate::types::{BrokerId, LeaderEpoch, Millis, Offset, PartitionId, PartitionKey, TopicId};

/// Where a committed range of a partition's records lives: a chunk of a flush object, or a
/// segment. Not stored on its own: flush chunks come from object indexes and checkpoint
/// sections, segments from [`SegmentRecord`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRecord {
    pub object: String,
    pub position: u64,
    pub length: u32,
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub max_timestamp: Millis,
    /// CRC-32C of a flush chunk; unused for segments, whose blocks carry their own.
    pub crc: u32,
    /// Set when the range is a segment (`position`/`length` are then its data section).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<SegmentRef>,
}

/// Where a segment's index lies, and its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    pub index_position: u64,
    pub index_length: u32,
    pub index_crc: u32,
    /// What the log cleaner made of the segment (compacted topics); `None`: never cleaned,
    /// the segment is dirty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleaned: Option<Cleaned>,
}

/// A segment the log cleaner wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleaned {
    /// When its records were first cleaned (kept across later cleans): tombstones it holds go
    /// in the first clean `delete.retention.ms` after it.
    pub since_ms: Millis,
    /// It holds tombstones, which a clean after that time drops.
    pub tombstones: bool,
    /// The segment is clean up to this offset (its last, once a clean's key map covered all
    /// of it); the records after it are dirty, as Kafka's first dirty offset says.
    pub through: Offset,
}

/// `segments/<topic>/<partition>/<base>`: a merged segment of a partition.
pub struct SegmentRecord;

impl SegmentRecord {
    /// Version 2 adds what the cleaner made of the segment; a segment never cleaned is still
    /// written as version 1, which brokers before it read.
    const VERSION: u8 = 1;
    const VERSION_CLEANED: u8 = 2;

    pub fn encode(chunk: &ChunkRecord) -> Bytes {
        let cleaned = chunk.segment.and_then(|s| s.cleaned);
        let mut w = Writer::new(if cleaned.is_some() {
            Self::VERSION_CLEANED
        } else {
            Self::VERSION
        });
        w.str(&chunk.object);
        w.uvarint(chunk.position);
        w.uvarint(u64::from(chunk.length));
        w.uvarint(chunk.base_offset.0 as u64);
        w.uvarint((chunk.last_offset.0 - chunk.base_offset.0) as u64);
        w.varint(chunk.max_timestamp);
        let seg = chunk.segment.unwrap_or(SegmentRef {
            index_position: 0,
            index_length: 0,
            index_crc: 0,
            cleaned: None,
        });
        w.uvarint(seg.index_position);
        w.uvarint(u64::from(seg.index_length));
        w.u32(seg.index_crc);
        if let Some(c) = cleaned {
            w.varint(c.since_ms);
            w.u8(u8::from(c.tombstones));
            w.uvarint((chunk.last_offset.0 - c.through.0).max(0) as u64);
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<ChunkRecord, CodecError> {
        let (mut r, version) = Reader::new(bytes, "segment record", 1..=2)?;
        let object = r.str()?.to_owned();
        let position = r.uvarint()?;
        let length = r.uvarint_as::<u32>()?;
        let base = r.uvarint_as::<i64>()?;
        let span = r.uvarint_as::<i64>()?;
        let max_timestamp = r.varint()?;
        let mut segment = SegmentRef {
            index_position: r.uvarint()?,
            index_length: r.uvarint_as()?,
            index_crc: r.u32()?,
            cleaned: None,
        };
        let mut dirty_tail = None;
        if version >= Self::VERSION_CLEANED {
            let since_ms = r.varint()?;
            let tombstones = r.u8()? != 0;
            dirty_tail = Some((since_ms, tombstones, r.uvarint_as::<i64>()?));
        }
        r.end()?;
        let last = base
            .checked_add(span)
            .ok_or_else(|| r.error("span".into()))?;
        segment.cleaned = dirty_tail.map(|(since_ms, tombstones, dirty)| Cleaned {
            since_ms,
            tombstones,
            through: Offset(last.saturating_sub(dirty)),
        });
        Ok(ChunkRecord {
            object,
            position,
            length,
            base_offset: Offset(base),
            last_offset: Offset(last),
            max_timestamp,
            crc: 0,
            segment: Some(segment),
        })
    }
}

/// One partition's part of a flush: its log end once the flush committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPart {
    pub partition: PartitionKey,
    pub end: Offset,
}

/// `flushes/<broker>/<incarnation>/<seq>`: what one flush committed. The object's own index
/// holds the rest (byte ranges, CRCs, timestamps, producer sequences).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushRecord {
    pub object: String,
    /// Where the object's index lies, so that one ranged read fetches it.
    pub index_position: u64,
    pub index_length: u32,
    pub created_ms: Millis,
    /// Sorted by partition.
    pub parts: Vec<FlushPart>,
}

impl FlushRecord {
    const VERSION: u8 = 1;

    pub fn encode(&self) -> Bytes {
        let mut w = Writer::new(Self::VERSION);
        w.str(&self.object);
        w.uvarint(self.index_position);
        w.uvarint(u64::from(self.index_length));
        w.varint(self.created_ms);
        // Topics once, then per partition: topic index, partition, end offset.
        let mut topics: Vec<TopicId> = self.parts.iter().map(|p| p.partition.topic).collect();
        topics.dedup();
        w.uvarint(topics.len() as u64);
        for t in &topics {
            w.uuid(&t.0);
        }
        w.uvarint(self.parts.len() as u64);
        let mut topic = 0usize;
        for p in &self.parts {
            while topics[topic] != p.partition.topic {
                topic += 1;
            }
            w.uvarint(topic as u64);
            w.uvarint(p.partition.partition.0 as u64);
            w.uvarint(p.end.0 as u64);
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<FlushRecord, CodecError> {
        let (mut r, _) = Reader::new(bytes, "flush record", 1..=1)?;
        let object = r.str()?.to_owned();
        let index_position = r.uvarint()?;
        let index_length = r.uvarint_as()?;
        let created_ms = r.varint()?;
        let n = r.count(16)?;
        let mut topics = Vec::new();
        for _ in 0..n {
            topics.push(TopicId(r.uuid()?));
        }
        let n = r.count(3)?;
        let mut parts = Vec::new();
        for _ in 0..n {
            let t: usize = r.uvarint_as()?;
            let topic = *topics
                .get(t)
                .ok_or_else(|| r.error(format!("topic index {t}")))?;
            let partition = PartitionId(r.uvarint_as()?);
            let end = Offset(r.uvarint_as()?);
            parts.push(FlushPart {
                partition: PartitionKey { topic, partition },
                end,
            });
        }
        r.end()?;
        Ok(FlushRecord {
            object,
            index_position,
            index_length,
            created_ms,
            parts,
        })
    }

    /// This flush's part of `partition`, if it has one.
    pub fn part(&self, partition: PartitionKey) -> Option<FlushPart> {
        self.parts
            .binary_search_by_key(&partition, |p| p.partition)
            .ok()
            .map(|i| self.parts[i])
    }
}

/// Which flush records follow a checkpoint: those of one incarnation of one broker, after a
/// sequence number. Every new leader checkpoints a partition naming itself before its first
/// flush of it, so a partition's uncheckpointed data is always in one broker's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tail {
    pub broker: BrokerId,
    pub incarnation: u64,
    /// Records of that incarnation with a sequence above this one may hold the partition.
    pub after: u64,
}

/// Where a checkpoint's chunk list and producer states lie: a section of a checkpoint object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionRef {
    pub object: String,
    pub position: u64,
    pub length: u32,
    pub crc: u32,
}

/// `checkpoints/<topic>/<partition>`: a partition's committed state up to its tail.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub leader_epoch: LeaderEpoch,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
    pub tail: Tail,
    /// The unmerged chunks and producer states; `None` when there are neither.
    pub section: Option<SectionRef>,
}

impl Checkpoint {
    const VERSION: u8 = 1;

    pub fn encode(&self) -> Bytes {
        let mut w = Writer::new(Self::VERSION);
        w.varint(i64::from(self.leader_epoch.0));
        w.uvarint(self.log_start_offset.0 as u64);
        w.uvarint(self.log_end_offset.0 as u64);
        w.varint(i64::from(self.tail.broker.0));
        w.u64(self.tail.incarnation);
        w.uvarint(self.tail.after);
        match &self.section {
            None => w.u8(0),
            Some(s) => {
                w.u8(1);
                w.str(&s.object);
                w.uvarint(s.position);
                w.uvarint(u64::from(s.length));
                w.u32(s.crc);
            }
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, CodecError> {
        let (mut r, _) = Reader::new(bytes, "checkpoint", 1..=1)?;
        let leader_epoch = LeaderEpoch(r.varint_as()?);
        let log_start_offset = Offset(r.uvarint_as()?);
        let log_end_offset = Offset(r.uvarint_as()?);
        let tail = Tail {
            broker: BrokerId(r.varint_as()?),
            incarnation: r.u64()?,
            after: r.uvarint()?,
        };
        let section = match r.u8()? {
            0 => None,
            1 => Some(SectionRef {
                object: r.str()?.to_owned(),
                position: r.uvarint()?,
                length: r.uvarint_as()?,
                crc: r.u32()?,
            }),
            other => return Err(r.error(format!("section flag {other}"))),
        };
        r.end()?;
        if log_start_offset > log_end_offset {
            return Err(r.error(format!(
                "log start {} above log end {}",
                log_start_offset.0, log_end_offset.0
            )));
        }
        Ok(Checkpoint {
            leader_epoch,
            log_start_offset,
            log_end_offset,
            tail,
            section,
        })
    }
}

/// `groups/offsets/<shard>/<group>/<topic>/<p>`: a committed offset, in a few bytes (the first
/// release wrote JSON, which is still read). Version 2, the same followed by the producer
/// epoch, is an offset staged by a transaction (`groups/txn-offsets/...`).
pub struct OffsetRecord;

impl OffsetRecord {
    const VERSION: u8 = 1;
    const STAGED: u8 = 2;

    pub fn encode(c: &crate::group::CommittedOffset) -> Bytes {
        Self::writer(Self::VERSION, c).finish()
    }

    /// An offset staged by a transaction of a producer at `producer_epoch`.
    pub fn encode_staged(c: &crate::group::CommittedOffset, producer_epoch: i16) -> Bytes {
        let mut w = Self::writer(Self::STAGED, c);
        w.varint(i64::from(producer_epoch));
        w.finish()
    }

    fn writer(version: u8, c: &crate::group::CommittedOffset) -> Writer {
        let mut w = Writer::new(version);
        w.uvarint(c.offset.0.max(0) as u64);
        w.varint(c.leader_epoch.map_or(-1, |e| i64::from(e.0)));
        w.str(&c.metadata);
        w.varint(c.commit_ms);
        match c.topic_id {
            Some(t) => {
                w.u8(1);
                w.uuid(&t.0);
            }
            None => w.u8(0),
        }
        w
    }

    pub fn decode(bytes: &[u8]) -> Result<crate::group::CommittedOffset, CodecError> {
        Self::decode_staged(bytes).map(|(c, _)| c)
    }

    /// A staged offset and the epoch of the producer that staged it (None: staged before
    /// epochs were kept, or a committed offset).
    pub fn decode_staged(
        bytes: &[u8],
    ) -> Result<(crate::group::CommittedOffset, Option<i16>), CodecError> {
        if bytes.first() == Some(&b'{') {
            let c = serde_json::from_slice(bytes).map_err(|e| CodecError {
                what: "committed offset",
                at: 0,
                reason: e.to_string(),
            })?;
            return Ok((c, None));
        }
        let (mut r, version) = Reader::new(bytes, "committed offset", 1..=Self::STAGED)?;
        let offset = Offset(r.uvarint_as()?);
        let epoch: i64 = r.varint()?;
        let metadata = r.str()?.to_owned();
        let commit_ms = r.varint()?;
        let topic_id = match r.u8()? {
            0 => None,
            1 => Some(TopicId(r.uuid()?)),
            other => return Err(r.error(format!("topic id flag {other}"))),
        };
        let producer_epoch = if version >= Self::STAGED {
            Some(r.varint_as::<i16>()?)
        } else {
            None
        };
        r.end()?;
        let c = crate::group::CommittedOffset {
            offset,
            leader_epoch: (epoch >= 0)
                .then(|| i32::try_from(epoch).ok().map(LeaderEpoch))
                .flatten(),
            metadata,
            commit_ms,
            topic_id,
        };
        Ok((c, producer_epoch))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn key(topic: u8, partition: i32) -> PartitionKey {
        PartitionKey {
            topic: TopicId(uuid::Uuid::from_bytes([topic; 16])),
            partition: PartitionId(partition),
        }
    }

    proptest! {
        #[test]
        fn flush_records_round_trip(parts in proptest::collection::btree_map((0u8..4, 0i32..2000), 0i64..1 << 40, 0..300), created in any::<i64>()) {
            let record = FlushRecord {
                object: "data/3/0192.ksf".into(),
                index_position: 1234,
                index_length: 640,
                created_ms: created,
                parts: parts.iter().map(|((t, p), end)| FlushPart { partition: key(*t, *p), end: Offset(*end) }).collect(),
            };
            let bytes = record.encode();
            prop_assert_eq!(FlushRecord::decode(&bytes).unwrap(), record.clone());
            for p in &record.parts {
                prop_assert_eq!(record.part(p.partition), Some(*p));
            }
            // A partition's part costs a few bytes, whatever the number of partitions.
            prop_assert!(bytes.len() <= 60 + 16 * 4 + 9 * record.parts.len());
        }

        #[test]
        fn checkpoints_round_trip(epoch in 0i32..1000, start in 0i64..1 << 40, len in 0i64..1 << 20, after in any::<u64>(), with_section in any::<bool>()) {
            let c = Checkpoint {
                leader_epoch: LeaderEpoch(epoch),
                log_start_offset: Offset(start),
                log_end_offset: Offset(start + len),
                tail: Tail { broker: BrokerId(7), incarnation: u64::MAX - 3, after },
                section: with_section.then(|| SectionRef { object: "data/7/abc.ksc".into(), position: 16, length: 999, crc: 0xdead_beef }),
            };
            prop_assert_eq!(Checkpoint::decode(&c.encode()).unwrap(), c);
        }

        #[test]
        fn damaged_values_are_errors(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = FlushRecord::decode(&bytes);
            let _ = Checkpoint::decode(&bytes);
            let _ = SegmentRecord::decode(&bytes);
        }
    }

    #[test]
    fn offsets_round_trip_and_old_json_is_read() {
        let c = crate::group::CommittedOffset {
            offset: Offset(1_234_567),
            leader_epoch: Some(LeaderEpoch(3)),
            metadata: "meta".into(),
            commit_ms: 1_700_000_000_123,
            topic_id: Some(TopicId::random()),
        };
        let bytes = OffsetRecord::encode(&c);
        assert!(bytes.len() < 40, "{} bytes", bytes.len());
        assert_eq!(OffsetRecord::decode(&bytes).unwrap(), c);
        let none = crate::group::CommittedOffset {
            leader_epoch: None,
            topic_id: None,
            ..c.clone()
        };
        assert_eq!(
            OffsetRecord::decode(&OffsetRecord::encode(&none)).unwrap(),
            none
        );
        let json = serde_json::to_vec(&c).unwrap();
        assert_eq!(OffsetRecord::decode(&json).unwrap(), c);
        let staged = OffsetRecord::encode_staged(&c, 7);
        assert_eq!(
            OffsetRecord::decode_staged(&staged).unwrap(),
            (c.clone(), Some(7))
        );
        assert_eq!(OffsetRecord::decode_staged(&bytes).unwrap(), (c, None));
    }

    #[test]
    fn segments_round_trip() {
        let chunk = ChunkRecord {
            object: "data/1/x.ksf".into(),
            position: 32,
            length: 1 << 20,
            base_offset: Offset(100),
            last_offset: Offset(5000),
            max_timestamp: 1_700_000_000_000,
            crc: 0,
            segment: Some(SegmentRef {
                index_position: 1_048_608,
                index_length: 512,
                index_crc: 7,
                cleaned: None,
            }),
        };
        assert_eq!(
            SegmentRecord::decode(&SegmentRecord::encode(&chunk)).unwrap(),
            chunk
        );
        assert_eq!(SegmentRecord::encode(&chunk)[0], 1);
        let mut cleaned = chunk.clone();
        if let Some(s) = cleaned.segment.as_mut() {
            s.cleaned = Some(Cleaned {
                since_ms: 1_700_000_000_000,
                tombstones: true,
                through: Offset(4000),
            });
        }
        assert_eq!(
            SegmentRecord::decode(&SegmentRecord::encode(&cleaned)).unwrap(),
            cleaned
        );
    }

    #[test]
    fn a_record_claiming_more_parts_than_bytes_is_refused() {
        let mut w = Writer::new(1);
        w.str("o");
        w.uvarint(0);
        w.uvarint(0);
        w.varint(0);
        w.uvarint(0);
        w.uvarint(u32::MAX as u64);
        assert!(FlushRecord::decode(&w.finish()).is_err());
    }
}
