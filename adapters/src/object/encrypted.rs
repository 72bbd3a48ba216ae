//! Encryption at rest: an [`ObjectStore`] that seals what it writes with AES-256-GCM and
//! opens what it reads, around any other store.
//!
//! # Object layout
//! ```text
//! header  80 B   "KSEO" | version u8 (1) | block size log2 u8 | key id length u8 | 0 u8 |
//!                key id (32 B, zero padded) | salt (32 B) | nonce prefix (7 B) | 0 u8
//! blocks         the plaintext in blocks of `block size` bytes (the last may be shorter or
//!                empty), each followed by its 16-byte GCM tag
//! ```
//! Each object has a key of its own, derived with HKDF-SHA256 from the master key named in
//! the header and the object's random salt, so nonces never repeat across objects. Block `i`
//! is sealed under the nonce `prefix | i (u32) | last (u8)` with the whole header as
//! associated data: a changed header, a block moved, dropped, truncated or altered, or a wrong
//! key all fail authentication and read as an error, never as data.
//!
//! Blocks keep ranged reads ranged: reading bytes `a..b` fetches and opens only the blocks
//! that cover them. The header is fetched once per object and kept in a bounded cache.
//!
//! # Keys
//! The key file (`encryption.keys`) holds one key per line, `ID:BASE64` (32 bytes of key
//! material; `#` starts a comment). The last key seals new objects; every key in the file
//! opens them, so keys rotate by appending a line, without rewriting data. The file is read
//! again when it changes. Objects written before encryption was turned on (without the
//! header) are still read as they are. An object that starts with the magic but is shorter
//! than a header, or that has a header's shape behind a damaged magic, is a damaged sealed
//! object and reads as an error. (Damage to the magic and to the rest of the header at once
//! makes an object that cannot be told from one written without encryption: it reads as its
//! raw bytes, as such objects do.)

use async_trait::async_trait;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use kafscale_core::ports::{ObjectMeta, ObjectStore, PutMode, StoreError};
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

const MAGIC: &[u8; 4] = b"KSEO";
const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 80;
const TAG_LEN: usize = 16;
const KEY_ID_MAX: usize = 32;
const SALT_LEN: usize = 32;
const PREFIX_LEN: usize = 7;
/// Plaintext bytes per sealed block: small enough that a ranged read of one partition's
/// chunk fetches little more than the chunk, large enough that tags cost 0.1 %.
const BLOCK_LOG2: u8 = 14;
const HKDF_INFO: &[u8] = b"kafscale object encryption v1";
/// Headers of this many objects are remembered.
const CACHE_OBJECTS: usize = 8192;
/// How often the key file is checked for changes.
const RELOAD_EVERY: Duration = Duration::from_secs(2);

fn fatal(message: String) -> StoreError {
    StoreError::Fatal { message }
}

/// The master keys, by id, in the order of the key file: the last one seals.
pub struct EncryptionKeys {
    keys: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for EncryptionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("EncryptionKeys").field("ids", &ids).finish()
    }
}

impl EncryptionKeys {
    /// Parses a key file's text. Errors name the line, never the key material.
    pub fn parse(text: &str) -> Result<EncryptionKeys, String> {
        let mut keys: Vec<(String, [u8; 32])> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let at = format!("line {}", n + 1);
            let (id, material) = line
                .split_once(':')
                .ok_or_else(|| format!("{at}: expected ID:BASE64KEY"))?;
            let id = id.trim();
            if id.is_empty()
                || id.len() > KEY_ID_MAX
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(format!(
                    "{at}: key id {id:?} must be 1 to {KEY_ID_MAX} characters of A-Z a-z 0-9 . _ -"
                ));
            }
            if keys.iter().any(|(other, _)| other == id) {
                return Err(format!("{at}: key id {id:?} appears twice"));
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(material.trim())
                .map_err(|_| format!("{at}: key {id:?} is not valid base64"))?;
            let key: [u8; 32] = raw.try_into().map_err(|raw: Vec<u8>| {
                format!(
                    "{at}: key {id:?} is {} bytes; AES-256 needs 32 (openssl rand -base64 32)",
                    raw.len()
                )
            })?;
            keys.push((id.to_string(), key));
        }
        if keys.is_empty() {
            return Err("no keys (expected lines ID:BASE64KEY)".into());
        }
        Ok(EncryptionKeys { keys })
    }

    pub fn load(path: &Path) -> Result<EncryptionKeys, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
        EncryptionKeys::parse(&text).map_err(|e| format!("key file {}: {e}", path.display()))
    }

    /// The id of the key that seals new objects.
    pub fn current_id(&self) -> &str {
        self.current().0
    }

    fn current(&self) -> (&str, &[u8; 32]) {
        let (id, key) = self.keys.last().expect("parse refuses an empty key file");
        (id, key)
    }

    fn get(&self, id: &str) -> Option<&[u8; 32]> {
        self.keys.iter().find(|(k, _)| k == id).map(|(_, key)| key)
    }
}

/// The keys, and the file they come from (checked for changes).
struct KeySource {
    keys: RwLock<Arc<EncryptionKeys>>,
    file: Option<PathBuf>,
    /// When the file was last checked, and what it looked like then.
    checked: Mutex<(Instant, Option<(SystemTime, u64)>)>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl KeySource {
    fn keys(&self) -> Arc<EncryptionKeys> {
        self.reload_if_changed();
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the key file again if it changed; a file that no longer parses keeps the keys
    /// already loaded (and says so), so a bad edit never stops reads or writes.
    fn reload_if_changed(&self) {
        let Some(file) = &self.file else { return };
        let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        if checked.0.elapsed() < RELOAD_EVERY {
            return;
        }
        let now = stamp(file);
        checked.0 = Instant::now();
        if now == checked.1 {
            return;
        }
        checked.1 = now;
        match EncryptionKeys::load(file) {
            Ok(keys) => {
                tracing::info!(sealing = keys.current_id(), "encryption keys reloaded");
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
            }
            Err(e) => {
                tracing::error!(error = %e, "encryption keys not reloaded; the previous keys stay in use")
            }
        }
    }
}

/// What is known of one stored object.
#[derive(Clone)]
enum Layout {
    /// Written without encryption.
    Plain {
        size: u64,
    },
    Sealed(Arc<Sealed>),
}

struct Sealed {
    header: [u8; HEADER_LEN],
    cipher: LessSafeKey,
    /// The stored (sealed) size.
    stored: u64,
}

impl Sealed {
    fn block_len(&self) -> u64 {
        1u64 << self.header[5]
    }

    fn prefix(&self) -> &[u8] {
        &self.header[72..72 + PREFIX_LEN]
    }

    /// The plaintext size, from the stored size; `None` if no plaintext has that size.
    fn plain_size(&self) -> Option<u64> {
        plain_size(self.stored, self.block_len())
    }
}

fn block_nonce(prefix: &[u8], block: u64, last: bool) -> Result<Nonce, StoreError> {
    let index = u32::try_from(block).map_err(|_| fatal("object too large to seal".into()))?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..PREFIX_LEN].copy_from_slice(prefix);
    nonce[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&index.to_be_bytes());
    nonce[NONCE_LEN - 1] = u8::from(last);
    Ok(Nonce::assume_unique_for_key(nonce))
}

/// The number of blocks a plaintext of `len` bytes is sealed in (at least one, so that even
/// an empty object carries a tag that marks its end).
fn block_count(len: u64, block: u64) -> u64 {
    len.div_ceil(block).max(1)
}

fn plain_size(stored: u64, block: u64) -> Option<u64> {
    let body = stored.checked_sub(HEADER_LEN as u64)?;
    let step = block + TAG_LEN as u64;
    let (full, rest) = (body / step, body % step);
    match rest {
        0 if full > 0 => Some(full * block),
        0 => None,
        r if r >= TAG_LEN as u64 => Some(full * block + r - TAG_LEN as u64),
        _ => None,
    }
}

fn object_key(master: &[u8; 32], salt: &[u8]) -> Result<LessSafeKey, StoreError> {
    let prk = Salt::new(HKDF_SHA256, salt).extract(master);
    let okm = prk
        .expand(&[HKDF_INFO], &AES_256_GCM)
        .map_err(|_| fatal("cannot derive an object key".into()))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

fn random(out: &mut [u8]) -> Result<(), StoreError> {
    aws_lc_rs::rand::fill(out).map_err(|_| fatal("no randomness for an object key".into()))
}

/// Seals `data` under the keys' current key.
fn seal(keys: &EncryptionKeys, data: &[u8]) -> Result<(Bytes, Sealed), StoreError> {
    let (id, master) = keys.current();
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(MAGIC);
    header[4] = VERSION;
    header[5] = BLOCK_LOG2;
    header[6] = id.len() as u8;
    header[8..8 + id.len()].copy_from_slice(id.as_bytes());
    random(&mut header[40..40 + SALT_LEN])?;
    random(&mut header[72..72 + PREFIX_LEN])?;
    let cipher = object_key(master, &header[40..40 + SALT_LEN])?;
    let block = 1usize << BLOCK_LOG2;
    let blocks = block_count(data.len() as u64, block as u64);
    let mut out = BytesMut::with_capacity(HEADER_LEN + data.len() + TAG_LEN * blocks as usize);
    out.extend_from_slice(&header);
    for i in 0..blocks {
        let from = (i as usize) * block;
        let plain = &data[from..(from + block).min(data.len())];
        let at = out.len();
        out.extend_from_slice(plain);
        let nonce = block_nonce(&header[72..72 + PREFIX_LEN], i, i + 1 == blocks)?;
        let tag = cipher
            .seal_in_place_separate_tag(nonce, Aad::from(&header[..]), &mut out[at..])
            .map_err(|_| fatal("sealing failed".into()))?;
        out.extend_from_slice(tag.as_ref());
    }
    let stored = out.len() as u64;
    Ok((
        out.freeze(),
        Sealed {
            header,
            cipher,
            stored,
        },
    ))
}

/// Whether `head` has the shape of a sealed header after the magic: version, block size,
/// key id length, reserved zeros, a key id of key-id characters, zero padding. An object
/// written without encryption has it only by a chance too small to matter; a sealed object
/// whose magic was damaged keeps it.
fn header_shape(head: &[u8]) -> bool {
    if head.len() < HEADER_LEN {
        return false;
    }
    let id_len = usize::from(head[6]);
    head[4] == VERSION
        && (10..=24).contains(&head[5])
        && (1..=KEY_ID_MAX).contains(&id_len)
        && head[7] == 0
        && head[8..8 + id_len]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
        && head[8 + id_len..40].iter().all(|b| *b == 0)
        && head[HEADER_LEN - 1] == 0
}

/// Reads a sealed object's header; `Ok(None)` if `head` is not one (a plaintext object).
///
/// `head` is the object's first [`HEADER_LEN`] bytes, or all of it if it is shorter. An object
/// that starts with the magic but is shorter than a header, or that has a header's shape
/// behind a damaged magic, is a sealed object cut short or corrupted: an error, not
/// plaintext (its ciphertext must never be read as data).
fn parse_header(
    keys: &EncryptionKeys,
    key: &str,
    head: &[u8],
    stored: u64,
) -> Result<Option<Sealed>, StoreError> {
    let corrupt = |what: &str| fatal(format!("encrypted object {key}: {what}"));
    if !head.starts_with(MAGIC) {
        if header_shape(head) {
            return Err(corrupt("damaged header (bad magic)"));
        }
        return Ok(None);
    }
    if head.len() < HEADER_LEN {
        return Err(corrupt(&format!(
            "{} bytes, shorter than its header",
            head.len()
        )));
    }
    if head[4] != VERSION {
        return Err(corrupt(&format!("unknown version {}", head[4])));
    }
    if !(10..=24).contains(&head[5]) {
        return Err(corrupt("bad block size"));
    }
    let id_len = usize::from(head[6]);
    if id_len == 0 || id_len > KEY_ID_MAX {
        return Err(corrupt("bad key id"));
    }
    let id = std::str::from_utf8(&head[8..8 + id_len]).map_err(|_| corrupt("bad key id"))?;
    let master = keys.get(id).ok_or_else(|| {
        corrupt(&format!(
            "sealed with key {id:?}, which the key file does not hold"
        ))
    })?;
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&head[..HEADER_LEN]);
    let sealed = Sealed {
        cipher: object_key(master, &header[40..40 + SALT_LEN])?,
        header,
        stored,
    };
    if sealed.plain_size().is_none() {
        return Err(corrupt(&format!(
            "stored size {stored} fits no sealed layout"
        )));
    }
    Ok(Some(sealed))
}

/// Opens blocks `first..` of a sealed object, given as stored bytes starting at that block.
fn open_blocks(
    sealed: &Sealed,
    key: &str,
    first: u64,
    stored: &[u8],
) -> Result<BytesMut, StoreError> {
    let block = sealed.block_len();
    let step = block as usize + TAG_LEN;
    let last_block = block_count(sealed.plain_size().unwrap_or(0), block) - 1;
    let mut out = BytesMut::with_capacity(stored.len());
    for (n, piece) in stored.chunks(step).enumerate() {
        let index = first + n as u64;
        let at = out.len();
        out.extend_from_slice(piece);
        let nonce = block_nonce(sealed.prefix(), index, index == last_block)?;
        let plain = sealed
            .cipher
            .open_in_place(nonce, Aad::from(&sealed.header[..]), &mut out[at..])
            .map_err(|_| {
                fatal(format!(
                    "encrypted object {key}: block {index} fails authentication (corrupt or tampered)"
                ))
            })?
            .len();
        out.truncate(at + plain);
    }
    Ok(out)
}

/// Remembers the layout of recently used objects (objects are written once, so it stays true;
/// an entry that no longer opens is dropped and read again).
#[derive(Default)]
struct LayoutCache {
    entries: HashMap<String, Layout>,
    order: VecDeque<String>,
}

impl LayoutCache {
    fn get(&self, key: &str) -> Option<Layout> {
        self.entries.get(key).cloned()
    }

    fn insert(&mut self, key: &str, layout: Layout) {
        if self.entries.insert(key.to_string(), layout).is_none() {
            self.order.push_back(key.to_string());
            while self.order.len() > CACHE_OBJECTS {
                if let Some(old) = self.order.pop_front() {
                    self.entries.remove(&old);
                }
            }
        }
    }

    fn remove(&mut self, key: &str) {
        if self.entries.remove(key).is_some() {
            self.order.retain(|k| k != key);
        }
    }
}

/// Seals every object written through it and opens every object read (see the module docs).
pub struct EncryptedObjectStore {
    inner: Arc<dyn ObjectStore>,
    keys: KeySource,
    cache: Mutex<LayoutCache>,
    /// Whether objects without the sealed header are read as they are.
    allow_unencrypted: bool,
}

impl std::fmt::Debug for EncryptedObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedObjectStore")
            .field("inner", &self.inner)
            .field("key_file", &self.keys.file)
            .finish()
    }
}

impl EncryptedObjectStore {
    /// Encrypts with the keys of `file`, read now (an unreadable or invalid file is an error)
    /// and again whenever it changes.
    pub fn open(inner: Arc<dyn ObjectStore>, file: &Path) -> Result<Self, String> {
        let keys = EncryptionKeys::load(file)?;
        let mut store = EncryptedObjectStore::new(inner, keys);
        store.keys.file = Some(file.to_path_buf());
        store.keys.checked = Mutex::new((Instant::now(), stamp(file)));
        Ok(store)
    }

    /// Encrypts with fixed keys.
    pub fn new(inner: Arc<dyn ObjectStore>, keys: EncryptionKeys) -> Self {
        EncryptedObjectStore {
            inner,
            keys: KeySource {
                keys: RwLock::new(Arc::new(keys)),
                file: None,
                checked: Mutex::new((Instant::now(), None)),
            },
            cache: Mutex::new(LayoutCache::default()),
            allow_unencrypted: true,
        }
    }

    /// Refuses objects without the sealed header instead of reading them as they are
    /// (`encryption.allow.unencrypted` false): once every object of a cluster is sealed, an
    /// object planted in the bucket unencrypted is an error, not data.
    pub fn refusing_unencrypted(mut self) -> Self {
        self.allow_unencrypted = false;
        self
    }

    /// A plaintext object's layout, where plaintext objects are allowed.
    fn plain(&self, key: &str, size: u64) -> Result<Layout, StoreError> {
        if self.allow_unencrypted {
            Ok(Layout::Plain { size })
        } else {
            Err(fatal(format!(
                "object {key} is not encrypted, and encryption.allow.unencrypted is false"
            )))
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LayoutCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The object's layout, from the cache or from its size and header.
    async fn layout(&self, key: &str) -> Result<Layout, StoreError> {
        if let Some(layout) = self.cache().get(key) {
            return Ok(layout);
        }
        let (meta, head) = futures::join!(
            self.inner.head(key),
            self.inner.get_range(key, 0..HEADER_LEN as u64)
        );
        let size = meta?.size;
        let layout = match head {
            Ok(head) => match parse_header(&self.keys.keys(), key, &head, size)? {
                Some(sealed) => Layout::Sealed(Arc::new(sealed)),
                None => self.plain(key, size)?,
            },
            // Shorter than a header: written without encryption, unless it starts like a
            // sealed object (then one cut short, an error).
            Err(_) if size < HEADER_LEN as u64 => {
                let head = self.inner.get_range(key, 0..size).await?;
                match parse_header(&self.keys.keys(), key, &head, size)? {
                    Some(sealed) => Layout::Sealed(Arc::new(sealed)),
                    None => self.plain(key, size)?,
                }
            }
            Err(e) => return Err(e),
        };
        self.cache().insert(key, layout.clone());
        Ok(layout)
    }

    async fn read_range(
        &self,
        key: &str,
        layout: &Layout,
        range: Range<u64>,
    ) -> Result<Bytes, StoreError> {
        let sealed = match layout {
            Layout::Plain { .. } => return self.inner.get_range(key, range).await,
            Layout::Sealed(sealed) => sealed,
        };
        let size = sealed.plain_size().unwrap_or(0);
        if range.start > range.end || range.end > size {
            return Err(fatal(format!(
                "range {}..{} is outside {key} ({size} bytes)",
                range.start, range.end
            )));
        }
        if range.start == range.end {
            return Ok(Bytes::new());
        }
        let block = sealed.block_len();
        let step = block + TAG_LEN as u64;
        let (first, last) = (range.start / block, (range.end - 1) / block);
        let from = HEADER_LEN as u64 + first * step;
        let to = (HEADER_LEN as u64 + (last + 1) * step).min(sealed.stored);
        let stored = self.inner.get_range(key, from..to).await?;
        let plain = open_blocks(sealed, key, first, &stored)?;
        let skip = (range.start - first * block) as usize;
        Ok(plain
            .freeze()
            .slice(skip..skip + (range.end - range.start) as usize))
    }
}

#[async_trait]
impl ObjectStore for EncryptedObjectStore {
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StoreError> {
        let (stored, sealed) = seal(&self.keys.keys(), &data)?;
        self.cache().remove(key);
        self.inner.put(key, stored, mode).await?;
        self.cache().insert(key, Layout::Sealed(Arc::new(sealed)));
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let stored = self.inner.get(key).await?;
        let Some(sealed) = parse_header(&self.keys.keys(), key, &stored, stored.len() as u64)?
        else {
            self.plain(key, stored.len() as u64)?;
            return Ok(stored);
        };
        Ok(open_blocks(&sealed, key, 0, &stored[HEADER_LEN..])?.freeze())
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let layout = self.layout(key).await?;
        match self.read_range(key, &layout, range.clone()).await {
            // A remembered layout that no longer opens may be of an object since replaced:
            // forget it and read the object afresh once.
            Err(StoreError::Fatal { .. }) if matches!(layout, Layout::Sealed(_)) => {
                self.cache().remove(key);
                let layout = self.layout(key).await?;
                self.read_range(key, &layout, range).await
            }
            other => other,
        }
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        let size = match self.layout(key).await? {
            Layout::Plain { size } => size,
            Layout::Sealed(sealed) => sealed.plain_size().unwrap_or(0),
        };
        Ok(ObjectMeta {
            key: key.to_string(),
            size,
        })
    }

    /// Lists keys with their stored sizes (a sealed object is larger than its plaintext by
    /// its header and tags).
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.cache().remove(key);
        self.inner.delete(key).await
    }
}

#[cfg(test)]
mod tests;
