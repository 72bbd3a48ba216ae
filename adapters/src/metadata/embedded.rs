//! Durable single-node metadata store in a redb file, `<dir>/metadata.redb`.
//!
//! Each transaction is one redb write transaction committed with immediate durability
//! (fsync) before it is acknowledged. Per key the file holds the value, create and mod
//! revision and lease; the store revision is persisted next to them, so revisions keep
//! growing across restarts. Leases and watches live in the process: on open, keys that
//! carry a lease are deleted, since their owners did not survive the restart.

use bytes::Bytes;
use kafscale_core::ports::{
    KeyValue, LeaseId, MetadataError, RangeResult, StoreStatus, Txn, TxnOp,
};
use redb::{
    ConcurrencyMode, Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::engine::{Backend, Engine};
use super::state::{self, Applied, KvTable};

/// Key -> encoded [`Entry`].
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// Store-wide counters.
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const REVISION: &str = "revision";
const FORMAT: &str = "format";
const FORMAT_VERSION: i64 = 1;

/// File name inside the store's directory.
pub const METADATA_FILE: &str = "metadata.redb";

/// Bytes before the value: create revision, mod revision, lease id (0 = none), little endian.
const HEADER: usize = 24;

fn encode(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + kv.value.len());
    out.extend_from_slice(&kv.create_revision.to_le_bytes());
    out.extend_from_slice(&kv.mod_revision.to_le_bytes());
    out.extend_from_slice(&kv.lease.map_or(0, |l| l.0).to_le_bytes());
    out.extend_from_slice(&kv.value);
    out
}

fn decode(key: &str, raw: &[u8]) -> Result<KeyValue, MetadataError> {
    let field = |i: usize| -> Option<i64> {
        let bytes = raw.get(i * 8..i * 8 + 8)?;
        Some(i64::from_le_bytes(bytes.try_into().ok()?))
    };
    let (Some(create_revision), Some(mod_revision), Some(lease)) = (field(0), field(1), field(2))
    else {
        return Err(MetadataError::Corrupt {
            key: key.to_owned(),
            message: format!("entry of {} bytes is shorter than its header", raw.len()),
        });
    };
    Ok(KeyValue {
        key: key.to_owned(),
        value: Bytes::copy_from_slice(&raw[HEADER..]),
        create_revision,
        mod_revision,
        lease: (lease != 0).then_some(LeaseId(lease)),
    })
}

/// Maps every redb error into the port's kinds.
fn db_err(err: impl Into<redb::Error>) -> MetadataError {
    match err.into() {
        redb::Error::Io(e) => MetadataError::Unavailable {
            message: format!("metadata file i/o error: {e}"),
        },
        redb::Error::DatabaseAlreadyOpen => MetadataError::Fatal {
            message: "metadata file is already open (is another kafscale process using this \
                      directory?)"
                .to_owned(),
        },
        redb::Error::PreviousIo => MetadataError::Fatal {
            message: "metadata file failed an earlier write; restart to recover".to_owned(),
        },
        redb::Error::ValueTooLarge(size) => MetadataError::InvalidRequest {
            message: format!("metadata value too large: {size} bytes"),
        },
        other => MetadataError::Fatal {
            message: format!("metadata file error: {other}"),
        },
    }
}

/// The KV table inside one redb write transaction.
struct RedbKv<'txn>(redb::Table<'txn, &'static str, &'static [u8]>);

impl KvTable for RedbKv<'_> {
    fn get(&self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        match self.0.get(key).map_err(db_err)? {
            Some(raw) => Ok(Some(decode(key, raw.value())?)),
            None => Ok(None),
        }
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, MetadataError> {
        let mut keys = Vec::new();
        for entry in self.0.range(prefix..).map_err(db_err)? {
            let (key, _) = entry.map_err(db_err)?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            keys.push(key.to_owned());
        }
        Ok(keys)
    }

    fn keys_in_range(&self, start: &str, end: &str) -> Result<Vec<String>, MetadataError> {
        let mut keys = Vec::new();
        if start >= end {
            return Ok(keys);
        }
        for entry in self.0.range(start..end).map_err(db_err)? {
            let (key, _) = entry.map_err(db_err)?;
            keys.push(key.value().to_owned());
        }
        Ok(keys)
    }

    fn insert(&mut self, kv: KeyValue) -> Result<(), MetadataError> {
        self.0
            .insert(kv.key.as_str(), encode(&kv).as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        match self.0.remove(key).map_err(db_err)? {
            Some(raw) => Ok(Some(decode(key, raw.value())?)),
            None => Ok(None),
        }
    }
}

pub(crate) struct RedbBackend {
    db: Database,
    /// The file, for its size in `status`.
    path: PathBuf,
}

impl RedbBackend {
    fn open(path: &Path) -> Result<RedbBackend, MetadataError> {
        let db = Database::builder()
            // Exclusive: a second process (or a second open in this one) fails with
            // DatabaseAlreadyOpen instead of sharing, and corrupting, the file.
            .set_concurrency_mode(ConcurrencyMode::ExclusiveWriter)
            .set_cache_size(64 * 1024 * 1024)
            .create(path)
            .map_err(|e| match db_err(e) {
                MetadataError::Fatal { message } | MetadataError::Unavailable { message } => {
                    MetadataError::Fatal {
                        message: format!("cannot open {}: {message}", path.display()),
                    }
                }
                other => other,
            })?;
        let backend = RedbBackend {
            db,
            path: path.to_owned(),
        };
        backend.recover()?;
        Ok(backend)
    }

    /// Creates the tables on first open, checks the format, and deletes the keys of leases
    /// from before the restart, in one transaction that advances the revision if it deletes.
    fn recover(&self) -> Result<(), MetadataError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let format = meta.get(FORMAT).map_err(db_err)?.map(|v| v.value());
            match format {
                None => {
                    meta.insert(FORMAT, FORMAT_VERSION).map_err(db_err)?;
                }
                Some(FORMAT_VERSION) => {}
                Some(other) => {
                    return Err(MetadataError::Fatal {
                        message: format!(
                            "metadata file has format {other}, this build reads {FORMAT_VERSION}"
                        ),
                    })
                }
            }
        }
        let leased: Vec<String> = {
            let kv = txn.open_table(KV).map_err(db_err)?;
            let mut leased = Vec::new();
            for entry in kv.iter().map_err(db_err)? {
                let (key, raw) = entry.map_err(db_err)?;
                if decode(key.value(), raw.value())?.lease.is_some() {
                    leased.push(key.value().to_owned());
                }
            }
            leased
        };
        if !leased.is_empty() {
            tracing::info!(
                keys = leased.len(),
                "deleting leased metadata keys left by the previous run"
            );
            let ops = leased
                .into_iter()
                .map(|key| TxnOp::Delete { key })
                .collect();
            Self::apply_in(
                &txn,
                &Txn {
                    compares: Vec::new(),
                    ops,
                },
                &HashSet::new(),
            )?;
        }
        txn.commit().map_err(db_err)
    }

    fn apply_in(
        txn: &redb::WriteTransaction,
        request: &Txn,
        live_leases: &HashSet<LeaseId>,
    ) -> Result<Applied, MetadataError> {
        let mut kv = RedbKv(txn.open_table(KV).map_err(db_err)?);
        let mut meta = txn.open_table(META).map_err(db_err)?;
        let revision = meta.get(REVISION).map_err(db_err)?.map_or(0, |v| v.value());
        let applied = state::apply(&mut kv, revision, request, live_leases)?;
        if applied.outcome.revision != revision {
            meta.insert(REVISION, applied.outcome.revision)
                .map_err(db_err)?;
        }
        Ok(applied)
    }
}

impl Backend for RedbBackend {
    const BLOCKING: bool = true;

    fn get(&self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(KV).map_err(db_err)?;
        let raw = table.get(key).map_err(db_err)?;
        raw.map(|raw| decode(key, raw.value())).transpose()
    }

    fn range_from(&self, prefix: &str, start: &str) -> Result<RangeResult, MetadataError> {
        // One read transaction: the revision matches the snapshot of the keys.
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(KV).map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        let revision = meta.get(REVISION).map_err(db_err)?.map_or(0, |v| v.value());
        let mut kvs = Vec::new();
        for entry in table.range(start.max(prefix)..).map_err(db_err)? {
            let (key, raw) = entry.map_err(db_err)?;
            if !key.value().starts_with(prefix) {
                break;
            }
            kvs.push(decode(key.value(), raw.value())?);
        }
        Ok(RangeResult { kvs, revision })
    }

    fn status(&self) -> Result<StoreStatus, MetadataError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(KV).map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        let revision = meta.get(REVISION).map_err(db_err)?.map_or(0, |v| v.value());
        let keys = table.len().map_err(db_err)?;
        let mut live = 0u64;
        for entry in table.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            live += (key.value().len() + value.value().len()) as u64;
        }
        let file = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        Ok(StoreStatus {
            db_size_bytes: file,
            db_in_use_bytes: live,
            keys,
            revision,
            alarms: Vec::new(),
        })
    }

    fn commit(
        &self,
        request: &Txn,
        live_leases: &HashSet<LeaseId>,
    ) -> Result<Applied, MetadataError> {
        let mut txn = self.db.begin_write().map_err(db_err)?;
        txn.set_durability(Durability::Immediate).map_err(db_err)?;
        // An error drops `txn`, which aborts it: nothing of a failed request is applied.
        let applied = Self::apply_in(&txn, request, live_leases)?;
        if applied.changes.is_empty() {
            txn.abort().map_err(db_err)?;
        } else {
            txn.commit().map_err(db_err)?;
        }
        Ok(applied)
    }
}

/// [`MetadataStore`] persisted in `<dir>/metadata.redb`, for single-node mode.
#[derive(Debug, Clone)]
pub struct EmbeddedMetadataStore {
    engine: Arc<Engine<RedbBackend>>,
    path: PathBuf,
}

impl EmbeddedMetadataStore {
    /// Opens (creating if needed) the store in `dir`. Blocks on file I/O; meant for start-up.
    /// Fails if another process, or another store in this process, has it open.
    pub fn open(dir: impl AsRef<Path>) -> Result<EmbeddedMetadataStore, MetadataError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| MetadataError::Fatal {
            message: format!("cannot create metadata directory {}: {e}", dir.display()),
        })?;
        let path = dir.join(METADATA_FILE);
        let backend = RedbBackend::open(&path)?;
        Ok(EmbeddedMetadataStore {
            engine: Engine::new(backend),
            path,
        })
    }

    /// The redb file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbBackend").finish_non_exhaustive()
    }
}

super::engine::forward_to_engine!(EmbeddedMetadataStore);
