//! The flush object: one object per flush holding the new batches of every partition the
//! broker flushed, so PUTs do not grow with the number of partitions.
//!
//! Layout (all integers big-endian):
//! ```text
//! header  32 B  "KSFO" | version u16 | flags u16 | broker id i32 | created ms i64 |
//!               chunk count u32 | reserved 8 B
//! chunks        per partition: its batches, stamped with offsets and leader epoch
//! index         version 3: chunk count u32, chunk count x 64 B entries (see ChunkEntry::encode),
//!               batch count u32, then per idempotent batch 31 B (see ProducerBatch::encode);
//!               version 2: the same with 30 B per batch (no transaction role);
//!               version 1: the entries only
//! footer  24 B  index offset u64 | index length u32 | index crc32c u32 | "KSFE" |
//!               version u16 | reserved u16
//! ```
//! Each index entry carries the CRC-32C of its chunk, and so does whatever points at the
//! chunk, so a ranged read of one chunk is verified without the footer. The index holds what
//! a new leader needs to take a partition over from the flushes after its checkpoint (byte
//! ranges, offsets, timestamps, idempotent producers' sequences): it reads the index and the
//! footer after it with one ranged GET ([`decode_index_tail`]).

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch;
use crate::types::{BrokerId, LeaderEpoch, Millis, Offset, PartitionId, TopicId};

/// The newest version, read and written. An object is written as version 2 when none of its
/// batches is transactional, so that brokers of the version before transactions, which read
/// versions 1 and 2, can run beside this one during a rolling upgrade (`docs/operations.md`).
pub const VERSION: u16 = 3;
/// The version written when no batch has a transaction role.
const VERSION_WITHOUT_TRANSACTIONS: u16 = 2;
const HEADER_MAGIC: &[u8; 4] = b"KSFO";
const FOOTER_MAGIC: &[u8; 4] = b"KSFE";
pub const HEADER_LEN: usize = 32;
pub const FOOTER_LEN: usize = 24;
pub const ENTRY_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("flush object too short: {0} bytes")]
    TooShort(usize),
    #[error("flush object has bad magic")]
    BadMagic,
    #[error("unsupported flush object version {0}")]
    UnsupportedVersion(u16),
    #[error("flush object index checksum mismatch")]
    IndexChecksum,
    #[error("flush object index out of bounds")]
    IndexBounds,
    #[error("chunk checksum mismatch: expected {expected:#010x}, computed {computed:#010x}")]
    ChunkChecksum { expected: u32, computed: u32 },
    #[error("chunk length mismatch: expected {expected}, got {actual}")]
    ChunkLength { expected: u64, actual: u64 },
    #[error("chunk holds a malformed batch: {0}")]
    MalformedBatch(batch::BatchError),
}

/// Where one partition's new data lies in a flush object, and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkEntry {
    pub topic: TopicId,
    pub partition: PartitionId,
    /// Byte position of the chunk within the object.
    pub position: u64,
    pub length: u32,
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub max_timestamp: Millis,
    pub batch_count: u32,
    pub crc: u32,
}

impl ChunkEntry {
    fn encode(&self, out: &mut BytesMut) {
        out.put_slice(self.topic.0.as_bytes());
        out.put_i32(self.partition.0);
        out.put_u64(self.position);
        out.put_u32(self.length);
        out.put_i64(self.base_offset.0);
        out.put_i64(self.last_offset.0);
        out.put_i64(self.max_timestamp);
        out.put_u32(self.batch_count);
        out.put_u32(self.crc);
    }

    fn decode(b: &[u8]) -> ChunkEntry {
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[0..16]);
        let u32_at = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let u64_at = |at: usize| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&b[at..at + 8]);
            u64::from_be_bytes(raw)
        };
        ChunkEntry {
            topic: TopicId(uuid::Uuid::from_bytes(id)),
            partition: PartitionId(u32_at(16) as i32),
            position: u64_at(20),
            length: u32_at(28),
            base_offset: Offset(u64_at(32) as i64),
            last_offset: Offset(u64_at(40) as i64),
            max_timestamp: u64_at(48) as i64,
            batch_count: u32_at(56),
            crc: u32_at(60),
        }
    }

    /// The byte range of the chunk within its object.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.position..self.position + u64::from(self.length)
    }
}

/// An idempotent producer's batch in a chunk: what a new leader replays to rebuild the
/// producer's sequence state, as Kafka rebuilds it from its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    /// The chunk's entry in the index.
    pub entry: u32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub base_offset: Offset,
    pub last_offset_delta: i32,
    /// What the batch is to a transaction (version 3 objects; None before).
    pub role: batch::TxnRole,
}

/// Bytes per producer batch: version 2 objects, and version 3 ones (one byte more, the
/// transaction role).
const PRODUCER_BATCH_LEN_V2: usize = 30;
const PRODUCER_BATCH_LEN: usize = 31;

impl ProducerBatch {
    /// Encodes the batch as `version` holds it (version 2 has no transaction role).
    fn encode(&self, out: &mut BytesMut, version: u16) {
        out.put_u32(self.entry);
        out.put_i64(self.producer_id);
        out.put_i16(self.producer_epoch);
        out.put_i32(self.base_sequence);
        out.put_i64(self.base_offset.0);
        out.put_i32(self.last_offset_delta);
        if version >= 3 {
            out.put_u8(self.role.to_flags());
        }
    }

    fn decode(b: &[u8]) -> ProducerBatch {
        let i64_at = |at: usize| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(raw)
        };
        let i32_at = |at: usize| i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        ProducerBatch {
            entry: i32_at(0) as u32,
            producer_id: i64_at(4),
            producer_epoch: i16::from_be_bytes([b[12], b[13]]),
            base_sequence: i32_at(14),
            base_offset: Offset(i64_at(18)),
            last_offset_delta: i32_at(26),
            role: b
                .get(30)
                .map_or(batch::TxnRole::None, |f| batch::TxnRole::from_flags(*f)),
        }
    }
}

/// The index of a flush object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushIndex {
    pub entries: Vec<ChunkEntry>,
    /// Idempotent batches, in object order (version 2 objects only).
    pub producer_batches: Vec<ProducerBatch>,
}

/// What a chunk being added holds so far.
struct Tally {
    base_offset: Offset,
    /// The offset after its last batch.
    next: Offset,
    max_timestamp: Millis,
    batch_count: u32,
}

impl Tally {
    fn new(base_offset: Offset) -> Tally {
        Tally {
            base_offset,
            next: base_offset,
            max_timestamp: i64::MIN,
            batch_count: 0,
        }
    }
}

/// Assembles one flush object. Batches are copied once into the object buffer and stamped
/// there with their offsets.
pub struct FlushObjectBuilder {
    buf: BytesMut,
    entries: Vec<ChunkEntry>,
    producer_batches: Vec<ProducerBatch>,
}

impl FlushObjectBuilder {
    pub fn new(broker: BrokerId, created_ms: Millis, capacity: usize) -> FlushObjectBuilder {
        let mut buf = BytesMut::with_capacity(HEADER_LEN + capacity + FOOTER_LEN);
        buf.put_slice(HEADER_MAGIC);
        buf.put_u16(VERSION);
        buf.put_u16(0);
        buf.put_i32(broker.0);
        buf.put_i64(created_ms);
        buf.put_u32(0); // chunk count, patched in finish
        buf.put_slice(&[0u8; 8]);
        FlushObjectBuilder {
            buf,
            entries: Vec::new(),
            producer_batches: Vec::new(),
        }
    }

    /// Appends a partition's batches (each already validated) starting at `base_offset`.
    /// Returns the entry, whose `last_offset` is the offset of the chunk's last record.
    pub fn add_chunk<'a>(
        &mut self,
        topic: TopicId,
        partition: PartitionId,
        base_offset: Offset,
        epoch: LeaderEpoch,
        batches: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<ChunkEntry, batch::BatchError> {
        let start = self.buf.len();
        let mut tally = Tally::new(base_offset);
        let mut crc = 0u32;
        for raw in batches {
            let header = batch::peek_header(raw)?;
            let at = self.buf.len();
            self.buf.put_slice(&raw[..header.size]);
            let stamped = &mut self.buf[at..at + header.size];
            batch::stamp(stamped, tally.next, epoch);
            // The chunk's CRC without a second pass over the data: the batch's own CRC
            // (checked on append) covers everything after its first bytes, which are the
            // only ones hashed here.
            let whole = batch::crc_of_stamped(stamped);
            crc = if tally.batch_count == 0 {
                whole
            } else {
                crc32c::crc32c_combine(crc, whole, header.size)
            };
            let base = tally.next;
            let role = batch::TxnRole::of(&header, raw);
            self.note_batch(&mut tally, &header, role, base);
        }
        self.close_entry(topic, partition, start, tally, crc)
    }

    /// Appends a partition's batches as they were written before (stamped, and read back
    /// from other objects): `pieces` are consecutive verified chunks with their CRCs, copied
    /// unchanged, offsets and leader epochs included. Returns the entry covering them all; on
    /// an error (batches that do not follow each other) the builder is as it was.
    pub fn add_written_chunk<'a>(
        &mut self,
        topic: TopicId,
        partition: PartitionId,
        pieces: impl IntoIterator<Item = (&'a [u8], u32)>,
    ) -> Result<ChunkEntry, batch::BatchError> {
        let (start, producers) = (self.buf.len(), self.producer_batches.len());
        let entry = self.copy_written(topic, partition, pieces);
        if entry.is_err() {
            self.buf.truncate(start);
            self.producer_batches.truncate(producers);
        }
        entry
    }

    fn copy_written<'a>(
        &mut self,
        topic: TopicId,
        partition: PartitionId,
        pieces: impl IntoIterator<Item = (&'a [u8], u32)>,
    ) -> Result<ChunkEntry, batch::BatchError> {
        let start = self.buf.len();
        let mut tally: Option<Tally> = None;
        let mut crc = 0u32;
        for (piece, piece_crc) in pieces {
            crc = if self.buf.len() == start {
                piece_crc
            } else {
                crc32c::crc32c_combine(crc, piece_crc, piece.len())
            };
            let mut rest = piece;
            while !rest.is_empty() {
                let header = batch::peek_header(rest)?;
                let base = Offset(header.base_offset);
                let t = tally.get_or_insert_with(|| Tally::new(base));
                if base != t.next {
                    return Err(batch::BatchError::Invalid(
                        "batches of a chunk not consecutive",
                    ));
                }
                let role = batch::TxnRole::of(&header, rest);
                self.note_batch(t, &header, role, base);
                rest = &rest[header.size..];
            }
            self.buf.put_slice(piece);
        }
        let tally = tally.ok_or(batch::BatchError::Invalid("empty chunk"))?;
        self.close_entry(topic, partition, start, tally, crc)
    }

    /// Counts a batch placed at `base` into its chunk's tally, and indexes it if idempotent.
    fn note_batch(
        &mut self,
        tally: &mut Tally,
        header: &batch::BatchHeader,
        role: batch::TxnRole,
        base: Offset,
    ) {
        if header.producer_id >= 0 {
            self.producer_batches.push(ProducerBatch {
                entry: self.entries.len() as u32,
                producer_id: header.producer_id,
                producer_epoch: header.producer_epoch,
                base_sequence: header.base_sequence,
                base_offset: base,
                last_offset_delta: header.last_offset_delta,
                role,
            });
        }
        tally.next = base.plus(header.offset_count());
        tally.max_timestamp = tally.max_timestamp.max(header.max_timestamp);
        tally.batch_count += 1;
    }

    /// The entry of the chunk written since `start`, added to the index.
    fn close_entry(
        &mut self,
        topic: TopicId,
        partition: PartitionId,
        start: usize,
        tally: Tally,
        crc: u32,
    ) -> Result<ChunkEntry, batch::BatchError> {
        let data = &self.buf[start..];
        let entry = ChunkEntry {
            topic,
            partition,
            position: start as u64,
            length: u32::try_from(data.len())
                .map_err(|_| batch::BatchError::Invalid("chunk over 4 GiB"))?,
            base_offset: tally.base_offset,
            last_offset: Offset(tally.next.0 - 1),
            max_timestamp: tally.max_timestamp,
            batch_count: tally.batch_count,
            crc,
        };
        debug_assert_eq!(crc, crc32c::crc32c(data));
        self.entries.push(entry);
        Ok(entry)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The object, and where its index lies (position, length).
    pub fn finish(mut self) -> (Bytes, Vec<ChunkEntry>, (u64, u32)) {
        let count = self.entries.len() as u32;
        let version = if self
            .producer_batches
            .iter()
            .all(|b| b.role == batch::TxnRole::None)
        {
            VERSION_WITHOUT_TRANSACTIONS
        } else {
            VERSION
        };
        self.buf[4..6].copy_from_slice(&version.to_be_bytes());
        self.buf[20..24].copy_from_slice(&count.to_be_bytes());
        let index_at = self.buf.len();
        self.buf.put_u32(count);
        for e in &self.entries {
            e.encode(&mut self.buf);
        }
        self.buf.put_u32(self.producer_batches.len() as u32);
        for b in &self.producer_batches {
            b.encode(&mut self.buf, version);
        }
        let index_crc = crc32c::crc32c(&self.buf[index_at..]);
        let index_len = (self.buf.len() - index_at) as u32;
        self.buf.put_u64(index_at as u64);
        self.buf.put_u32(index_len);
        self.buf.put_u32(index_crc);
        self.buf.put_slice(FOOTER_MAGIC);
        self.buf.put_u16(version);
        self.buf.put_u16(0);
        (
            self.buf.freeze(),
            self.entries,
            (index_at as u64, index_len),
        )
    }
}

/// Reads and verifies the index of a complete flush object.
pub fn decode_index(object: &[u8]) -> Result<FlushIndex, FormatError> {
    if object.len() < HEADER_LEN + FOOTER_LEN {
        return Err(FormatError::TooShort(object.len()));
    }
    if &object[0..4] != HEADER_MAGIC {
        return Err(FormatError::BadMagic);
    }
    let footer = &object[object.len() - FOOTER_LEN..];
    let index_at = footer_index_position(footer)?;
    let tail = object
        .get(index_at..)
        .filter(|_| index_at >= HEADER_LEN)
        .ok_or(FormatError::IndexBounds)?;
    let index = decode_index_tail(tail)?;
    for e in &index.entries {
        let end = e.position.checked_add(u64::from(e.length));
        if e.position < HEADER_LEN as u64 || end.is_none_or(|end| end > index_at as u64) {
            return Err(FormatError::IndexBounds);
        }
    }
    Ok(index)
}

fn footer_index_position(footer: &[u8]) -> Result<usize, FormatError> {
    if &footer[16..20] != FOOTER_MAGIC {
        return Err(FormatError::BadMagic);
    }
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&footer[0..8]);
    usize::try_from(u64::from_be_bytes(raw)).map_err(|_| FormatError::IndexBounds)
}

/// Reads and verifies a flush object's index from the object's tail: the bytes from the
/// index's position to the end of the object (the index and the footer), as one ranged read
/// fetches them.
pub fn decode_index_tail(tail: &[u8]) -> Result<FlushIndex, FormatError> {
    if tail.len() < FOOTER_LEN {
        return Err(FormatError::TooShort(tail.len()));
    }
    let footer = &tail[tail.len() - FOOTER_LEN..];
    footer_index_position(footer)?;
    let version = u16::from_be_bytes([footer[20], footer[21]]);
    if !(1..=VERSION).contains(&version) {
        return Err(FormatError::UnsupportedVersion(version));
    }
    let index_len = u32::from_be_bytes([footer[8], footer[9], footer[10], footer[11]]) as usize;
    let index_crc = u32::from_be_bytes([footer[12], footer[13], footer[14], footer[15]]);
    if index_len != tail.len() - FOOTER_LEN {
        return Err(FormatError::IndexBounds);
    }
    let index = &tail[..index_len];
    if crc32c::crc32c(index) != index_crc {
        return Err(FormatError::IndexChecksum);
    }
    if version == 1 {
        if !index_len.is_multiple_of(ENTRY_LEN) {
            return Err(FormatError::IndexBounds);
        }
        return Ok(FlushIndex {
            entries: index
                .chunks_exact(ENTRY_LEN)
                .map(ChunkEntry::decode)
                .collect(),
            producer_batches: Vec::new(),
        });
    }
    let count_at = |at: usize| -> Result<usize, FormatError> {
        let b = index.get(at..at + 4).ok_or(FormatError::IndexBounds)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let entries = count_at(0)?;
    let entries_end = entries
        .checked_mul(ENTRY_LEN)
        .and_then(|n| n.checked_add(4))
        .filter(|end| *end + 4 <= index_len)
        .ok_or(FormatError::IndexBounds)?;
    let batches = count_at(entries_end)?;
    let batch_len = if version == 2 {
        PRODUCER_BATCH_LEN_V2
    } else {
        PRODUCER_BATCH_LEN
    };
    let batches_end = batches
        .checked_mul(batch_len)
        .and_then(|n| n.checked_add(entries_end + 4))
        .filter(|end| *end == index_len)
        .ok_or(FormatError::IndexBounds)?;
    let producer_batches: Vec<ProducerBatch> = index[entries_end + 4..batches_end]
        .chunks_exact(batch_len)
        .map(ProducerBatch::decode)
        .collect();
    if producer_batches.iter().any(|b| b.entry as usize >= entries) {
        return Err(FormatError::IndexBounds);
    }
    Ok(FlushIndex {
        entries: index[4..entries_end]
            .chunks_exact(ENTRY_LEN)
            .map(ChunkEntry::decode)
            .collect(),
        producer_batches,
    })
}

/// Checks bytes read for a chunk against the length and CRC its entry promises.
pub fn verify_chunk(data: &[u8], length: u32, crc: u32) -> Result<(), FormatError> {
    if data.len() as u64 != u64::from(length) {
        return Err(FormatError::ChunkLength {
            expected: u64::from(length),
            actual: data.len() as u64,
        });
    }
    let computed = crc32c::crc32c(data);
    if computed != crc {
        return Err(FormatError::ChunkChecksum {
            expected: crc,
            computed,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn sample_batches(sizes: &[usize]) -> Vec<Bytes> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let value = vec![i as u8; *n];
                batch::build(&[(Some(b"k".as_slice()), Some(value.as_slice()))], i as i64)
            })
            .collect()
    }

    proptest! {
        #[test]
        fn round_trip(parts in proptest::collection::vec(proptest::collection::vec(0usize..300, 1..5), 1..6), base in 0i64..1_000_000) {
            let mut builder = FlushObjectBuilder::new(BrokerId(3), 77, 0);
            let topic = TopicId::random();
            let mut expected = Vec::new();
            for (p, sizes) in parts.iter().enumerate() {
                let batches = sample_batches(sizes);
                let e = builder
                    .add_chunk(topic, PartitionId(p as i32), Offset(base), LeaderEpoch(2), batches.iter().map(|b| b.as_ref()))
                    .unwrap();
                prop_assert_eq!(e.last_offset, Offset(base + sizes.len() as i64 - 1));
                expected.push((e, batches));
            }
            let (object, entries, (at, len)) = builder.finish();
            let decoded = decode_index(&object).unwrap();
            prop_assert_eq!(&decoded.entries, &entries);
            prop_assert!(decoded.producer_batches.is_empty());
            prop_assert_eq!(at as usize + len as usize + FOOTER_LEN, object.len());
            prop_assert_eq!(decode_index_tail(&object[at as usize..]).unwrap(), decoded);
            for (entry, batches) in expected {
                let data = &object[entry.position as usize..(entry.position + u64::from(entry.length)) as usize];
                verify_chunk(data, entry.length, entry.crc).unwrap();
                let data = Bytes::copy_from_slice(data);
                let mut next = entry.base_offset.0;
                for (got, original) in batch::iter(&data).zip(batches.iter()) {
                    let (h, bytes) = got.unwrap();
                    prop_assert_eq!(h.base_offset, next);
                    prop_assert_eq!(h.partition_leader_epoch, 2);
                    batch::validate(&bytes).unwrap();
                    // Only the base offset and epoch differ from what the client sent.
                    prop_assert_eq!(&bytes[16..], &original[16..]);
                    next = h.last_offset() + 1;
                }
            }
        }

        #[test]
        fn damaged_objects_never_panic(flip in 0usize..400, byte in any::<u8>()) {
            let mut builder = FlushObjectBuilder::new(BrokerId(1), 5, 0);
            let batches = sample_batches(&[10, 20]);
            builder.add_chunk(TopicId::random(), PartitionId(0), Offset(0), LeaderEpoch(0), batches.iter().map(|b| b.as_ref())).unwrap();
            let (object, _, _) = builder.finish();
            let mut damaged = object.to_vec();
            let at = flip % damaged.len();
            damaged[at] ^= byte.max(1);
            let _ = decode_index(&damaged);
            let _ = decode_index(&damaged[..at]);
        }
    }

    #[test]
    fn idempotent_batches_are_in_the_index() {
        let mut builder = FlushObjectBuilder::new(BrokerId(1), 5, 0);
        let plain = sample_batches(&[10]);
        let idem = [
            batch::build_idempotent(&[(None, Some(b"a")), (None, Some(b"b"))], 1, 77, 3, 10),
            batch::build_idempotent(&[(None, Some(b"c"))], 2, 77, 3, 12),
        ];
        let topic = TopicId::random();
        builder
            .add_chunk(
                topic,
                PartitionId(0),
                Offset(0),
                LeaderEpoch(0),
                plain.iter().map(|b| b.as_ref()),
            )
            .unwrap();
        builder
            .add_chunk(
                topic,
                PartitionId(1),
                Offset(40),
                LeaderEpoch(0),
                idem.iter().map(|b| b.as_ref()),
            )
            .unwrap();
        let (object, _, _) = builder.finish();
        let index = decode_index(&object).unwrap();
        assert_eq!(
            index.producer_batches,
            vec![
                ProducerBatch {
                    entry: 1,
                    producer_id: 77,
                    producer_epoch: 3,
                    base_sequence: 10,
                    base_offset: Offset(40),
                    last_offset_delta: 1,
                    role: batch::TxnRole::None,
                },
                ProducerBatch {
                    entry: 1,
                    producer_id: 77,
                    producer_epoch: 3,
                    base_sequence: 12,
                    base_offset: Offset(42),
                    last_offset_delta: 0,
                    role: batch::TxnRole::None,
                },
            ]
        );
    }

    /// Chunks written by several flushes, copied into one entry: the bytes are unchanged,
    /// the entry covers them all with the CRC of the whole, and a gap between them is refused
    /// without leaving anything behind.
    #[test]
    fn written_chunks_copy_into_one_entry() {
        let topic = TopicId::random();
        let mut first = FlushObjectBuilder::new(BrokerId(1), 5, 0);
        let a = sample_batches(&[10, 20]);
        let b = [batch::build_idempotent(&[(None, Some(b"x"))], 9, 77, 3, 10)];
        let ea = first
            .add_chunk(
                topic,
                PartitionId(0),
                Offset(100),
                LeaderEpoch(4),
                a.iter().map(|b| b.as_ref()),
            )
            .unwrap();
        let (oa, _, _) = first.finish();
        let mut second = FlushObjectBuilder::new(BrokerId(1), 6, 0);
        let eb = second
            .add_chunk(
                topic,
                PartitionId(0),
                Offset(102),
                LeaderEpoch(5),
                b.iter().map(|b| b.as_ref()),
            )
            .unwrap();
        let (ob, _, _) = second.finish();
        let slice =
            |o: &Bytes, e: &ChunkEntry| o[e.position as usize..e.range().end as usize].to_vec();
        let (da, db) = (slice(&oa, &ea), slice(&ob, &eb));

        let mut merged = FlushObjectBuilder::new(BrokerId(1), 7, 0);
        // Out of order: 102 does not follow 103.
        assert!(merged
            .add_written_chunk(
                topic,
                PartitionId(0),
                [(db.as_slice(), eb.crc), (da.as_slice(), ea.crc)]
            )
            .is_err());
        let e = merged
            .add_written_chunk(
                topic,
                PartitionId(0),
                [(da.as_slice(), ea.crc), (db.as_slice(), eb.crc)],
            )
            .unwrap();
        assert_eq!(
            (e.base_offset, e.last_offset, e.batch_count),
            (Offset(100), Offset(102), 3)
        );
        assert_eq!(e.max_timestamp, ea.max_timestamp.max(eb.max_timestamp));
        let (object, entries, _) = merged.finish();
        assert_eq!(entries, vec![e]);
        let data = slice(&object, &e);
        verify_chunk(&data, e.length, e.crc).unwrap();
        assert_eq!(data, [da, db].concat());
        let index = decode_index(&object).unwrap();
        assert_eq!(index.producer_batches.len(), 1);
        assert_eq!(index.producer_batches[0].base_offset, Offset(102));
        assert_eq!(index.producer_batches[0].entry, 0);
    }

    /// The version an object is written in: 2, which brokers before transactions read, unless
    /// a batch has a transaction role; the role survives in version 3.
    #[test]
    fn objects_without_transactions_keep_version_2() {
        let version = |object: &Bytes| {
            let footer = &object[object.len() - FOOTER_LEN..];
            let header = u16::from_be_bytes([object[4], object[5]]);
            assert_eq!(header, u16::from_be_bytes([footer[20], footer[21]]));
            header
        };
        let topic = TopicId::random();
        let write = |batches: &[Bytes]| {
            let mut builder = FlushObjectBuilder::new(BrokerId(1), 5, 0);
            builder
                .add_chunk(
                    topic,
                    PartitionId(0),
                    Offset(0),
                    LeaderEpoch(0),
                    batches.iter().map(|b| b.as_ref()),
                )
                .unwrap();
            builder.finish().0
        };
        let idempotent = write(&[batch::build_idempotent(&[(None, Some(b"a"))], 1, 7, 0, 0)]);
        assert_eq!(version(&idempotent), 2);
        assert_eq!(decode_index(&idempotent).unwrap().producer_batches.len(), 1);
        let transactional = batch::build_with(
            &[(None, Some(b"t"))],
            1,
            (8, 0, 0),
            batch::TRANSACTIONAL_BIT,
        );
        let mixed = write(&[
            batch::build_idempotent(&[(None, Some(b"a"))], 1, 7, 0, 0),
            transactional,
        ]);
        assert_eq!(version(&mixed), VERSION);
        let roles: Vec<_> = decode_index(&mixed)
            .unwrap()
            .producer_batches
            .iter()
            .map(|b| b.role)
            .collect();
        assert_eq!(roles, vec![batch::TxnRole::None, batch::TxnRole::Data]);
    }

    #[test]
    fn damaged_chunk_is_detected() {
        let mut builder = FlushObjectBuilder::new(BrokerId(1), 5, 0);
        let batches = sample_batches(&[10]);
        let e = builder
            .add_chunk(
                TopicId::random(),
                PartitionId(0),
                Offset(0),
                LeaderEpoch(0),
                batches.iter().map(|b| b.as_ref()),
            )
            .unwrap();
        let (object, _, _) = builder.finish();
        let mut data =
            object[e.position as usize..(e.position + u64::from(e.length)) as usize].to_vec();
        data[3] ^= 1;
        assert!(verify_chunk(&data, e.length, e.crc).is_err());
    }
}
