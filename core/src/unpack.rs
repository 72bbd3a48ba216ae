//! A stored batch unpacked into its records, for the few places that need individual records
//! (ListOffsets by timestamp on the broker, `kafscale consume` in the CLI), and recompressed
//! for topics whose `compression.type` names a codec. Decompression
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
    #[error("cannot compress batch: {0}")]
    Compress(#[source] std::io::Error),
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

/// Compression levels a topic may ask for (KIP-390); `None`: the codec's default.
pub type Level = Option<i32>;

/// `batch` (one whole, validated v2 batch) with its records compressed by `codec` instead:
/// the header is kept (offsets, timestamps, producer, sequence), its length, attributes and
/// CRC rewritten. How a broker stores a batch in the codec its topic's `compression.type`
/// names.
pub fn recompress(batch: &Bytes, codec: Codec, level: Level) -> Result<Bytes, UnpackError> {
    let header = batch::peek_header(batch).map_err(UnpackError::Header)?;
    let from = header.codec().map_err(UnpackError::Header)?;
    let body = decompress(&batch.slice(batch::HEADER_LEN..header.size), from)?;
    let packed = compress(&body, codec, level).map_err(UnpackError::Compress)?;
    let mut out = Vec::with_capacity(batch::HEADER_LEN + packed.len());
    out.extend_from_slice(&batch[..batch::HEADER_LEN]);
    out.extend_from_slice(&packed);
    batch::rewrite_codec(&mut out, codec).map_err(UnpackError::Header)?;
    Ok(Bytes::from(out))
}

/// The records section compressed by `codec`, as Kafka's clients frame each codec (snappy in
/// xerial's framing, as Java clients write it and every client reads it; lz4 in the LZ4 frame
/// format).
fn compress(body: &[u8], codec: Codec, level: Level) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    Ok(match codec {
        Codec::None => body.to_vec(),
        Codec::Gzip => {
            let level = level.map_or(flate2::Compression::default(), |l| {
                flate2::Compression::new(l.clamp(1, 9) as u32)
            });
            let mut e = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 2), level);
            e.write_all(body)?;
            e.finish()?
        }
        Codec::Snappy => {
            // xerial: magic, version 1, compatible version 1, then length-prefixed blocks.
            const BLOCK: usize = 32 << 10;
            let mut out = Vec::with_capacity(body.len() / 2 + 16);
            out.extend_from_slice(b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01");
            let mut encoder = snap::raw::Encoder::new();
            for block in body.chunks(BLOCK) {
                let packed = encoder.compress_vec(block).map_err(std::io::Error::other)?;
                out.extend_from_slice(&(packed.len() as u32).to_be_bytes());
                out.extend_from_slice(&packed);
            }
            out
        }
        Codec::Lz4 => {
            let level = level.map_or(9, |l| l.clamp(1, 17)) as u32;
            let mut e = lz4::EncoderBuilder::new()
                .level(level)
                .build(Vec::with_capacity(body.len() / 2))?;
            e.write_all(body)?;
            let (out, done) = e.finish();
            done?;
            out
        }
        Codec::Zstd => zstd::encode_all(body, level.unwrap_or(3).clamp(-131_072, 22))?,
    })
}

/// A record as compaction judges it: its offset, its key, and whether it is a tombstone.
#[derive(Debug, Clone, Copy)]
pub struct Judged<'a> {
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub tombstone: bool,
}

/// What [`retain`] made of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retained {
    /// Every record kept: the batch as it was.
    All,
    /// No record kept.
    None,
    /// Some kept: the batch rewritten with them, and how many went.
    Some { batch: Bytes, removed: usize },
}

/// `batch` (one whole, validated v2 batch) with only the records `keep` accepts, as Kafka's
/// log cleaner rewrites a batch: its header is kept (base offset, last offset delta, so the
/// offsets of what remains and the producer's last sequence are unchanged; timestamps,
/// producer, attributes), the records kept are copied unchanged, recompressed in the batch's
/// own codec, and the record count, length and CRC rewritten.
pub fn retain(
    batch: &Bytes,
    mut keep: impl FnMut(Judged<'_>) -> bool,
) -> Result<Retained, UnpackError> {
    let header = batch::peek_header(batch).map_err(UnpackError::Header)?;
    let codec = header.codec().map_err(UnpackError::Header)?;
    let body = decompress(&batch.slice(batch::HEADER_LEN..header.size), codec)?;
    let mut kept = Vec::with_capacity(body.len());
    let (mut count, mut removed) = (0i32, 0usize);
    for r in records::iter(&body, header.record_count) {
        let r = r.map_err(UnpackError::Record)?;
        let judged = Judged {
            offset: header.base_offset + i64::from(r.offset_delta),
            key: r.key,
            tombstone: r.value.is_none(),
        };
        if keep(judged) {
            kept.extend_from_slice(r.raw);
            count += 1;
        } else {
            removed += 1;
        }
    }
    if removed == 0 {
        return Ok(Retained::All);
    }
    if count == 0 {
        return Ok(Retained::None);
    }
    let packed = compress(&kept, codec, None).map_err(UnpackError::Compress)?;
    let mut out = Vec::with_capacity(batch::HEADER_LEN + packed.len());
    out.extend_from_slice(&batch[..batch::HEADER_LEN]);
    out.extend_from_slice(&packed);
    batch::set_record_count(&mut out, count);
    batch::rewrite_codec(&mut out, codec).map_err(UnpackError::Header)?;
    Ok(Retained::Some {
        batch: Bytes::from(out),
        removed,
    })
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

/// Test helper: `batch` with its records compressed by `codec`.
#[cfg(test)]
pub(crate) fn compressed(batch: &Bytes, codec: Codec) -> Bytes {
    #![allow(clippy::unwrap_used)]
    recompress(batch, codec, None).unwrap()
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
    fn recompressed_batches_validate_and_keep_their_records_and_header() {
        let plain = batch::build(
            &[(Some(b"k"), Some(&[7u8; 3000][..])), (None, Some(b"v1"))],
            5_000,
        );
        let before = batch::validate_single(&plain).unwrap();
        let (_, expected) = read_batch(&plain).unwrap();
        let codecs = [
            Codec::None,
            Codec::Gzip,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Zstd,
        ];
        for from in codecs {
            let source = recompress(&plain, from, None).unwrap();
            for to in codecs {
                for level in [None, Some(1), Some(9)] {
                    let out = recompress(&source, to, level).unwrap();
                    let header = batch::validate_single(&out).unwrap();
                    assert_eq!(header.codec().unwrap(), to, "{from:?} -> {to:?}");
                    let same = |h: &BatchHeader| {
                        (
                            h.base_offset,
                            h.last_offset_delta,
                            h.first_timestamp,
                            h.max_timestamp,
                        )
                    };
                    assert_eq!(same(&header), same(&before));
                    assert_eq!(
                        (
                            header.producer_id,
                            header.base_sequence,
                            header.record_count
                        ),
                        (
                            before.producer_id,
                            before.base_sequence,
                            before.record_count
                        )
                    );
                    assert_eq!(read_batch(&out).unwrap().1, expected, "{from:?} -> {to:?}");
                    if to != Codec::None {
                        assert!(out.len() < plain.len(), "{to:?} did not compress");
                    }
                }
            }
        }
    }

    #[test]
    fn retained_records_keep_their_offsets_in_every_codec() {
        let mut plain = batch::build(
            &[
                (Some(b"a"), Some(b"1")),
                (Some(b"b"), None),
                (Some(b"a"), Some(b"2")),
                (Some(b"c"), Some(b"3")),
            ],
            5_000,
        )
        .to_vec();
        batch::stamp(
            &mut plain,
            crate::types::Offset(100),
            crate::types::LeaderEpoch(2),
        );
        let plain = Bytes::from(plain);
        for codec in [
            Codec::None,
            Codec::Gzip,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Zstd,
        ] {
            let source = recompress(&plain, codec, None).unwrap();
            let Retained::Some {
                batch: out,
                removed,
            } = retain(&source, |r| r.offset != 100 && !r.tombstone).unwrap()
            else {
                panic!("{codec:?}: expected a rewrite");
            };
            assert_eq!(removed, 2);
            let header = batch::validate_single(&out).unwrap();
            assert_eq!(header.codec().unwrap(), codec);
            assert_eq!((header.base_offset, header.last_offset()), (100, 103));
            assert_eq!(header.record_count, 2);
            let (_, records) = read_batch(&out).unwrap();
            let got: Vec<(i64, Option<&[u8]>)> = records
                .iter()
                .map(|r| (r.offset, r.value.as_deref()))
                .collect();
            assert_eq!(got, vec![(102, Some(&b"2"[..])), (103, Some(&b"3"[..]))]);
            assert_eq!(retain(&source, |_| true).unwrap(), Retained::All);
            assert_eq!(retain(&source, |_| false).unwrap(), Retained::None);
        }
    }

    #[test]
    fn raw_snappy_as_librdkafka_sends_it_unpacks() {
        let plain = batch::build(&[(Some(b"k"), Some(b"value"))], 0);
        let body = &plain[batch::HEADER_LEN..];
        let mut raw = plain[..batch::HEADER_LEN].to_vec();
        raw.extend(snap::raw::Encoder::new().compress_vec(body).unwrap());
        batch::rewrite_codec(&mut raw, Codec::Snappy).unwrap();
        let raw = Bytes::from(raw);
        batch::validate_single(&raw).unwrap();
        assert_eq!(read_batch(&raw).unwrap().1, read_batch(&plain).unwrap().1);
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
