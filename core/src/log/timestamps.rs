//! ListOffsets by time: the first record at or after a timestamp, and the record holding the
//! partition's greatest timestamp. The index narrows the search to one batch; the batch is
//! unpacked (decompressed) to find the record inside it.

use bytes::Bytes;

use super::LogService;
use crate::error::{Error, Result};
use crate::types::{Millis, Offset, PartitionKey};
use crate::unpack;

/// A record's offset and its timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampedOffset {
    pub offset: Offset,
    pub timestamp: Millis,
}

impl LogService {
    /// The first record at or after `ts` from the log start on; `None` if every record is
    /// older.
    pub async fn offset_for_timestamp(
        &self,
        partition: PartitionKey,
        ts: Millis,
    ) -> Result<Option<TimestampedOffset>> {
        let start = self.partition_info(partition)?.log_start_offset;
        let Some(batch) = self.find_batch_by_timestamp(partition, ts).await? else {
            return Ok(None);
        };
        first_record(&batch, |offset, t| t >= ts && offset >= start)
    }

    /// The record holding the partition's greatest timestamp (the first such record, from the
    /// log start on); `None` for an empty partition.
    pub async fn offset_of_max_timestamp(
        &self,
        partition: PartitionKey,
    ) -> Result<Option<TimestampedOffset>> {
        let start = self.partition_info(partition)?.log_start_offset;
        let Some((ts, batch)) = self.find_max_timestamp_batch(partition).await? else {
            return Ok(None);
        };
        first_record(&batch, |offset, t| t == ts && offset >= start)
    }
}

/// The first record of `batch` that `wanted` accepts, given its offset and timestamp.
fn first_record(
    batch: &Bytes,
    wanted: impl Fn(Offset, Millis) -> bool,
) -> Result<Option<TimestampedOffset>> {
    let (_, records) = unpack::read_batch(batch).map_err(|e| {
        // The batch passed its checks when it was produced: this is damage, not bad input.
        tracing::error!(error = %e, "stored batch cannot be decoded");
        Error::MissingData(e.to_string())
    })?;
    Ok(records
        .iter()
        .map(|r| TimestampedOffset {
            offset: Offset(r.offset),
            timestamp: r.timestamp,
        })
        .find(|r| wanted(r.offset, r.timestamp)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::batch::{self, Codec};

    fn found(offset: i64, timestamp: Millis) -> Option<TimestampedOffset> {
        Some(TimestampedOffset {
            offset: Offset(offset),
            timestamp,
        })
    }

    #[test]
    fn finds_the_first_record_at_or_after_a_time_in_compressed_batches() {
        // Three records at 1000, 1001, 1002 (build spaces them 1 ms apart).
        let plain = batch::build(
            &[(None, Some(b"a")), (None, Some(b"b")), (None, Some(b"c"))],
            1_000,
        );
        for codec in [
            Codec::None,
            Codec::Gzip,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Zstd,
        ] {
            let b = unpack::compressed(&plain, codec);
            let at = |ts: Millis, start: i64| {
                first_record(&b, |o, t| t >= ts && o >= Offset(start)).unwrap()
            };
            assert_eq!(at(0, 0), found(0, 1_000), "{codec:?}");
            assert_eq!(at(1_001, 0), found(1, 1_001), "{codec:?}");
            // Records before the log start are skipped even when their time matches.
            assert_eq!(at(1_000, 2), found(2, 1_002), "{codec:?}");
            assert_eq!(at(1_003, 0), None, "{codec:?}");
        }
    }

    #[test]
    fn a_damaged_stored_batch_is_missing_data() {
        let plain = batch::build(&[(None, Some(b"a"))], 0);
        let mut bad = unpack::compressed(&plain, Codec::Zstd).to_vec();
        let last = bad.len() - 1;
        bad.truncate(last);
        let err = first_record(&Bytes::from(bad), |_, _| true).unwrap_err();
        assert!(matches!(err, Error::MissingData(_)), "{err}");
    }
}
