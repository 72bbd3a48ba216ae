//! `kafscale produce` and `kafscale consume`: lines of stdin to a topic (acks=all), and a
//! topic's records to stdout.

use bytes::{Bytes, BytesMut};
use clap::Args;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, ProduceRequest};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

use super::client::{
    backoff, is_retriable, topic_name, CliError, Client, OffsetSpec, TopicInfo, ATTEMPTS,
};
use super::{emit, Connection};

/// Records per produce request at most; a pause in the input sends what has gathered.
const BATCH_RECORDS: usize = 1000;
/// Bytes of values per produce request at most.
const BATCH_BYTES: usize = 512 * 1024;
/// How long input may pause before what has gathered is sent.
const LINGER: Duration = Duration::from_millis(50);
const OFFSET_OUT_OF_RANGE: i16 = 1;

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

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Start at the log start [default: the log end, or the group's committed offsets]
    #[arg(long)]
    pub from_beginning: bool,
    /// Read only this partition [default: all]
    #[arg(long)]
    pub partition: Option<i32>,
    /// Exit after this many records
    #[arg(long, value_name = "N")]
    pub max: Option<u64>,
    /// Start from this group's committed offsets and commit what was printed (the group
    /// must have no active members)
    #[arg(long, value_name = "G")]
    pub group: Option<String>,
    /// Print key<TAB>value
    #[arg(long)]
    pub print_key: bool,
    /// Exit when no record arrived for this long
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub timeout_ms: u64,
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
fn encode_batch(records: &[(Option<Bytes>, Bytes)]) -> Result<Bytes, CliError> {
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
                let conn = client.broker(leader).await?;
                let v = conn.version(ApiKey::Produce, 3..=9, "produce")?;
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
                let resp = conn.call(v, &req).await?;
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
    let info = client.topic(&args.topic).await?;
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

/// Where each partition is read from next.
struct Positions {
    next: BTreeMap<i32, i64>,
    /// Offsets after the last printed record, committed for `--group`.
    printed: BTreeMap<i32, i64>,
}

/// Batches of a fetched record set; a batch cut off at the end is dropped.
fn whole_batches(mut data: Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    while data.len() >= 12 {
        let len = i32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let total = 12 + len.max(0) as usize;
        if len <= 0 || data.len() < total {
            break;
        }
        out.push(data.split_to(total));
    }
    out
}

/// The offset after a batch: base offset + last offset delta + 1.
fn batch_end(batch: &[u8]) -> Option<i64> {
    if batch.len() < 27 {
        return None;
    }
    let base = i64::from_be_bytes(batch[0..8].try_into().ok()?);
    let delta = i32::from_be_bytes(batch[23..27].try_into().ok()?);
    Some(base + i64::from(delta) + 1)
}

fn format_record(r: &Record, partition: i32, print_key: bool, json: bool) -> Vec<u8> {
    if json {
        let text = |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
        let mut line = json!({
            "partition": partition,
            "offset": r.offset,
            "timestamp": r.timestamp,
            "key": text(&r.key),
            "value": text(&r.value),
        })
        .to_string()
        .into_bytes();
        line.push(b'\n');
        return line;
    }
    let mut line = Vec::new();
    if print_key {
        line.extend_from_slice(r.key.as_deref().unwrap_or_default());
        line.push(b'\t');
    }
    line.extend_from_slice(r.value.as_deref().unwrap_or_default());
    line.push(b'\n');
    line
}

pub async fn consume(client: &mut Client, args: &ConsumeArgs) -> Result<(), CliError> {
    let info = client.topic(&args.topic).await?;
    let parts: Vec<i32> = match args.partition {
        Some(p) if info.partitions.iter().any(|i| i.id == p) => vec![p],
        Some(p) => {
            return Err(CliError::Invalid(format!(
                "topic {} has no partition {p}",
                args.topic
            )))
        }
        None => info.partitions.iter().map(|p| p.id).collect(),
    };
    let reset = if args.from_beginning {
        OffsetSpec::Earliest
    } else {
        OffsetSpec::Latest
    };
    let mut next = client.list_offsets(&args.topic, &parts, reset).await?;
    if let Some(group) = &args.group {
        let committed = super::group::committed_offsets(client, group, &args.topic).await?;
        for (p, o) in committed {
            if next.contains_key(&p) {
                next.insert(p, o);
            }
        }
    }
    let mut pos = Positions {
        next,
        printed: BTreeMap::new(),
    };
    let result = fetch_loop(client, args, &info, &mut pos).await;
    if let Some(group) = &args.group {
        if !pos.printed.is_empty() {
            super::group::commit(client, group, &args.topic, &pos.printed).await?;
        }
    }
    result
}

async fn fetch_loop(
    client: &mut Client,
    args: &ConsumeArgs,
    info: &TopicInfo,
    pos: &mut Positions,
) -> Result<(), CliError> {
    let mut info = info.clone();
    let idle = Duration::from_millis(args.timeout_ms);
    let mut last_record = Instant::now();
    let mut printed: u64 = 0;
    let mut failures = 0u32;
    if args.max == Some(0) {
        return Ok(());
    }
    loop {
        let waited = last_record.elapsed();
        if waited >= idle {
            return Ok(());
        }
        let max_wait = (idle - waited).min(Duration::from_millis(500));
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        let mut refresh = false;
        for p in pos.next.keys() {
            match info
                .partitions
                .iter()
                .find(|i| i.id == *p)
                .and_then(|i| i.leader)
            {
                Some(l) => by_leader.entry(l).or_default().push(*p),
                None => refresh = true,
            }
        }
        for (leader, ps) in by_leader {
            let conn = client.broker(leader).await?;
            let v = conn.version(ApiKey::Fetch, 4..=12, "consume")?;
            let mut t = FetchTopic::default();
            t.topic = topic_name(&args.topic);
            for p in &ps {
                let mut fp = FetchPartition::default();
                fp.partition = *p;
                fp.fetch_offset = pos.next[p];
                fp.partition_max_bytes = 1 << 20;
                if v >= 9 {
                    fp.current_leader_epoch = -1;
                }
                if v >= 5 {
                    fp.log_start_offset = -1;
                }
                t.partitions.push(fp);
            }
            let mut req = FetchRequest::default();
            req.replica_id = BrokerId(-1);
            req.max_wait_ms = max_wait.as_millis() as i32;
            req.min_bytes = 1;
            req.max_bytes = 8 << 20;
            req.isolation_level = 0;
            if v >= 7 {
                req.session_id = 0;
                req.session_epoch = -1;
            }
            req.topics = vec![t];
            let resp = conn.call(v, &req).await?;
            if resp.error_code != 0 {
                return Err(CliError::kafka("fetch", resp.error_code, None));
            }
            let mut out = Vec::new();
            for t in resp.responses {
                for p in t.partitions {
                    let partition = p.partition_index;
                    match p.error_code {
                        0 => {}
                        OFFSET_OUT_OF_RANGE => {
                            // Retention moved the log start past us, or the log was
                            // truncated: start again where --from-beginning says.
                            let spec = if args.from_beginning {
                                OffsetSpec::Earliest
                            } else {
                                OffsetSpec::Latest
                            };
                            let o = client.list_offsets(&args.topic, &[partition], spec).await?;
                            if let Some(o) = o.get(&partition) {
                                pos.next.insert(partition, *o);
                            }
                            emit(&out)?;
                            out.clear();
                            continue;
                        }
                        code if is_retriable(code) => {
                            refresh = true;
                            continue;
                        }
                        code => {
                            return Err(CliError::kafka(
                                format!("cannot fetch {}/{partition}", args.topic),
                                code,
                                None,
                            ))
                        }
                    }
                    let Some(data) = p.records else { continue };
                    for batch in whole_batches(data) {
                        let end = batch_end(&batch);
                        let mut buf = batch.clone();
                        let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| {
                            CliError::Invalid(format!(
                                "cannot decode a batch of {}/{partition}: {e}",
                                args.topic
                            ))
                        })?;
                        for r in set.records {
                            let next = pos.next[&partition];
                            if r.offset < next {
                                continue;
                            }
                            pos.next.insert(partition, r.offset + 1);
                            if r.control {
                                continue;
                            }
                            out.extend(format_record(
                                &r,
                                partition,
                                args.print_key,
                                args.conn.json,
                            ));
                            pos.printed.insert(partition, r.offset + 1);
                            printed += 1;
                            last_record = Instant::now();
                            if args.max.is_some_and(|m| printed >= m) {
                                return emit(&out);
                            }
                        }
                        // Skip offsets compaction removed from the end of the batch.
                        if let Some(end) = end {
                            if end > pos.next[&partition] {
                                pos.next.insert(partition, end);
                            }
                        }
                    }
                }
            }
            emit(&out)?;
        }
        if refresh {
            failures += 1;
            if failures > 20 {
                return Err(CliError::Invalid(format!(
                    "no leader for some partitions of {}",
                    args.topic
                )));
            }
            backoff(failures.min(5)).await;
            info = client.topic(&args.topic).await?;
        } else {
            failures = 0;
        }
    }
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
    fn batches_round_trip_and_partial_batches_are_dropped() {
        let batch = encode_batch(&[
            (Some(Bytes::from_static(b"k")), Bytes::from_static(b"v0")),
            (None, Bytes::from_static(b"v1")),
        ])
        .expect("encode");
        assert_eq!(batch_end(&batch), Some(2));
        let mut two = BytesMut::new();
        two.extend_from_slice(&batch);
        two.extend_from_slice(&batch[..batch.len() - 3]);
        let whole = whole_batches(two.freeze());
        assert_eq!(whole.len(), 1);
        let mut b = whole[0].clone();
        let set = RecordBatchDecoder::decode(&mut b).expect("decode");
        assert_eq!(set.records.len(), 2);
        assert_eq!(set.records[1].value.as_deref(), Some(&b"v1"[..]));
        assert_eq!(set.records[0].key.as_deref(), Some(&b"k"[..]));
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
