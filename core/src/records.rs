//! The records inside a v2 batch, read one at a time from the batch's record bytes
//! (decompressed first where the batch is compressed; that is the caller's part).
//!
//! Nothing is sized by a count the bytes claim: a record count, a header count or a length is
//! only ever compared with the bytes that remain, so a batch that claims two billion records
//! costs what its bytes cost.
//!
//! ```
//! use kafscale_core::{batch, records};
//! let b = batch::build(&[(Some(b"k"), Some(b"v"))], 1_000);
//! let header = batch::peek_header(&b).unwrap();
//! let mut it = records::iter(&b[batch::HEADER_LEN..], header.record_count);
//! let r = it.next().unwrap().unwrap();
//! assert_eq!((r.key, r.value), (Some(&b"k"[..]), Some(&b"v"[..])));
//! assert!(it.next().is_none());
//! ```

use crate::batch::BatchError;

/// One record, borrowing from the record bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Headers<'a>,
    /// The whole record as stored, its length prefix included: what a rewrite of the batch
    /// (compaction) copies unchanged.
    pub raw: &'a [u8],
}

/// The headers of a record, read on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers<'a> {
    bytes: &'a [u8],
    count: usize,
}

/// One header: a key (never null) and a value that may be null.
pub type Header<'a> = (&'a [u8], Option<&'a [u8]>);

impl<'a> Headers<'a> {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = Header<'a>> + 'a {
        let mut cur = Cursor { buf: self.bytes };
        // Checked when the record was read: every header is there.
        (0..self.count).map_while(move |_| header(&mut cur).ok())
    }
}

/// Iterates over the records of `bytes`, which should hold `count` of them.
pub fn iter(bytes: &[u8], count: i32) -> RecordIter<'_> {
    RecordIter {
        cur: Cursor { buf: bytes },
        left: count.max(0) as u32,
        failed: false,
    }
}

pub struct RecordIter<'a> {
    cur: Cursor<'a>,
    left: u32,
    failed: bool,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.left == 0 {
            return None;
        }
        self.left -= 1;
        let read = record(&mut self.cur);
        if read.is_err() {
            self.failed = true;
        }
        Some(read)
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
}

fn truncated(needed: usize, available: usize) -> BatchError {
    BatchError::Truncated { needed, available }
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BatchError> {
        if n > self.buf.len() {
            return Err(truncated(n, self.buf.len()));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// A zigzag varint of at most 64 bits.
    fn varlong(&mut self) -> Result<i64, BatchError> {
        let mut raw: u64 = 0;
        for i in 0..10 {
            let b = self.take(1)?[0];
            if i == 9 && b > 1 {
                return Err(BatchError::Invalid("varint longer than 64 bits"));
            }
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err(BatchError::Invalid("varint longer than 64 bits"))
    }

    fn varint(&mut self) -> Result<i32, BatchError> {
        i32::try_from(self.varlong()?).map_err(|_| BatchError::Invalid("varint beyond 32 bits"))
    }

    /// A varint length, then that many bytes; -1 is null.
    fn bytes(&mut self) -> Result<Option<&'a [u8]>, BatchError> {
        match self.varint()? {
            -1 => Ok(None),
            n if n < 0 => Err(BatchError::Invalid("negative length")),
            n => self.take(n as usize).map(Some),
        }
    }
}

fn header<'a>(cur: &mut Cursor<'a>) -> Result<Header<'a>, BatchError> {
    let key = cur
        .bytes()?
        .ok_or(BatchError::Invalid("null record header key"))?;
    Ok((key, cur.bytes()?))
}

fn record<'a>(cur: &mut Cursor<'a>) -> Result<Record<'a>, BatchError> {
    let start = cur.buf;
    let length = cur.varint()?;
    if length < 0 {
        return Err(BatchError::Invalid("negative record length"));
    }
    let mut body = Cursor {
        buf: cur.take(length as usize)?,
    };
    let attributes = body.take(1)?[0] as i8;
    let timestamp_delta = body.varlong()?;
    let offset_delta = body.varint()?;
    let key = body.bytes()?;
    let value = body.bytes()?;
    let count = body.varint()?;
    // Each header takes at least two bytes, so a count beyond that is a lie.
    if count < 0 || count as usize > body.buf.len() / 2 {
        return Err(BatchError::Invalid(
            "record header count exceeds the record",
        ));
    }
    let bytes = body.buf;
    for _ in 0..count {
        header(&mut body)?;
    }
    let used = bytes.len() - body.buf.len();
    let raw = &start[..start.len() - cur.buf.len()];
    Ok(Record {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers: Headers {
            bytes: &bytes[..used],
            count: count as usize,
        },
        raw,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::batch;

    fn section(b: &[u8]) -> (&[u8], i32) {
        let h = batch::peek_header(b).unwrap();
        (&b[batch::HEADER_LEN..], h.record_count)
    }

    #[test]
    fn records_of_a_built_batch_read_back() {
        let b = batch::build(&[(Some(b"a"), None), (None, Some(b"xyz"))], 5);
        let (bytes, count) = section(&b);
        let all: Vec<_> = iter(bytes, count).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].key, Some(&b"a"[..]));
        assert_eq!(all[0].value, None);
        assert_eq!(all[1].offset_delta, 1);
        assert_eq!(all[1].value, Some(&b"xyz"[..]));
        assert!(all[1].headers.is_empty());
        // The raw records tile the section.
        assert_eq!(all[0].raw.len() + all[1].raw.len(), bytes.len());
        assert_eq!(all[1].raw, &bytes[all[0].raw.len()..]);
    }

    #[test]
    fn headers_read_back() {
        // length, attributes 0, ts delta 0, offset delta 0, key null, value "v",
        // 2 headers: ("h1", "x"), ("h2", null)
        let mut rec = vec![0u8, 0, 0, 1, 2, b'v', 4];
        rec.extend_from_slice(&[4, b'h', b'1', 2, b'x']);
        rec.extend_from_slice(&[4, b'h', b'2', 1]);
        let mut bytes = vec![(rec.len() as u8) << 1];
        bytes.extend_from_slice(&rec);
        let r = iter(&bytes, 1).next().unwrap().unwrap();
        let headers: Vec<_> = r.headers.iter().collect();
        assert_eq!(
            headers,
            vec![(&b"h1"[..], Some(&b"x"[..])), (&b"h2"[..], None)]
        );
    }

    #[test]
    fn lying_counts_cost_nothing_and_fail() {
        let b = batch::build(&[(Some(b"a"), Some(b"b"))], 5);
        let (bytes, _) = section(&b);
        // Two billion claimed records: one is read, the next is missing.
        let got: Vec<_> = iter(bytes, i32::MAX).collect();
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        assert!(got[1].is_err());
        // A header count of 2^30 in a record of a few bytes.
        let rec = [0u8, 0, 0, 1, 1, 0x80, 0x80, 0x80, 0x80, 0x08];
        let mut bytes = vec![(rec.len() as u8) << 1];
        bytes.extend_from_slice(&rec);
        assert!(iter(&bytes, 1).next().unwrap().is_err());
    }

    #[test]
    fn garbage_never_panics() {
        for seed in 0u32..2000 {
            let bytes: Vec<u8> = (0..(seed % 40))
                .map(|i| (seed.wrapping_mul(2_654_435_761).wrapping_add(i * 97) >> 7) as u8)
                .collect();
            for r in iter(&bytes, 3).flatten() {
                let _ = r.headers.iter().count();
            }
        }
    }
}
