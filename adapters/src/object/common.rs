//! Glue shared by every adapter built on the `object_store` crate: key validation, the one
//! error mapping into [`StoreError`], and the port operations with the contract's extra
//! guarantees (exact ranges, string-prefix listing sorted by key).

use bytes::Bytes;
use futures::StreamExt;
use kafscale_core::ports::{ObjectMeta, PutMode, StoreError};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStoreExt, PutOptions, PutPayload};
use std::io::ErrorKind;
use std::ops::Range;
use std::sync::Arc;

/// The operation an error came from; it decides how some I/O errors are classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Put,
    Get,
    Head,
    List,
    Delete,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::Head => "head",
            Op::List => "list",
            Op::Delete => "delete",
        }
    }
}

/// Turns a port key into an `object_store` path, refusing keys that would not round-trip
/// (leading or trailing `/`, empty segments, `.`/`..`, control characters): `list` must return
/// exactly the keys that were put.
pub(crate) fn parse_key(key: &str) -> Result<Path, StoreError> {
    match Path::parse(key) {
        Ok(path) if path.as_ref() == key && !key.is_empty() => Ok(path),
        Ok(_) => Err(StoreError::Fatal {
            message: format!("invalid object key {key:?}: empty or leading/trailing '/'"),
        }),
        Err(e) => Err(StoreError::Fatal {
            message: format!("invalid object key {key:?}: {e}"),
        }),
    }
}

/// The one mapping from `object_store` errors into the port's error kinds. `remote` stores
/// (S3) report network and server failures as generic errors, which a retry may cure.
pub(crate) fn map_error_from(
    remote: bool,
    op: Op,
    key: &str,
    err: object_store::Error,
) -> StoreError {
    use object_store::Error as E;
    let fatal = |err: &dyn std::fmt::Display| StoreError::Fatal {
        message: format!("{} {key} failed: {err}", op.name()),
    };
    match err {
        E::NotFound { .. } => StoreError::NotFound {
            key: key.to_owned(),
        },
        E::AlreadyExists { .. } | E::Precondition { .. } if op == Op::Put => {
            StoreError::AlreadyExists {
                key: key.to_owned(),
            }
        }
        // A certificate the client does not trust: no retry changes that.
        E::Generic { ref source, .. }
            if remote && crate::error_chain::tls_refused(&causes(source.as_ref())) =>
        {
            StoreError::Fatal {
                message: format!(
                    "{} {key} failed: {err}{}: TLS refused (check s3.tls.ca.file)",
                    op.name(),
                    causes(source.as_ref())
                ),
            }
        }
        E::Generic { ref source, .. } => match io_kind(source.as_ref()) {
            Some(kind) => classify_io(op, key, kind, &err),
            // From a remote store: a server error, a timeout or a refused connection.
            None if remote => StoreError::Transient {
                message: format!(
                    "{} {key} failed: {err}{}",
                    op.name(),
                    causes(source.as_ref())
                ),
            },
            // A non-I/O generic error is a bug or a misconfiguration: retrying will not help.
            None => fatal(&err),
        },
        E::JoinError { ref source } if source.is_cancelled() => StoreError::Transient {
            message: format!("{} {key} cancelled: {err}", op.name()),
        },
        other => fatal(&other),
    }
}

/// The causes under an error, each after `: `.
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    crate::error_chain::with_causes(String::new(), err.source())
}

/// [`map_error_from`] for local stores.
pub(crate) fn map_error(op: Op, key: &str, err: object_store::Error) -> StoreError {
    map_error_from(false, op, key, err)
}

fn classify_io(op: Op, key: &str, kind: ErrorKind, err: &object_store::Error) -> StoreError {
    let reading = matches!(op, Op::Get | Op::Head | Op::Delete);
    match kind {
        // A key under a path whose parent is a file, or a key that is a directory of other
        // keys: for reads it simply is not an object.
        ErrorKind::NotADirectory | ErrorKind::IsADirectory | ErrorKind::NotFound if reading => {
            StoreError::NotFound {
                key: key.to_owned(),
            }
        }
        ErrorKind::PermissionDenied
        | ErrorKind::ReadOnlyFilesystem
        | ErrorKind::NotADirectory
        | ErrorKind::IsADirectory
        | ErrorKind::AlreadyExists
        | ErrorKind::NotFound
        | ErrorKind::InvalidInput
        | ErrorKind::InvalidFilename
        | ErrorKind::Unsupported
        | ErrorKind::CrossesDevices => StoreError::Fatal {
            message: format!("{} {key} failed: {err}", op.name()),
        },
        // Everything else (interrupted, timed out, disk full, EIO, ...) may pass.
        _ => StoreError::Transient {
            message: format!("{} {key} failed: {err}", op.name()),
        },
    }
}

/// Finds the I/O error a generic `object_store` error wraps, if any.
fn io_kind(mut err: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    loop {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        err = err.source()?;
    }
}

/// The port's operations on any `object_store` implementation.
#[derive(Debug, Clone)]
pub(crate) struct Backend {
    inner: Arc<dyn object_store::ObjectStore>,
    /// Errors come from a remote service (see [`map_error_from`]).
    remote: bool,
}

impl Backend {
    pub(crate) fn new(inner: Arc<dyn object_store::ObjectStore>) -> Backend {
        Backend {
            inner,
            remote: false,
        }
    }

    pub(crate) fn new_remote(inner: Arc<dyn object_store::ObjectStore>) -> Backend {
        Backend {
            inner,
            remote: true,
        }
    }

    fn map(&self, op: Op, key: &str, err: object_store::Error) -> StoreError {
        map_error_from(self.remote, op, key, err)
    }

    pub(crate) async fn put(
        &self,
        key: &str,
        data: Bytes,
        mode: PutMode,
    ) -> Result<(), StoreError> {
        let path = parse_key(key)?;
        let mode = match mode {
            PutMode::Overwrite => object_store::PutMode::Overwrite,
            PutMode::Create => object_store::PutMode::Create,
        };
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        self.inner
            .put_opts(&path, PutPayload::from_bytes(data), opts)
            .await
            .map_err(|e| self.map(Op::Put, key, e))?;
        Ok(())
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = parse_key(key)?;
        let result = self
            .inner
            .get(&path)
            .await
            .map_err(|e| self.map(Op::Get, key, e))?;
        result.bytes().await.map_err(|e| self.map(Op::Get, key, e))
    }

    /// `object_store` clamps a range that ends past the object to a short read; the port
    /// wants an error, so the returned range is checked against the requested one.
    pub(crate) async fn get_range(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> Result<Bytes, StoreError> {
        let path = parse_key(key)?;
        if range.start > range.end {
            return Err(StoreError::Fatal {
                message: format!("invalid range {}..{} for {key}", range.start, range.end),
            });
        }
        if range.start == range.end {
            // An empty range reads nothing but must still name an existing object and a
            // position inside (or at the end of) it.
            let meta = self.head(key).await?;
            return match range.end <= meta.size {
                true => Ok(Bytes::new()),
                false => Err(past_end(key, &range, meta.size)),
            };
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            ..GetOptions::default()
        };
        let result = match self.inner.get_opts(&path, opts).await {
            Ok(result) => result,
            Err(e) => {
                let mapped = self.map(Op::Get, key, e);
                if matches!(mapped, StoreError::NotFound { .. }) {
                    return Err(mapped);
                }
                // A range starting at or past the end fails with a generic error; say why.
                return match self.head(key).await {
                    Ok(meta) if range.end > meta.size => Err(past_end(key, &range, meta.size)),
                    _ => Err(mapped),
                };
            }
        };
        let size = result.meta.size;
        if result.range != range {
            return Err(past_end(key, &range, size));
        }
        let bytes = result
            .bytes()
            .await
            .map_err(|e| self.map(Op::Get, key, e))?;
        let expected = range.end - range.start;
        if bytes.len() as u64 != expected {
            return Err(StoreError::Transient {
                message: format!(
                    "short read of {key}: {} of {expected} bytes (object changed during read?)",
                    bytes.len()
                ),
            });
        }
        Ok(bytes)
    }

    pub(crate) async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        let path = parse_key(key)?;
        let meta = self
            .inner
            .head(&path)
            .await
            .map_err(|e| self.map(Op::Head, key, e))?;
        Ok(ObjectMeta {
            key: key.to_owned(),
            size: meta.size,
        })
    }

    /// Lists by string prefix (as S3 and etcd do), not by path segment as `object_store`
    /// does: the directory part of the prefix is listed and the rest filtered here.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let dir = prefix.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
        let dir_path = match dir {
            "" => None,
            // No valid key lives under a malformed directory, so nothing matches.
            dir => match parse_key(dir) {
                Ok(path) => Some(path),
                Err(_) => return Ok(Vec::new()),
            },
        };
        let mut stream = self.inner.list(dir_path.as_ref());
        let mut objects = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(|e| self.map(Op::List, prefix, e))?;
            let key = meta.location.to_string();
            if key.starts_with(prefix) {
                objects.push(ObjectMeta {
                    key,
                    size: meta.size,
                });
            }
        }
        objects.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = parse_key(key)?;
        match self.inner.delete(&path).await {
            Ok(()) => Ok(()),
            Err(e) => match self.map(Op::Delete, key, e) {
                StoreError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }
}

fn past_end(key: &str, range: &Range<u64>, size: u64) -> StoreError {
    StoreError::Fatal {
        message: format!(
            "range {}..{} is past the end of {key} ({size} bytes)",
            range.start, range.end
        ),
    }
}
