//! No request, of any API and version the broker advertises, and no response the CLI reads,
//! makes decoding reserve more than a bounded multiple of its size.
//!
//! For each (API, version), valid messages are built from the message tables, then every
//! length prefix in them (arrays, strings, bytes, tagged fields) is replaced in turn by a
//! hostile value: 0x7fffffff, compact-varint maxima, negative lengths other than -1. A counting
//! allocator measures what decoding reserved. Hostile messages must fail and reserve almost
//! nothing; valid messages as dense as the format allows (full arrays of empty elements) must
//! decode within a small multiple of their size. Run with `--nocapture` for the table of
//! figures per API.
//!
//! One test function only: the allocator's counters are process-wide, so nothing else may
//! allocate while a figure is taken.

use std::alloc::System;
use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, HeaderVersion};
use kafscale::cli::conn::decode_response;
use kafscale::server::dispatch::decode_frame;
use kafscale::wire::{self, sample};
use peakmem_alloc::{PeakMemAlloc, PeakMemAllocTrait, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &PeakMemAlloc<System> = &INSTRUMENTED_SYSTEM;

/// A refused message may cost its error message and little else.
const HOSTILE_CONSTANT: usize = 16 << 10;
/// What decoding a valid message may reserve: this multiple of its size plus a constant.
/// The multiple is the in-memory size of the decoder's element structs over their smallest
/// encoding: arrays of structs whose strings are all empty reach about 50 (the printed
/// table), real messages a few.
const VALID_MULTIPLE: usize = 64;
const VALID_CONSTANT: usize = 64 << 10;

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u32 % n.max(1)
    }
}

/// Peak bytes reserved while `f` runs, and its result.
fn measure<T>(f: impl FnOnce() -> T) -> (usize, T) {
    GLOBAL.reset_peak_memory();
    let out = f();
    (GLOBAL.get_peak_memory(), out)
}

#[derive(Default)]
struct Figures {
    hostile_frames: usize,
    hostile_peak: usize,
    valid_ratio: f64,
    valid_bytes: usize,
}

const SHAPE: sample::Shape = sample::Shape {
    max_elements: 3,
    max_len: 5,
    dense: false,
};

/// Every hostile variant of a few valid samples of `m` in `version`: `frame` wraps a body
/// into what the decoder under test reads; `decode` returns whether it accepted.
fn hostile_variants(
    m: &wire::schema::Message,
    version: i16,
    frame: &dyn Fn(&[u8]) -> Bytes,
    decode: &dyn Fn(Bytes) -> bool,
    figures: &mut Figures,
) {
    for seed in 0..4 {
        let build = |hostile| {
            let mut rng = Rng::new(seed + 11);
            sample::build(m, version, SHAPE, &mut |n| rng.below(n), hostile)
        };
        let base = build(None);
        for (index, prefix) in base.prefixes.iter().enumerate() {
            for &value in prefix.kind.hostile_values() {
                let s = build(Some(sample::Hostile { index, value }));
                let bytes = frame(&s.bytes);
                let len = bytes.len();
                let (peak, accepted) = measure(|| decode(bytes));
                assert!(
                    !accepted,
                    "{} v{version}: {} = {value} was accepted",
                    m.name, prefix.field
                );
                assert!(
                    peak <= 4 * len + HOSTILE_CONSTANT,
                    "{} v{version}: {} = {value} reserved {peak} bytes for a frame of {len}",
                    m.name,
                    prefix.field
                );
                figures.hostile_frames += 1;
                figures.hostile_peak = figures.hostile_peak.max(peak);
            }
        }
    }
}

/// The densest valid messages: full arrays of empty elements.
fn dense_valid(
    m: &wire::schema::Message,
    version: i16,
    frame: &dyn Fn(&[u8]) -> Bytes,
    decode: &dyn Fn(Bytes) -> bool,
    figures: &mut Figures,
) {
    let mut last_len = 0;
    for elements in [8, 48, 600] {
        // Larger only where the message is small enough not to explode when nested.
        if elements == 600 && last_len >= 16 << 10 {
            break;
        }
        let shape = sample::Shape {
            max_elements: elements,
            max_len: 0,
            dense: true,
        };
        let s = sample::build(m, version, shape, &mut |_| 0, None);
        let bytes = frame(&s.bytes);
        let len = bytes.len();
        last_len = len;
        let (peak, accepted) = measure(|| decode(bytes));
        assert!(
            accepted,
            "{} v{version}: a valid dense message was refused",
            m.name
        );
        assert!(
            peak <= VALID_MULTIPLE * len + VALID_CONSTANT,
            "{} v{version}: a valid message of {len} bytes reserved {peak}",
            m.name
        );
        // Below a kilobyte the constant part (the decoder's fixed structs) dominates.
        let ratio = peak as f64 / len as f64;
        if len >= 1024 && ratio > figures.valid_ratio {
            figures.valid_ratio = ratio;
            figures.valid_bytes = len;
        }
    }
}

fn requests(table: &mut BTreeMap<String, Figures>) {
    for (key, min, max) in kafscale::server::versions::SUPPORTED {
        let m = wire::request(*key as i16).expect("definition");
        // Produce v0-2 are refused before anything is read.
        let min = if *key == ApiKey::Produce { 3 } else { *min };
        let figures = table.entry(format!("request  {key:?}")).or_default();
        for version in min..=*max {
            let header = key.request_header_version(version);
            let frame = |body: &[u8]| {
                Bytes::from(sample::request_frame(*key as i16, version, header, body))
            };
            let decode = |bytes: Bytes| decode_frame(bytes).is_ok();
            hostile_variants(m, version, &frame, &decode, figures);
            dense_valid(m, version, &frame, &decode, figures);
        }
    }
}

/// The CLI's own decoding of a response of `key` (the APIs it calls).
fn cli_decode(key: ApiKey, frame: Bytes, version: i16) -> Option<bool> {
    fn ok<R: Decodable + HeaderVersion>(frame: Bytes, key: ApiKey, version: i16) -> bool {
        decode_response::<R>(frame, key, version).is_ok()
    }
    Some(match key {
        ApiKey::ApiVersions => ok::<ApiVersionsResponse>(frame, key, version),
        ApiKey::Metadata => ok::<MetadataResponse>(frame, key, version),
        ApiKey::CreateTopics => ok::<CreateTopicsResponse>(frame, key, version),
        ApiKey::DeleteTopics => ok::<DeleteTopicsResponse>(frame, key, version),
        ApiKey::DeleteGroups => ok::<DeleteGroupsResponse>(frame, key, version),
        ApiKey::DescribeCluster => ok::<DescribeClusterResponse>(frame, key, version),
        ApiKey::DescribeConfigs => ok::<DescribeConfigsResponse>(frame, key, version),
        ApiKey::DescribeGroups => ok::<DescribeGroupsResponse>(frame, key, version),
        ApiKey::Fetch => ok::<FetchResponse>(frame, key, version),
        ApiKey::FindCoordinator => ok::<FindCoordinatorResponse>(frame, key, version),
        ApiKey::IncrementalAlterConfigs => {
            ok::<IncrementalAlterConfigsResponse>(frame, key, version)
        }
        ApiKey::ListGroups => ok::<ListGroupsResponse>(frame, key, version),
        ApiKey::ListOffsets => ok::<ListOffsetsResponse>(frame, key, version),
        ApiKey::OffsetCommit => ok::<OffsetCommitResponse>(frame, key, version),
        ApiKey::OffsetFetch => ok::<OffsetFetchResponse>(frame, key, version),
        ApiKey::Produce => ok::<ProduceResponse>(frame, key, version),
        _ => return None,
    })
}

fn responses(table: &mut BTreeMap<String, Figures>) {
    for m in wire::all_responses() {
        let key = ApiKey::try_from(m.api_key).expect("api key");
        let range = key.valid_versions();
        let figures = table.entry(format!("response {key:?}")).or_default();
        for version in m.versions.lo.max(range.min)..=m.versions.hi.min(range.max) {
            let header = key.response_header_version(version);
            let frame = |body: &[u8]| Bytes::from(sample::response_frame(header, body));
            // Versions the crate cannot decode (it lists a few) are not the CLI's to call.
            let probe = sample::build(m, version, SHAPE, &mut |_| 0, None);
            if cli_decode(key, frame(&probe.bytes), version) != Some(true) {
                continue;
            }
            let decode = |bytes: Bytes| cli_decode(key, bytes, version) == Some(true);
            hostile_variants(m, version, &frame, &decode, figures);
            dense_valid(m, version, &frame, &decode, figures);
        }
    }
}

#[test]
fn decoding_reserves_a_bounded_multiple_of_the_frame() {
    let mut table = BTreeMap::new();
    requests(&mut table);
    responses(&mut table);
    println!(
        "{:<40} {:>9} {:>12} {:>12}",
        "message", "hostile", "peak bytes", "valid x size"
    );
    let mut hostile = 0;
    for (name, f) in &table {
        println!(
            "{name:<40} {:>9} {:>12} {:>9.1} ({} B)",
            f.hostile_frames, f.hostile_peak, f.valid_ratio, f.valid_bytes
        );
        hostile += f.hostile_frames;
    }
    println!("{hostile} hostile messages refused");
    assert!(hostile > 5_000, "only {hostile} hostile messages tried");
}
