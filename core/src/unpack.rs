//! A stored batch unpacked into its records, for the few places that need individual records
//! (ListOffsets by timestamp on the broker, `kafscale consume` in the CLI). Decompression
//! happens here only, with a size cap, and records are read with [`crate::records`], which
//! sizes nothing by the counts a batch claims.
//!
//! ```
//! use kafscale_core::{batch, unpack};
//! let b = batch::build(&[(Some(b"k"), Some(b"v"))], 1_000);
//! let (_, records) = unpack::read_batch(&b).unwrap();
//! assert_eq!((records[0].offset, records[0].timestamp), (0, 1_000));
//! ```

use bytes::Bytes;

use crate::batch::{self, BatchError, BatchHeader, Codec};
use crate::records;
use crate::types::Millis;

/// Decompressed bytes one batch may expand to before we refuse it.
const MAX_DECOMPRESSED: usize = 64 << 20;

/// Why a batch could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot read the batch header: {0}")]
    Header(#[source] BatchError),
    #[error("cannot decompress batch: {0}")]
    Decompress(#[source] std::io::Error),
    #[error("batch decompresses to more than {MAX_DECOMPRESSED} bytes")]
    TooLarge,
    #[error("cannot read a record: {0}")]
    Record(#[source] BatchError),
}

/// One record with its absolute offset and timestamp; key, value and headers share the
/// batch's (decompressed) bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    pub offset: i64,
    pub timestamp: Millis,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(Bytes, Option<Bytes>)>,
}

/// The header and the records of the batch at the start of `batch`.
pub fn read_batch(batch: &Bytes) -> Result<(BatchHeader, Vec<BatchRecord>), UnpackError> {
    let header = batch::peek_header(batch).map_err(UnpackError::Header)?;
    let body = batch.slice(batch::HEADER_LEN..header.size);
    let codec = header.codec().map_err(UnpackError::Header)?;
    let body = decompress(&body, codec)?;
    let slice = |part: &[u8]| body.slice_ref(part);
    let mut out = Vec::new();
    for r in records::iter(&body, header.record_count) {
        let r = r.map_err(UnpackError::Record)?;
        out.push(BatchRecord {
            offset: header.base_offset + i64::from(r.offset_delta),
            timestamp: if header.uses_log_append_time() {
                header.max_timestamp
            } else {
                header.first_timestamp.saturating_add(r.timestamp_delta)
            },
            key: r.key.map(slice),
            value: r.value.map(slice),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (slice(k), v.map(slice)))
                .collect(),
        });
    }
    Ok((header, out))
}

fn decompress(data: &Bytes, codec: Codec) -> Result<Bytes, UnpackError> {
    use std::io::Read;
    let limit = MAX_DECOMPRESSED as u64 + 1;
    let mut out = Vec::new();
    let read = match codec {
        Codec::None => return Ok(data.clone()),
        Codec::Gzip => flate2::read::GzDecoder::new(&data[..])
            .take(limit)
            .read_to_end(&mut out),
        Codec::Snappy => return snappy(data).map(Bytes::from),
        Codec::Lz4 => {
            lz4::Decoder::new(&data[..]).and_then(|d| d.take(limit).read_to_end(&mut out))
        }
        Codec::Zstd => zstd::stream::read::Decoder::new(&data[..])
            .and_then(|d| d.take(limit).read_to_end(&mut out)),
    };
    read.map_err(UnpackError::Decompress)?;
    if out.len() > MAX_DECOMPRESSED {
        return Err(UnpackError::TooLarge);
    }
    Ok(Bytes::from(out))
}

/// Java clients wrap snappy in xerial's framing (a magic header, then length-prefixed blocks);
/// librdkafka sends raw snappy.
fn snappy(data: &[u8]) -> Result<Vec<u8>, UnpackError> {
    const XERIAL: &[u8; 8] = b"\x82SNAPPY\x00";
    let invalid = |m: &str| UnpackError::Decompress(std::io::Error::other(m.to_owned()));
    let block = |compressed: &[u8], out: &mut Vec<u8>| -> Result<(), UnpackError> {
        let snappy_error = |e: snap::Error| invalid(&e.to_string());
        let len = snap::raw::decompress_len(compressed).map_err(snappy_error)?;
        if out.len() + len > MAX_DECOMPRESSED {
            return Err(UnpackError::TooLarge);
        }
        let at = out.len();
        out.resize(at + len, 0);
        snap::raw::Decoder::new()
            .decompress(compressed, &mut out[at..])
            .map_err(snappy_error)?;
        Ok(())
    };
    let mut out = Vec::new();
    if data.len() < 16 || &data[..8] != XERIAL {
        block(data, &mut out)?;
        return Ok(out);
    }
    let mut rest = &data[16..];
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(invalid("truncated snappy block length"));
        }
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let end = 4usize.checked_add(n).filter(|e| *e <= rest.len());
        let Some(end) = end else {
            return Err(invalid("truncated snappy block"));
        };
        block(&rest[4..end], &mut out)?;
        rest = &rest[end..];
    }
    Ok(out)
}

/// Test helper: `batch` with its records compressed by `codec` (the CRC is not recomputed;
/// unpacking does not check it).
#[cfg(test)]
pub(crate) fn compressed(batch: &Bytes, codec: Codec) -> Bytes {
    #![allow(clippy::unwrap_used)]
    use std::io::Write;
    let body = &batch[batch::HEADER_LEN..];
    let (bits, packed): (i16, Vec<u8>) = match codec {
        Codec::None => (0, body.to_vec()),
        Codec::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(body).unwrap();
            (1, e.finish().unwrap())
        }
        Codec::Snappy => (2, snap::raw::Encoder::new().compress_vec(body).unwrap()),
        Codec::Lz4 => {
            let mut e = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
            e.write_all(body).unwrap();
            let (out, done) = e.finish();
            done.unwrap();
            (3, out)
        }
        Codec::Zstd => (4, zstd::encode_all(body, 1).unwrap()),
    };
    let mut out = batch[..batch::HEADER_LEN].to_vec();
    let length = (batch::HEADER_LEN - 12 + packed.len()) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    out[21..23].copy_from_slice(&bits.to_be_bytes());
    out.extend_from_slice(&packed);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_codec_unpacks_to_the_same_records() {
        let plain = batch::build(&[(Some(b"k"), Some(b"v0")), (None, Some(b"v1"))], 5_000);
        let (_, expected) = read_batch(&plain).unwrap();
        assert_eq!(expected.len(), 2);
        assert_eq!(expected[1].value.as_deref(), Some(&b"v1"[..]));
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let (header, records) = read_batch(&compressed(&plain, codec)).unwrap();
            assert_eq!(header.codec().unwrap(), codec);
            assert_eq!(records, expected, "{codec:?}");
        }
    }

    #[test]
    fn garbage_after_the_header_is_an_error_not_a_panic() {
        let plain = batch::build(&[(Some(b"k"), Some(b"v"))], 0);
        let mut bad = compressed(&plain, Codec::Gzip).to_vec();
        let at = batch::HEADER_LEN + 2;
        bad[at..].iter_mut().for_each(|b| *b = 0xff);
        assert!(read_batch(&Bytes::from(bad)).is_err());
    }
}
