//! Metadata store on etcd v3 (`etcd://host:port[,host:port...]`).
//!
//! The port was shaped after etcd's API, so the mapping is direct: range by prefix, one
//! transaction primitive (compares, then puts and deletes), leases, and watches. "Absent" in
//! a compare is etcd's version 0. etcd limits a transaction to 128 operations per branch
//! and a request to 1.5 MiB by default; callers split their commits (core does).

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare as EtcdCompare, CompareOp, DeleteOptions, EventType, GetOptions, PutOptions,
    Txn as EtcdTxn, TxnOp as EtcdTxnOp, WatchOptions,
};
use futures::StreamExt;
use kafscale_core::ports::{
    Compare, KeyValue, LeaseId, MetadataError, MetadataStore, RangeResult, Txn, TxnOp, TxnOutcome,
    WatchEvent, WatchEventKind, WatchStream,
};
use std::time::Duration;

#[derive(Clone)]
pub struct EtcdMetadataStore {
    client: Client,
    endpoints: Vec<String>,
}

impl std::fmt::Debug for EtcdMetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdMetadataStore")
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

/// The one mapping from etcd errors into the port's kinds.
fn map_error(op: &str, e: etcd_client::Error) -> MetadataError {
    use etcd_client::Error as E;
    let message = format!("etcd {op}: {e}");
    match &e {
        E::GRpcStatus(status) => match status.code() as i32 {
            grpc::INVALID_ARGUMENT | grpc::FAILED_PRECONDITION
                if status.message().contains("too many operations")
                    || status.message().contains("request is too large") =>
            {
                MetadataError::InvalidRequest { message }
            }
            grpc::NOT_FOUND if status.message().contains("lease not found") => {
                MetadataError::LeaseNotFound(LeaseId(0))
            }
            grpc::UNAUTHENTICATED | grpc::PERMISSION_DENIED => MetadataError::Fatal { message },
            _ => MetadataError::Unavailable { message },
        },
        E::LeaseKeepAliveError(m) if m.contains("lease not found") => {
            MetadataError::LeaseNotFound(LeaseId(0))
        }
        E::InvalidArgs(_) | E::InvalidUri(_) | E::Utf8Error(_) => MetadataError::Fatal { message },
        _ => MetadataError::Unavailable { message },
    }
}

/// gRPC status codes (as numbered by the gRPC spec), without depending on tonic directly.
mod grpc {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const NOT_FOUND: i32 = 5;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const UNAUTHENTICATED: i32 = 16;
}

fn to_kv(kv: &etcd_client::KeyValue) -> Result<KeyValue, MetadataError> {
    let key = std::str::from_utf8(kv.key())
        .map_err(|e| MetadataError::Corrupt {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            message: e.to_string(),
        })?
        .to_owned();
    Ok(KeyValue {
        key,
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        lease: (kv.lease() != 0).then_some(LeaseId(kv.lease())),
    })
}

impl EtcdMetadataStore {
    /// Connects to the endpoints (`host:port`, comma-separated in the URL) and checks that
    /// etcd answers, so a wrong address fails at start-up.
    pub async fn connect(endpoints: Vec<String>) -> Result<EtcdMetadataStore, MetadataError> {
        if endpoints.is_empty() {
            return Err(MetadataError::Fatal {
                message: "etcd url names no endpoint: expected etcd://host:port[,host:port]".into(),
            });
        }
        let urls: Vec<String> = endpoints
            .iter()
            .map(|e| {
                if e.contains("://") {
                    e.clone()
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(10));
        let client = Client::connect(&urls, Some(options))
            .await
            .map_err(|e| map_error("connect", e))?;
        let store = EtcdMetadataStore { client, endpoints };
        store
            .client
            .clone()
            .status()
            .await
            .map_err(|e| map_error("status", e))?;
        Ok(store)
    }
}

#[async_trait]
impl MetadataStore for EtcdMetadataStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        let resp = self
            .client
            .clone()
            .get(key, None)
            .await
            .map_err(|e| map_error("get", e))?;
        resp.kvs().first().map(to_kv).transpose()
    }

    async fn range(&self, prefix: &str) -> Result<RangeResult, MetadataError> {
        let resp = self
            .client
            .clone()
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| map_error("range", e))?;
        let kvs = resp
            .kvs()
            .iter()
            .map(to_kv)
            .collect::<Result<Vec<_>, _>>()?;
        let revision = resp.header().map_or(0, |h| h.revision());
        Ok(RangeResult { kvs, revision })
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, MetadataError> {
        let compares: Vec<EtcdCompare> = txn
            .compares
            .into_iter()
            .map(|c| match c {
                Compare::Value { key, value: None } => {
                    EtcdCompare::version(key, CompareOp::Equal, 0)
                }
                Compare::Value {
                    key,
                    value: Some(v),
                } => EtcdCompare::value(key, CompareOp::Equal, v.to_vec()),
                Compare::ModRevision { key, revision } => {
                    EtcdCompare::mod_revision(key, CompareOp::Equal, revision)
                }
            })
            .collect();
        let ops: Vec<EtcdTxnOp> = txn
            .ops
            .into_iter()
            .map(|op| match op {
                TxnOp::Put { key, value, lease } => EtcdTxnOp::put(
                    key,
                    value.to_vec(),
                    lease.map(|l| PutOptions::new().with_lease(l.0)),
                ),
                TxnOp::Delete { key } => EtcdTxnOp::delete(key, None),
                TxnOp::DeletePrefix { prefix } => {
                    EtcdTxnOp::delete(prefix, Some(DeleteOptions::new().with_prefix()))
                }
            })
            .collect();
        let resp = self
            .client
            .clone()
            .txn(EtcdTxn::new().when(compares).and_then(ops))
            .await
            .map_err(|e| map_error("txn", e))?;
        Ok(TxnOutcome {
            succeeded: resp.succeeded(),
            revision: resp.header().map_or(0, |h| h.revision()),
        })
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetadataError> {
        let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let resp = self
            .client
            .clone()
            .lease_grant(secs, None)
            .await
            .map_err(|e| map_error("lease grant", e))?;
        Ok(LeaseId(resp.id()))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), MetadataError> {
        let (mut keeper, mut stream) = self
            .client
            .clone()
            .lease_keep_alive(lease.0)
            .await
            .map_err(|e| map_error("keep alive", e))?;
        keeper
            .keep_alive()
            .await
            .map_err(|e| map_error("keep alive", e))?;
        match stream
            .message()
            .await
            .map_err(|e| map_error("keep alive", e))?
        {
            Some(resp) if resp.ttl() > 0 => Ok(()),
            _ => Err(MetadataError::LeaseNotFound(lease)),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetadataError> {
        match self.client.clone().lease_revoke(lease.0).await {
            Ok(_) => Ok(()),
            Err(e) => match map_error("lease revoke", e) {
                MetadataError::LeaseNotFound(_) => Err(MetadataError::LeaseNotFound(lease)),
                other => Err(other),
            },
        }
    }

    async fn watch(&self, prefix: &str) -> Result<WatchStream, MetadataError> {
        let mut stream = self
            .client
            .clone()
            .watch(prefix, Some(WatchOptions::new().with_prefix()))
            .await
            .map_err(|e| map_error("watch", e))?;
        // Wait for etcd to confirm the watch, so every later change is delivered.
        match stream.message().await.map_err(|e| map_error("watch", e))? {
            Some(resp) if resp.created() => {}
            _ => {
                return Err(MetadataError::Unavailable {
                    message: "etcd watch was not created".into(),
                })
            }
        }
        let events = stream.flat_map(|resp| {
            let items: Vec<Result<WatchEvent, MetadataError>> = match resp {
                Err(e) => vec![Err(map_error("watch", e))],
                Ok(r) if r.canceled() => vec![Err(MetadataError::Unavailable {
                    message: "etcd cancelled the watch (compacted?); range and watch again".into(),
                })],
                Ok(r) => r
                    .events()
                    .iter()
                    .filter_map(|ev| {
                        let kv = ev.kv()?;
                        let kind = match ev.event_type() {
                            EventType::Put => WatchEventKind::Put,
                            EventType::Delete => WatchEventKind::Delete,
                        };
                        Some(to_kv(kv).map(|kv| WatchEvent { kind, kv }))
                    })
                    .collect(),
            };
            futures::stream::iter(items)
        });
        Ok(Box::pin(events))
    }
}
