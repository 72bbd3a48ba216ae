//! Request dispatch: header decode, version checks, routing to one handler per API, and
//! response encoding.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinHandle;

use super::error_codes::ErrorCodes;
use super::versions;
use crate::context::Context;
use crate::handlers;

/// What the writer does with a finished request.
#[derive(Debug)]
pub enum Reply {
    Frame(Bytes),
    /// acks=0 produce: nothing is sent.
    None,
    Close(String),
}

/// Why a frame could not be turned into a request. Each closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is shorter than a request header")]
    Short(usize),
    #[error("unknown api key {0}")]
    UnknownApi(i16),
    #[error("unsupported api {0:?}")]
    UnsupportedApi(ApiKey),
    #[error("unsupported version {version} of {api:?}")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("malformed request: {0}")]
    Malformed(String),
}

impl FrameError {
    /// The `reason` label of `kafscale_refused_requests`.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::Short(_) | FrameError::Malformed(_) => "malformed",
            FrameError::UnknownApi(_) | FrameError::UnsupportedApi(_) => "unknown_api",
            FrameError::UnsupportedVersion { .. } => "unsupported_version",
        }
    }
}

/// Decodes with a guard: malformed input must never take the broker down, even if a decoder
/// panics on it. (Allocation failures cannot be caught; `wire::check_request` has already
/// made sure no count in the frame exceeds its bytes.)
fn decode<T: Decodable>(frame: &mut Bytes, version: i16) -> Result<T, FrameError> {
    match catch_unwind(AssertUnwindSafe(|| T::decode(frame, version))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(FrameError::Malformed(e.to_string())),
        Err(_) => Err(FrameError::Malformed("decoder panicked".to_owned())),
    }
}

pub fn encode<R: Encodable>(api_key: ApiKey, version: i16, correlation_id: i32, body: &R) -> Reply {
    // ApiVersions responses always use header v0 so that clients can parse them before they
    // know which versions the broker speaks.
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(version)
    };
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    if let Err(e) = header.encode(&mut buf, header_version) {
        return Reply::Close(format!("cannot encode response header: {e}"));
    }
    if let Err(e) = body.encode(&mut buf, version) {
        return Reply::Close(format!(
            "cannot encode {api_key:?} v{version} response: {e}"
        ));
    }
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Reply::Frame(buf.freeze())
}

fn ready(reply: Reply) -> JoinHandle<Reply> {
    tokio::spawn(async move { reply })
}

/// A decoded request of an API this broker serves.
#[derive(Debug)]
pub enum Request {
    ApiVersions(ApiVersionsRequest),
    Metadata(MetadataRequest),
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(DeleteTopicsRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    Produce(ProduceRequest),
    FindCoordinator(FindCoordinatorRequest),
    /// With the client id of the request header, which DescribeGroups shows.
    JoinGroup(JoinGroupRequest, String),
    SyncGroup(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    DescribeGroups(DescribeGroupsRequest),
    ListGroups(ListGroupsRequest),
    DeleteGroups(DeleteGroupsRequest),
    OffsetDelete(OffsetDeleteRequest),
    DescribeConfigs(DescribeConfigsRequest),
    AlterConfigs(AlterConfigsRequest),
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    CreatePartitions(CreatePartitionsRequest),
    DeleteRecords(DeleteRecordsRequest),
    DescribeCluster(DescribeClusterRequest),
    DescribeTopicPartitions(DescribeTopicPartitionsRequest),
    OffsetForLeaderEpoch(OffsetForLeaderEpochRequest),
    InitProducerId(InitProducerIdRequest),
    DescribeProducers(DescribeProducersRequest),
}

/// A frame taken apart: the API, its version, the header and the body.
#[derive(Debug)]
pub struct Decoded {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    /// `None` for an ApiVersions request of a version we do not speak: it gets a v0 answer.
    pub request: Option<Request>,
    /// Bytes the request is counted as while it is in flight: its frame and an estimate of
    /// what its decoded form holds.
    pub weight: usize,
}

/// Decodes one frame (without its size prefix). Pure and total: any input gives a value or
/// an error, never a panic; the fuzz target `fuzz/fuzz_targets/frame.rs` holds it to that.
pub fn decode_frame(mut frame: Bytes) -> Result<Decoded, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::Short(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| FrameError::UnknownApi(raw_key))?;
    let Some((min, max)) = versions::supported(api_key) else {
        return Err(FrameError::UnsupportedApi(api_key));
    };
    if version < min || version > max {
        if api_key == ApiKey::ApiVersions {
            return Ok(Decoded {
                api_key,
                version,
                correlation_id,
                request: None,
                weight: frame.len(),
            });
        }
        return Err(FrameError::UnsupportedVersion {
            api: api_key,
            version,
        });
    }
    if api_key == ApiKey::Produce && version < 3 {
        // Advertised so that old librdkafka enables compression; v0-2 carry message sets
        // older than magic 2, which are not supported.
        return Err(FrameError::UnsupportedVersion {
            api: api_key,
            version,
        });
    }
    let header_version = api_key.request_header_version(version);
    // Every length and count is checked against the bytes that remain before the decoder
    // sizes anything by it: a decoder allocates what a count claims.
    let checked = crate::wire::check_request(&frame, raw_key, version, header_version)
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    let weight = checked.decoded_bytes(frame.len());
    let header: RequestHeader = decode(&mut frame, header_version)?;
    let request = match api_key {
        ApiKey::ApiVersions => Request::ApiVersions(decode(&mut frame, version)?),
        ApiKey::Metadata => Request::Metadata(decode(&mut frame, version)?),
        ApiKey::CreateTopics => Request::CreateTopics(decode(&mut frame, version)?),
        ApiKey::DeleteTopics => Request::DeleteTopics(decode(&mut frame, version)?),
        ApiKey::Fetch => Request::Fetch(decode(&mut frame, version)?),
        ApiKey::ListOffsets => Request::ListOffsets(decode(&mut frame, version)?),
        ApiKey::Produce => Request::Produce(decode(&mut frame, version)?),
        ApiKey::FindCoordinator => Request::FindCoordinator(decode(&mut frame, version)?),
        ApiKey::JoinGroup => Request::JoinGroup(
            decode(&mut frame, version)?,
            header
                .client_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
        ),
        ApiKey::SyncGroup => Request::SyncGroup(decode(&mut frame, version)?),
        ApiKey::Heartbeat => Request::Heartbeat(decode(&mut frame, version)?),
        ApiKey::LeaveGroup => Request::LeaveGroup(decode(&mut frame, version)?),
        ApiKey::OffsetCommit => Request::OffsetCommit(decode(&mut frame, version)?),
        ApiKey::OffsetFetch => Request::OffsetFetch(decode(&mut frame, version)?),
        ApiKey::DescribeGroups => Request::DescribeGroups(decode(&mut frame, version)?),
        ApiKey::ListGroups => Request::ListGroups(decode(&mut frame, version)?),
        ApiKey::DeleteGroups => Request::DeleteGroups(decode(&mut frame, version)?),
        ApiKey::OffsetDelete => Request::OffsetDelete(decode(&mut frame, version)?),
        ApiKey::DescribeConfigs => Request::DescribeConfigs(decode(&mut frame, version)?),
        ApiKey::AlterConfigs => Request::AlterConfigs(decode(&mut frame, version)?),
        ApiKey::IncrementalAlterConfigs => {
            Request::IncrementalAlterConfigs(decode(&mut frame, version)?)
        }
        ApiKey::CreatePartitions => Request::CreatePartitions(decode(&mut frame, version)?),
        ApiKey::DeleteRecords => Request::DeleteRecords(decode(&mut frame, version)?),
        ApiKey::DescribeCluster => Request::DescribeCluster(decode(&mut frame, version)?),
        ApiKey::DescribeTopicPartitions => {
            Request::DescribeTopicPartitions(decode(&mut frame, version)?)
        }
        ApiKey::OffsetForLeaderEpoch => Request::OffsetForLeaderEpoch(decode(&mut frame, version)?),
        ApiKey::InitProducerId => Request::InitProducerId(decode(&mut frame, version)?),
        ApiKey::DescribeProducers => Request::DescribeProducers(decode(&mut frame, version)?),
        other => return Err(FrameError::UnsupportedApi(other)),
    };
    Ok(Decoded {
        api_key,
        version,
        correlation_id: header.correlation_id,
        request: Some(request),
        weight,
    })
}

/// Records the request's latency and the error codes of its response.
fn observe<R: ErrorCodes>(ctx: &Context, key: ApiKey, started: Instant, resp: &R) {
    let mut codes = Vec::new();
    resp.error_codes(&mut codes);
    ctx.metrics.responded(key, started.elapsed(), &codes);
}

fn spawn_handler<R, F>(
    ctx: &Arc<Context>,
    key: ApiKey,
    version: i16,
    corr: i32,
    fut: F,
) -> JoinHandle<Reply>
where
    R: Encodable + ErrorCodes,
    F: std::future::Future<Output = R> + Send + 'static,
{
    let ctx = ctx.clone();
    let started = Instant::now();
    tokio::spawn(async move {
        let resp = fut.await;
        observe(&ctx, key, started, &resp);
        encode(key, version, corr, &resp)
    })
}

/// Starts the handling of a decoded request from a client at `peer`.
pub fn dispatch(ctx: &Arc<Context>, decoded: Decoded, peer: std::net::IpAddr) -> JoinHandle<Reply> {
    let Decoded {
        api_key: key,
        version: v,
        correlation_id: corr,
        request,
        weight: _,
    } = decoded;
    let Some(request) = request else {
        return ready(handlers::api_versions::unsupported_version(corr));
    };
    ctx.metrics.request(key);
    let c = ctx.clone();
    match request {
        Request::ApiVersions(r) => {
            spawn_handler(ctx, key, v, corr, handlers::api_versions::handle(c, v, r))
        }
        Request::Metadata(r) => {
            spawn_handler(ctx, key, v, corr, handlers::metadata::handle(c, v, r))
        }
        Request::CreateTopics(r) => {
            spawn_handler(ctx, key, v, corr, handlers::create_topics::handle(c, v, r))
        }
        Request::DeleteTopics(r) => {
            spawn_handler(ctx, key, v, corr, handlers::delete_topics::handle(c, v, r))
        }
        Request::Fetch(r) => spawn_handler(ctx, key, v, corr, handlers::fetch::handle(c, v, r)),
        Request::ListOffsets(r) => {
            spawn_handler(ctx, key, v, corr, handlers::list_offsets::handle(c, v, r))
        }
        Request::FindCoordinator(r) => spawn_handler(
            ctx,
            key,
            v,
            corr,
            handlers::find_coordinator::handle(c, v, r),
        ),
        Request::JoinGroup(r, client_id) => spawn_handler(
            ctx,
            key,
            v,
            corr,
            // DescribeGroups shows the member's host as Kafka does, "/1.2.3.4".
            handlers::join_group::handle(c, v, r, client_id, format!("/{peer}")),
        ),
        Request::SyncGroup(r) => {
            spawn_handler(ctx, key, v, corr, handlers::sync_group::handle(c, v, r))
        }
        Request::Heartbeat(r) => {
            spawn_handler(ctx, key, v, corr, handlers::heartbeat::handle(c, v, r))
        }
        Request::LeaveGroup(r) => {
            spawn_handler(ctx, key, v, corr, handlers::leave_group::handle(c, v, r))
        }
        Request::OffsetCommit(r) => {
            spawn_handler(ctx, key, v, corr, handlers::offset_commit::handle(c, v, r))
        }
        Request::OffsetFetch(r) => {
            spawn_handler(ctx, key, v, corr, handlers::offset_fetch::handle(c, v, r))
        }
        Request::DescribeGroups(r) => spawn_handler(
            ctx,
            key,
            v,
            corr,
            handlers::describe_groups::handle(c, v, r),
        ),
        Request::ListGroups(r) => {
            spawn_handler(ctx, key, v, corr, handlers::list_groups::handle(c, v, r))
        }
        Request::DeleteGroups(r) => {
            spawn_handler(ctx, key, v, corr, handlers::delete_groups::handle(c, v, r))
        }
        Request::OffsetDelete(r) => {
            spawn_handler(ctx, key, v, corr, handlers::offset_delete::handle(c, v, r))
        }
        Request::DescribeConfigs(r) => spawn_handler(
            ctx,
            key,
            v,
            corr,
            handlers::describe_configs::handle(c, v, r),
        ),
        Request::AlterConfigs(r) => {
            spawn_handler(ctx, key, v, corr, handlers::alter_configs::handle(c, v, r))
        }
        Request::IncrementalAlterConfigs(r) => spawn_handler(
            ctx,
            key,
            v,
            corr,
            handlers::alter_configs::handle_incremental(c, v, r),
        ),
        Request::CreatePartitions(r) => spawn_handler(
            ctx,
            key,
            v,
            corr,
            handlers::create_partitions::handle(c, v, r),
        ),
        Request::DeleteRecords(r) => {
            spawn_handler(ctx, key, v, corr, handlers::delete_records::handle(c, v, r))
        }
        Request::DescribeCluster(r) => spawn_handler(
            ctx,
            key,
            v,
            corr,
            handlers::describe_cluster::handle(c, v, r),
        ),
        Request::DescribeTopicPartitions(r) => spawn_handler(
            ctx,
            key,
            v,
            corr,
            handlers::describe_topic_partitions::handle(c, v, r),
        ),
        Request::OffsetForLeaderEpoch(r) => spawn_handler(
            ctx,
            key,
            v,
            corr,
            handlers::offset_for_leader_epoch::handle(c, v, r),
        ),
        Request::InitProducerId(r) => spawn_handler(
            ctx,
            key,
            v,
            corr,
            handlers::init_producer_id::handle(c, v, r),
        ),
        Request::DescribeProducers(r) => spawn_handler(
            ctx,
            key,
            v,
            corr,
            handlers::describe_producers::handle(c, v, r),
        ),
        Request::Produce(r) => {
            // Staging runs now, in arrival order; only the wait for the commit is deferred.
            let started = Instant::now();
            let staged = handlers::produce::stage(ctx, v, r);
            tokio::spawn(async move {
                match staged.finish().await {
                    handlers::produce::Outcome::Respond(resp) => {
                        observe(&c, key, started, &resp);
                        encode(key, v, corr, &resp)
                    }
                    handlers::produce::Outcome::Silent => Reply::None,
                    handlers::produce::Outcome::Close(reason) => Reply::Close(reason),
                }
            })
        }
    }
}
