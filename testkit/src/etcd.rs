//! Access to the etcd the test command starts on loopback.
//!
//! `scripts/test.sh` exports `KAFSCALE_TEST_ETCD_URL` (`etcd://127.0.0.1:PORT`). Without it,
//! etcd tests fail when `KAFSCALE_TEST_REQUIRE_ETCD=1` or `CI` is set, and are skipped with a
//! message otherwise.

use kafscale_core::ports::MetadataStore;
use std::sync::Arc;

/// The test etcd, or `None` when none is configured and none is required.
pub async fn test_store(name: &str) -> Option<Arc<dyn MetadataStore>> {
    let Ok(url) = std::env::var("KAFSCALE_TEST_ETCD_URL") else {
        let required = std::env::var_os("KAFSCALE_TEST_REQUIRE_ETCD").is_some_and(|v| v == "1")
            || std::env::var_os("CI").is_some();
        assert!(
            !required,
            "KAFSCALE_TEST_ETCD_URL is not set but etcd is required (run ./scripts/test.sh)"
        );
        eprintln!("skipping {name}: KAFSCALE_TEST_ETCD_URL not set (./scripts/test.sh sets it)");
        return None;
    };
    Some(
        kafscale_adapters::connect_metadata_store(&url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}")),
    )
}
