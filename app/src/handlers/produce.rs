//! Produce: batches are validated and queued in request order when the request is decoded
//! (`stage`); the response waits for their commit (`finish`). acks=0 gets no response, and a
//! connection whose acks=0 produce failed is closed, which is how Kafka tells such producers.

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use std::sync::Arc;
use std::time::Duration;

use kafscale_adapters::HealthState;
use kafscale_core::batch::{self, Codec};
use kafscale_core::log::{AppendRequest, AppendTicket, Appended};
use kafscale_core::topic_settings::TopicSettings;
use kafscale_core::unpack;
use kafscale_core::{Error, Millis, PartitionId, PartitionKey, TopicId};

use super::leader_hint::LeaderHints;
use super::{str_bytes, topic_name};
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use crate::txn_verify::{self, Verdicts};
use kafscale_core::acl::{Operation, Resource, ResourceType};
use kafscale_core::txn::{ProducerIdentity, TxnPartition};

/// Produce timeouts at or below zero get this instead: a commit normally takes milliseconds,
/// and answering "timed out" for data that then commits invites duplicates.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

enum Part {
    Failed(RequestError),
    /// Queued, awaiting its commit; with the time the broker stamped it with
    /// (`LogAppendTime` topics).
    Waiting(AppendTicket, Option<Millis>),
    Queued,
}

pub struct Staged {
    ctx: Arc<Context>,
    /// The listener the request came in on: leader hints name brokers on it.
    session: Arc<Session>,
    version: i16,
    acks: i16,
    timeout: Duration,
    topics: Vec<StagedTopic>,
}

/// A topic of the request: its name, its id if known, and each partition's part.
type StagedTopic = (String, Option<TopicId>, Vec<(i32, Part)>);

pub enum Outcome {
    Respond(ProduceResponse),
    Silent,
    Close(String),
}

pub async fn stage(
    ctx: &Arc<Context>,
    session: &Arc<Session>,
    version: i16,
    req: ProduceRequest,
) -> Staged {
    let acks = req.acks;
    // Decided once for the whole request; each partition gets its own copy of the error.
    let unavailable = ctx.storage_health.state() == HealthState::Unavailable;
    // WRITE on the transactional id, for a transactional producer (checked once).
    let txn_refused = req.transactional_id.as_ref().is_some_and(|id| {
        let resource = Resource::new(ResourceType::TransactionalId, id.as_str());
        !ctx.authorized(session, Operation::Write, &resource)
    });
    let txn_id = req.transactional_id.as_ref().map(|id| id.to_string());
    // Transactions coordinated by another broker, verified first (rarely a request).
    let mut verdicts = if txn_refused || unavailable {
        Verdicts::new()
    } else {
        txn_verify::verify(ctx, &req).await
    };
    let request_error = || {
        if !matches!(acks, -1..=1) {
            Some(RequestError::InvalidRequiredAcks(acks))
        } else if unavailable {
            Some(RequestError::StorageUnavailable)
        } else if txn_refused {
            Some(RequestError::TransactionalIdAuthorizationFailed)
        } else {
            None
        }
    };
    let topics = req
        .topic_data
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let record = ctx.log.topic(&name);
            // WRITE on the topic, as Kafka asks; checked before whether it exists, so that
            // a client without access learns nothing of it.
            let allowed = ctx.topic_authorized(session, Operation::Write, &name);
            let parts = topic
                .partition_data
                .into_iter()
                .map(|p| {
                    let part = if let Some(e) = request_error() {
                        Part::Failed(e)
                    } else if !allowed {
                        Part::Failed(RequestError::TopicAuthorizationFailed)
                    } else if let Some(t) = &record {
                        let key = PartitionKey {
                            topic: t.id,
                            partition: PartitionId(p.index),
                        };
                        let settings = TopicSettings::of(t, ctx.log.config());
                        let traffic = p
                            .records
                            .as_ref()
                            .map(|r| (super::record_count(r), r.len() as u64));
                        let refused = p.records.as_ref().and_then(|r| {
                            let verdict = verdicts.remove(&(name.clone(), p.index));
                            txn_refusal(ctx, txn_id.as_deref(), &name, p.index, r, verdict)
                        });
                        let part = match refused {
                            Some(e) => Part::Failed(e),
                            None => append(ctx, version, acks, key, p.records, &settings),
                        };
                        if let (Some((records, bytes)), false) =
                            (traffic, matches!(part, Part::Failed(..)))
                        {
                            ctx.metrics.topic_produced(&name, records, bytes);
                        }
                        part
                    } else {
                        Part::Failed(Error::UnknownTopic(name.clone()).into())
                    };
                    (p.index, part)
                })
                .collect();
            (name, record.map(|t| t.id), parts)
        })
        .collect();
    Staged {
        ctx: ctx.clone(),
        session: session.clone(),
        version,
        acks,
        timeout: u64::try_from(req.timeout_ms)
            .ok()
            .filter(|ms| *ms > 0)
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis),
        topics,
    }
}

fn append(
    ctx: &Context,
    version: i16,
    acks: i16,
    key: PartitionKey,
    records: Option<bytes::Bytes>,
    topic: &TopicSettings,
) -> Part {
    let Some(records) = records else {
        return Part::Failed(RequestError::NoRecords);
    };
    // The topic's max.message.bytes; the broker's message.max.bytes is checked by the log.
    if let Some(max) = topic.max_message_bytes.filter(|max| records.len() > *max) {
        return Part::Failed(RequestError::TopicMessageTooLarge {
            size: records.len(),
            max,
        });
    }
    // zstd needs Produce v7 or later.
    if version < 7 {
        if let Ok(header) = batch::peek_header(&records) {
            if header.codec() == Ok(Codec::Zstd) {
                return Part::Failed(RequestError::ZstdNeedsProduceV7);
            }
        }
    }
    let append_time = topic.log_append_time.then(|| ctx.log.now_ms());
    let records = if topic.shapes_batches() {
        match as_topic_stores(records, topic, ctx.log.now_ms(), append_time) {
            Ok(records) => records,
            Err(e) => return Part::Failed(e),
        }
    } else {
        records
    };
    let len = records.len() as u64;
    match ctx.log.append(AppendRequest {
        partition: key,
        batch: records,
        wait: acks != 0,
    }) {
        Ok(ticket) => {
            ctx.metrics.produced_bytes.inc_by(len);
            ctx.metrics.produced_batches.inc();
            ticket.map_or(Part::Queued, |t| Part::Waiting(t, append_time))
        }
        Err(e) => {
            tracing::debug!(partition = %key, error = %e, "produce rejected");
            Part::Failed(e.into())
        }
    }
}

/// Why a batch may not be appended for transactional reasons: a control batch (markers
/// are the brokers'), or a transactional batch of a producer whose ongoing transaction
/// does not hold the partition (INVALID_TXN_STATE, as Kafka's verification answers): as
/// the coordinator on another broker answered (`verdict`, see `txn_verify`), or as this
/// broker, coordinating the transactional id, can tell at once.
fn txn_refusal(
    ctx: &Context,
    txn_id: Option<&str>,
    topic: &str,
    partition: i32,
    records: &Bytes,
    verdict: Option<RequestError>,
) -> Option<RequestError> {
    let header = batch::peek_header(records).ok()?;
    if header.is_control() {
        return Some(RequestError::ControlBatchFromClient);
    }
    let id = txn_id.filter(|_| header.is_transactional())?;
    if verdict.is_some() {
        return verdict;
    }
    let producer = ProducerIdentity {
        producer_id: header.producer_id,
        epoch: header.producer_epoch,
    };
    let tp = TxnPartition {
        topic: topic.to_owned(),
        partition,
    };
    match ctx.txns.verify_now(id, producer, &tp) {
        Some(false) => Some(RequestError::PartitionNotInTransaction),
        Some(true) | None => None,
    }
}

/// The batch as its topic stores it, for topics whose configs shape batches. It is checked
/// first (a batch that arrived damaged must not gain a valid CRC). Then, unless it is a
/// control batch:
/// - compacted topics: every record must have a key (INVALID_RECORD naming each that has
///   none, KIP-467);
/// - CreateTime: every record's timestamp must lie within `message.timestamp.before.max.ms`
///   and `after.max.ms` of the broker's clock (INVALID_TIMESTAMP naming each that does not,
///   as Kafka). The records are read (decompressed) only where a config needs each one: a
///   compacted topic, or a lower bound, which the batch header cannot answer; an upper bound
///   alone is checked on the header's max timestamp, and the records are read only when
///   that lies outside, to name them;
/// - `compression.type`: recompressed unless already in that codec (levels are not compared,
///   as in Kafka);
/// - LogAppendTime: stamped with `append_time`.
fn as_topic_stores(
    records: Bytes,
    topic: &TopicSettings,
    now: Millis,
    append_time: Option<Millis>,
) -> Result<Bytes, RequestError> {
    let header = batch::validate_single(&records).map_err(Error::from)?;
    if header.is_control() {
        return Ok(records);
    }
    let window = match append_time {
        None => topic.timestamp_window(now),
        Some(_) => None,
    };
    let read_records = topic.compacted
        || window.is_some_and(|w| w.needs_every_record() || !w.accepts(header.max_timestamp));
    let unpacked = if read_records {
        unpack::read_batch(&records)
            .map_err(|e| {
                tracing::debug!(error = %e, "batch not readable");
                Error::CorruptBatch(batch::BatchError::Invalid(
                    "records do not decompress with their codec",
                ))
            })?
            .1
    } else {
        Vec::new()
    };
    if topic.compacted {
        let indexes: Vec<i32> = (0..unpacked.len())
            .filter(|i| unpacked[*i].key.is_none())
            .map(|i| i as i32)
            .collect();
        if !indexes.is_empty() {
            return Err(RequestError::KeylessRecordInCompactedTopic { indexes });
        }
    }
    if let Some(w) = window {
        let outside: Vec<(i32, Millis)> = unpacked
            .iter()
            .enumerate()
            .filter(|(_, r)| !w.accepts(r.timestamp))
            .map(|(i, r)| (i as i32, r.timestamp))
            .collect();
        if !outside.is_empty() {
            return Err(RequestError::InvalidTimestamp {
                records: outside,
                low: w.low,
                high: w.high,
            });
        }
    }
    let records = match topic.compression {
        Some((codec, level)) if header.codec().map_err(Error::from)? != codec => {
            unpack::recompress(&records, codec, level).map_err(|e| {
                tracing::debug!(error = %e, "batch not recompressed");
                Error::CorruptBatch(batch::BatchError::Invalid(
                    "records do not decompress with their codec",
                ))
            })?
        }
        _ => records,
    };
    Ok(match append_time {
        Some(now) => {
            let mut stamped = records.to_vec();
            batch::set_log_append_time(&mut stamped, now);
            Bytes::from(stamped)
        }
        None => records,
    })
}

impl Staged {
    pub async fn finish(self) -> Outcome {
        if self.acks == 0 {
            let failed = self
                .topics
                .iter()
                .flat_map(|(_, _, p)| p)
                .find_map(|(_, p)| match p {
                    Part::Failed(e) => Some(format!(
                        "acks=0 produce failed with error {}: {e}",
                        e.code()
                    )),
                    _ => None,
                });
            return failed.map_or(Outcome::Silent, Outcome::Close);
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut resp = ProduceResponse::default();
        let mut hints = LeaderHints::default();
        for (name, topic_id, parts) in self.topics {
            let mut topic = TopicProduceResponse::default();
            topic.name = topic_name(&name);
            for (index, part) in parts {
                let result = match part {
                    Part::Failed(e) => Err(e),
                    Part::Queued => Err(RequestError::Invalid("unexpected queued append".into())),
                    Part::Waiting(ticket, append_time) => {
                        match tokio::time::timeout_at(deadline, ticket).await {
                            Ok(Ok(Ok(appended))) => Ok((appended, append_time)),
                            Ok(Ok(Err(e))) => Err(e.into()),
                            Ok(Err(_)) => Err(RequestError::TimedOut("append abandoned")),
                            Err(_) => Err(RequestError::TimedOut("commit did not finish in time")),
                        }
                    }
                };
                let moved = matches!(&result, Err(e) if e.leader_moved());
                let mut p = partition_response(self.version, index, result);
                if let (true, true, Some(topic)) = (moved, self.version >= 10, topic_id) {
                    let key = PartitionKey {
                        topic,
                        partition: PartitionId(index),
                    };
                    hints.name_leader(
                        &self.ctx,
                        self.session.listener_name(),
                        key,
                        &mut p.current_leader,
                    );
                }
                topic.partition_responses.push(p);
            }
            resp.responses.push(topic);
        }
        resp.node_endpoints = hints.endpoints();
        Outcome::Respond(resp)
    }
}

fn partition_response(
    version: i16,
    index: i32,
    result: Result<(Appended, Option<Millis>), RequestError>,
) -> PartitionProduceResponse {
    let mut p = PartitionProduceResponse::default();
    p.index = index;
    p.log_append_time_ms = -1;
    match result {
        Ok((appended, append_time)) => {
            p.base_offset = appended.base_offset.0;
            p.log_append_time_ms = append_time.unwrap_or(-1);
            if version >= 5 {
                p.log_start_offset = appended.log_start_offset.0;
            }
        }
        Err(e) => {
            p.error_code = e.code();
            p.base_offset = -1;
            if version >= 5 {
                p.log_start_offset = -1;
            }
            if version >= 8 {
                p.error_message = Some(str_bytes(e.to_string()));
                p.record_errors = record_errors(&e);
            }
        }
    }
    p
}

/// The records a refused batch was refused for (KIP-467), with Kafka's messages.
fn record_errors(e: &RequestError) -> Vec<BatchIndexAndErrorMessage> {
    let error = |index: i32, message: String| {
        let mut record = BatchIndexAndErrorMessage::default();
        record.batch_index = index;
        record.batch_index_error_message = Some(str_bytes(message));
        record
    };
    match e {
        RequestError::KeylessRecordInCompactedTopic { indexes } => indexes
            .iter()
            .map(|i| {
                error(
                    *i,
                    "Compacted topic cannot accept message without key".into(),
                )
            })
            .collect(),
        RequestError::InvalidTimestamp { records, low, high } => records
            .iter()
            .map(|(i, ts)| {
                error(
                    *i,
                    format!(
                        "Timestamp {ts} of message at batch index {i} is out of range. \
                         The timestamp should be within [{low}, {high}]"
                    ),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}
