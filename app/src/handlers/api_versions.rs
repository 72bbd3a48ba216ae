//! ApiVersions: the versions of every API this broker speaks.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use std::sync::Arc;

use crate::context::Context;
use crate::errors::RequestError;
use crate::server::dispatch::{encode, Reply};
use crate::server::session::Session;
use crate::server::versions::SUPPORTED;

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            let mut v = ApiVersion::default();
            v.api_key = *key as i16;
            v.min_version = *min;
            v.max_version = *max;
            v
        })
        .collect()
}

pub async fn handle(
    _ctx: Arc<Context>,
    _session: Arc<Session>,
    _version: i16,
    _req: ApiVersionsRequest,
) -> ApiVersionsResponse {
    let mut resp = ApiVersionsResponse::default();
    resp.api_keys = api_keys();
    resp
}

/// A client asked for a version we do not speak: answer in v0 with UNSUPPORTED_VERSION and
/// our range, so that it retries with a version we know.
pub fn unsupported_version(correlation_id: i32) -> Reply {
    let mut resp = ApiVersionsResponse::default();
    resp.error_code = RequestError::UnsupportedVersion.code();
    resp.api_keys = api_keys();
    encode(ApiKey::ApiVersions, 0, correlation_id, &resp)
}
