//! The stored unit of data: a record batch in Kafka's v2 ("magic 2") layout, kept as the
//! client sent it. Core reads its fixed-size header by position, checks its CRC-32C without
//! decompressing, and rewrites only the base offset and partition leader epoch, which lie
//! outside the CRC.

use bytes::{Bytes, BytesMut};

use crate::types::{LeaderEpoch, Millis, Offset};

/// Size of the fixed v2 batch header, up to and including the record count.
pub const HEADER_LEN: usize = 61;
/// The batch length field counts the bytes after itself (offset 12 onwards).
const LENGTH_FIELD_END: usize = 12;
const EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;
const MAX_TIMESTAMP_AT: usize = 35;
const RECORD_COUNT_AT: usize = 57;

/// Compression codec, from attribute bits 0-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    /// The codec's bits in a batch's attributes.
    pub fn bits(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }
}

/// After a batch's records section was replaced by one compressed with `codec`: rewrites its
/// length, the codec bits of its attributes and its CRC, so that it validates again.
pub fn rewrite_codec(batch: &mut [u8], codec: Codec) -> Result<(), BatchError> {
    if batch.len() < HEADER_LEN {
        return Err(BatchError::Truncated {
            needed: HEADER_LEN,
            available: batch.len(),
        });
    }
    let length = i32::try_from(batch.len() - LENGTH_FIELD_END)
        .map_err(|_| BatchError::Invalid("batch over 2 GiB"))?;
    batch[LENGTH_FIELD_END - 4..LENGTH_FIELD_END].copy_from_slice(&length.to_be_bytes());
    // The attributes are the first field the CRC covers.
    let attributes = (i16::from_be_bytes([batch[CRC_FROM], batch[CRC_FROM + 1]]) & !0x07)
        | i16::from(codec.bits());
    batch[CRC_FROM..CRC_FROM + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_FROM..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Sets a batch's record count (inside the CRC: a caller that changes it rewrites the CRC,
/// as [`rewrite_codec`] does).
pub fn set_record_count(batch: &mut [u8], count: i32) {
    debug_assert!(batch.len() >= HEADER_LEN);
    batch[RECORD_COUNT_AT..HEADER_LEN].copy_from_slice(&count.to_be_bytes());
}

/// Marks a validated batch as timestamped by the broker (`LogAppendTime`) at `now`, as Kafka
/// stores batches of topics with `message.timestamp.type` LogAppendTime: the timestamp-type
/// bit of the attributes set, the max timestamp set to `now`, the CRC rewritten. Clients read
/// every record's timestamp as the batch's max timestamp then.
pub fn set_log_append_time(batch: &mut [u8], now: Millis) {
    debug_assert!(batch.len() >= HEADER_LEN);
    batch[CRC_FROM + 1] |= 0x08;
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_FROM..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// What is wrong with bytes that claim to be record batches.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("unsupported record batch magic {0} (only 2 is supported)")]
    UnsupportedMagic(i8),
    #[error("record batch crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("invalid record batch: {0}")]
    Invalid(&'static str),
    #[error("unknown compression codec {0}")]
    UnknownCodec(u8),
}

/// The fields of a v2 batch header that the broker needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Total size of the batch in bytes, header included.
    pub size: usize,
    pub partition_leader_epoch: i32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub first_timestamp: Millis,
    pub max_timestamp: Millis,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    pub fn codec(&self) -> Result<Codec, BatchError> {
        match (self.attributes & 0x07) as u8 {
            0 => Ok(Codec::None),
            1 => Ok(Codec::Gzip),
            2 => Ok(Codec::Snappy),
            3 => Ok(Codec::Lz4),
            4 => Ok(Codec::Zstd),
            other => Err(BatchError::UnknownCodec(other)),
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    pub fn uses_log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }

    /// Offset of the last record, given the base offset stored in the header.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Number of offsets the batch occupies (its last offset delta plus one).
    pub fn offset_count(&self) -> i64 {
        i64::from(self.last_offset_delta) + 1
    }
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(raw)
}

/// Reads the header of the batch at the start of `buf` without checking the CRC.
pub fn peek_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    if buf.len() < HEADER_LEN {
        return Err(BatchError::Truncated {
            needed: HEADER_LEN,
            available: buf.len(),
        });
    }
    let magic = buf[MAGIC_AT] as i8;
    if magic != 2 {
        return Err(BatchError::UnsupportedMagic(magic));
    }
    let length = i32_at(buf, 8);
    let size = usize::try_from(length)
        .ok()
        .and_then(|l| l.checked_add(LENGTH_FIELD_END))
        .filter(|s| *s >= HEADER_LEN)
        .ok_or(BatchError::Invalid("batch length out of range"))?;
    if buf.len() < size {
        return Err(BatchError::Truncated {
            needed: size,
            available: buf.len(),
        });
    }
    let header = BatchHeader {
        base_offset: i64_at(buf, 0),
        size,
        partition_leader_epoch: i32_at(buf, EPOCH_AT),
        attributes: i16_at(buf, 21),
        last_offset_delta: i32_at(buf, 23),
        first_timestamp: i64_at(buf, 27),
        max_timestamp: i64_at(buf, MAX_TIMESTAMP_AT),
        producer_id: i64_at(buf, 43),
        producer_epoch: i16_at(buf, 51),
        base_sequence: i32_at(buf, 53),
        record_count: i32_at(buf, RECORD_COUNT_AT),
    };
    if header.last_offset_delta < 0 || header.record_count < 0 {
        return Err(BatchError::Invalid("negative record count or offset delta"));
    }
    Ok(header)
}

/// CRC-32C of a whole batch, from its first bytes and the CRC it stores over the rest (valid
/// for a batch that passed [`validate`]; the base offset and leader epoch may have been
/// rewritten since, as they lie outside the stored CRC).
pub fn crc_of_stamped(batch: &[u8]) -> u32 {
    let stored = u32::from_be_bytes([
        batch[CRC_AT],
        batch[CRC_AT + 1],
        batch[CRC_AT + 2],
        batch[CRC_AT + 3],
    ]);
    crc32c::crc32c_combine(
        crc32c::crc32c(&batch[..CRC_FROM]),
        stored,
        batch.len() - CRC_FROM,
    )
}

/// Reads and validates one complete batch: magic 2, sane lengths, CRC-32C.
pub fn validate(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = peek_header(buf)?;
    let stored = u32::from_be_bytes([
        buf[CRC_AT],
        buf[CRC_AT + 1],
        buf[CRC_AT + 2],
        buf[CRC_AT + 3],
    ]);
    let computed = crc32c::crc32c(&buf[CRC_FROM..header.size]);
    if stored != computed {
        return Err(BatchError::CrcMismatch { stored, computed });
    }
    header.codec()?;
    if header.record_count == 0 && !header.is_control() {
        return Err(BatchError::Invalid("batch holds no records"));
    }
    Ok(header)
}

/// Validates that `buf` holds exactly one complete batch, as Kafka requires of a produce
/// request's partition data.
pub fn validate_single(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = validate(buf)?;
    if header.size != buf.len() {
        return Err(BatchError::Invalid(
            "partition data must hold exactly one record batch",
        ));
    }
    Ok(header)
}

/// Writes the assigned base offset and the leader epoch into a batch in place. Both fields are
/// outside the CRC, so the batch stays valid.
pub fn stamp(batch: &mut [u8], base_offset: Offset, epoch: LeaderEpoch) {
    debug_assert!(batch.len() >= HEADER_LEN);
    batch[0..8].copy_from_slice(&base_offset.0.to_be_bytes());
    batch[EPOCH_AT..EPOCH_AT + 4].copy_from_slice(&epoch.0.to_be_bytes());
}

/// Iterates over the complete batches in a buffer of concatenated batches.
pub fn iter(buf: &Bytes) -> BatchIter {
    BatchIter {
        buf: buf.clone(),
        pos: 0,
    }
}

pub struct BatchIter {
    buf: Bytes,
    pos: usize,
}

impl Iterator for BatchIter {
    type Item = Result<(BatchHeader, Bytes), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        match peek_header(&self.buf[self.pos..]) {
            Ok(header) => {
                let slice = self.buf.slice(self.pos..self.pos + header.size);
                self.pos += header.size;
                Some(Ok((header, slice)))
            }
            Err(e) => {
                self.pos = self.buf.len();
                Some(Err(e))
            }
        }
    }
}

/// A record's key and value, either of which may be null.
pub type SimpleRecord<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Builds an uncompressed v2 batch of simple records; for tests and tools.
pub fn build(records: &[SimpleRecord<'_>], first_timestamp: Millis) -> Bytes {
    build_idempotent(records, first_timestamp, -1, -1, -1)
}

/// [`build`] with an idempotent producer's id, epoch and first sequence.
pub fn build_idempotent(
    records: &[SimpleRecord<'_>],
    first_timestamp: Millis,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Bytes {
    let producer = (producer_id, producer_epoch, base_sequence);
    build_with(records, first_timestamp, producer, 0)
}

/// Attribute bit of a batch written inside a transaction.
pub const TRANSACTIONAL_BIT: i16 = 0x10;
/// Attribute bit of a control batch (a transaction marker).
pub const CONTROL_BIT: i16 = 0x20;

/// A transaction marker: a control batch of one record whose key is (version 0, type 0 =
/// abort, 1 = commit) and whose value is (version 0, the coordinator's epoch), as Kafka
/// writes them. Its producer fields are the transaction's; it has no sequence.
pub fn build_marker(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp: Millis,
) -> Bytes {
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&i16::from(commit).to_be_bytes());
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    build_with(
        &[(Some(&key), Some(&value))],
        timestamp,
        (producer_id, producer_epoch, -1),
        TRANSACTIONAL_BIT | CONTROL_BIT,
    )
}

/// Whether a control batch's record says commit (Some(true)) or abort (Some(false)); None
/// if the batch is not a readable uncompressed marker.
pub fn marker_commits(batch: &[u8]) -> Option<bool> {
    let h = peek_header(batch).ok()?;
    if !h.is_control() || h.record_count < 1 {
        return None;
    }
    // The first record: length, attributes, timestamp delta, offset delta, key length
    // (varints, each one byte here), then the key.
    let key = batch.get(HEADER_LEN + 5..HEADER_LEN + 9)?;
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// What a batch is to a transaction: from its attributes and, for a marker, its record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TxnRole {
    /// Not transactional.
    #[default]
    None,
    /// Records written inside a transaction.
    Data,
    Commit,
    Abort,
}

impl TxnRole {
    pub fn of(h: &BatchHeader, batch: &[u8]) -> TxnRole {
        match (h.is_control(), h.is_transactional()) {
            (true, _) => match marker_commits(batch) {
                Some(true) => TxnRole::Commit,
                // An unreadable marker counts as an abort: its records stay hidden.
                _ => TxnRole::Abort,
            },
            (false, true) => TxnRole::Data,
            (false, false) => TxnRole::None,
        }
    }

    /// The byte a flush object's index keeps it as.
    pub fn to_flags(self) -> u8 {
        match self {
            TxnRole::None => 0,
            TxnRole::Data => 1,
            TxnRole::Commit => 2,
            TxnRole::Abort => 3,
        }
    }

    pub fn from_flags(flags: u8) -> TxnRole {
        match flags & 3 {
            1 => TxnRole::Data,
            2 => TxnRole::Commit,
            3 => TxnRole::Abort,
            _ => TxnRole::None,
        }
    }
}

/// [`build`] with a producer's (id, epoch, first sequence) and the batch attributes
/// ([`TRANSACTIONAL_BIT`] for a transactional producer's batch).
pub fn build_with(
    records: &[SimpleRecord<'_>],
    first_timestamp: Millis,
    (producer_id, producer_epoch, base_sequence): (i64, i16, i32),
    attributes: i16,
) -> Bytes {
    let mut body = BytesMut::new();
    for (i, (key, value)) in records.iter().enumerate() {
        let mut rec = Vec::new();
        rec.push(0u8); // attributes
        put_varint(&mut rec, i as i64); // timestamp delta
        put_varint(&mut rec, i as i64); // offset delta
        put_bytes(&mut rec, *key);
        put_bytes(&mut rec, *value);
        put_varint(&mut rec, 0); // headers
        let mut len = Vec::new();
        put_varint(&mut len, rec.len() as i64);
        body.extend_from_slice(&len);
        body.extend_from_slice(&rec);
    }
    let count = records.len() as i32;
    let mut out = BytesMut::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&0i64.to_be_bytes());
    out.extend_from_slice(&((HEADER_LEN - LENGTH_FIELD_END + body.len()) as i32).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.extend_from_slice(&[2u8]);
    out.extend_from_slice(&[0u8; 4]); // crc, filled below
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&(count - 1).max(0).to_be_bytes());
    out.extend_from_slice(&first_timestamp.to_be_bytes());
    out.extend_from_slice(&(first_timestamp + i64::from(count - 1).max(0)).to_be_bytes());
    out.extend_from_slice(&producer_id.to_be_bytes());
    out.extend_from_slice(&producer_epoch.to_be_bytes());
    out.extend_from_slice(&base_sequence.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&body);
    let crc = crc32c::crc32c(&out[CRC_FROM..]);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    out.freeze()
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn built_batch_validates_and_stamps() {
        let b = build(&[(Some(b"k"), Some(b"v")), (None, None)], 1000);
        let h = validate_single(&b).unwrap();
        assert_eq!(h.record_count, 2);
        assert_eq!(h.last_offset_delta, 1);
        assert_eq!(h.max_timestamp, 1001);
        let mut m = b.to_vec();
        stamp(&mut m, Offset(42), LeaderEpoch(7));
        let h = validate_single(&m).unwrap();
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.partition_leader_epoch, 7);
        assert_eq!(h.last_offset(), 43);
    }

    #[test]
    fn whole_batch_crc_comes_from_the_prefix_and_the_stored_crc() {
        let values: Vec<Vec<u8>> = (0..50).map(|i| vec![i as u8; 10 + i]).collect();
        let recs: Vec<SimpleRecord<'_>> = values.iter().map(|v| (None, Some(&v[..]))).collect();
        let mut b = build(&recs, 7).to_vec();
        stamp(&mut b, Offset(123_456), LeaderEpoch(9));
        assert_eq!(crc_of_stamped(&b), crc32c::crc32c(&b));
    }

    #[test]
    fn markers_are_valid_control_batches() {
        for commit in [true, false] {
            let b = build_marker(42, 3, commit, 7, 1_000);
            let h = validate_single(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (42, 3, -1)
            );
            assert_eq!(h.record_count, 1);
            assert_eq!(marker_commits(&b), Some(commit));
        }
        assert_eq!(marker_commits(&build(&[(None, Some(b"v"))], 0)), None);
    }

    #[test]
    fn corrupt_crc_is_detected() {
        let b = build(&[(Some(b"k"), Some(b"v"))], 0);
        let mut m = b.to_vec();
        let last = m.len() - 1;
        m[last] ^= 0xff;
        assert!(matches!(validate(&m), Err(BatchError::CrcMismatch { .. })));
    }

    #[test]
    fn truncated_and_garbage_are_errors_not_panics() {
        let b = build(&[(Some(b"k"), Some(b"v"))], 0);
        for cut in 0..b.len() {
            assert!(validate(&b[..cut]).is_err());
        }
        let mut m = b.to_vec();
        m[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(validate(&m).is_err());
        m[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(validate(&m).is_err());
    }

    #[test]
    fn two_batches_are_not_a_single_batch() {
        let b = build(&[(Some(b"k"), Some(b"v"))], 0);
        let mut two = b.to_vec();
        two.extend_from_slice(&b);
        assert!(validate_single(&two).is_err());
        let two = Bytes::from(two);
        assert_eq!(iter(&two).count(), 2);
    }
}
