//! Metadata store on etcd v3 (`etcd://host:port[,host:port...]`).
//!
//! The port was shaped after etcd's API, so the mapping is direct: range by prefix, one
//! transaction primitive (compares, then puts and deletes), leases, and watches. "Absent" in
//! a compare is etcd's version 0. etcd limits a transaction to 128 operations per branch
//! and a request to 1.5 MiB by default; callers split their commits (core does).

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    AlarmAction, AlarmType, Client, Compare as EtcdCompare, CompareOp, DeleteOptions, EventType,
    GetOptions, GetResponse, PutOptions, Txn as EtcdTxn, TxnOp as EtcdTxnOp, WatchOptions,
};
use futures::StreamExt;
use kafscale_core::ports::{
    Compare, KeyValue, LeaseId, MetadataError, MetadataStore, RangeResult, StoreStatus, Txn, TxnOp,
    TxnOutcome, WatchEvent, WatchEventKind, WatchStream,
};
use std::time::Duration;

mod settings;
use settings::tls_options;
pub use settings::{EtcdOptions, EtcdSettings, EtcdTls};

#[derive(Clone)]
pub struct EtcdMetadataStore {
    client: Client,
    endpoints: Vec<String>,
    /// Prepended to every key (a namespace shared etcd clusters can tell apart); empty or
    /// ending in `/`.
    prefix: String,
}

impl std::fmt::Debug for EtcdMetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdMetadataStore")
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

/// The one mapping from etcd errors into the port's kinds.
/// The first key after every key starting with `prefix` (etcd's range end of a prefix).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff (or the prefix was empty): to the end of the keyspace.
    vec![0]
}

/// An error and its causes, `: `-separated (a refused certificate shows only in the causes
/// of tonic's "transport error"); of a gRPC status, its message rather than its debug form.
fn describe(e: &etcd_client::Error) -> String {
    let (text, cause) = match e {
        etcd_client::Error::GRpcStatus(status) => (
            status.message().to_owned(),
            std::error::Error::source(status),
        ),
        other => (other.to_string(), std::error::Error::source(other)),
    };
    crate::error_chain::with_causes(text, cause)
}

/// Answers of etcd's authentication that no retry changes: a wrong password or unknown
/// user, no user while authentication is on, a user while it is off.
fn auth_refused(message: &str) -> bool {
    [
        "authentication failed",
        "user name is empty",
        "user name not found",
        "authentication is not enabled",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// A TLS handshake refused over certificates (not the network), by either side, or without
/// HTTP/2 (a plaintext or non-gRPC endpoint behind TLS).
fn tls_refused(message: &str) -> bool {
    crate::error_chain::tls_refused(message)
        || message
            .to_ascii_lowercase()
            .contains("http/2 was not negotiated")
}

/// Whether an error says the other side closed the connection.
fn closed_by_peer(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "broken pipe",
        "connection closed",
        "connection reset",
        "stream closed",
    ]
    .iter()
    .any(|m| message.contains(m))
}

fn map_error(op: &str, e: etcd_client::Error) -> MetadataError {
    use etcd_client::Error as E;
    let message = format!("etcd {op}: {}", describe(&e));
    match &e {
        E::GRpcStatus(status) if auth_refused(status.message()) => MetadataError::Fatal {
            message: format!("{message} (check etcd.username and etcd.password)"),
        },
        _ if tls_refused(&message) => MetadataError::Fatal {
            message: format!(
                "{message}: TLS refused (check etcd.tls.ca.file, etcd.tls.cert.file and etcd.tls.key.file)"
            ),
        },
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
            // "mvcc: database space exceeded": the NOSPACE alarm refuses every write until
            // an operator compacts, defragments and disarms it.
            grpc::RESOURCE_EXHAUSTED if status.message().contains("space exceeded") => {
                MetadataError::NoSpace { message }
            }
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
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const UNAUTHENTICATED: i32 = 16;
}

fn to_kv(prefix: &str, kv: &etcd_client::KeyValue) -> Result<KeyValue, MetadataError> {
    let full = std::str::from_utf8(kv.key()).map_err(|e| MetadataError::Corrupt {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        message: e.to_string(),
    })?;
    let key = full.strip_prefix(prefix).unwrap_or(full).to_owned();
    Ok(KeyValue {
        key,
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        lease: (kv.lease() != 0).then_some(LeaseId(kv.lease())),
    })
}

impl EtcdMetadataStore {
    /// Connects to the endpoints and checks that etcd answers, so a wrong address, a
    /// refused certificate or a wrong password fails at start-up.
    pub async fn connect(
        settings: EtcdSettings,
        options: EtcdOptions,
    ) -> Result<EtcdMetadataStore, MetadataError> {
        let fatal = |message: &str| MetadataError::Fatal {
            message: message.to_owned(),
        };
        let EtcdSettings {
            endpoints,
            https,
            user,
            prefix,
        } = settings;
        if endpoints.is_empty() {
            return Err(fatal(
                "etcd url names no endpoint: expected etcd://host:port[,host:port]",
            ));
        }
        let user = match (user, options.user) {
            (Some(_), Some(_)) => {
                return Err(fatal(
                    "etcd credentials given twice: in the metadata url and in etcd.username",
                ))
            }
            (url, given) => url.or(given),
        };
        let tls = match (https, options.tls) {
            (Some(false), Some(_)) => {
                return Err(fatal(
                    "etcd TLS settings are given but the metadata url says http://",
                ))
            }
            (Some(true), tls) => Some(tls.unwrap_or_default()),
            (_, tls) => tls,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        // etcd with --client-cert-auth refuses a client without a certificate; under TLS 1.3
        // the client may see only the connection closing, not the alert.
        let without_certificate = tls.as_ref().is_some_and(|t| t.identity.is_none());
        let urls: Vec<String> = endpoints
            .iter()
            .map(|e| format!("{scheme}://{e}"))
            .collect();
        let mut connect_options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(10));
        if let Some(tls) = tls {
            connect_options = connect_options.with_tls(tls_options(tls));
        }
        if let Some((name, password)) = user {
            // etcd's tokens expire (JWT ones whether used or not): log in again then.
            connect_options = connect_options
                .with_user(name, password)
                .with_auto_token_refresh(true);
        }
        let client = Client::connect(&urls, Some(connect_options))
            .await
            .map_err(|e| map_error("connect", e))?;
        let store = EtcdMetadataStore {
            client,
            endpoints,
            prefix,
        };
        store
            .client
            .clone()
            .status()
            .await
            .map_err(|e| match map_error("status", e) {
                MetadataError::Unavailable { message }
                    if without_certificate && closed_by_peer(&message) =>
                {
                    MetadataError::Fatal {
                        message: format!(
                            "{message} (etcd closed the TLS connection: if it requires client \
                             certificates, set etcd.tls.cert.file and etcd.tls.key.file)"
                        ),
                    }
                }
                other => other,
            })?;
        Ok(store)
    }
}

impl EtcdMetadataStore {
    /// The keys and revision of a range answer, without this store's prefix.
    fn range_result(&self, resp: &GetResponse) -> Result<RangeResult, MetadataError> {
        let kvs = resp
            .kvs()
            .iter()
            .map(|kv| to_kv(&self.prefix, kv))
            .collect::<Result<Vec<_>, _>>()?;
        let revision = resp.header().map_or(0, |h| h.revision());
        Ok(RangeResult { kvs, revision })
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait]
impl MetadataStore for EtcdMetadataStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        let resp = self
            .client
            .clone()
            .get(self.full(key), None)
            .await
            .map_err(|e| map_error("get", e))?;
        resp.kvs()
            .first()
            .map(|kv| to_kv(&self.prefix, kv))
            .transpose()
    }

    async fn range(&self, prefix: &str) -> Result<RangeResult, MetadataError> {
        let resp = self
            .client
            .clone()
            .get(self.full(prefix), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| map_error("range", e))?;
        self.range_result(&resp)
    }

    async fn range_from(&self, prefix: &str, start: &str) -> Result<RangeResult, MetadataError> {
        let from = self.full(start.max(prefix));
        let resp = self
            .client
            .clone()
            .get(
                from,
                Some(GetOptions::new().with_range(prefix_end(&self.full(prefix)))),
            )
            .await
            .map_err(|e| map_error("range", e))?;
        self.range_result(&resp)
    }

    async fn compact(&self, revision: i64) -> Result<(), MetadataError> {
        match self.client.clone().compact(revision, None).await {
            Ok(_) => Ok(()),
            // Another broker (or an operator) compacted at or past it already.
            Err(e)
                if e.to_string()
                    .contains("required revision has been compacted") =>
            {
                Ok(())
            }
            Err(e) => Err(map_error("compact", e)),
        }
    }

    async fn status(&self) -> Result<StoreStatus, MetadataError> {
        let mut client = self.client.clone();
        let status = client.status().await.map_err(|e| map_error("status", e))?;
        let alarms = client
            .alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .map_err(|e| map_error("alarm", e))?;
        let keys = client
            .get(
                self.full(""),
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .map_err(|e| map_error("count", e))?;
        Ok(StoreStatus {
            db_size_bytes: status.db_size().max(0) as u64,
            db_in_use_bytes: status.raft_used_db_size().max(0) as u64,
            keys: keys.count().max(0) as u64,
            revision: status.header().map_or(0, |h| h.revision()),
            alarms: alarms
                .alarms()
                .iter()
                .map(|a| match a.alarm() {
                    AlarmType::Nospace => "NOSPACE".to_owned(),
                    AlarmType::Corrupt => "CORRUPT".to_owned(),
                    AlarmType::None => "NONE".to_owned(),
                })
                .filter(|a| a != "NONE")
                .collect(),
        })
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, MetadataError> {
        let compares: Vec<EtcdCompare> = txn
            .compares
            .into_iter()
            .map(|c| match c {
                Compare::Value { key, value: None } => {
                    EtcdCompare::version(self.full(&key), CompareOp::Equal, 0)
                }
                Compare::Value {
                    key,
                    value: Some(v),
                } => EtcdCompare::value(self.full(&key), CompareOp::Equal, v.to_vec()),
                Compare::ModRevision { key, revision } => {
                    EtcdCompare::mod_revision(self.full(&key), CompareOp::Equal, revision)
                }
            })
            .collect();
        let ops: Vec<EtcdTxnOp> = txn
            .ops
            .into_iter()
            .map(|op| match op {
                TxnOp::Put { key, value, lease } => EtcdTxnOp::put(
                    self.full(&key),
                    value.to_vec(),
                    lease.map(|l| PutOptions::new().with_lease(l.0)),
                ),
                TxnOp::Delete { key } => EtcdTxnOp::delete(self.full(&key), None),
                TxnOp::DeletePrefix { prefix } => {
                    EtcdTxnOp::delete(self.full(&prefix), Some(DeleteOptions::new().with_prefix()))
                }
                TxnOp::DeleteRange { start, end } => EtcdTxnOp::delete(
                    self.full(&start),
                    Some(DeleteOptions::new().with_range(self.full(&end))),
                ),
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
            .watch(self.full(prefix), Some(WatchOptions::new().with_prefix()))
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
        let namespace = self.prefix.clone();
        let events = stream.flat_map(move |resp| {
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
                        Some(to_kv(&namespace, kv).map(|kv| WatchEvent { kind, kv }))
                    })
                    .collect(),
            };
            futures::stream::iter(items)
        });
        Ok(Box::pin(events))
    }
}
