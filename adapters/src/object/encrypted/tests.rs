//! Unit tests of the encrypting store, over the memory store.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::object::MemoryObjectStore;

const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn keys(text: &str) -> EncryptionKeys {
    EncryptionKeys::parse(text).expect("keys")
}

fn data(len: usize) -> Bytes {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn plain_sizes_invert_sealed_sizes() {
    let block = 1u64 << BLOCK_LOG2;
    for len in [
        0,
        1,
        15,
        16,
        17,
        block - 1,
        block,
        block + 1,
        3 * block,
        3 * block + 5,
    ] {
        let stored = HEADER_LEN as u64 + len + TAG_LEN as u64 * block_count(len, block);
        assert_eq!(plain_size(stored, block), Some(len), "len {len}");
    }
    assert_eq!(plain_size(HEADER_LEN as u64, block), None);
    assert_eq!(plain_size(HEADER_LEN as u64 + 5, block), None);
}

#[test]
fn key_files_are_checked() {
    assert_eq!(
        keys(&format!("# keys\n{K1}\n\n{K2}  # newest\n")).current_id(),
        "k2"
    );
    for (text, expect) in [
        ("", "no keys"),
        ("k1", "expected ID:BASE64KEY"),
        ("k 1:AAAA", "must be 1 to 32"),
        ("k1:!!!", "not valid base64"),
        ("k1:AAAA", "is 3 bytes"),
    ] {
        let err = EncryptionKeys::parse(text).unwrap_err();
        assert!(err.contains(expect), "{text:?}: {err}");
    }
    let err = EncryptionKeys::parse(&format!("{K1}\n{K1}")).unwrap_err();
    assert!(err.contains("line 2") && err.contains("twice"), "{err}");
}

#[tokio::test]
async fn round_trips_whole_and_ranged_without_plaintext_in_the_store() {
    let inner = Arc::new(MemoryObjectStore::new());
    let store = EncryptedObjectStore::new(inner.clone(), keys(K1));
    let block = 1usize << BLOCK_LOG2;
    for len in [0, 1, block - 1, block, block + 1, 5 * block + 123] {
        let key = format!("o{len}");
        let want = data(len);
        store
            .put(&key, want.clone(), PutMode::Create)
            .await
            .expect("put");
        let stored = inner.get(&key).await.expect("stored");
        assert_eq!(stored.len() as u64, {
            let b = block as u64;
            HEADER_LEN as u64 + len as u64 + TAG_LEN as u64 * block_count(len as u64, b)
        });
        if len >= 64 {
            assert!(
                !stored.windows(64).any(|w| w == &want[..64]),
                "plaintext visible in the stored object"
            );
        }
        assert_eq!(store.get(&key).await.expect("get"), want);
        assert_eq!(store.head(&key).await.expect("head").size, len as u64);
        let ranges = [
            (0, len),
            (0, len.min(1)),
            (len / 3, len / 2),
            (len.saturating_sub(7), len),
        ];
        for (a, b) in ranges {
            let got = store
                .get_range(&key, a as u64..b as u64)
                .await
                .expect("range");
            assert_eq!(got, want.slice(a..b), "{len}: {a}..{b}");
        }
        // A fresh store (no cached header) reads the same.
        let cold = EncryptedObjectStore::new(inner.clone(), keys(K1));
        let (a, b) = (len / 4, len - len / 4);
        assert_eq!(
            cold.get_range(&key, a as u64..b as u64)
                .await
                .expect("cold"),
            want.slice(a..b)
        );
        assert!(cold.get_range(&key, 0..len as u64 + 1).await.is_err());
    }
}

#[tokio::test]
async fn rotated_keys_still_open_old_objects_and_a_missing_key_is_an_error() {
    let inner = Arc::new(MemoryObjectStore::new());
    let old = EncryptedObjectStore::new(inner.clone(), keys(K1));
    old.put("a", data(40_000), PutMode::Create)
        .await
        .expect("put");
    let rotated = EncryptedObjectStore::new(inner.clone(), keys(&format!("{K1}\n{K2}")));
    rotated
        .put("b", data(1000), PutMode::Create)
        .await
        .expect("put");
    assert_eq!(rotated.get("a").await.expect("old key"), data(40_000));
    assert_eq!(
        rotated
            .get_range("a", 20_000..30_000)
            .await
            .expect("old key"),
        data(40_000).slice(20_000..30_000)
    );
    assert_eq!(&inner.get("b").await.expect("raw")[8..10], b"k2");
    let without = EncryptedObjectStore::new(inner.clone(), keys(K2));
    let err = without.get("a").await.unwrap_err().to_string();
    assert!(
        err.contains("\"k1\"") && err.contains("does not hold"),
        "{err}"
    );
}

#[tokio::test]
async fn any_flipped_byte_is_an_error_never_data() {
    let inner = Arc::new(MemoryObjectStore::new());
    let store = EncryptedObjectStore::new(inner.clone(), keys(K1));
    let len = 2 * (1usize << BLOCK_LOG2) + 100;
    store
        .put("o", data(len), PutMode::Create)
        .await
        .expect("put");
    let stored = inner.get("o").await.expect("raw");
    let positions = [
        4,
        9,
        45,
        75,
        HEADER_LEN,
        HEADER_LEN + 20_000,
        stored.len() - 1,
    ];
    for at in positions {
        let mut bad = stored.to_vec();
        bad[at] ^= 0x01;
        inner
            .put("o", Bytes::from(bad), PutMode::Overwrite)
            .await
            .expect("tamper");
        let fresh = EncryptedObjectStore::new(inner.clone(), keys(K1));
        assert!(fresh.get("o").await.is_err(), "byte {at}: whole read");
        assert!(
            fresh.get_range("o", 0..len as u64).await.is_err(),
            "byte {at}: range"
        );
    }
    // Truncated by one block: the new last block was not sealed as the last.
    let cut = stored.slice(..stored.len() - 100 - TAG_LEN);
    inner
        .put("o", cut, PutMode::Overwrite)
        .await
        .expect("truncate");
    let fresh = EncryptedObjectStore::new(inner.clone(), keys(K1));
    assert!(fresh.get("o").await.is_err());
}

/// Found by the `encrypted` fuzz target: a sealed object whose magic had one bit flipped
/// (`JSEO`), or that was cut short of its header, read as a plaintext object, its
/// ciphertext returned as data.
#[tokio::test]
async fn a_damaged_magic_or_a_cut_header_is_an_error_not_plaintext() {
    let inner = Arc::new(MemoryObjectStore::new());
    let store = EncryptedObjectStore::new(inner.clone(), keys(K1));
    store
        .put("o", data(18_789), PutMode::Create)
        .await
        .expect("put");
    let stored = inner.get("o").await.expect("raw");
    let mut flipped = stored.to_vec();
    flipped[0] ^= 0x01;
    for bad in [Bytes::from(flipped), stored.slice(..50), stored.slice(..4)] {
        inner
            .put("o", bad.clone(), PutMode::Overwrite)
            .await
            .expect("tamper");
        let fresh = EncryptedObjectStore::new(inner.clone(), keys(K1));
        let err = fresh.get("o").await.unwrap_err().to_string();
        assert!(
            err.contains("encrypted object o"),
            "{} bytes: {err}",
            bad.len()
        );
        assert!(
            fresh.get_range("o", 0..2).await.is_err(),
            "{} bytes",
            bad.len()
        );
        assert!(fresh.head("o").await.is_err(), "{} bytes", bad.len());
    }
    // An object written without encryption that merely starts like one stays readable
    // when it lacks the header's shape.
    let mut plain = data(200).to_vec();
    plain[..4].copy_from_slice(b"KSEX");
    inner
        .put("p", Bytes::from(plain.clone()), PutMode::Create)
        .await
        .expect("put");
    assert_eq!(store.get("p").await.expect("plain"), plain);
}

#[tokio::test]
async fn unencrypted_objects_can_be_refused() {
    let inner = Arc::new(MemoryObjectStore::new());
    inner
        .put("planted", data(5000), PutMode::Create)
        .await
        .unwrap();
    inner.put("tiny", data(10), PutMode::Create).await.unwrap();
    let store = EncryptedObjectStore::new(inner.clone(), keys(K1)).refusing_unencrypted();
    store
        .put("sealed", data(5000), PutMode::Create)
        .await
        .unwrap();
    assert_eq!(
        store.get_range("sealed", 10..20).await.unwrap(),
        data(5000).slice(10..20)
    );
    for key in ["planted", "tiny"] {
        for err in [
            store.get(key).await.unwrap_err(),
            store.get_range(key, 0..5).await.unwrap_err(),
            store.head(key).await.unwrap_err(),
        ] {
            assert!(err.to_string().contains("not encrypted"), "{key}: {err}");
        }
    }
}

#[tokio::test]
async fn objects_written_before_encryption_read_as_they_are() {
    let inner = Arc::new(MemoryObjectStore::new());
    inner
        .put("old", data(5000), PutMode::Create)
        .await
        .expect("put");
    inner
        .put("tiny", data(10), PutMode::Create)
        .await
        .expect("put");
    let store = EncryptedObjectStore::new(inner.clone(), keys(K1));
    assert_eq!(store.get("old").await.expect("get"), data(5000));
    assert_eq!(
        store.get_range("old", 100..200).await.expect("range"),
        data(5000).slice(100..200)
    );
    assert_eq!(
        store.get_range("tiny", 2..5).await.expect("range"),
        data(10).slice(2..5)
    );
    assert_eq!(store.head("tiny").await.expect("head").size, 10);
}
