//! `kafscale metadata backup|restore`: a snapshot of the cluster's metadata (one revision)
//! to a file or object storage, and its restore into an empty metadata store. These talk to
//! the metadata store directly, not to brokers (see `kafscale_core::backup`).
//!
//! ```text
//! kafscale metadata backup --metadata etcd://10.0.0.5:2379/prod --to s3://backups/kafscale/2026-12-07.kmb
//! kafscale metadata restore --metadata etcd://10.0.0.9:2379/prod --from s3://backups/kafscale/2026-12-07.kmb
//! ```
//!
//! TLS and credentials of etcd and S3 (`etcd.*`, `s3.*`) and the keys of encryption at rest
//! (`encryption.keys`: backups written to an object store are sealed) come from `--config`
//! (a broker's TOML file) and the `KAFSCALE_*` environment, as for `kafscale serve`; S3's
//! endpoint and keys from the `AWS_*` environment.

use bytes::Bytes;
use clap::Subcommand;
use std::path::{Path, PathBuf};

use super::client::CliError;
use super::Output;
use kafscale_adapters::SystemClock;
use kafscale_core::backup::{Backup, BucketCheck, Recovery};
use kafscale_core::ports::{Clock, ObjectStore, PutMode};

#[derive(Subcommand, Debug)]
pub enum MetadataCommand {
    /// Write every key of the cluster, read at one revision, to a file or object storage
    Backup {
        /// Metadata store URL (etcd://HOST:PORT/NAMESPACE, embedded:///path)
        #[arg(long)]
        metadata: String,
        /// Where to write: a file path, or an object store URL ending in the backup's name
        /// (s3://BUCKET/PREFIX/NAME, file:///DIR/NAME); an existing backup is never replaced
        #[arg(long)]
        to: String,
        /// Broker configuration (TOML) whose etcd.*, s3.* and encryption.keys settings say how
        /// to reach and read the stores (TLS, credentials, encryption)
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Restore a backup into an empty metadata store (start the brokers afterwards)
    Restore {
        /// Metadata store URL (etcd://HOST:PORT/NAMESPACE, embedded:///path)
        #[arg(long)]
        metadata: String,
        /// The backup: a file path or an object store URL, as given to `backup --to`
        #[arg(long)]
        from: String,
        /// The cluster's object store: the restore then re-attaches the records written after
        /// the backup that its flush objects hold, and reports what it cannot re-attach and
        /// why, and referenced objects the bucket lacks
        #[arg(long)]
        object_store: Option<String>,
        /// Broker configuration (TOML) whose etcd.*, s3.* and encryption.keys settings say how
        /// to reach and read the stores (TLS, credentials, encryption)
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

pub async fn run(cmd: MetadataCommand) -> Result<Output, CliError> {
    match cmd {
        MetadataCommand::Backup {
            metadata,
            to,
            config,
        } => {
            let stores = Stores::load(config.as_deref())?;
            let meta = stores.connect(&metadata).await?;
            let backup = Backup::take(meta.as_ref(), SystemClock::new().now_ms())
                .await
                .map_err(|e| CliError::Invalid(format!("cannot read {metadata}: {e}")))?;
            let file = backup.encode();
            stores.write(&to, file.clone()).await?;
            Ok(Output {
                text: format!(
                    "backed up {} keys at revision {} to {to} ({} bytes)\n",
                    backup.entries.len(),
                    backup.revision,
                    file.len()
                ),
                json: serde_json::json!({
                    "keys": backup.entries.len(),
                    "revision": backup.revision,
                    "bytes": file.len(),
                    "to": to,
                }),
            })
        }
        MetadataCommand::Restore {
            metadata,
            from,
            object_store,
            config,
        } => {
            let stores = Stores::load(config.as_deref())?;
            let file = stores.read(&from).await?;
            let backup =
                Backup::decode(&file).map_err(|e| CliError::Invalid(format!("{from}: {e}")))?;
            let meta = stores.connect(&metadata).await?;
            let report = backup
                .restore(meta.as_ref())
                .await
                .map_err(|e| CliError::Invalid(format!("cannot restore into {metadata}: {e}")))?;
            let mut text = format!(
                "restored {} keys of revision {} into {metadata} ({} keys under leases of the old processes left out)\n",
                report.restored, report.revision, report.leased_left_out
            );
            let mut json = serde_json::json!({ "restore": report });
            if let Some(url) = object_store {
                let store = stores.store(&url)?;
                let recovery = backup
                    .reattach(meta.as_ref(), store.as_ref())
                    .await
                    .map_err(|e| CliError::Invalid(format!("cannot re-attach from {url}: {e}")))?;
                text.push_str(&recovery_report(&recovery));
                json["recovery"] = serde_json::to_value(&recovery).unwrap_or_default();
                let check = backup
                    .check_bucket(meta.as_ref(), store.as_ref())
                    .await
                    .map_err(|e| CliError::Invalid(format!("cannot check {url}: {e}")))?;
                text.push_str(&bucket_report(&check));
                json["bucket"] = serde_json::to_value(&check).unwrap_or_default();
            }
            text.push_str(LOST_OFFSETS);
            json["lost"] = serde_json::json!(LOST_OFFSETS.trim());
            Ok(Output { text, json })
        }
    }
}

/// What no object can bring back.
const LOST_OFFSETS: &str = "lost: consumer group offsets and group state committed after the backup, and topics, configs, ACLs and users changed after it (groups resume from the offsets in the backup)\n";

fn recovery_report(r: &Recovery) -> String {
    let mut text = format!(
        "re-attached after the backup: {} partitions ({} objects read, {} chunks already in the backup)\n",
        r.reattached.len(),
        r.objects_read,
        r.already_restored
    );
    for p in &r.reattached {
        text.push_str(&format!(
            "  {}-{}: offsets {}..{} ({} chunks)",
            p.topic, p.partition, p.from, p.to, p.chunks
        ));
        if p.confirmed_to < p.to {
            text.push_str(&format!(
                "; {}..{} as found: no later leader confirms their commit, their producer may have been told they failed",
                p.confirmed_to.max(p.from),
                p.to
            ));
        }
        text.push('\n');
    }
    for (title, list) in [
        ("not re-attached", &r.not_reattached),
        ("not re-attached, unknown topic or partition", &r.unknown),
    ] {
        if !list.is_empty() {
            text.push_str(&format!("{title}: {} chunks\n", list.len()));
        }
        for c in list {
            text.push_str(&format!(
                "  {}-{} offsets {}..={} in {}: {}\n",
                c.topic, c.partition, c.first_offset, c.last_offset, c.object, c.reason
            ));
        }
    }
    for u in &r.unreadable {
        text.push_str(&format!("  not read: {}: {}\n", u.object, u.reason));
    }
    text
}

fn bucket_report(check: &BucketCheck) -> String {
    let mut text = format!(
        "bucket: {} objects referenced, {} of them missing\n",
        check.referenced,
        check.missing.len()
    );
    for key in &check.missing {
        text.push_str(&format!("  missing (its records cannot be read): {key}\n"));
    }
    if !check.newer_unreferenced.is_empty() {
        text.push_str(&format!(
            "left unreferenced: {} objects ({} bytes) written after the backup (see above why their chunks were not re-attached); garbage collection deletes them gc.grace.ms after the brokers start: copy them elsewhere first to keep them\n",
            check.newer_unreferenced.len(),
            check.newer_unreferenced_bytes
        ));
        for key in &check.newer_unreferenced {
            text.push_str(&format!("  {key}\n"));
        }
    }
    text
}

/// How to reach and read the stores: the `etcd.*`, `s3.*` and `encryption.keys` settings.
struct Stores(crate::config::StoreOptions);

impl Stores {
    fn load(config: Option<&Path>) -> Result<Stores, CliError> {
        crate::config::load_store_options(config, crate::config::process_env())
            .map(Stores)
            .map_err(|e| CliError::Invalid(e.to_string()))
    }

    async fn connect(
        &self,
        url: &str,
    ) -> Result<std::sync::Arc<dyn kafscale_core::ports::MetadataStore>, CliError> {
        kafscale_adapters::connect_metadata_store_with(url, &self.0.etcd)
            .await
            .map_err(|e| {
                CliError::Invalid(format!(
                    "metadata store {}: {e}",
                    kafscale_adapters::redact_url(url)
                ))
            })
    }

    fn store(&self, url: &str) -> Result<std::sync::Arc<dyn ObjectStore>, CliError> {
        let store = kafscale_adapters::object_store_from_url_with(url, &self.0.s3)
            .map_err(|e| CliError::Invalid(format!("object store {url}: {e}")))?;
        crate::broker::encrypted(store, self.0.encryption.as_ref())
            .map_err(|e| CliError::Invalid(format!("{e:#}")))
    }

    async fn write(&self, to: &str, file: Bytes) -> Result<(), CliError> {
        let failed =
            |e: &dyn std::fmt::Display| CliError::Invalid(format!("cannot write {to}: {e}"));
        match object_location(to) {
            Some((dir, name)) => self
                .store(dir)?
                .put(name, file, PutMode::Create)
                .await
                .map_err(|e| failed(&e)),
            None if to.contains("://") => Err(CliError::Invalid(format!(
                "{to}: expected an object store URL ending in the backup's name"
            ))),
            None => std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(Path::new(to))
                .and_then(|mut f| {
                    std::io::Write::write_all(&mut f, &file).and_then(|_| f.sync_all())
                })
                .map_err(|e| failed(&e)),
        }
    }

    async fn read(&self, from: &str) -> Result<Bytes, CliError> {
        let failed =
            |e: &dyn std::fmt::Display| CliError::Invalid(format!("cannot read {from}: {e}"));
        match object_location(from) {
            Some((dir, name)) => self.store(dir)?.get(name).await.map_err(|e| failed(&e)),
            None => std::fs::read(from).map(Bytes::from).map_err(|e| failed(&e)),
        }
    }
}

/// An object store URL (`scheme://...`) splits into the store and the object's name; anything
/// else is a file path.
fn object_location(location: &str) -> Option<(&str, &str)> {
    if !location.contains("://") {
        return None;
    }
    location
        .rsplit_once('/')
        .filter(|(_, name)| !name.is_empty())
}
