//! Object store in a local directory, for single-node mode. One file per key, directories
//! for the `/`-separated segments.

use async_trait::async_trait;
use bytes::Bytes;
use kafscale_core::ports::{ObjectMeta, ObjectStore, PutMode, StoreError};
use object_store::local::LocalFileSystem;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::common::{map_error, parse_key, Backend, Op};

/// [`ObjectStore`] in a directory.
///
/// Durability: `object_store`'s `with_fsync` is on, so a put writes a staging file, fsyncs
/// it, publishes it (rename, or hard link for `PutMode::Create`, which fails if the key
/// exists and so is an atomic create-if-absent) and fsyncs the parent directory before it
/// returns. Deletes fsync the parent directory too, so a deleted object does not come back
/// after a crash.
///
/// Key restrictions of the file system: a key cannot be both an object and a prefix of
/// other keys followed by `/` (`a` and `a/b`), and a key may not end in `#<digits>` (the
/// staging-file names of `object_store`); both fail with `Fatal`.
#[derive(Debug, Clone)]
pub struct LocalObjectStore {
    backend: Backend,
    fs: Arc<LocalFileSystem>,
    root: PathBuf,
}

impl LocalObjectStore {
    /// Opens the directory `root`, creating it if missing, and checks that it is writable.
    /// Blocks briefly on the file system; meant for start-up.
    pub fn open(root: impl AsRef<Path>) -> Result<LocalObjectStore, StoreError> {
        let root = std::path::absolute(root.as_ref()).map_err(|e| StoreError::Fatal {
            message: format!(
                "invalid object store directory {}: {e}",
                root.as_ref().display()
            ),
        })?;
        create_dir_durably(&root)?;
        probe_writable(&root)?;
        let fs = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| StoreError::Fatal {
                message: format!("cannot open object store directory {}: {e}", root.display()),
            })?
            .with_fsync(true);
        let fs = Arc::new(fs);
        Ok(LocalObjectStore {
            backend: Backend::new(Arc::clone(&fs) as Arc<dyn object_store::ObjectStore>),
            fs,
            root,
        })
    }

    /// The directory holding the objects.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Creates `dir` and its missing ancestors, then fsyncs every directory whose entries
/// changed, so the store's root survives a machine crash like the objects in it.
fn create_dir_durably(dir: &Path) -> Result<(), StoreError> {
    let cannot = |e: &dyn std::fmt::Display| StoreError::Fatal {
        message: format!(
            "cannot create object store directory {}: {e}",
            dir.display()
        ),
    };
    if dir.is_dir() {
        return Ok(());
    }
    if dir.exists() {
        return Err(cannot(&"it exists and is not a directory"));
    }
    let mut first_existing = dir;
    while let Some(parent) = first_existing.parent() {
        first_existing = parent;
        if parent.exists() {
            break;
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| cannot(&e))?;
    let mut current = dir.parent();
    while let Some(d) = current {
        fsync_dir(d).map_err(|e| cannot(&e))?;
        if d == first_existing {
            break;
        }
        current = d.parent();
    }
    Ok(())
}

/// Writes and removes a probe file, so a read-only directory fails at start-up and not at
/// the first flush. Its name ends in `#<digits>`, which `object_store` never lists.
fn probe_writable(dir: &Path) -> Result<(), StoreError> {
    // Unique per open, so that concurrent opens of one directory do not remove each other's.
    static PROBES: AtomicU64 = AtomicU64::new(0);
    let n = PROBES.fetch_add(1, Ordering::Relaxed);
    let probe = dir.join(format!(".kafscale-probe#{}{n:06}", std::process::id()));
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut f| f.write_all(b"probe"))
        .and_then(|()| std::fs::remove_file(&probe));
    result.map_err(|e| StoreError::Fatal {
        message: format!(
            "object store directory {} is not writable: {e}",
            dir.display()
        ),
    })
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = (dir, File::open);
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for LocalObjectStore {
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StoreError> {
        self.backend.put(key, data, mode).await
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
        self.backend.delete(key).await?;
        // `with_fsync` does not cover deletes: make the removal durable here.
        let file = self
            .fs
            .path_to_filesystem(&parse_key(key)?)
            .map_err(|e| map_error(Op::Delete, key, e))?;
        let Some(parent) = file.parent().map(Path::to_path_buf) else {
            return Ok(());
        };
        let synced = tokio::task::spawn_blocking(move || match fsync_dir(&parent) {
            // The directory never existed, so there was nothing to delete.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(())
            }
            other => other,
        })
        .await
        .map_err(|e| StoreError::Transient {
            message: format!("delete {key}: fsync task failed: {e}"),
        })?;
        synced.map_err(|e| {
            let err = object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            };
            map_error(Op::Delete, key, err)
        })
    }
}
