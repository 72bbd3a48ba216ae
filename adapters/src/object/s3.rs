//! Object store on S3 or any S3-compatible service (MinIO, SeaweedFS), path-style, with
//! create-if-absent writes (`If-None-Match: *`).
//!
//! Connection settings come from the standard environment: `AWS_ENDPOINT_URL` (or
//! `AWS_ENDPOINT`), `AWS_REGION` (default `us-east-1`), `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP=true` for plain-HTTP
//! endpoints. Requests are retried briefly by the client itself; longer retries belong to
//! the caller (the flusher) or a retry wrapper.
//!
//! [`S3Settings`] adds what the environment does not say the broker's way: a CA bundle
//! trusted for the endpoint besides the system's roots, and server-side encryption asked
//! for on every write (SSE-S3 or SSE-KMS; reads need nothing, S3 decrypts them).

use async_trait::async_trait;
use bytes::Bytes;
use kafscale_core::ports::{ObjectMeta, ObjectStore, PutMode, StoreError};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, Certificate, ClientOptions, RetryConfig};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use super::common::Backend;

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Connection settings; `None` fields fall back to the `AWS_*` environment.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub allow_http: Option<bool>,
    /// CA certificates (PEM) trusted for the endpoint, besides the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Server-side encryption asked for on every write; `None`: the bucket's default.
    pub encryption: Option<S3Encryption>,
}

/// Server-side encryption of the objects written (`x-amz-server-side-encryption`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S3Encryption {
    /// SSE-S3: keys S3 manages (`AES256`).
    S3,
    /// SSE-KMS (`aws:kms`) with this key (id, ARN or alias); `None`: the account's
    /// default `aws/s3` key.
    Kms { key_id: Option<String> },
}

/// [`ObjectStore`] in an S3 bucket, under an optional key prefix.
#[derive(Debug, Clone)]
pub struct S3ObjectStore {
    backend: Backend,
    bucket: String,
}

impl S3ObjectStore {
    /// Opens `bucket` under `prefix`. Does no I/O: a missing bucket or bad credentials show
    /// at the first request (the broker probes at start-up).
    pub fn open(
        bucket: &str,
        prefix: &str,
        settings: S3Settings,
    ) -> Result<S3ObjectStore, StoreError> {
        let fatal = |message: String| StoreError::Fatal { message };
        let s3 = builder(bucket, settings)?
            .build()
            .map_err(|e| fatal(format!("s3 bucket {bucket}: {e}")))?;
        let prefix = prefix.trim_matches('/');
        let inner: Arc<dyn object_store::ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(S3ObjectStore {
            backend: Backend::new_remote(inner),
            bucket: bucket.to_owned(),
        })
    }

    /// S3 answers a PUT to a missing bucket with 404; that is a configuration error.
    fn bucket_missing(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::NotFound { key } => StoreError::Fatal {
                message: format!(
                    "put {key}: bucket {:?} does not exist or is not accessible",
                    self.bucket
                ),
            },
            other => other,
        }
    }
}

/// The client of `bucket`, configured but not built.
fn builder(bucket: &str, settings: S3Settings) -> Result<AmazonS3Builder, StoreError> {
    let fatal = |message: String| StoreError::Fatal { message };
    if bucket.is_empty() {
        return Err(fatal(
            "s3 url names no bucket: expected s3://bucket[/prefix]".into(),
        ));
    }
    let mut client = ClientOptions::new()
        .with_allow_http(
            settings
                .allow_http
                .unwrap_or_else(|| env_flag("AWS_ALLOW_HTTP")),
        )
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(30));
    if let Some(pem) = &settings.ca_pem {
        let certificates = Certificate::from_pem_bundle(pem)
            .map_err(|e| fatal(format!("s3 CA certificates: {e}")))?;
        if certificates.is_empty() {
            return Err(fatal("s3 CA certificates: no certificate found".into()));
        }
        for certificate in certificates {
            client = client.with_root_certificate(certificate);
        }
    }
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: Duration::from_secs(10),
        })
        // Replaces the client options `from_env` filled in, so `AWS_ALLOW_HTTP` is read again.
        .with_client_options(client);
    let region = settings.region.or_else(|| {
        let set = std::env::var_os("AWS_REGION").is_some()
            || std::env::var_os("AWS_DEFAULT_REGION").is_some();
        (!set).then(|| "us-east-1".to_owned())
    });
    if let Some(region) = region {
        builder = builder.with_region(region);
    }
    if let Some(endpoint) = settings
        .endpoint
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
    {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(key) = settings.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = settings.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    let sse = |builder: AmazonS3Builder, kind: &str| {
        // object_store names its encryption keys only through their configuration names.
        let key = config_key(SSE_KEY)?;
        Ok::<_, StoreError>(builder.with_config(key, kind))
    };
    Ok(match settings.encryption {
        None => builder,
        Some(S3Encryption::S3) => sse(builder, "AES256")?,
        Some(S3Encryption::Kms { key_id: Some(key) }) => builder.with_sse_kms_encryption(key),
        Some(S3Encryption::Kms { key_id: None }) => sse(builder, "aws:kms")?,
    })
}

const SSE_KEY: &str = "aws_server_side_encryption";

fn config_key(name: &str) -> Result<AmazonS3ConfigKey, StoreError> {
    name.parse().map_err(|e| StoreError::Fatal {
        message: format!("s3 client option {name}: {e}"),
    })
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StoreError> {
        self.backend
            .put(key, data, mode)
            .await
            .map_err(|e| self.bucket_missing(e))
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.backend.get(key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.backend.get_range(key, range).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        self.backend.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.backend.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.backend.delete(key).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sse_of(encryption: Option<S3Encryption>) -> (Option<String>, Option<String>) {
        let settings = S3Settings {
            encryption,
            ..S3Settings::default()
        };
        let b = builder("bucket", settings).unwrap();
        let get = |name| b.get_config_value(&config_key(name).unwrap());
        (get(SSE_KEY), get("aws_sse_kms_key_id"))
    }

    #[test]
    fn encryption_reaches_the_client() {
        assert_eq!(
            sse_of(Some(S3Encryption::S3)),
            (Some("AES256".into()), None)
        );
        assert_eq!(
            sse_of(Some(S3Encryption::Kms {
                key_id: Some("alias/kafscale".into())
            })),
            (Some("aws:kms".into()), Some("alias/kafscale".into()))
        );
        assert_eq!(
            sse_of(Some(S3Encryption::Kms { key_id: None })),
            (Some("aws:kms".into()), None)
        );
    }

    #[test]
    fn a_ca_bundle_without_certificates_is_refused() {
        let settings = S3Settings {
            ca_pem: Some(b"not a certificate".to_vec()),
            ..S3Settings::default()
        };
        let err = builder("bucket", settings).unwrap_err();
        assert!(err.to_string().contains("s3 CA certificates"), "{err}");
    }
}
