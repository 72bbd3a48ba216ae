//! Record-level reading of a batch, for the few places that need individual records
//! (ListOffsets by timestamp on the broker, `kafscale consume` in the CLI). Decompression
//! happens here only, with a size cap, and records are read with core's reader, which sizes
//! nothing by the counts a batch claims.

use bytes::Bytes;
use kafscale_core::batch::{self, BatchHeader, Codec};
use kafscale_core::records;

/// Decompressed bytes one batch may expand to before we refuse it.
const MAX_DECOMPRESSED: usize = 64 << 20;

/// One record with its absolute offset and timestamp; key, value and headers share the
/// batch's (decompressed) bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(Bytes, Option<Bytes>)>,
}

/// The header and the records of the batch at the start of `batch`.
pub fn read_batch(batch: &Bytes) -> Result<(BatchHeader, Vec<Record>), String> {
    let header = batch::peek_header(batch).map_err(|e| e.to_string())?;
    let body = batch.slice(batch::HEADER_LEN..header.size);
    let codec = header.codec().map_err(|e| e.to_string())?;
    let body = decompress(&body, codec).map_err(|e| format!("cannot decompress batch: {e}"))?;
    let slice = |part: &[u8]| body.slice_ref(part);
    let mut out = Vec::new();
    for r in records::iter(&body, header.record_count) {
        let r = r.map_err(|e| format!("cannot read a record: {e}"))?;
        out.push(Record {
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

/// (offset, timestamp) of every record in the batch.
pub fn offsets_and_timestamps(batch: &Bytes) -> Result<Vec<(i64, i64)>, String> {
    let (_, records) = read_batch(batch)?;
    Ok(records.iter().map(|r| (r.offset, r.timestamp)).collect())
}

fn decompress(data: &Bytes, codec: Codec) -> anyhow::Result<Bytes> {
    use std::io::Read;
    let limit = MAX_DECOMPRESSED as u64 + 1;
    let mut out = Vec::new();
    match codec {
        Codec::None => return Ok(data.clone()),
        Codec::Gzip => {
            flate2::read::GzDecoder::new(&data[..])
                .take(limit)
                .read_to_end(&mut out)?;
        }
        Codec::Snappy => snappy(data, &mut out)?,
        Codec::Lz4 => {
            lz4::Decoder::new(&data[..])?
                .take(limit)
                .read_to_end(&mut out)?;
        }
        Codec::Zstd => {
            zstd::stream::read::Decoder::new(&data[..])?
                .take(limit)
                .read_to_end(&mut out)?;
        }
    }
    if out.len() > MAX_DECOMPRESSED {
        anyhow::bail!("batch decompresses to more than {MAX_DECOMPRESSED} bytes");
    }
    Ok(Bytes::from(out))
}

/// Java clients wrap snappy in xerial's framing (a magic header, then length-prefixed blocks);
/// librdkafka sends raw snappy.
fn snappy(data: &[u8], out: &mut Vec<u8>) -> anyhow::Result<()> {
    const XERIAL: &[u8; 8] = b"\x82SNAPPY\x00";
    let block = |compressed: &[u8], out: &mut Vec<u8>| -> anyhow::Result<()> {
        let len = snap::raw::decompress_len(compressed)?;
        if out.len() + len > MAX_DECOMPRESSED {
            anyhow::bail!("batch decompresses to more than {MAX_DECOMPRESSED} bytes");
        }
        let at = out.len();
        out.resize(at + len, 0);
        snap::raw::Decoder::new().decompress(compressed, &mut out[at..])?;
        Ok(())
    };
    if data.len() < 16 || &data[..8] != XERIAL {
        return block(data, out);
    }
    let mut rest = &data[16..];
    while !rest.is_empty() {
        if rest.len() < 4 {
            anyhow::bail!("truncated snappy block length");
        }
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let end = 4usize.checked_add(n).filter(|e| *e <= rest.len());
        let Some(end) = end else {
            anyhow::bail!("truncated snappy block");
        };
        block(&rest[4..end], out)?;
        rest = &rest[end..];
    }
    Ok(())
}
