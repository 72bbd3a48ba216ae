//! The encryption-at-rest store (`EncryptedObjectStore` over `MemoryObjectStore`) reading
//! what it finds in the store below it, treated as hostile.
//!
//! The first byte picks a mode:
//! - 0: the rest of the input is an object put in the inner store as it is;
//! - 1: the same, with a well-formed header start written over it (magic, version, a block
//!   size, a key id the store holds), so that inputs reach the block opening;
//! - 2: a plaintext (its length chosen by the input) is sealed through the store, then the
//!   stored object is flipped, trimmed, cut or grown where the input says.
//!
//! Then `get`, `head` and `get_range` on ranges chosen by the input (in bounds, past the end,
//! reversed, empty). Nothing panics. In modes 0 and 1, an object that carries a header (it
//! starts with `KSEO`, or has a header's shape behind another magic) only ever reads as an
//! error (or an empty range as nothing): no key opens it. One without reads as its raw bytes,
//! exactly the ranges in bounds and an error for the others. In mode 2, a read either fails or
//! returns exactly the original plaintext of that range (or, for an empty range, nothing); a
//! changed object never reads whole.
//! The one exception, by design: damage that leaves the object with no header (magic and the
//! rest of the header both changed, or cut to less than the magic) makes it look like an
//! object written before encryption was turned on, and such objects read as their raw bytes.
#![no_main]
use bytes::Bytes;
use kafscale_adapters::object::{EncryptedObjectStore, EncryptionKeys, MemoryObjectStore};
use kafscale_core::ports::{ObjectStore, PutMode};
use libfuzzer_sys::fuzz_target;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

const KEYS: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\
                    k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
const HEADER_LEN: usize = kafscale_adapters::object::encrypted::HEADER_LEN;
/// Plaintexts of mode 2 span up to three of the store's 16 KiB blocks and a bit.
const MAX_PLAIN: usize = 3 * 16384 + 100;
const RANGES: usize = 4;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fn store(inner: &Arc<MemoryObjectStore>) -> EncryptedObjectStore {
    EncryptedObjectStore::new(inner.clone(), EncryptionKeys::parse(KEYS).expect("keys"))
}

/// Reads input bytes from the front, zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u64 {
        u64::from(u16::from_le_bytes([self.byte(), self.byte()]))
    }

    fn u32(&mut self) -> u64 {
        (self.u16() << 16) | self.u16()
    }

    /// A range around an object of `size` bytes: mostly in bounds, sometimes past the end,
    /// reversed, or huge.
    fn range(&mut self, size: u64) -> Range<u64> {
        let flags = self.byte();
        let (a, b) = (self.u16(), self.u16());
        let span = size + 2;
        let (mut start, mut end) = (a % span, b % span);
        if flags & 1 == 0 && start > end {
            std::mem::swap(&mut start, &mut end);
        }
        if flags & 2 != 0 {
            end = u64::MAX - a;
        }
        if flags & 4 != 0 {
            start = end;
        }
        start..end
    }
}

fn in_bounds(range: &Range<u64>, size: u64) -> bool {
    range.start <= range.end && range.end <= size
}

fn slice(data: &[u8], range: &Range<u64>) -> Bytes {
    Bytes::copy_from_slice(&data[range.start as usize..range.end as usize])
}

/// What the store must treat as sealed: the magic, or the shape of a header (version 1, a
/// block size of 2^10..2^24, a 1..32-byte key id of id characters, zero padding) behind
/// another magic.
fn carries_header(object: &[u8]) -> bool {
    if object.starts_with(b"KSEO") {
        return true;
    }
    if object.len() < HEADER_LEN {
        return false;
    }
    let id = usize::from(object[6]);
    object[4] == 1
        && (10..=24).contains(&object[5])
        && (1..=32).contains(&id)
        && object[7] == 0
        && object[8..8 + id]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
        && object[8 + id..40].iter().all(|b| *b == 0)
        && object[HEADER_LEN - 1] == 0
}

/// Modes 0 and 1: an object the store did not write.
async fn foreign(object: Vec<u8>, input: &mut Input<'_>) {
    let inner = Arc::new(MemoryObjectStore::new());
    inner
        .put("o", Bytes::from(object.clone()), PutMode::Create)
        .await
        .expect("put");
    let store = store(&inner);
    let sealed = carries_header(&object);
    let size = object.len() as u64;
    let ranges: Vec<Range<u64>> = (0..RANGES).map(|_| input.range(size)).collect();
    match store.get("o").await {
        Ok(got) if sealed => panic!("a forged sealed object read as {} bytes", got.len()),
        Ok(got) => assert_eq!(got, object, "a plain object reads as itself"),
        Err(e) => assert!(sealed, "a plain object fails to read: {e}"),
    }
    let _ = store.head("o").await;
    for range in ranges {
        match store.get_range("o", range.clone()).await {
            Ok(got) if sealed => assert!(
                got.is_empty() && range.start == range.end,
                "a forged sealed object read {} bytes at {range:?}",
                got.len()
            ),
            Ok(got) => {
                assert!(
                    in_bounds(&range, size),
                    "{range:?} outside {size} bytes read"
                );
                assert_eq!(got, slice(&object, &range), "plain range {range:?}");
            }
            Err(e) => assert!(
                sealed || !in_bounds(&range, size),
                "a plain range {range:?} of {size} bytes fails: {e}"
            ),
        }
    }
}

/// Mode 2: an object the store sealed, then changed below it.
async fn tampered(input: &mut Input<'_>) {
    let len = (input.u16() as usize | usize::from(input.byte()) << 16) % (MAX_PLAIN + 1);
    let seed = input.byte();
    let plain: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect();
    let inner = Arc::new(MemoryObjectStore::new());
    let writer = store(&inner);
    writer
        .put("o", Bytes::from(plain.clone()), PutMode::Create)
        .await
        .expect("seal");
    let original = inner.get("o").await.expect("stored").to_vec();
    let mut stored = original.clone();
    let edits = input.byte() % 5;
    for _ in 0..edits {
        let op = input.byte();
        let at = input.u32();
        let value = input.byte();
        let n = stored.len() as u64;
        match op % 4 {
            // Flip bits of one byte.
            0 if n > 0 => stored[(at % n) as usize] ^= value | 1,
            // Trim the end.
            1 => stored.truncate((at % (n + 1)) as usize),
            // Cut one byte out.
            2 if n > 0 => {
                stored.remove((at % n) as usize);
            }
            // Grow: a byte put in.
            3 => stored.insert((at % (n + 1)) as usize, value),
            _ => {}
        }
    }
    let changed = stored != original;
    // With no header left, the object is indistinguishable from one written without
    // encryption, and reads as its raw bytes.
    let unsealed = !carries_header(&stored);
    let raw = stored.clone();
    inner
        .put("o", Bytes::from(stored), PutMode::Overwrite)
        .await
        .expect("tamper");
    // The writer remembers the layout it sealed; a fresh store reads the header again.
    let reader = if input.byte() & 1 == 0 {
        writer
    } else {
        store(&inner)
    };
    let size = len as u64;
    let ranges: Vec<Range<u64>> = (0..RANGES).map(|_| input.range(size)).collect();
    match reader.get("o").await {
        Ok(got) if changed => {
            assert!(
                unsealed,
                "a changed sealed object read as {} bytes",
                got.len()
            );
            assert_eq!(got, raw, "a changed object without a header reads raw");
        }
        Ok(got) => assert_eq!(got, plain, "whole read"),
        Err(e) => assert!(changed, "an intact sealed object fails to read: {e}"),
    }
    let _ = reader.head("o").await;
    for range in ranges {
        match reader.get_range("o", range.clone()).await {
            // An empty range of a changed object may read as nothing, whatever its bounds:
            // sizes come from the stored size, which is not authenticated, and nothing is
            // read. (Modes 0 and 1 allow the same.)
            Ok(got) if changed && got.is_empty() && range.start == range.end => {}
            Ok(got) if unsealed && !(in_bounds(&range, size) && got == slice(&plain, &range)) => {
                assert!(
                    changed && in_bounds(&range, raw.len() as u64),
                    "raw {range:?}"
                );
                assert_eq!(got, slice(&raw, &range), "raw range {range:?}");
            }
            Ok(got) => {
                assert!(
                    in_bounds(&range, size),
                    "{range:?} outside {size} bytes read"
                );
                assert_eq!(got, slice(&plain, &range), "range {range:?}");
            }
            Err(e) => assert!(
                changed || !in_bounds(&range, size),
                "an intact range {range:?} of {size} bytes fails: {e}"
            ),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mode = input.byte() % 3;
    runtime().block_on(async {
        match mode {
            0 | 1 => {
                // The ranges come first, the object is the rest.
                let (ranges, rest) = input.0.split_at(input.0.len().min(RANGES * 5));
                let mut object = rest.to_vec();
                if mode == 1 {
                    // Magic, version 1, a block size the reader accepts, a held key id.
                    let log2 = 10 + object.first().copied().unwrap_or(0) % 15;
                    let id: &[u8] = if object.get(1).copied().unwrap_or(0) & 1 == 0 {
                        b"k1"
                    } else {
                        b"k2"
                    };
                    let mut start = b"KSEO".to_vec();
                    start.extend_from_slice(&[1, log2, id.len() as u8, 0]);
                    start.extend_from_slice(id);
                    let n = start.len().min(object.len());
                    object[..n].copy_from_slice(&start[..n]);
                }
                foreign(object, &mut Input(ranges)).await
            }
            _ => tampered(&mut input).await,
        }
    });
});
