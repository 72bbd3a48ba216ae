//! Fetch: whole batches from the requested offsets, long-polling on the log's commit
//! notification until `min_bytes` is reached, an error occurs or `max_wait_ms` passes.

use futures::StreamExt;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId};
use std::sync::Arc;
use std::time::Duration;

use kafscale_core::log::ReadRequest;
use kafscale_core::topic::TopicRecord;
use kafscale_core::{Error, LeaderEpoch, Offset, PartitionId, PartitionKey, TopicId};

use super::leader_hint::LeaderHints;
use super::{topic_name, wire_uuid};
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use kafscale_core::acl::Operation;

/// Upper bound on a long-poll, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Partitions of one fetch read at once.
const READ_CONCURRENCY: usize = 16;

struct Wanted {
    topic: Result<TopicRecord, (String, uuid::Uuid)>,
    partitions: Vec<FetchPartition>,
    /// The client may not READ the topic: its partitions answer TOPIC_AUTHORIZATION_FAILED.
    denied: bool,
}

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: FetchRequest,
) -> FetchResponse {
    let mut resp = FetchResponse::default();
    if version >= 7 && req.session_id != 0 {
        // Sessions are declined (session id 0 in every response), so any id is unknown.
        resp.error_code = RequestError::FetchSessionIdNotFound.code();
        return resp;
    }
    let wanted: Vec<Wanted> = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = if version >= 13 {
                ctx.log
                    .topic_by_id(TopicId(t.topic_id))
                    .ok_or((String::new(), t.topic_id))
            } else {
                let name = t.topic.0.to_string();
                ctx.log.topic(&name).ok_or((name, uuid::Uuid::nil()))
            };
            let name = match &topic {
                Ok(t) => Some(t.name.as_str()),
                Err((name, _)) => (!name.is_empty()).then_some(name.as_str()),
            };
            let denied = name.is_some_and(|n| !ctx.topic_authorized(&session, Operation::Read, n));
            Wanted {
                topic,
                partitions: t.partitions,
                denied,
            }
        })
        .collect();
    let wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0)).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    let max_bytes = usize::try_from(req.max_bytes).unwrap_or(0);
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    // read_committed (v4+): up to the last stable offset, with the aborted transactions.
    let committed = req.isolation_level == 1;
    let mut commits = ctx.log.subscribe();
    loop {
        commits.borrow_and_update();
        let scope = Scope {
            listener: session.listener_name(),
            version,
            committed,
        };
        let (responses, bytes, failed, hints) = read_all(&ctx, &scope, &wanted, max_bytes).await;
        let expired = tokio::time::Instant::now() >= deadline;
        if bytes >= min_bytes || failed || expired {
            ctx.metrics.fetched_bytes.inc_by(bytes as u64);
            count_traffic(&ctx, &wanted, &responses);
            resp.responses = responses;
            if version >= 16 {
                resp.node_endpoints = hints.endpoints();
            }
            return resp;
        }
        tokio::select! {
            changed = commits.changed() => {
                if changed.is_err() {
                    resp.responses = responses;
                    return resp;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Who reads and how: the listener (for leader hints), the version and the isolation.
struct Scope<'a> {
    listener: &'a str,
    version: i16,
    committed: bool,
}

async fn read_all(
    ctx: &Context,
    scope: &Scope<'_>,
    wanted: &[Wanted],
    max_bytes: usize,
) -> (Vec<FetchableTopicResponse>, usize, bool, LeaderHints) {
    let (listener, version, committed) = (scope.listener, scope.version, scope.committed);
    let mut total = 0usize;
    let mut hints = LeaderHints::default();
    let mut failed = false;
    let mut out = Vec::with_capacity(wanted.len());
    // The partitions are read at once (up to READ_CONCURRENCY), each with its own budget, so
    // a consumer catching up on many partitions from object storage waits for one round of
    // GETs rather than one per partition. The response keeps request order and stays within
    // max_bytes: a partition's batches that do not fit are left for the next fetch.
    let requests: Vec<Option<ReadRequest>> = wanted
        .iter()
        .flat_map(|w| {
            let id = w.topic.as_ref().ok().filter(|_| !w.denied).map(|t| t.id);
            w.partitions.iter().map(move |p| {
                Some(ReadRequest {
                    partition: PartitionKey {
                        topic: id?,
                        partition: PartitionId(p.partition),
                    },
                    offset: Offset(p.fetch_offset),
                    max_bytes: usize::try_from(p.partition_max_bytes)
                        .unwrap_or(0)
                        .min(max_bytes),
                    min_one_batch: true,
                    current_leader_epoch: (version >= 9 && p.current_leader_epoch >= 0)
                        .then_some(LeaderEpoch(p.current_leader_epoch)),
                })
            })
        })
        .collect();
    let log = &ctx.log;
    let reads = requests.into_iter().map(|req| async move {
        let req = req?;
        Some((req.partition, log.read_isolated(req, committed).await))
    });
    let mut reads = futures::stream::iter(reads).buffered(READ_CONCURRENCY);
    for w in wanted {
        let mut topic = FetchableTopicResponse::default();
        match &w.topic {
            Ok(t) if version >= 13 => topic.topic_id = wire_uuid(t.id),
            Ok(t) => topic.topic = topic_name(&t.name),
            Err((_, id)) if version >= 13 => topic.topic_id = *id,
            Err((name, _)) => topic.topic = topic_name(name),
        }
        for p in &w.partitions {
            let mut data = PartitionData::default();
            data.partition_index = p.partition;
            let Some(Some((key, read))) = reads.next().await else {
                // Topics are named by id from v13 on.
                let unknown = match (&w.topic, version >= 13) {
                    _ if w.denied => RequestError::TopicAuthorizationFailed,
                    (Err((_, id)), true) => RequestError::UnknownTopicId(*id),
                    (Ok(t), true) => RequestError::UnknownTopicId(wire_uuid(t.id)),
                    (Err((name, _)), false) => Error::UnknownTopic(name.clone()).into(),
                    (Ok(t), false) => Error::UnknownTopic(t.name.clone()).into(),
                };
                data.error_code = unknown.code();
                set_unknown_offsets(&mut data);
                failed = true;
                topic.partitions.push(data);
                continue;
            };
            let result = read.map(|mut r| {
                // The first partition with data may exceed the budget by its first batch
                // (KIP-74); the others fit in what is left.
                let read = std::mem::take(&mut r.records);
                let records = if total == 0 {
                    read
                } else {
                    whole_batches_within(read, max_bytes.saturating_sub(total))
                };
                (records, r)
            });
            match result {
                Ok((records, r)) => {
                    total += records.len();
                    data.high_watermark = r.high_watermark.0;
                    data.last_stable_offset = r.last_stable_offset.0;
                    data.log_start_offset = r.log_start_offset.0;
                    data.records = Some(records);
                    if committed {
                        data.aborted_transactions = Some(
                            r.aborted
                                .iter()
                                .map(|a| {
                                    let mut t = AbortedTransaction::default();
                                    t.producer_id = ProducerId(a.producer_id);
                                    t.first_offset = a.first_offset.0;
                                    t
                                })
                                .collect(),
                        );
                    }
                }
                Err(e) => {
                    let mut offsets = None;
                    match &e {
                        Error::OffsetOutOfRange { start, end, .. } => {
                            offsets = Some((*start, *end))
                        }
                        // Leadership moves are routine: the client follows.
                        Error::NotLeader(_)
                        | Error::LeaderLoading(_)
                        | Error::LeaderNotAvailable(_)
                        | Error::FencedLeaderEpoch { .. }
                        | Error::UnknownLeaderEpoch { .. } => {
                            tracing::debug!(partition = %key, error = %e, "fetch refused")
                        }
                        _ => tracing::warn!(partition = %key, error = %e, "fetch failed"),
                    }
                    let e = RequestError::from(e);
                    data.error_code = e.code();
                    if version >= 12 && e.leader_moved_or_fenced() {
                        hints.name_leader(ctx, listener, key, &mut data.current_leader);
                    }
                    set_unknown_offsets(&mut data);
                    // Offsets only from the leader: a broker that does not serve the
                    // partition holds no extent for it, and a high watermark of 0 next to
                    // NOT_LEADER would read as "at the end" to a consumer at offset 0.
                    if let Some((start, end)) = offsets {
                        data.high_watermark = end.0;
                        data.last_stable_offset = end.0;
                        data.log_start_offset = start.0;
                    }
                    failed = true;
                }
            }
            topic.partitions.push(data);
        }
        out.push(topic);
    }
    (out, total, failed, hints)
}

/// The leading whole batches of `records` that fit in `room` bytes.
fn whole_batches_within(records: bytes::Bytes, room: usize) -> bytes::Bytes {
    if records.len() <= room {
        return records;
    }
    let mut end = 0usize;
    for item in kafscale_core::batch::iter(&records) {
        match item {
            Ok((header, _)) if end + header.size <= room => end += header.size,
            _ => break,
        }
    }
    records.slice(..end)
}

/// Records and bytes returned, per topic (one response per wanted topic, in order).
fn count_traffic(ctx: &Context, wanted: &[Wanted], responses: &[FetchableTopicResponse]) {
    for (w, topic) in wanted.iter().zip(responses) {
        let Ok(record) = &w.topic else { continue };
        let (mut records, mut bytes) = (0u64, 0u64);
        for p in &topic.partitions {
            if let Some(data) = p.records.as_ref().filter(|r| !r.is_empty()) {
                records += super::record_count(data);
                bytes += data.len() as u64;
            }
        }
        if bytes > 0 {
            ctx.metrics.topic_fetched(&record.name, records, bytes);
        }
    }
}

fn set_unknown_offsets(data: &mut PartitionData) {
    data.high_watermark = -1;
    data.last_stable_offset = -1;
    data.log_start_offset = -1;
    data.records = Some(bytes::Bytes::new());
}
