//! The checkpoint object: one per checkpoint round of a broker, holding for each partition
//! checkpointed in that round its unmerged flush chunks and its idempotent producers. The
//! metadata store keeps, per partition, a small checkpoint record pointing at its section,
//! so what a checkpoint writes to the metadata store does not grow with the chunks a
//! partition has.
//!
//! Layout (integers big-endian; sections and the directory in the compact codec of
//! [`crate::schema::codec`]):
//! ```text
//! header  16 B  "KSCK" | version u16 | flags u16 | broker id i32 | reserved 4 B
//! sections      one per partition (see `encode_section`), each with its CRC-32C in the directory
//! directory     count, then per section: topic id, partition, position, length, crc;
//!               then the flush objects the sections reference (for garbage collection)
//! footer  24 B  directory offset u64 | directory length u32 | directory crc32c u32 | "KSCE" |
//!               version u16 | reserved u16
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet};

use crate::log::producers::{AbortedTxn, ProducerEntry, ProducerStates};
use crate::schema::codec::{CodecError, Reader, Writer};
use crate::schema::ChunkRecord;
use crate::types::{BrokerId, Offset, PartitionId, PartitionKey, TopicId};

pub const VERSION: u16 = 1;
const HEADER_MAGIC: &[u8; 4] = b"KSCK";
const FOOTER_MAGIC: &[u8; 4] = b"KSCE";
const HEADER_LEN: usize = 16;
const FOOTER_LEN: usize = 24;
/// Version 2 adds each producer's open transaction and the aborted transactions. A section
/// with neither is written as version 1, which brokers before transactions read, so that they
/// can run beside this version during a rolling upgrade (`docs/operations.md`).
const SECTION_VERSION: u8 = 2;
const SECTION_VERSION_WITHOUT_TRANSACTIONS: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointFormatError {
    #[error("checkpoint object malformed: {0}")]
    Malformed(String),
    #[error("checkpoint section checksum mismatch")]
    Checksum,
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// What a checkpoint keeps of a partition besides its extent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    /// Flush chunks not merged into a segment yet, in offset order.
    pub chunks: Vec<ChunkRecord>,
    pub producers: ProducerStates,
}

/// A section's place in its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub partition: PartitionKey,
    pub position: u64,
    pub length: u32,
    pub crc: u32,
}

pub fn encode_section(partition: PartitionKey, section: &Section) -> Vec<u8> {
    let producers = &section.producers;
    let transactions = !producers.aborted.is_empty()
        || producers.producers.values().any(|e| e.txn_first.is_some());
    let version = if transactions {
        SECTION_VERSION
    } else {
        SECTION_VERSION_WITHOUT_TRANSACTIONS
    };
    let mut w = Writer::new(version);
    w.uuid(&partition.topic.0);
    w.uvarint(partition.partition.0 as u64);
    let mut objects: Vec<&str> = Vec::new();
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &section.chunks {
        index.entry(&c.object).or_insert_with(|| {
            objects.push(&c.object);
            objects.len() - 1
        });
    }
    w.uvarint(objects.len() as u64);
    for o in &objects {
        w.str(o);
    }
    w.uvarint(section.chunks.len() as u64);
    for c in &section.chunks {
        w.uvarint(index[c.object.as_str()] as u64);
        w.uvarint(c.position);
        w.uvarint(u64::from(c.length));
        w.uvarint(c.base_offset.0 as u64);
        w.uvarint((c.last_offset.0 - c.base_offset.0) as u64);
        w.varint(c.max_timestamp);
        w.u32(c.crc);
    }
    w.uvarint(section.producers.producers.len() as u64);
    for (pid, e) in &section.producers.producers {
        w.varint(*pid);
        w.varint(i64::from(e.epoch));
        w.varint(e.last_ms);
        w.uvarint(e.batches.len() as u64);
        for (first, last, base) in &e.batches {
            w.varint(i64::from(*first));
            w.varint(i64::from(*last));
            w.uvarint(*base as u64);
        }
        if version >= 2 {
            // The open transaction's first offset, plus one (0: none).
            w.uvarint(e.txn_first.map_or(0, |f| f as u64 + 1));
        }
    }
    if version >= 2 {
        w.uvarint(section.producers.aborted.len() as u64);
        for a in &section.producers.aborted {
            w.varint(a.producer_id);
            w.uvarint(a.first_offset.0 as u64);
            w.uvarint((a.last_offset.0 - a.first_offset.0) as u64);
        }
    }
    w.into_vec()
}

pub fn decode_section(bytes: &[u8]) -> Result<(PartitionKey, Section), CodecError> {
    let (mut r, version) = Reader::new(bytes, "checkpoint section", 1..=2)?;
    let partition = PartitionKey {
        topic: TopicId(r.uuid()?),
        partition: PartitionId(r.uvarint_as()?),
    };
    let n = r.count(1)?;
    let mut objects = Vec::new();
    for _ in 0..n {
        objects.push(r.str()?.to_owned());
    }
    let n = r.count(10)?;
    let mut chunks: Vec<ChunkRecord> = Vec::new();
    for _ in 0..n {
        let o: usize = r.uvarint_as()?;
        let object = objects
            .get(o)
            .ok_or_else(|| r.error(format!("object index {o}")))?
            .clone();
        let position = r.uvarint()?;
        let length = r.uvarint_as()?;
        let base: i64 = r.uvarint_as()?;
        let span: i64 = r.uvarint_as()?;
        let max_timestamp = r.varint()?;
        let crc = r.u32()?;
        let last = base
            .checked_add(span)
            .ok_or_else(|| r.error("offset overflow".into()))?;
        if chunks.last().is_some_and(|prev| prev.last_offset.0 >= base) {
            return Err(r.error("chunks out of order".into()));
        }
        chunks.push(ChunkRecord {
            object,
            position,
            length,
            base_offset: Offset(base),
            last_offset: Offset(last),
            max_timestamp,
            crc,
            segment: None,
        });
    }
    let n = r.count(4)?;
    let mut producers = ProducerStates::default();
    for _ in 0..n {
        let pid = r.varint()?;
        let epoch = r.varint_as()?;
        let last_ms = r.varint()?;
        let m = r.count(3)?;
        let mut entry = ProducerEntry {
            epoch,
            batches: Default::default(),
            last_ms,
            txn_first: None,
        };
        for _ in 0..m {
            let first = r.varint_as()?;
            let last = r.varint_as()?;
            let base = r.uvarint_as()?;
            entry.batches.push_back((first, last, base));
        }
        if version >= 2 {
            let first: u64 = r.uvarint()?;
            entry.txn_first = first
                .checked_sub(1)
                .map(i64::try_from)
                .transpose()
                .map_err(|_| r.error("transaction offset overflow".into()))?;
        }
        producers.producers.insert(pid, entry);
    }
    if version >= 2 {
        let n = r.count(3)?;
        for _ in 0..n {
            let producer_id = r.varint()?;
            let first: i64 = r.uvarint_as()?;
            let span: i64 = r.uvarint_as()?;
            let last = first
                .checked_add(span)
                .ok_or_else(|| r.error("offset overflow".into()))?;
            producers.aborted.push(AbortedTxn {
                producer_id,
                first_offset: Offset(first),
                last_offset: Offset(last),
            });
        }
    }
    r.end()?;
    Ok((partition, Section { chunks, producers }))
}

/// Assembles one checkpoint object.
pub struct CheckpointObjectBuilder {
    buf: BytesMut,
    placed: Vec<Placed>,
    referenced: BTreeSet<String>,
}

impl CheckpointObjectBuilder {
    pub fn new(broker: BrokerId) -> CheckpointObjectBuilder {
        let mut buf = BytesMut::with_capacity(4096);
        buf.put_slice(HEADER_MAGIC);
        buf.put_u16(VERSION);
        buf.put_u16(0);
        buf.put_i32(broker.0);
        buf.put_slice(&[0u8; 4]);
        CheckpointObjectBuilder {
            buf,
            placed: Vec::new(),
            referenced: BTreeSet::new(),
        }
    }

    pub fn add(&mut self, partition: PartitionKey, section: &Section) -> Placed {
        let bytes = encode_section(partition, section);
        let placed = Placed {
            partition,
            position: self.buf.len() as u64,
            length: bytes.len() as u32,
            crc: crc32c::crc32c(&bytes),
        };
        self.buf.put_slice(&bytes);
        self.referenced
            .extend(section.chunks.iter().map(|c| c.object.clone()));
        self.placed.push(placed);
        placed
    }

    pub fn is_empty(&self) -> bool {
        self.placed.is_empty()
    }

    pub fn finish(mut self) -> (Bytes, Vec<Placed>) {
        let mut w = Writer::new(1);
        w.uvarint(self.placed.len() as u64);
        for p in &self.placed {
            w.uuid(&p.partition.topic.0);
            w.uvarint(p.partition.partition.0 as u64);
            w.uvarint(p.position);
            w.uvarint(u64::from(p.length));
            w.u32(p.crc);
        }
        w.uvarint(self.referenced.len() as u64);
        for o in &self.referenced {
            w.str(o);
        }
        let dir = w.into_vec();
        let at = self.buf.len() as u64;
        self.buf.put_slice(&dir);
        self.buf.put_u64(at);
        self.buf.put_u32(dir.len() as u32);
        self.buf.put_u32(crc32c::crc32c(&dir));
        self.buf.put_slice(FOOTER_MAGIC);
        self.buf.put_u16(VERSION);
        self.buf.put_u16(0);
        (self.buf.freeze(), self.placed)
    }
}

/// Reads a section fetched by range, verified against the CRC its checkpoint record holds.
pub fn read_section(
    bytes: &[u8],
    crc: u32,
) -> Result<(PartitionKey, Section), CheckpointFormatError> {
    if crc32c::crc32c(bytes) != crc {
        return Err(CheckpointFormatError::Checksum);
    }
    Ok(decode_section(bytes)?)
}

/// The flush objects a whole checkpoint object's sections reference (garbage collection
/// keeps them).
pub fn referenced_objects(object: &[u8]) -> Result<Vec<String>, CheckpointFormatError> {
    let malformed = |m: &str| CheckpointFormatError::Malformed(m.to_owned());
    if object.len() < HEADER_LEN + FOOTER_LEN || &object[0..4] != HEADER_MAGIC {
        return Err(malformed("no header"));
    }
    let footer = &object[object.len() - FOOTER_LEN..];
    if &footer[16..20] != FOOTER_MAGIC {
        return Err(malformed("no footer"));
    }
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&footer[0..8]);
    let at = usize::try_from(u64::from_be_bytes(raw)).map_err(|_| malformed("directory"))?;
    let len = u32::from_be_bytes([footer[8], footer[9], footer[10], footer[11]]) as usize;
    let crc = u32::from_be_bytes([footer[12], footer[13], footer[14], footer[15]]);
    let end = at
        .checked_add(len)
        .filter(|e| *e == object.len() - FOOTER_LEN && at >= HEADER_LEN)
        .ok_or_else(|| malformed("directory bounds"))?;
    let dir = &object[at..end];
    if crc32c::crc32c(dir) != crc {
        return Err(CheckpointFormatError::Checksum);
    }
    let (mut r, _) = Reader::new(dir, "checkpoint directory", 1..=1)?;
    let n = r.count(20)?;
    for _ in 0..n {
        r.uuid()?;
        r.uvarint()?;
        r.uvarint()?;
        r.uvarint()?;
        r.u32()?;
    }
    let n = r.count(1)?;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(r.str()?.to_owned());
    }
    r.end()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn chunk(object: &str, base: i64, n: i64) -> ChunkRecord {
        ChunkRecord {
            object: object.into(),
            position: 32 + base as u64,
            length: 100,
            base_offset: Offset(base),
            last_offset: Offset(base + n - 1),
            max_timestamp: 1000 + base,
            crc: base as u32,
            segment: None,
        }
    }

    proptest! {
        #[test]
        fn sections_round_trip(sizes in proptest::collection::vec(1i64..50, 0..40), pids in proptest::collection::vec(any::<i64>(), 0..5)) {
            let mut next = 7;
            let chunks: Vec<_> = sizes.iter().enumerate().map(|(i, n)| {
                let c = chunk(&format!("data/1/{}.ksf", i % 3), next, *n);
                next += n;
                c
            }).collect();
            let mut producers = ProducerStates::default();
            for (i, pid) in pids.iter().enumerate() {
                producers.producers.insert(*pid, ProducerEntry {
                    epoch: i as i16,
                    batches: (0..i as i32).map(|s| (s, s, i64::from(s) * 2)).collect(),
                    last_ms: 5,
                    txn_first: (i % 2 == 1).then_some(i as i64 * 10),
                });
                producers.aborted.push(AbortedTxn {
                    producer_id: *pid,
                    first_offset: Offset(i as i64),
                    last_offset: Offset(i as i64 * 3),
                });
            }
            let section = Section { chunks, producers };
            let p = PartitionKey { topic: TopicId::random(), partition: PartitionId(4) };
            let mut b = CheckpointObjectBuilder::new(BrokerId(2));
            let placed = b.add(p, &section);
            let other = PartitionKey { topic: p.topic, partition: PartitionId(5) };
            b.add(other, &Section::default());
            let (object, all) = b.finish();
            prop_assert_eq!(all.len(), 2);
            let bytes = &object[placed.position as usize..placed.position as usize + placed.length as usize];
            let (got_p, got) = read_section(bytes, placed.crc).unwrap();
            prop_assert_eq!(got_p, p);
            prop_assert_eq!(&got, &section);
            let mut refs = referenced_objects(&object).unwrap();
            refs.sort();
            let mut want: Vec<String> = section.chunks.iter().map(|c| c.object.clone()).collect();
            want.sort();
            want.dedup();
            prop_assert_eq!(refs, want);
        }

        #[test]
        fn damaged_bytes_are_errors(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_section(&bytes);
            let _ = referenced_objects(&bytes);
        }
    }

    /// A section is version 1, which brokers before transactions read, unless a producer has
    /// an open transaction or the partition has aborted ones.
    #[test]
    fn sections_without_transactions_keep_version_1() {
        let p = PartitionKey {
            topic: TopicId::random(),
            partition: PartitionId(0),
        };
        let mut section = Section {
            chunks: vec![chunk("o", 0, 3)],
            ..Section::default()
        };
        section.producers.producers.insert(
            9,
            ProducerEntry {
                epoch: 1,
                batches: [(0, 2, 0)].into_iter().collect(),
                last_ms: 5,
                txn_first: None,
            },
        );
        assert_eq!(encode_section(p, &section)[0], 1);
        let mut open = section.clone();
        open.producers.producers.get_mut(&9).unwrap().txn_first = Some(0);
        assert_eq!(encode_section(p, &open)[0], 2);
        let mut aborted = section.clone();
        aborted.producers.aborted.push(AbortedTxn {
            producer_id: 9,
            first_offset: Offset(0),
            last_offset: Offset(2),
        });
        assert_eq!(encode_section(p, &aborted)[0], 2);
        for s in [section, open, aborted] {
            assert_eq!(decode_section(&encode_section(p, &s)).unwrap(), (p, s));
        }
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum() {
        let p = PartitionKey {
            topic: TopicId::random(),
            partition: PartitionId(0),
        };
        let mut b = CheckpointObjectBuilder::new(BrokerId(1));
        let placed = b.add(
            p,
            &Section {
                chunks: vec![chunk("o", 0, 3)],
                ..Section::default()
            },
        );
        let (object, _) = b.finish();
        let mut bytes = object[placed.position as usize..][..placed.length as usize].to_vec();
        bytes[5] ^= 1;
        assert_eq!(
            read_section(&bytes, placed.crc),
            Err(CheckpointFormatError::Checksum)
        );
    }
}
