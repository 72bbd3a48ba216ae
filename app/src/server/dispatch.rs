//! Request dispatch: header decode, version checks, routing to one handler per API, and
//! response encoding.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use tokio::task::JoinHandle;

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

/// Decodes with a guard: malformed input must never take the broker down, even if a decoder
/// panics on it.
fn decode<T: Decodable>(frame: &mut Bytes, version: i16) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(|| T::decode(frame, version))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("malformed request: {e}")),
        Err(_) => Err("malformed request: decoder panicked".to_owned()),
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

macro_rules! route {
    ($ctx:expr, $frame:expr, $key:expr, $version:expr, $corr:expr, $req:ty, $handler:path) => {{
        let req: $req = decode(&mut $frame, $version)?;
        let ctx = $ctx.clone();
        Ok(tokio::spawn(async move {
            let resp = $handler(ctx, $version, req).await;
            encode($key, $version, $corr, &resp)
        }))
    }};
}

/// Decodes one frame and starts its handling. An error closes the connection.
pub fn dispatch(ctx: &Arc<Context>, mut frame: Bytes) -> Result<JoinHandle<Reply>, String> {
    // The connection guarantees at least 8 bytes: key, version, correlation id.
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| format!("unknown api key {raw_key}"))?;
    let Some(range) = versions::supported(api_key) else {
        return Err(format!("unsupported api {api_key:?}"));
    };
    if version < range.0 || version > range.1 {
        if api_key == ApiKey::ApiVersions {
            return Ok(ready(handlers::api_versions::unsupported_version(
                correlation_id,
            )));
        }
        return Err(format!("unsupported version {version} of {api_key:?}"));
    }
    let header: RequestHeader = decode(&mut frame, api_key.request_header_version(version))?;
    let corr = header.correlation_id;
    ctx.metrics.request(api_key);
    match api_key {
        ApiKey::ApiVersions => route!(
            ctx,
            frame,
            api_key,
            version,
            corr,
            ApiVersionsRequest,
            handlers::api_versions::handle
        ),
        ApiKey::Metadata => route!(
            ctx,
            frame,
            api_key,
            version,
            corr,
            MetadataRequest,
            handlers::metadata::handle
        ),
        ApiKey::CreateTopics => route!(
            ctx,
            frame,
            api_key,
            version,
            corr,
            CreateTopicsRequest,
            handlers::create_topics::handle
        ),
        ApiKey::DeleteTopics => route!(
            ctx,
            frame,
            api_key,
            version,
            corr,
            DeleteTopicsRequest,
            handlers::delete_topics::handle
        ),
        ApiKey::Fetch => route!(
            ctx,
            frame,
            api_key,
            version,
            corr,
            FetchRequest,
            handlers::fetch::handle
        ),
        ApiKey::ListOffsets => route!(
            ctx,
            frame,
            api_key,
            version,
            corr,
            ListOffsetsRequest,
            handlers::list_offsets::handle
        ),
        ApiKey::Produce => {
            if version < 3 {
                // Advertised so that old librdkafka enables compression; v0-2 carry message
                // sets older than magic 2, which are not supported.
                return Err(format!(
                    "produce v{version} (pre-v2 message format) is not supported"
                ));
            }
            let req: ProduceRequest = decode(&mut frame, version)?;
            let staged = handlers::produce::stage(ctx, version, req);
            Ok(tokio::spawn(async move {
                match staged.finish().await {
                    handlers::produce::Outcome::Respond(resp) => {
                        encode(api_key, version, corr, &resp)
                    }
                    handlers::produce::Outcome::Silent => Reply::None,
                    handlers::produce::Outcome::Close(reason) => Reply::Close(reason),
                }
            }))
        }
        other => Err(format!("unsupported api {other:?}")),
    }
}
