//! Record-level reading of a stored batch, for the few features that need individual records
//! (ListOffsets by timestamp). Decompression happens here only, with a size cap.

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};

/// Decompressed bytes one batch may expand to before we refuse it.
const MAX_DECOMPRESSED: usize = 64 << 20;

/// (offset, timestamp) of every record in the batch.
pub fn offsets_and_timestamps(batch: &Bytes) -> Result<Vec<(i64, i64)>, String> {
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode_with_custom_compression(&mut buf, Some(decompress))
        .map_err(|e| format!("cannot decode batch: {e}"))?;
    Ok(set
        .records
        .iter()
        .map(|r| (r.offset, r.timestamp))
        .collect())
}

fn decompress(data: &mut Bytes, compression: Compression) -> anyhow::Result<Bytes> {
    use std::io::Read;
    let limit = MAX_DECOMPRESSED as u64 + 1;
    let mut out = Vec::new();
    match compression {
        Compression::None => return Ok(data.clone()),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(&data[..])
                .take(limit)
                .read_to_end(&mut out)?;
        }
        Compression::Snappy => snappy(data, &mut out)?,
        Compression::Lz4 => {
            lz4::Decoder::new(&data[..])?
                .take(limit)
                .read_to_end(&mut out)?;
        }
        Compression::Zstd => {
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
