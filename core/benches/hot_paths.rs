//! Micro-benchmarks of the core's hot paths: what every produce request, every flush and
//! every fetch goes through. Run with `cargo bench -p kafscale-core --bench hot_paths`;
//! figures are kept in docs/benchmarks.md, never asserted.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use kafscale_core::batch;
use kafscale_core::log::{ChunkIndex, ChunkRecord};
use kafscale_core::object_format::{self, FlushObjectBuilder};
use kafscale_core::segment;
use kafscale_core::types::{BrokerId, LeaderEpoch, Offset, PartitionId, TopicId};
use kafscale_core::unpack;

const BATCH_BYTES: usize = 16 * 1024;
const PARTITIONS: i32 = 50;

/// An uncompressed batch of 1 KiB records, about `bytes` long.
fn batch_of(bytes: usize) -> Bytes {
    let value = vec![0x5au8; 1000];
    let records: Vec<batch::SimpleRecord<'_>> = (0..bytes / 1024)
        .map(|_| (None, Some(value.as_slice())))
        .collect();
    batch::build(&records, 1_700_000_000_000)
}

fn validate_and_stamp(c: &mut Criterion) {
    let raw = batch_of(BATCH_BYTES);
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Bytes(raw.len() as u64));
    g.bench_function("validate_single_16k", |b| {
        b.iter(|| batch::validate_single(black_box(&raw)))
    });
    g.finish();

    // Stamping writes 12 bytes whatever the batch size: no throughput figure.
    let mut g = c.benchmark_group("batch");
    let mut buf = raw.to_vec();
    let mut next = Offset::ZERO;
    g.bench_function("stamp", |b| {
        b.iter(|| {
            next = next.plus(16);
            batch::stamp(black_box(&mut buf), next, LeaderEpoch(3));
        })
    });
    g.finish();
}

/// One flush of 50 partitions, one 16 KiB batch each.
fn flush_object(c: &mut Criterion) {
    let raw = batch_of(BATCH_BYTES);
    let topic = TopicId::random();
    let total = raw.len() * PARTITIONS as usize;
    let build = || {
        let mut builder = FlushObjectBuilder::new(BrokerId(1), 1_700_000_000_000, total);
        for p in 0..PARTITIONS {
            builder
                .add_chunk(
                    topic,
                    PartitionId(p),
                    Offset(1_000),
                    LeaderEpoch(3),
                    [raw.as_ref()],
                )
                .expect("valid batch");
        }
        builder.finish()
    };
    let (object, _, _) = build();
    let mut g = c.benchmark_group("flush_object");
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function("encode_50x16k", |b| b.iter(|| black_box(build())));
    g.throughput(Throughput::Elements(PARTITIONS as u64));
    g.bench_function("decode_index_50", |b| {
        b.iter(|| object_format::decode_index(black_box(&object)))
    });
    g.finish();
}

/// A 64 MiB segment of 16 KiB batches in 1 MiB blocks: the build copies and checksums the
/// data once; the lookup is what a fetch does for each segment it reads.
fn segment_build_and_lookup(c: &mut Criterion) {
    let raw = batch_of(BATCH_BYTES);
    let count = 64 * 1024 * 1024 / raw.len();
    let mut stamped = Vec::with_capacity(count);
    let mut next = Offset::ZERO;
    for _ in 0..count {
        let mut b = raw.to_vec();
        batch::stamp(&mut b, next, LeaderEpoch(3));
        next = next.plus(batch::peek_header(&b).expect("valid").offset_count());
        stamped.push(b);
    }
    let topic = TopicId::random();
    let block_bytes = 1024 * 1024;
    let build = || {
        segment::build(
            topic,
            PartitionId(0),
            stamped.iter().map(Vec::as_slice),
            block_bytes,
        )
        .expect("valid batches")
    };
    let (object, info) = build();
    let index = &object[info.index_position as usize..][..info.index_length as usize];
    let entries = segment::decode_index(index, info.index_crc).expect("valid index");
    let last = next.0;

    let mut g = c.benchmark_group("segment");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(info.data_length));
    g.bench_function("build_64m", |b| b.iter(|| black_box(build())));
    g.finish();

    let mut g = c.benchmark_group("segment");
    let mut probe = 0i64;
    g.bench_function(format!("block_for_offset_{}_blocks", entries.len()), |b| {
        b.iter(|| {
            probe = (probe + 7_919) % last;
            segment::block_for_offset(black_box(&entries), Offset(probe))
        })
    });
    g.finish();
}

/// The offset index of a partition with 10,000 committed chunks of 16 records.
fn chunk_index(c: &mut Criterion) {
    const CHUNKS: i64 = 10_000;
    let index = ChunkIndex::from_chunks((0..CHUNKS).map(|i| ChunkRecord {
        object: format!("flush/{i:020}"),
        position: 64,
        length: 16_500,
        base_offset: Offset(i * 16),
        last_offset: Offset(i * 16 + 15),
        max_timestamp: 1_700_000_000_000 + i,
        crc: 0,
        segment: None,
    }));
    let mut g = c.benchmark_group("chunk_index");
    let mut probe = 0i64;
    g.bench_function("find_10k_chunks", |b| {
        b.iter(|| {
            probe = (probe + 7_919) % (CHUNKS * 16);
            black_box(index.find(Offset(probe))).is_some()
        })
    });
    g.finish();
}

/// `compression.type`: a 16 KiB batch of JSON-like 1 KiB records, sent uncompressed, stored
/// in each codec at its default level (the CPU a topic's codec costs per produced byte).
fn recompress(c: &mut Criterion) {
    let values: Vec<Vec<u8>> = (0..BATCH_BYTES / 1024)
        .map(|i| {
            let mut v = Vec::with_capacity(1000);
            while v.len() < 1000 {
                let n = v.len() * 7919 + i * 104_729;
                v.extend_from_slice(
                    format!(
                        r#"{{"id":{n},"name":"user-{}","score":{}}},"#,
                        n % 977,
                        n % 100
                    )
                    .as_bytes(),
                );
            }
            v.truncate(1000);
            v
        })
        .collect();
    let records: Vec<batch::SimpleRecord<'_>> =
        values.iter().map(|v| (None, Some(v.as_slice()))).collect();
    let raw = batch::build(&records, 1_700_000_000_000);
    let mut g = c.benchmark_group("recompress");
    g.throughput(Throughput::Bytes(raw.len() as u64));
    for codec in [
        batch::Codec::Gzip,
        batch::Codec::Snappy,
        batch::Codec::Lz4,
        batch::Codec::Zstd,
    ] {
        g.bench_function(format!("none_to_{codec:?}_16k").to_lowercase(), |b| {
            b.iter(|| black_box(unpack::recompress(&raw, codec, None)))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    validate_and_stamp,
    recompress,
    flush_object,
    segment_build_and_lookup,
    chunk_index
);
criterion_main!(benches);
