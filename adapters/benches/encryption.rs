//! Micro-benchmarks of encryption at rest: sealing a flush object as the writer does, and
//! opening one partition's chunk and a whole object as reads and merges do. Run with
//! `cargo bench -p kafscale-adapters --bench encryption`; figures are kept in
//! docs/benchmarks.md, never asserted.

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafscale_adapters::{EncryptedObjectStore, EncryptionKeys, MemoryObjectStore};
use kafscale_core::ports::{ObjectStore, PutMode};

const OBJECT: usize = 8 << 20;
const CHUNK: u64 = 80 << 10;

fn store() -> (Arc<MemoryObjectStore>, EncryptedObjectStore) {
    let keys =
        EncryptionKeys::parse("bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("key");
    let inner = Arc::new(MemoryObjectStore::new());
    (inner.clone(), EncryptedObjectStore::new(inner, keys))
}

fn encryption(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let data = Bytes::from((0..OBJECT).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let (_, sealed) = store();
    rt.block_on(sealed.put("o", data.clone(), PutMode::Overwrite))
        .expect("put");

    let mut g = c.benchmark_group("encryption");
    g.throughput(Throughput::Bytes(OBJECT as u64));
    g.bench_function("seal and put 8 MiB", |b| {
        b.iter(|| rt.block_on(sealed.put("w", black_box(data.clone()), PutMode::Overwrite)))
    });
    g.bench_function("get and open 8 MiB", |b| {
        b.iter(|| rt.block_on(sealed.get("o")))
    });
    let (plain, _) = store();
    rt.block_on(plain.put("o", data.clone(), PutMode::Overwrite))
        .expect("put");
    g.bench_function("get 8 MiB, unencrypted", |b| {
        b.iter(|| rt.block_on(plain.get("o")))
    });
    g.throughput(Throughput::Bytes(CHUNK));
    g.bench_function("ranged get and open 80 KiB", |b| {
        b.iter(|| rt.block_on(sealed.get_range("o", black_box(1_000_000..1_000_000 + CHUNK))))
    });
    g.finish();
}

criterion_group!(benches, encryption);
criterion_main!(benches);
