//! The compact binary encoding of the metadata records that are written often (flush records,
//! checkpoints, segments, committed offsets): unsigned and zigzag varints, length-prefixed
//! bytes, fixed-width CRCs and ids. Every record starts with a version byte.
//!
//! The reader never sizes anything by a count or length it reads: a count is checked against
//! the bytes that remain (each element takes at least `min` bytes) before anything is read,
//! so a damaged or hostile value costs what its bytes cost and fails with an error.

use bytes::Bytes;

/// Why bytes are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}: {reason}")]
pub struct CodecError {
    pub what: &'static str,
    pub at: usize,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new(version: u8) -> Writer {
        let mut w = Writer {
            buf: Vec::with_capacity(64),
        };
        w.u8(version);
        w
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    pub fn varint(&mut self, v: i64) {
        self.uvarint(((v << 1) ^ (v >> 63)) as u64);
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.uvarint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    pub fn uuid(&mut self, id: &uuid::Uuid) {
        self.buf.extend_from_slice(id.as_bytes());
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    pub fn finish(self) -> Bytes {
        Bytes::from(self.buf)
    }
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader of a record named `what` (for errors) that checks its version byte is one of
    /// `versions`; returns the version.
    pub fn new(
        buf: &'a [u8],
        what: &'static str,
        versions: std::ops::RangeInclusive<u8>,
    ) -> Result<(Reader<'a>, u8), CodecError> {
        let mut r = Reader { buf, pos: 0, what };
        let version = r.u8()?;
        if !versions.contains(&version) {
            return Err(r.error(format!("unsupported version {version}")));
        }
        Ok((r, version))
    }

    /// A reader without a version byte (for parts of a record).
    pub fn plain(buf: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { buf, pos: 0, what }
    }

    pub fn error(&self, reason: String) -> CodecError {
        CodecError {
            what: self.what,
            at: self.pos,
            reason,
        }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if n > self.remaining() {
            return Err(self.error(format!("needs {n} bytes, {} remain", self.remaining())));
        }
        let at = self.pos;
        self.pos += n;
        Ok(&self.buf[at..at + n])
    }

    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    pub fn uvarint(&mut self) -> Result<u64, CodecError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            if i == 9 && b > 1 {
                return Err(self.error("varint longer than 64 bits".to_owned()));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.error("varint longer than 64 bits".to_owned()))
    }

    pub fn varint(&mut self) -> Result<i64, CodecError> {
        let raw = self.uvarint()?;
        Ok((raw >> 1) as i64 ^ -((raw & 1) as i64))
    }

    /// A uvarint that must fit in the target type.
    pub fn uvarint_as<T: TryFrom<u64>>(&mut self) -> Result<T, CodecError> {
        let v = self.uvarint()?;
        T::try_from(v).map_err(|_| self.error(format!("{v} out of range")))
    }

    /// A zigzag varint that must fit in the target type.
    pub fn varint_as<T: TryFrom<i64>>(&mut self) -> Result<T, CodecError> {
        let v = self.varint()?;
        T::try_from(v).map_err(|_| self.error(format!("{v} out of range")))
    }

    pub fn u32(&mut self) -> Result<u32, CodecError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, CodecError> {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(raw))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.uvarint()?;
        let n = usize::try_from(n).map_err(|_| self.error(format!("length {n}")))?;
        self.take(n)
    }

    pub fn str(&mut self) -> Result<&'a str, CodecError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| self.error("string is not UTF-8".to_owned()))
    }

    pub fn uuid(&mut self) -> Result<uuid::Uuid, CodecError> {
        let mut raw = [0u8; 16];
        raw.copy_from_slice(self.take(16)?);
        Ok(uuid::Uuid::from_bytes(raw))
    }

    /// A count of elements that take at least `min` bytes each, checked against the bytes
    /// that remain before anything is sized by it.
    pub fn count(&mut self, min: usize) -> Result<usize, CodecError> {
        let n = self.uvarint()?;
        let fits = usize::try_from(n)
            .ok()
            .filter(|n| n.saturating_mul(min.max(1)) <= self.remaining());
        fits.ok_or_else(|| {
            self.error(format!(
                "count {n} exceeds the {} bytes that remain",
                self.remaining()
            ))
        })
    }

    /// Fails unless every byte was read: trailing bytes mean a misread record.
    pub fn end(&self) -> Result<(), CodecError> {
        if self.remaining() != 0 {
            return Err(self.error(format!("{} bytes left over", self.remaining())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn values_round_trip(u in any::<u64>(), i in any::<i64>(), s in ".{0,40}", b in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut w = Writer::new(3);
            w.uvarint(u);
            w.varint(i);
            w.str(&s);
            w.bytes(&b);
            w.u32(u as u32);
            w.u64(u);
            let bytes = w.into_vec();
            let (mut r, v) = Reader::new(&bytes, "test", 1..=3).unwrap();
            prop_assert_eq!(v, 3);
            prop_assert_eq!(r.uvarint().unwrap(), u);
            prop_assert_eq!(r.varint().unwrap(), i);
            prop_assert_eq!(r.str().unwrap(), s.as_str());
            prop_assert_eq!(r.bytes().unwrap(), &b[..]);
            prop_assert_eq!(r.u32().unwrap(), u as u32);
            prop_assert_eq!(r.u64().unwrap(), u);
            prop_assert!(r.end().is_ok());
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::plain(&bytes, "garbage");
            while r.remaining() > 0 {
                if r.count(8).is_err() || r.str().is_err() {
                    break;
                }
            }
        }
    }

    #[test]
    fn counts_beyond_the_bytes_are_refused() {
        let mut w = Writer::new(1);
        w.uvarint(u64::MAX);
        let bytes = w.into_vec();
        let (mut r, _) = Reader::new(&bytes, "test", 1..=1).unwrap();
        assert!(r.count(1).is_err());
        let mut w = Writer::new(1);
        w.uvarint(3);
        w.u64(0);
        w.u64(0);
        let bytes = w.into_vec();
        let (mut r, _) = Reader::new(&bytes, "test", 1..=1).unwrap();
        assert!(
            r.count(8).is_err(),
            "three 8-byte elements do not fit in 16 bytes"
        );
        let (mut r, _) = Reader::new(&bytes, "test", 1..=1).unwrap();
        assert_eq!(r.count(4).unwrap(), 3);
        assert!(Reader::new(&[9], "test", 1..=2).is_err());
    }
}
