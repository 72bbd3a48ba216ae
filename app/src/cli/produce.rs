//! `kafscale produce`: the lines of stdin to a topic, acks=all, keyed records placed by the
//! murmur2 hash as Java clients place them.

use bytes::{Bytes, BytesMut};
use clap::Args;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

use super::client::{backoff, is_retriable, topic_name, CliError, Client, TopicInfo, ATTEMPTS};
use super::{emit, Connection};

/// Records per produce request at most; a pause in the input sends what has gathered.
const BATCH_RECORDS: usize = 1000;
/// Bytes of values per produce request at most.
const BATCH_BYTES: usize = 512 * 1024;
/// How long input may pause before what has gathered is sent.
const LINGER: Duration = Duration::from_millis(50);

#[derive(Args, Debug)]
pub struct ProduceArgs {
    pub topic: String,
    /// Split each line at the first occurrence of this character into key and value
    #[arg(long, value_name = "C")]
    pub key_separator: Option<char>,
    /// Send every record to this partition [default: by key hash, or spread when no key]
    #[arg(long)]
    pub partition: Option<i32>,
    /// Print partition and offset of every record
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// Kafka's murmur2, as the Java client's default partitioner hashes keys.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a keyed record, as Java and librdkafka's murmur2 partitioner pick it.
pub fn key_partition(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// A line as key and value.
pub fn split_line(line: &[u8], separator: Option<char>) -> (Option<Bytes>, Bytes) {
    let Some(sep) = separator else {
        return (None, Bytes::copy_from_slice(line));
    };
    let mut buf = [0u8; 4];
    let sep = sep.encode_utf8(&mut buf).as_bytes();
    match line.windows(sep.len()).position(|w| w == sep) {
        Some(i) => (
            Some(Bytes::copy_from_slice(&line[..i])),
            Bytes::copy_from_slice(&line[i + sep.len()..]),
        ),
        None => (None, Bytes::copy_from_slice(line)),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One v2 batch, uncompressed, of non-idempotent records.
pub(crate) fn encode_batch(records: &[(Option<Bytes>, Bytes)]) -> Result<Bytes, CliError> {
    let ts = now_ms();
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // offset - sequence stays constant, so the encoder keeps one batch with base
            // sequence -1, as non-idempotent producers send.
            sequence: i as i32 - 1,
            timestamp: ts,
            key: k.clone(),
            value: Some(v.clone()),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| CliError::Invalid(format!("cannot encode records: {e}")))?;
    Ok(buf.freeze())
}

/// Assigns partitions and sends records, remembering the spread position between calls.
struct Producer {
    topic: String,
    info: TopicInfo,
    fixed: Option<i32>,
    /// Partition of the next keyless chunk (one partition per chunk, like a sticky
    /// partitioner).
    next: i32,
    verbose: bool,
    json: bool,
}

impl Producer {
    fn partition_of(&self, key: Option<&Bytes>) -> i32 {
        let n = self.info.partitions.len() as i32;
        match (self.fixed, key) {
            (Some(p), _) => p,
            (None, Some(k)) => key_partition(k, n),
            (None, None) => self.next,
        }
    }

    async fn send(
        &mut self,
        client: &mut Client,
        records: Vec<(Option<Bytes>, Bytes)>,
    ) -> Result<(), CliError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut by_partition: BTreeMap<i32, Vec<(Option<Bytes>, Bytes)>> = BTreeMap::new();
        for r in records {
            by_partition
                .entry(self.partition_of(r.0.as_ref()))
                .or_default()
                .push(r);
        }
        let n = self.info.partitions.len().max(1) as i32;
        self.next = (self.next + 1) % n;
        let mut pending = by_partition;
        for attempt in 0..ATTEMPTS {
            let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
            let mut leaderless = Vec::new();
            for p in pending.keys() {
                match self.info.partitions.iter().find(|i| i.id == *p) {
                    Some(info) => match info.leader {
                        Some(l) => by_leader.entry(l).or_default().push(*p),
                        None => leaderless.push(*p),
                    },
                    None => {
                        return Err(CliError::Invalid(format!(
                            "topic {} has no partition {p}",
                            self.topic
                        )))
                    }
                }
            }
            let mut retry: Vec<i32> = leaderless;
            for (leader, parts) in by_leader {
                let mut t = TopicProduceData::default();
                t.name = topic_name(&self.topic);
                for p in &parts {
                    let mut d = PartitionProduceData::default();
                    d.index = *p;
                    d.records = Some(encode_batch(&pending[p])?);
                    t.partition_data.push(d);
                }
                let mut req = ProduceRequest::default();
                req.acks = -1;
                req.timeout_ms = 30_000;
                req.topic_data = vec![t];
                let called = client
                    .call_broker(leader, ApiKey::Produce, 3..=9, "produce", |_| req)
                    .await;
                let resp = match called {
                    Ok(r) => r,
                    // Not sent: the leader is gone, so ask again who leads. (After a lost
                    // answer the records may have been written: that is not retried.)
                    Err(CliError::Connect { .. }) if attempt + 1 < ATTEMPTS => {
                        retry.extend(&parts);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                for t in resp.responses {
                    for p in t.partition_responses {
                        if p.error_code == 0 {
                            if let Some(recs) = pending.remove(&p.index) {
                                self.report(p.index, p.base_offset, recs.len())?;
                            }
                        } else if is_retriable(p.error_code) && attempt + 1 < ATTEMPTS {
                            retry.push(p.index);
                        } else {
                            return Err(CliError::kafka(
                                format!("cannot produce to {}/{}", self.topic, p.index),
                                p.error_code,
                                p.error_message.as_ref(),
                            ));
                        }
                    }
                }
            }
            if pending.is_empty() {
                return Ok(());
            }
            if retry.is_empty() {
                return Err(CliError::Invalid(format!(
                    "no answer for partitions {:?} of {}",
                    pending.keys().collect::<Vec<_>>(),
                    self.topic
                )));
            }
            backoff(attempt).await;
            self.info = client.topic(&self.topic).await?;
        }
        Err(CliError::Invalid(format!(
            "no leader accepted records for {}",
            self.topic
        )))
    }

    fn report(&self, partition: i32, base: i64, count: usize) -> Result<(), CliError> {
        if !self.verbose {
            return Ok(());
        }
        let mut out = String::new();
        for i in 0..count as i64 {
            if self.json {
                out.push_str(&format!(
                    "{}\n",
                    json!({ "topic": self.topic, "partition": partition, "offset": base + i })
                ));
            } else {
                out.push_str(&format!("{}/{partition}@{}\n", self.topic, base + i));
            }
        }
        emit(out.as_bytes())
    }
}

pub async fn produce(client: &mut Client, args: &ProduceArgs) -> Result<(), CliError> {
    produce_from(client, args, BufReader::new(tokio::io::stdin())).await
}

/// Produces the lines of `input`, sending what has gathered whenever the input pauses.
pub async fn produce_from<R: AsyncBufRead + Unpin>(
    client: &mut Client,
    args: &ProduceArgs,
    mut input: R,
) -> Result<(), CliError> {
    let info = client.topic_to_produce(&args.topic).await?;
    if let Some(p) = args.partition {
        if !info.partitions.iter().any(|i| i.id == p) {
            return Err(CliError::Invalid(format!(
                "topic {} has no partition {p}",
                args.topic
            )));
        }
    }
    let mut producer = Producer {
        topic: args.topic.clone(),
        info,
        fixed: args.partition,
        next: (now_ms() % 1024) as i32,
        verbose: args.verbose,
        json: args.conn.json,
    };
    producer.next %= producer.info.partitions.len().max(1) as i32;
    let mut chunk: Vec<(Option<Bytes>, Bytes)> = Vec::new();
    let mut bytes = 0usize;
    loop {
        let mut line = Vec::new();
        let read = if chunk.is_empty() {
            Ok(input.read_until(b'\n', &mut line).await)
        } else {
            tokio::time::timeout(LINGER, input.read_until(b'\n', &mut line)).await
        };
        let n = match read {
            // The input paused: send what has gathered.
            Err(_) => {
                producer.send(client, std::mem::take(&mut chunk)).await?;
                bytes = 0;
                continue;
            }
            Ok(Err(e)) => return Err(CliError::Invalid(format!("cannot read the input: {e}"))),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let record = split_line(&line, args.key_separator);
        bytes += record.1.len() + record.0.as_ref().map_or(0, Bytes::len);
        chunk.push(record);
        if chunk.len() >= BATCH_RECORDS || bytes >= BATCH_BYTES {
            producer.send(client, std::mem::take(&mut chunk)).await?;
            bytes = 0;
        }
    }
    producer.send(client, chunk).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's own test of its murmur2 (UtilsTest).
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn keys_split_at_the_first_separator() {
        assert_eq!(
            split_line(b"k:v:w", Some(':')),
            (Some(Bytes::from_static(b"k")), Bytes::from_static(b"v:w"))
        );
        assert_eq!(
            split_line(b"novalue", Some(':')),
            (None, Bytes::from_static(b"novalue"))
        );
        assert_eq!(split_line(b"a:b", None), (None, Bytes::from_static(b"a:b")));
        assert_eq!(
            split_line(b":v", Some(':')).0,
            Some(Bytes::new()),
            "an empty key is a key"
        );
        assert_eq!(
            split_line("k→v".as_bytes(), Some('→')),
            (Some(Bytes::from_static(b"k")), Bytes::from_static(b"v"))
        );
    }

    #[test]
    fn key_partitions_are_stable_and_in_range() {
        for n in [1, 3, 7] {
            let p = key_partition(b"some-key", n);
            assert!((0..n).contains(&p));
            assert_eq!(p, key_partition(b"some-key", n));
        }
    }
}
