//! Access to the S3-compatible server the test command starts (SeaweedFS on loopback).
//!
//! `scripts/test.sh` exports `KAFSCALE_TEST_S3_URL` (an `s3://bucket` URL) together with the
//! `AWS_*` variables that reach the server. Without it, S3 tests fail when
//! `KAFSCALE_TEST_REQUIRE_S3=1` or `CI` is set, and are skipped with a message otherwise.

use kafscale_core::ports::ObjectStore;
use std::sync::Arc;

/// A store under a fresh prefix of the test bucket, or `None` when no server is configured
/// and none is required.
pub fn test_store(name: &str) -> Option<Arc<dyn ObjectStore>> {
    let Ok(url) = std::env::var("KAFSCALE_TEST_S3_URL") else {
        let required = std::env::var_os("KAFSCALE_TEST_REQUIRE_S3").is_some_and(|v| v == "1")
            || std::env::var_os("CI").is_some();
        assert!(
            !required,
            "KAFSCALE_TEST_S3_URL is not set but an S3 server is required (run ./scripts/test.sh)"
        );
        eprintln!("skipping {name}: KAFSCALE_TEST_S3_URL not set (./scripts/test.sh sets it)");
        return None;
    };
    let prefix = format!("{name}-{}", uuid::Uuid::new_v4().simple());
    let url = format!("{}/{prefix}", url.trim_end_matches('/'));
    Some(kafscale_adapters::object_store_from_url(&url).unwrap_or_else(|e| panic!("{url}: {e}")))
}
