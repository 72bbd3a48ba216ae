//! Metadata backups: every key of the cluster at one revision, in a self-checking file, and
//! its restore into an empty metadata store.
//!
//! The records themselves live in object storage; what a backup holds is what makes them a
//! cluster: topics, leader records, checkpoints, flush and segment records, fences, consumer
//! groups and committed offsets. A restore brings those back as they were at the snapshot's
//! revision; brokers then start on the restored store and the bucket, as after a full
//! restart. Keys held under a lease (broker registrations, the controller's key) are left
//! out when the backup is taken: they belong to processes that will not exist after a
//! restore, and a restored controller key would name a controller nobody can replace.
//!
//! File format (version 1), all integers big-endian:
//!
//! ```text
//! "KAFSCALE-METADATA-BACKUP\n"
//! u32 header length, header (JSON: format_version, revision, created_ms, keys, leased_left_out)
//! keys times: u32 key length, key (UTF-8), u32 value length, value
//! u32 CRC-32C of everything before it
//! ```
//!
//! ```
//! use bytes::Bytes;
//! use kafscale_core::backup::Backup;
//!
//! let backup = Backup {
//!     revision: 7,
//!     created_ms: 1_700_000_000_000,
//!     leased_left_out: 2,
//!     entries: vec![("kafscale/topics/orders".into(), Bytes::from_static(b"{}"))],
//! };
//! let file = backup.encode();
//! assert_eq!(Backup::decode(&file).unwrap(), backup);
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use std::collections::HashSet;

pub mod reattach;
mod recover;

pub use recover::{NotReattached, Reattached, Recovery, Unreadable};

use crate::ports::{Compare, MetadataError, MetadataStore, ObjectStore, StoreError, Txn, TxnOp};
use crate::schema::keys;
use crate::types::Millis;

const MAGIC: &[u8] = b"KAFSCALE-METADATA-BACKUP\n";
const FORMAT_VERSION: u32 = 1;
/// Keys written per restore transaction: each put comes with a check that its key is
/// absent, and etcd allows 128 operations per transaction by default.
const RESTORE_BATCH: usize = 64;

/// Every key of a cluster at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// The metadata store's revision the keys were read at.
    pub revision: i64,
    pub created_ms: Millis,
    /// Keys under a lease the snapshot had and left out.
    pub leased_left_out: u64,
    /// Keys and values, in key order.
    pub entries: Vec<(String, Bytes)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format_version: u32,
    revision: i64,
    created_ms: Millis,
    keys: u64,
    leased_left_out: u64,
}

/// What the bucket holds against a backup's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BucketCheck {
    /// Objects the metadata references.
    pub referenced: usize,
    /// Referenced objects the bucket does not have (deleted after the backup was taken, for
    /// example merged into a segment and collected): their records cannot be read.
    pub missing: Vec<String>,
    /// Data objects written after the backup that it does not reference: records
    /// acknowledged after the backup are in them, and are not restored.
    pub newer_unreferenced: Vec<String>,
    pub newer_unreferenced_bytes: u64,
}

/// What a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    /// The backup's revision.
    pub revision: i64,
    pub restored: usize,
    /// Keys under a lease that the backup left out.
    pub leased_left_out: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("not a valid metadata backup: {0}")]
    Corrupt(String),
    #[error(
        "the metadata store already holds {0} keys of a cluster; a restore needs an empty one"
    )]
    NotEmpty(usize),
    #[error("keys appeared in the metadata store during the restore (is a broker running on it?)")]
    Raced,
    #[error("metadata store: {0}")]
    Metadata(#[from] MetadataError),
    #[error("object store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot read the restored metadata's references: {0}")]
    References(String),
}

type Result<T> = std::result::Result<T, BackupError>;

fn corrupt(what: impl Into<String>) -> BackupError {
    BackupError::Corrupt(what.into())
}

/// Reads the next length-prefixed field.
fn take<'a>(buf: &mut &'a [u8], what: &str) -> Result<&'a [u8]> {
    let (len, rest) = buf
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt(format!("truncated before the length of {what}")))?;
    let len = u32::from_be_bytes(*len) as usize;
    if len > rest.len() {
        return Err(corrupt(format!(
            "{what} of {len} bytes runs past the end ({} left)",
            rest.len()
        )));
    }
    let (field, rest) = rest.split_at(len);
    *buf = rest;
    Ok(field)
}

fn put_field(out: &mut BytesMut, field: &[u8]) {
    // Keys and values are bounded far below 4 GiB by the metadata store itself.
    out.put_u32(field.len() as u32);
    out.put_slice(field);
}

impl Backup {
    /// Compares the bucket with what `meta` (this backup, restored) references.
    pub async fn check_bucket(
        &self,
        meta: &dyn MetadataStore,
        store: &dyn ObjectStore,
    ) -> Result<BucketCheck> {
        let objects = store.list(keys::DATA_PREFIX).await?;
        let referenced = crate::log::gc::referenced_objects(meta, store)
            .await
            .map_err(|e| BackupError::References(e.to_string()))?;
        let present: HashSet<&str> = objects.iter().map(|o| o.key.as_str()).collect();
        let mut missing: Vec<String> = referenced
            .iter()
            .filter(|k| !present.contains(k.as_str()))
            .cloned()
            .collect();
        missing.sort();
        let newer: Vec<_> = objects
            .iter()
            .filter(|o| !referenced.contains(&o.key))
            .filter(|o| crate::log::gc::created_ms(&o.key).is_some_and(|t| t >= self.created_ms))
            .collect();
        Ok(BucketCheck {
            referenced: referenced.len(),
            missing,
            newer_unreferenced_bytes: newer.iter().map(|o| o.size).sum(),
            newer_unreferenced: newer.into_iter().map(|o| o.key.clone()).collect(),
        })
    }

    /// Reads every key of the cluster in one range, so that all are of one revision.
    pub async fn take(meta: &dyn MetadataStore, created_ms: Millis) -> Result<Backup> {
        let range = meta.range(keys::ROOT).await?;
        let (leased, kept): (Vec<_>, Vec<_>) =
            range.kvs.into_iter().partition(|kv| kv.lease.is_some());
        Ok(Backup {
            revision: range.revision,
            created_ms,
            leased_left_out: leased.len() as u64,
            entries: kept.into_iter().map(|kv| (kv.key, kv.value)).collect(),
        })
    }

    pub fn encode(&self) -> Bytes {
        let size: usize = self
            .entries
            .iter()
            .map(|(k, v)| 8 + k.len() + v.len())
            .sum();
        let mut out = BytesMut::with_capacity(MAGIC.len() + 128 + size + 4);
        out.put_slice(MAGIC);
        let header = Header {
            format_version: FORMAT_VERSION,
            revision: self.revision,
            created_ms: self.created_ms,
            keys: self.entries.len() as u64,
            leased_left_out: self.leased_left_out,
        };
        // A struct of numbers always serialises.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        put_field(&mut out, &header);
        for (key, value) in &self.entries {
            put_field(&mut out, key.as_bytes());
            put_field(&mut out, value);
        }
        let crc = crc32c::crc32c(&out);
        out.put_u32(crc);
        out.freeze()
    }

    /// Checks the magic, the checksum and every length before it trusts anything.
    pub fn decode(file: &[u8]) -> Result<Backup> {
        let body = file
            .strip_prefix(MAGIC)
            .ok_or_else(|| corrupt("not a KafScale metadata backup (bad magic)"))?;
        let (body, crc) = body
            .split_last_chunk::<4>()
            .ok_or_else(|| corrupt("truncated before the checksum"))?;
        let want = u32::from_be_bytes(*crc);
        let got = crc32c::crc32c(&file[..file.len() - 4]);
        if want != got {
            return Err(corrupt(format!(
                "checksum mismatch (stored {want:08x}, computed {got:08x})"
            )));
        }
        let mut buf = body;
        let header: Header = serde_json::from_slice(take(&mut buf, "the header")?)
            .map_err(|e| corrupt(format!("bad header: {e}")))?;
        if header.format_version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                header.format_version
            )));
        }
        let mut entries = Vec::new();
        while !buf.is_empty() {
            let key = std::str::from_utf8(take(&mut buf, "a key")?)
                .map_err(|_| corrupt("a key is not UTF-8"))?
                .to_owned();
            let value = Bytes::copy_from_slice(take(&mut buf, "a value")?);
            entries.push((key, value));
        }
        if entries.len() as u64 != header.keys {
            return Err(corrupt(format!(
                "{} keys where the header says {}",
                entries.len(),
                header.keys
            )));
        }
        Ok(Backup {
            revision: header.revision,
            created_ms: header.created_ms,
            leased_left_out: header.leased_left_out,
            entries,
        })
    }

    /// Writes the keys into a store that holds none of the cluster's: refused otherwise,
    /// and each batch is written only if none of its keys exists (a broker started on the
    /// store too early cannot be overwritten).
    pub async fn restore(&self, meta: &dyn MetadataStore) -> Result<RestoreReport> {
        let existing = meta.range(keys::ROOT).await?;
        if !existing.kvs.is_empty() {
            return Err(BackupError::NotEmpty(existing.kvs.len()));
        }
        for batch in self.entries.chunks(RESTORE_BATCH) {
            let mut txn = Txn::new();
            for (key, value) in batch {
                txn = txn
                    .when(Compare::ModRevision {
                        key: key.clone(),
                        revision: 0,
                    })
                    .then(TxnOp::Put {
                        key: key.clone(),
                        value: value.clone(),
                        lease: None,
                    });
            }
            if !meta.txn(txn).await?.succeeded {
                return Err(BackupError::Raced);
            }
        }
        Ok(RestoreReport {
            revision: self.revision,
            restored: self.entries.len(),
            leased_left_out: self.leased_left_out,
        })
    }
}
