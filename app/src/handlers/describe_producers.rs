//! DescribeProducers v0: the idempotent producers of each partition this broker leads (no
//! transactions here: coordinator epoch and transaction start are always -1).

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use std::sync::Arc;

use kafscale_core::{PartitionId, PartitionKey};

use super::str_bytes;
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use kafscale_core::acl::Operation;

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    _version: i16,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let mut resp = DescribeProducersResponse::default();
    for t in req.topics {
        let topic = ctx.log.topic(&t.name.0);
        let denied = !ctx.topic_authorized(&session, Operation::Read, &t.name.0);
        let mut out = TopicResponse::default();
        out.name = t.name;
        for index in t.partition_indexes {
            let mut p = PartitionResponse::default();
            p.partition_index = index;
            let result = match &topic {
                _ if denied => Err(RequestError::TopicAuthorizationFailed),
                Some(topic) if (0..topic.partitions).contains(&index) => ctx
                    .log
                    .active_producers(PartitionKey {
                        topic: topic.id,
                        partition: PartitionId(index),
                    })
                    .map_err(RequestError::from),
                _ => Err(RequestError::UnknownTopicOrPartition),
            };
            match result {
                Ok(producers) => {
                    p.active_producers = producers
                        .into_iter()
                        .map(|a| {
                            let mut s = ProducerState::default();
                            s.producer_id = ProducerId(a.producer_id);
                            s.producer_epoch = i32::from(a.epoch);
                            s.last_sequence = a.last_sequence;
                            s.last_timestamp = a.last_ms;
                            s.coordinator_epoch = -1;
                            s.current_txn_start_offset = -1;
                            s
                        })
                        .collect();
                }
                Err(e) => {
                    p.error_code = e.code();
                    p.error_message = Some(str_bytes(e.to_string()));
                }
            }
            out.partitions.push(p);
        }
        resp.topics.push(out);
    }
    resp
}
