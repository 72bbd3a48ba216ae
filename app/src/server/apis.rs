//! The one table of the APIs this broker serves. Each row names the API, its request and
//! response types, the versions advertised, how its handler is called and where its response
//! carries error codes. Decoding (`decode_body`), routing (`route`), ApiVersions
//! (`SUPPORTED`) and `kafscale_request_errors_total` (the `ErrorCodes` impls) all come from
//! it: adding an API is one row here and its handler file.
//!
//! How a handler is called:
//! - `serve h`: `h(ctx, session, version, request)` returns the response; the session is
//!   who asks (its principal, for authorization) and on which listener (the addresses
//!   answers name);
//! - `origin h`: the same with the client id and host appended (JoinGroup records them);
//! - `staged h`: `h(&ctx, &session, version, request)` runs in arrival order (the next frame
//!   of the connection is read once it has returned) and returns a `produce::Staged` whose
//!   commit is awaited later (Produce).
//!
//! Error codes are listed as paths: `error_code` is the response's own code, and
//! `topics [partitions [error_code]]` every code of every partition of every topic.

use bytes::Bytes;
use kafka_protocol::messages::*;
use std::sync::Arc;
use tokio::task::JoinHandle;

use super::dispatch::{decode, spawn_handler, spawn_staged, Call, FrameError, Reply};
use super::error_codes::{push, ErrorCodes};
use crate::context::Context;
use crate::handlers;

/// Pushes the error codes found along the listed paths of `$v` onto `$out`.
macro_rules! collect_codes {
    ($v:expr, $out:ident;) => {};
    ($v:expr, $out:ident; error_code $(, $($rest:tt)*)?) => {
        push($out, $v.error_code);
        collect_codes!($v, $out; $($($rest)*)?);
    };
    ($v:expr, $out:ident; $field:ident [ $($inner:tt)* ] $(, $($rest:tt)*)?) => {
        for item in &$v.$field {
            collect_codes!(item, $out; $($inner)*);
        }
        collect_codes!($v, $out; $($($rest)*)?);
    };
    // A code under another name (AddPartitionsToTxn's `partition_error_code`).
    ($v:expr, $out:ident; $field:ident $(, $($rest:tt)*)?) => {
        push($out, $v.$field);
        collect_codes!($v, $out; $($($rest)*)?);
    };
}

/// One arm of `route`, by how the row's handler is called.
macro_rules! route_call {
    (serve $h:path, $ctx:ident, $call:ident, $r:ident) => {{
        let turn = $call.turn.take();
        spawn_handler(
            $ctx,
            &$call,
            turn,
            $h($ctx.clone(), $call.session.clone(), $call.version, $r),
        )
    }};
    (origin $h:path, $ctx:ident, $call:ident, $r:ident) => {{
        let turn = $call.turn.take();
        spawn_handler(
            $ctx,
            &$call,
            turn,
            $h(
                $ctx.clone(),
                $call.session.clone(),
                $call.version,
                $r,
                $call.client_id(),
                $call.host(),
            ),
        )
    }};
    (staged $h:path, $ctx:ident, $call:ident, $r:ident) => {{
        let staged = $h($ctx, &$call.session, $call.version, $r).await;
        spawn_staged($ctx, $call, staged)
    }};
}

macro_rules! api_table {
    ($(
        $(#[$doc:meta])*
        $key:ident: $req:ty => $resp:ty, $min:literal ..= $max:literal,
        $how:ident $handler:path, codes [ $($codes:tt)* ];
    )*) => {
        /// Every API served, with the versions advertised, in ApiVersions order.
        pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[$((ApiKey::$key, $min, $max)),*];

        /// A decoded request of an API this broker serves.
        #[derive(Debug)]
        pub enum Request {
            $($key($req),)*
        }

        /// Decodes the body of a request whose header has been read.
        pub(super) fn decode_body(
            key: ApiKey,
            frame: &mut Bytes,
            version: i16,
        ) -> Result<Request, FrameError> {
            match key {
                $(ApiKey::$key => Ok(Request::$key(decode(frame, version)?)),)*
                other => Err(FrameError::UnsupportedApi(other)),
            }
        }

        /// Starts the handler of a decoded request.
        pub(super) async fn route(ctx: &Arc<Context>, mut call: Call, request: Request) -> JoinHandle<Reply> {
            match request {
                $(Request::$key(r) => route_call!($how $handler, ctx, call, r),)*
            }
        }

        $(
            impl ErrorCodes for $resp {
                fn error_codes(&self, out: &mut Vec<i16>) {
                    collect_codes!(self, out; $($codes)*);
                }
            }
        )*
    };
}

api_table! {
    // v0-2 are advertised (old librdkafka enables compression only then) but refused.
    Produce: ProduceRequest => ProduceResponse, 0..=11,
        staged handlers::produce::stage, codes [responses [partition_responses [error_code]]];
    Fetch: FetchRequest => FetchResponse, 4..=16,
        serve handlers::fetch::handle, codes [error_code, responses [partitions [error_code]]];
    ListOffsets: ListOffsetsRequest => ListOffsetsResponse, 1..=10,
        serve handlers::list_offsets::handle, codes [topics [partitions [error_code]]];
    Metadata: MetadataRequest => MetadataResponse, 0..=12,
        serve handlers::metadata::handle,
        codes [error_code, topics [error_code, partitions [error_code]]];
    ApiVersions: ApiVersionsRequest => ApiVersionsResponse, 0..=4,
        serve handlers::api_versions::handle, codes [error_code];
    CreateTopics: CreateTopicsRequest => CreateTopicsResponse, 2..=7,
        serve handlers::create_topics::handle, codes [topics [error_code]];
    DeleteTopics: DeleteTopicsRequest => DeleteTopicsResponse, 1..=6,
        serve handlers::delete_topics::handle, codes [responses [error_code]];
    // Consumer groups. OffsetCommit below v2 and OffsetFetch below v1 cannot be decoded.
    FindCoordinator: FindCoordinatorRequest => FindCoordinatorResponse, 0..=6,
        serve handlers::find_coordinator::handle, codes [error_code, coordinators [error_code]];
    JoinGroup: JoinGroupRequest => JoinGroupResponse, 0..=9,
        origin handlers::join_group::handle, codes [error_code];
    SyncGroup: SyncGroupRequest => SyncGroupResponse, 0..=5,
        serve handlers::sync_group::handle, codes [error_code];
    Heartbeat: HeartbeatRequest => HeartbeatResponse, 0..=4,
        serve handlers::heartbeat::handle, codes [error_code];
    LeaveGroup: LeaveGroupRequest => LeaveGroupResponse, 0..=5,
        serve handlers::leave_group::handle, codes [error_code, members [error_code]];
    OffsetCommit: OffsetCommitRequest => OffsetCommitResponse, 2..=9,
        serve handlers::offset_commit::handle, codes [topics [partitions [error_code]]];
    OffsetFetch: OffsetFetchRequest => OffsetFetchResponse, 1..=9,
        serve handlers::offset_fetch::handle,
        codes [
            error_code,
            topics [partitions [error_code]],
            groups [error_code, topics [partitions [error_code]]]
        ];
    DescribeGroups: DescribeGroupsRequest => DescribeGroupsResponse, 0..=6,
        serve handlers::describe_groups::handle, codes [groups [error_code]];
    ListGroups: ListGroupsRequest => ListGroupsResponse, 0..=5,
        serve handlers::list_groups::handle, codes [error_code];
    DeleteGroups: DeleteGroupsRequest => DeleteGroupsResponse, 0..=2,
        serve handlers::delete_groups::handle, codes [results [error_code]];
    OffsetDelete: OffsetDeleteRequest => OffsetDeleteResponse, 0..=0,
        serve handlers::offset_delete::handle,
        codes [error_code, topics [partitions [error_code]]];
    // Admin APIs (the ranges the decoders accept).
    DescribeConfigs: DescribeConfigsRequest => DescribeConfigsResponse, 1..=4,
        serve handlers::describe_configs::handle, codes [results [error_code]];
    AlterConfigs: AlterConfigsRequest => AlterConfigsResponse, 0..=2,
        serve handlers::alter_configs::handle, codes [responses [error_code]];
    IncrementalAlterConfigs: IncrementalAlterConfigsRequest => IncrementalAlterConfigsResponse,
        0..=1, serve handlers::alter_configs::handle_incremental, codes [responses [error_code]];
    CreatePartitions: CreatePartitionsRequest => CreatePartitionsResponse, 0..=3,
        serve handlers::create_partitions::handle, codes [results [error_code]];
    DeleteRecords: DeleteRecordsRequest => DeleteRecordsResponse, 0..=2,
        serve handlers::delete_records::handle, codes [topics [partitions [error_code]]];
    DescribeCluster: DescribeClusterRequest => DescribeClusterResponse, 0..=2,
        serve handlers::describe_cluster::handle, codes [error_code];
    DescribeTopicPartitions: DescribeTopicPartitionsRequest => DescribeTopicPartitionsResponse,
        0..=0, serve handlers::describe_topic_partitions::handle,
        codes [topics [error_code, partitions [error_code]]];
    OffsetForLeaderEpoch: OffsetForLeaderEpochRequest => OffsetForLeaderEpochResponse, 2..=4,
        serve handlers::offset_for_leader_epoch::handle, codes [topics [partitions [error_code]]];
    // Idempotent and transactional producers. Versions stop before KIP-890's second part
    // (an epoch bump per transaction): AddPartitionsToTxn v4-5 are the brokers' batched
    // verification.
    InitProducerId: InitProducerIdRequest => InitProducerIdResponse, 0..=4,
        serve handlers::init_producer_id::handle, codes [error_code];
    AddPartitionsToTxn: AddPartitionsToTxnRequest => AddPartitionsToTxnResponse, 0..=5,
        serve handlers::add_partitions_to_txn::handle,
        codes [
            error_code,
            results_by_topic_v3_and_below [results_by_partition [partition_error_code]],
            results_by_transaction [topic_results [results_by_partition [partition_error_code]]]
        ];
    AddOffsetsToTxn: AddOffsetsToTxnRequest => AddOffsetsToTxnResponse, 0..=3,
        serve handlers::add_offsets_to_txn::handle, codes [error_code];
    EndTxn: EndTxnRequest => EndTxnResponse, 0..=4,
        serve handlers::end_txn::handle, codes [error_code];
    TxnOffsetCommit: TxnOffsetCommitRequest => TxnOffsetCommitResponse, 0..=4,
        serve handlers::txn_offset_commit::handle, codes [topics [partitions [error_code]]];
    WriteTxnMarkers: WriteTxnMarkersRequest => WriteTxnMarkersResponse, 1..=1,
        serve handlers::write_txn_markers::handle, codes [markers [topics [partitions [error_code]]]];
    DescribeTransactions: DescribeTransactionsRequest => DescribeTransactionsResponse, 0..=0,
        serve handlers::describe_transactions::handle, codes [transaction_states [error_code]];
    ListTransactions: ListTransactionsRequest => ListTransactionsResponse, 0..=2,
        serve handlers::list_transactions::handle, codes [error_code];
    DescribeProducers: DescribeProducersRequest => DescribeProducersResponse, 0..=0,
        serve handlers::describe_producers::handle, codes [topics [partitions [error_code]]];
    // Authentication: answered by the connection itself while a SASL exchange is under way
    // (`server::auth`); these handlers answer what comes at any other time.
    SaslHandshake: SaslHandshakeRequest => SaslHandshakeResponse, 0..=1,
        serve handlers::sasl::handshake, codes [error_code];
    SaslAuthenticate: SaslAuthenticateRequest => SaslAuthenticateResponse, 0..=2,
        serve handlers::sasl::authenticate, codes [error_code];
    DescribeUserScramCredentials: DescribeUserScramCredentialsRequest
        => DescribeUserScramCredentialsResponse, 0..=0,
        serve handlers::scram_credentials::describe, codes [error_code, results [error_code]];
    AlterUserScramCredentials: AlterUserScramCredentialsRequest
        => AlterUserScramCredentialsResponse, 0..=0,
        serve handlers::scram_credentials::alter, codes [results [error_code]];
    // ACLs.
    DescribeAcls: DescribeAclsRequest => DescribeAclsResponse, 1..=3,
        serve handlers::acls::describe, codes [error_code];
    CreateAcls: CreateAclsRequest => CreateAclsResponse, 1..=3,
        serve handlers::acls::create, codes [results [error_code]];
    DeleteAcls: DeleteAclsRequest => DeleteAclsResponse, 1..=3,
        serve handlers::acls::delete, codes [filter_results [error_code]];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_codes_are_counted_where_they_appear() {
        let mut resp = ProduceResponse::default();
        let mut topic = produce_response::TopicProduceResponse::default();
        for code in [0, 6, 6] {
            let mut p = produce_response::PartitionProduceResponse::default();
            p.error_code = code;
            topic.partition_responses.push(p);
        }
        resp.responses.push(topic);
        let mut out = Vec::new();
        resp.error_codes(&mut out);
        assert_eq!(out, vec![6, 6]);
    }

    #[test]
    fn nested_paths_collect_every_level() {
        let mut resp = OffsetFetchResponse::default();
        resp.error_code = 16;
        let mut group = offset_fetch_response::OffsetFetchResponseGroup::default();
        group.error_code = 15;
        let mut topic = offset_fetch_response::OffsetFetchResponseTopics::default();
        let mut p = offset_fetch_response::OffsetFetchResponsePartitions::default();
        p.error_code = 3;
        topic.partitions.push(p);
        group.topics.push(topic);
        resp.groups.push(group);
        let mut out = Vec::new();
        resp.error_codes(&mut out);
        assert_eq!(out, vec![16, 15, 3]);
    }
}
