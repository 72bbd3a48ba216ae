//! The segment object: one partition's batches merged from many small flush chunks, with a
//! sparse index so that a fetch reads only the blocks it needs.
//!
//! Layout (all integers big-endian):
//! ```text
//! header  48 B  "KSSG" | version u16 | flags u16 | topic id 16 B | partition i32 |
//!               reserved 4 B | base offset i64 | last offset i64
//! data          blocks of whole batches, each about `block_bytes` long
//! index         block count x 32 B: base offset i64 | position u64 | length u32 |
//!               max timestamp i64 | block crc32c u32
//! footer  24 B  index offset u64 | index length u32 | index crc32c u32 | "KSGE" |
//!               version u16 | reserved u16
//! ```
//! Positions are absolute within the object. Each block is verified on its own against the
//! CRC in its index entry; the index against the CRC in the footer (and in the metadata that
//! points at the segment). A damaged index can be rebuilt from the data alone, because the
//! blocks are made of self-delimiting batches.

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::{self, BatchError};
use crate::object_format::FormatError;
use crate::types::{Millis, Offset, PartitionId, TopicId};

pub const VERSION: u16 = 1;
const HEADER_MAGIC: &[u8; 4] = b"KSSG";
const FOOTER_MAGIC: &[u8; 4] = b"KSGE";
pub const HEADER_LEN: usize = 48;
pub const FOOTER_LEN: usize = 24;
pub const ENTRY_LEN: usize = 32;

/// One block of a segment: where it lies and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockEntry {
    pub base_offset: Offset,
    pub position: u64,
    pub length: u32,
    pub max_timestamp: Millis,
    pub crc: u32,
}

impl BlockEntry {
    pub fn range(&self) -> std::ops::Range<u64> {
        self.position..self.position + u64::from(self.length)
    }
}

/// Summary of a built segment, as recorded in metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub data_position: u64,
    pub data_length: u64,
    pub index_position: u64,
    pub index_length: u32,
    pub index_crc: u32,
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub max_timestamp: Millis,
}

/// Builds a segment from batches already stamped with their offsets, in offset order.
pub fn build<'a>(
    topic: TopicId,
    partition: PartitionId,
    batches: impl IntoIterator<Item = &'a [u8]>,
    block_bytes: usize,
) -> Result<(Bytes, SegmentInfo), BatchError> {
    write(topic, partition, None, batches, block_bytes)
}

/// Builds a segment that covers the offsets `span` (first, last) whatever its batches hold:
/// what the log cleaner writes in place of the segments it cleaned, whose batches may start
/// after and end before the span (or be none at all), the offsets between being gone.
pub fn build_spanning<'a>(
    topic: TopicId,
    partition: PartitionId,
    span: (Offset, Offset),
    batches: impl IntoIterator<Item = &'a [u8]>,
    block_bytes: usize,
) -> Result<(Bytes, SegmentInfo), BatchError> {
    write(topic, partition, Some(span), batches, block_bytes)
}

fn write<'a>(
    topic: TopicId,
    partition: PartitionId,
    span: Option<(Offset, Offset)>,
    batches: impl IntoIterator<Item = &'a [u8]>,
    block_bytes: usize,
) -> Result<(Bytes, SegmentInfo), BatchError> {
    let mut buf = BytesMut::with_capacity(HEADER_LEN + block_bytes * 4);
    buf.put_slice(HEADER_MAGIC);
    buf.put_u16(VERSION);
    buf.put_u16(0);
    buf.put_slice(topic.0.as_bytes());
    buf.put_i32(partition.0);
    buf.put_u32(0);
    buf.put_i64(0); // base offset, patched below
    buf.put_i64(0); // last offset, patched below
    let mut entries: Vec<BlockEntry> = Vec::new();
    let mut open: Option<BlockEntry> = None;
    let mut first: Option<i64> = None;
    let mut last = -1i64;
    let mut max_ts = i64::MIN;
    for raw in batches {
        let header = batch::peek_header(raw)?;
        let bytes = &raw[..header.size];
        first.get_or_insert(header.base_offset);
        last = header.last_offset();
        max_ts = max_ts.max(header.max_timestamp);
        let block = open.get_or_insert(BlockEntry {
            base_offset: Offset(header.base_offset),
            position: buf.len() as u64,
            length: 0,
            max_timestamp: i64::MIN,
            crc: 0,
        });
        block.length += header.size as u32;
        block.max_timestamp = block.max_timestamp.max(header.max_timestamp);
        block.crc = crc32c::crc32c_append(block.crc, bytes);
        buf.put_slice(bytes);
        if block.length as usize >= block_bytes {
            entries.extend(open.take());
        }
    }
    entries.extend(open.take());
    let (base, last) = match span {
        Some((from, to)) => {
            debug_assert!(first.is_none_or(|f| f >= from.0) && last <= to.0);
            (from.0, to.0)
        }
        None => (
            first.ok_or(BatchError::Invalid("a segment needs at least one batch"))?,
            last,
        ),
    };
    buf[32..40].copy_from_slice(&base.to_be_bytes());
    buf[40..48].copy_from_slice(&last.to_be_bytes());
    let data_end = buf.len();
    for e in &entries {
        buf.put_i64(e.base_offset.0);
        buf.put_u64(e.position);
        buf.put_u32(e.length);
        buf.put_i64(e.max_timestamp);
        buf.put_u32(e.crc);
    }
    let index = &buf[data_end..];
    let index_crc = crc32c::crc32c(index);
    let index_length = index.len() as u32;
    buf.put_u64(data_end as u64);
    buf.put_u32(index_length);
    buf.put_u32(index_crc);
    buf.put_slice(FOOTER_MAGIC);
    buf.put_u16(VERSION);
    buf.put_u16(0);
    let info = SegmentInfo {
        data_position: HEADER_LEN as u64,
        data_length: (data_end - HEADER_LEN) as u64,
        index_position: data_end as u64,
        index_length,
        index_crc,
        base_offset: Offset(base),
        last_offset: Offset(last),
        max_timestamp: max_ts,
    };
    Ok((buf.freeze(), info))
}

/// Decodes index bytes read by range, verified against the CRC kept in metadata.
pub fn decode_index(index: &[u8], expected_crc: u32) -> Result<Vec<BlockEntry>, FormatError> {
    if crc32c::crc32c(index) != expected_crc {
        return Err(FormatError::IndexChecksum);
    }
    if !index.len().is_multiple_of(ENTRY_LEN) {
        return Err(FormatError::IndexBounds);
    }
    let entries = index
        .chunks_exact(ENTRY_LEN)
        .map(|b| {
            let i64_at = |at: usize| {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&b[at..at + 8]);
                i64::from_be_bytes(raw)
            };
            BlockEntry {
                base_offset: Offset(i64_at(0)),
                position: i64_at(8) as u64,
                length: u32::from_be_bytes([b[16], b[17], b[18], b[19]]),
                max_timestamp: i64_at(20),
                crc: u32::from_be_bytes([b[28], b[29], b[30], b[31]]),
            }
        })
        .collect();
    Ok(entries)
}

/// Rebuilds a segment's index from its data, for a segment whose index is damaged. Blocks
/// are re-cut at `block_bytes`; every batch's own CRC is checked on the way.
pub fn rebuild_index(
    data: &Bytes,
    data_position: u64,
    block_bytes: usize,
) -> Result<Vec<BlockEntry>, FormatError> {
    let mut entries: Vec<BlockEntry> = Vec::new();
    let mut open: Option<BlockEntry> = None;
    let mut at = 0usize;
    for item in batch::iter(data) {
        let (header, bytes) = item.map_err(FormatError::MalformedBatch)?;
        batch::validate(&bytes).map_err(FormatError::MalformedBatch)?;
        let block = open.get_or_insert(BlockEntry {
            base_offset: Offset(header.base_offset),
            position: data_position + at as u64,
            length: 0,
            max_timestamp: i64::MIN,
            crc: 0,
        });
        block.length += header.size as u32;
        block.max_timestamp = block.max_timestamp.max(header.max_timestamp);
        block.crc = crc32c::crc32c_append(block.crc, &bytes);
        at += header.size;
        if block.length as usize >= block_bytes {
            entries.extend(open.take());
        }
    }
    entries.extend(open.take());
    Ok(entries)
}

/// Index of the block holding `offset` (the last block whose base is at or below it).
pub fn block_for_offset(entries: &[BlockEntry], offset: Offset) -> usize {
    entries
        .partition_point(|e| e.base_offset <= offset)
        .saturating_sub(1)
}

/// Index of the first block that can hold a timestamp at or after `ts`.
pub fn block_for_timestamp(entries: &[BlockEntry], ts: Millis) -> Option<usize> {
    entries.iter().position(|e| e.max_timestamp >= ts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::types::LeaderEpoch;
    use proptest::prelude::*;

    fn stamped(counts: &[usize]) -> Vec<Bytes> {
        let mut next = 100i64;
        counts
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let values: Vec<Vec<u8>> = (0..*n).map(|j| vec![j as u8; 20]).collect();
                let recs: Vec<batch::SimpleRecord<'_>> =
                    values.iter().map(|v| (None, Some(v.as_slice()))).collect();
                let mut b = batch::build(&recs, 1000 * i as i64).to_vec();
                batch::stamp(&mut b, Offset(next), LeaderEpoch(1));
                next += *n as i64;
                Bytes::from(b)
            })
            .collect()
    }

    proptest! {
        #[test]
        fn blocks_cover_everything_and_lookups_hold(counts in proptest::collection::vec(1usize..30, 1..60), block in 64usize..4096, probe in 0i64..2000) {
            let batches = stamped(&counts);
            let (object, info) = build(TopicId::random(), PartitionId(3), batches.iter().map(|b| b.as_ref()), block).unwrap();
            let idx = &object[info.index_position as usize..(info.index_position + u64::from(info.index_length)) as usize];
            let entries = decode_index(idx, info.index_crc).unwrap();
            // Blocks tile the data exactly and each verifies.
            let mut at = info.data_position;
            for e in &entries {
                prop_assert_eq!(e.position, at);
                let data = &object[e.range().start as usize..e.range().end as usize];
                prop_assert_eq!(crc32c::crc32c(data), e.crc);
                at += u64::from(e.length);
            }
            prop_assert_eq!(at, info.data_position + info.data_length);
            prop_assert_eq!(info.base_offset, Offset(100));
            // An offset finds the greatest indexed entry at or below it.
            let offset = Offset(100 + probe.min(info.last_offset.0 - 100));
            let i = block_for_offset(&entries, offset);
            prop_assert!(entries[i].base_offset <= offset);
            prop_assert!(entries.get(i + 1).is_none_or(|n| n.base_offset > offset));
            // Rebuilding from the data gives the same index.
            let data = object.slice(info.data_position as usize..(info.data_position + info.data_length) as usize);
            prop_assert_eq!(rebuild_index(&data, info.data_position, block).unwrap(), entries);
        }
    }

    #[test]
    fn damaged_index_is_detected() {
        let batches = stamped(&[3, 4]);
        let (object, info) = build(
            TopicId::random(),
            PartitionId(0),
            batches.iter().map(|b| b.as_ref()),
            10,
        )
        .unwrap();
        let mut idx = object[info.index_position as usize
            ..(info.index_position + u64::from(info.index_length)) as usize]
            .to_vec();
        idx[5] ^= 1;
        assert!(decode_index(&idx, info.index_crc).is_err());
    }
}
