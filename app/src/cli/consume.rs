//! `kafscale consume`: a topic's records to stdout, from the log start, the log end or a
//! group's committed offsets, until `--max` records or `--timeout-ms` of silence.

use bytes::Bytes;
use clap::Args;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest};
use kafscale_core::unpack::{read_batch, BatchRecord as Record};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::client::{backoff, is_retriable, topic_name, CliError, Client, OffsetSpec, TopicInfo};
use super::{emit, Connection};

const OFFSET_OUT_OF_RANGE: i16 = 1;

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
            super::group_reset::commit(client, group, &args.topic, &pos.printed).await?;
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
            // Silence is the normal end, unless some partitions could not be read at all.
            if failures > 0 {
                return Err(CliError::Invalid(format!(
                    "no reachable leader for some partitions of {} within {} ms",
                    args.topic, args.timeout_ms
                )));
            }
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
            let next = &pos.next;
            let build = |v: i16| {
                let mut t = FetchTopic::default();
                t.topic = topic_name(&args.topic);
                for p in &ps {
                    let mut fp = FetchPartition::default();
                    fp.partition = *p;
                    fp.fetch_offset = next[p];
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
                req
            };
            let resp = match client
                .call_broker(leader, ApiKey::Fetch, 4..=12, "consume", build)
                .await
            {
                Ok(r) => r,
                // The leader is gone: look up who leads now.
                Err(e) if e.is_transport() => {
                    refresh = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
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
                        let (header, records) = read_batch(&batch).map_err(|e| {
                            CliError::Invalid(format!(
                                "cannot decode a batch of {}/{partition}: {e}",
                                args.topic
                            ))
                        })?;
                        for r in records {
                            let next = pos.next[&partition];
                            if r.offset < next {
                                continue;
                            }
                            pos.next.insert(partition, r.offset + 1);
                            if header.is_control() {
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
            // Leaders move or die: look again until --timeout-ms of silence.
            failures += 1;
            backoff(failures).await;
            info = client.topic(&args.topic).await?;
        } else {
            failures = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::produce::encode_batch;
    use bytes::BytesMut;

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
        let (_, records) = read_batch(&whole[0]).expect("decode");
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].value.as_deref(), Some(&b"v1"[..]));
        assert_eq!(records[0].key.as_deref(), Some(&b"k"[..]));
    }
}
