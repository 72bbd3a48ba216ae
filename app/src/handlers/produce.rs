//! Produce: batches are validated and queued in request order when the request is decoded
//! (`stage`); the response waits for their commit (`finish`). acks=0 gets no response, and a
//! connection whose acks=0 produce failed is closed, which is how Kafka tells such producers.

use kafka_protocol::messages::produce_response::{
    NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
use std::sync::Arc;
use std::time::Duration;

use kafscale_adapters::HealthState;
use kafscale_core::batch::{self, Codec};
use kafscale_core::log::{AppendRequest, AppendTicket, Appended};
use kafscale_core::topic_settings::TopicSettings;
use kafscale_core::{PartitionId, PartitionKey, TopicId};

use super::{str_bytes, topic_name};
use crate::context::Context;
use crate::errors::{self, codes};

/// Produce timeouts at or below zero get this instead: a commit normally takes milliseconds,
/// and answering "timed out" for data that then commits invites duplicates.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

enum Part {
    Failed(i16, String),
    Waiting(AppendTicket),
    Queued,
}

pub struct Staged {
    ctx: Arc<Context>,
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

pub fn stage(ctx: &Arc<Context>, version: i16, req: ProduceRequest) -> Staged {
    let acks = req.acks;
    let request_error = if !matches!(acks, -1..=1) {
        Some((codes::INVALID_REQUIRED_ACKS, format!("invalid acks {acks}")))
    } else if ctx.storage_health.state() == HealthState::Unavailable {
        Some((
            codes::KAFKA_STORAGE_ERROR,
            "object store unavailable; retry later".to_owned(),
        ))
    } else if req.transactional_id.is_some() {
        Some((
            codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            "transactions are not supported".to_owned(),
        ))
    } else {
        None
    };
    let topics = req
        .topic_data
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let record = ctx.log.topic(&name);
            let parts = topic
                .partition_data
                .into_iter()
                .map(|p| {
                    let part = if let Some((code, message)) = &request_error {
                        Part::Failed(*code, message.clone())
                    } else if let Some(t) = &record {
                        let key = PartitionKey {
                            topic: t.id,
                            partition: PartitionId(p.index),
                        };
                        let max_bytes = TopicSettings::of(t, ctx.log.config()).max_message_bytes;
                        let traffic = p
                            .records
                            .as_ref()
                            .map(|r| (super::record_count(r), r.len() as u64));
                        let part = append(ctx, version, acks, key, p.records, max_bytes);
                        if let (Some((records, bytes)), false) =
                            (traffic, matches!(part, Part::Failed(..)))
                        {
                            ctx.metrics.topic_produced(&name, records, bytes);
                        }
                        part
                    } else {
                        Part::Failed(
                            codes::UNKNOWN_TOPIC_OR_PARTITION,
                            format!("unknown topic {name}"),
                        )
                    };
                    (p.index, part)
                })
                .collect();
            (name, record.map(|t| t.id), parts)
        })
        .collect();
    Staged {
        ctx: ctx.clone(),
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
    topic_max_bytes: Option<usize>,
) -> Part {
    let Some(records) = records else {
        return Part::Failed(codes::INVALID_RECORD, "no records".into());
    };
    // The topic's max.message.bytes; the broker's message.max.bytes is checked by the log.
    if let Some(max) = topic_max_bytes.filter(|max| records.len() > *max) {
        return Part::Failed(
            codes::MESSAGE_TOO_LARGE,
            format!(
                "record batch of {} bytes exceeds the topic's max.message.bytes of {max}",
                records.len()
            ),
        );
    }
    // zstd needs Produce v7 or later.
    if version < 7 {
        if let Ok(header) = batch::peek_header(&records) {
            if header.codec() == Ok(Codec::Zstd) {
                return Part::Failed(
                    codes::UNSUPPORTED_COMPRESSION_TYPE,
                    "zstd requires produce v7 or later".into(),
                );
            }
        }
    }
    let len = records.len() as u64;
    match ctx.log.append(AppendRequest {
        partition: key,
        batch: records,
        wait: acks != 0,
    }) {
        Ok(ticket) => {
            ctx.metrics.produced_bytes.inc_by(len);
            ctx.metrics.produced_batches.inc();
            ticket.map_or(Part::Queued, Part::Waiting)
        }
        Err(e) => {
            tracing::debug!(partition = %key, error = %e, "produce rejected");
            Part::Failed(errors::code(&e), e.to_string())
        }
    }
}

impl Staged {
    pub async fn finish(self) -> Outcome {
        if self.acks == 0 {
            let failed = self
                .topics
                .iter()
                .flat_map(|(_, _, p)| p)
                .find_map(|(_, p)| match p {
                    Part::Failed(code, message) => Some(format!(
                        "acks=0 produce failed with error {code}: {message}"
                    )),
                    _ => None,
                });
            return failed.map_or(Outcome::Silent, Outcome::Close);
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut resp = ProduceResponse::default();
        for (name, topic_id, parts) in self.topics {
            let mut topic = TopicProduceResponse::default();
            topic.name = topic_name(&name);
            for (index, part) in parts {
                let result = match part {
                    Part::Failed(code, message) => Err((code, message)),
                    Part::Queued => {
                        Err((codes::INVALID_REQUEST, "unexpected queued append".into()))
                    }
                    Part::Waiting(ticket) => {
                        match tokio::time::timeout_at(deadline, ticket).await {
                            Ok(Ok(Ok(appended))) => Ok(appended),
                            Ok(Ok(Err(e))) => Err((errors::code(&e), e.to_string())),
                            Ok(Err(_)) => {
                                Err((codes::REQUEST_TIMED_OUT, "append abandoned".into()))
                            }
                            Err(_) => Err((
                                codes::REQUEST_TIMED_OUT,
                                "commit did not finish in time".into(),
                            )),
                        }
                    }
                };
                let moved =
                    matches!(&result, Err((code, _)) if *code == codes::NOT_LEADER_OR_FOLLOWER);
                let mut p = partition_response(self.version, index, result);
                if moved && self.version >= 10 {
                    if let Some(topic) = topic_id {
                        let key = PartitionKey {
                            topic,
                            partition: PartitionId(index),
                        };
                        if let Some((epoch, leader)) = self.ctx.current_leader(key) {
                            p.current_leader.leader_id = BrokerId(leader.id);
                            p.current_leader.leader_epoch = epoch;
                            if !resp.node_endpoints.iter().any(|e| e.node_id.0 == leader.id) {
                                let mut e = NodeEndpoint::default();
                                e.node_id = BrokerId(leader.id);
                                e.host = str_bytes(leader.host);
                                e.port = leader.port;
                                e.rack = leader.rack.map(str_bytes);
                                resp.node_endpoints.push(e);
                            }
                        }
                    }
                }
                topic.partition_responses.push(p);
            }
            resp.responses.push(topic);
        }
        Outcome::Respond(resp)
    }
}

fn partition_response(
    version: i16,
    index: i32,
    result: Result<Appended, (i16, String)>,
) -> PartitionProduceResponse {
    let mut p = PartitionProduceResponse::default();
    p.index = index;
    p.log_append_time_ms = -1;
    match result {
        Ok(appended) => {
            p.base_offset = appended.base_offset.0;
            if version >= 5 {
                p.log_start_offset = appended.log_start_offset.0;
            }
        }
        Err((code, message)) => {
            p.error_code = code;
            p.base_offset = -1;
            if version >= 5 {
                p.log_start_offset = -1;
            }
            if version >= 8 {
                p.error_message = Some(str_bytes(message));
            }
        }
    }
    p
}
