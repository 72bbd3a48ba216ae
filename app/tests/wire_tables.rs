//! The message tables the bounds checker walks are held to the kafka-protocol decoders: for
//! every request and response definition and every version both know, random valid messages
//! built from the table pass the check, decode with the crate, consume every byte and encode
//! back to the same bytes. A field missing from a table, in the wrong place or of the wrong
//! type, or a wrong version range, shows up here as a decode error or different bytes.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use kafscale::wire::{self, sample, schema::Message};

/// A small deterministic generator (xorshift), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u32 % n.max(1)
    }
}

const SHAPE: sample::Shape = sample::Shape {
    max_elements: 3,
    max_len: 6,
    dense: false,
};
const SEEDS: u64 = 40;

/// The versions of `m` the crate's decoder accepts: its range for the API, minus the versions
/// whose decoder refuses (the crate lists some it cannot decode).
fn crate_versions(m: &Message) -> Vec<i16> {
    let Ok(key) = ApiKey::try_from(m.api_key) else {
        return Vec::new();
    };
    let range = key.valid_versions();
    (m.versions.lo.max(range.min)..=m.versions.hi.min(range.max)).collect()
}

fn unsupported(e: &anyhow::Error) -> bool {
    e.to_string().contains("version not supported")
}

fn check(
    kind: &str,
    m: &Message,
    version: i16,
    bytes: &[u8],
    decoded: anyhow::Result<Vec<u8>>,
) -> bool {
    match decoded {
        Ok(encoded) => {
            assert_eq!(
                encoded, bytes,
                "{kind} {} v{version}: the crate encodes the decoded message differently",
                m.name
            );
            true
        }
        Err(e) if unsupported(&e) => false,
        Err(e) => panic!(
            "{kind} {} v{version}: the crate refuses a message built from the table: {e}",
            m.name
        ),
    }
}

#[test]
fn request_tables_agree_with_the_decoders() {
    let mut tried = 0;
    for m in wire::all_requests() {
        let key = ApiKey::try_from(m.api_key).expect("known api key");
        for version in crate_versions(m) {
            for seed in 0..SEEDS {
                let mut rng = Rng::new(seed + 1);
                let s = sample::build(m, version, SHAPE, &mut |n| rng.below(n), None);
                let header = key.request_header_version(version);
                let frame = sample::request_frame(m.api_key, version, header, &s.bytes);
                wire::check_request(&frame, m.api_key, version, header)
                    .unwrap_or_else(|e| panic!("valid {} v{version} refused: {e}", m.name));
                let mut buf = Bytes::copy_from_slice(&s.bytes);
                let decoded = RequestKind::decode(key, &mut buf, version).and_then(|r| {
                    anyhow::ensure!(buf.is_empty(), "{} bytes left over", buf.len());
                    let mut out = BytesMut::new();
                    r.encode(&mut out, version)?;
                    Ok(out.to_vec())
                });
                if !check("request", m, version, &s.bytes, decoded) {
                    break;
                }
                tried += 1;
            }
        }
    }
    println!("{tried} requests round-tripped");
    assert!(tried > 1000, "only {tried} requests tried");
}

#[test]
fn response_tables_agree_with_the_decoders() {
    let mut tried = 0;
    for m in wire::all_responses() {
        let key = ApiKey::try_from(m.api_key).expect("known api key");
        for version in crate_versions(m) {
            for seed in 0..SEEDS {
                let mut rng = Rng::new(seed + 7);
                let s = sample::build(m, version, SHAPE, &mut |n| rng.below(n), None);
                let header = key.response_header_version(version);
                let frame = sample::response_frame(header, &s.bytes);
                wire::check_response(&frame, m.api_key, version, header)
                    .unwrap_or_else(|e| panic!("valid {} v{version} refused: {e}", m.name));
                let mut buf = Bytes::copy_from_slice(&s.bytes);
                let decoded = ResponseKind::decode(key, &mut buf, version).and_then(|r| {
                    anyhow::ensure!(buf.is_empty(), "{} bytes left over", buf.len());
                    let mut out = BytesMut::new();
                    r.encode(&mut out, version)?;
                    Ok(out.to_vec())
                });
                if !check("response", m, version, &s.bytes, decoded) {
                    break;
                }
                tried += 1;
            }
        }
    }
    println!("{tried} responses round-tripped");
    assert!(tried > 500, "only {tried} responses tried");
}

fn round_trip<T: Decodable + Encodable>(bytes: &[u8], version: i16) -> anyhow::Result<Vec<u8>> {
    let mut buf = Bytes::copy_from_slice(bytes);
    let v = T::decode(&mut buf, version)?;
    anyhow::ensure!(buf.is_empty(), "{} bytes left over", buf.len());
    let mut out = BytesMut::new();
    v.encode(&mut out, version)?;
    Ok(out.to_vec())
}

#[test]
fn data_tables_agree_with_the_decoders() {
    for which in [
        wire::Data::ConsumerProtocolSubscription,
        wire::Data::ConsumerProtocolAssignment,
    ] {
        let m = wire::data(which);
        for version in m.versions.lo..=m.versions.hi {
            for seed in 0..SEEDS {
                let mut rng = Rng::new(seed + 3);
                let s = sample::build(m, version, SHAPE, &mut |n| rng.below(n), None);
                wire::check_data(which, version, &s.bytes)
                    .unwrap_or_else(|e| panic!("valid {} v{version} refused: {e}", m.name));
                let decoded = match which {
                    wire::Data::ConsumerProtocolSubscription => {
                        round_trip::<ConsumerProtocolSubscription>(&s.bytes, version)
                    }
                    wire::Data::ConsumerProtocolAssignment => {
                        round_trip::<ConsumerProtocolAssignment>(&s.bytes, version)
                    }
                };
                assert!(check("data", m, version, &s.bytes, decoded));
            }
        }
    }
}

/// Every API the broker advertises has a request definition covering the advertised versions
/// (Produce v0-2 are advertised for old clients and refused before any decoding).
#[test]
fn every_advertised_api_has_a_definition() {
    for (key, min, max) in kafscale::server::versions::SUPPORTED {
        let m = wire::request(*key as i16).unwrap_or_else(|| panic!("no definition of {key:?}"));
        let min = if *key == ApiKey::Produce { 3 } else { *min };
        assert!(
            m.versions.lo <= min && *max <= m.versions.hi,
            "{key:?} {min}-{max} advertised, {}-{} defined",
            m.versions.lo,
            m.versions.hi
        );
    }
}

/// The frames of the report that aborted the broker: Metadata v4 and v12, Produce v9 and
/// JoinGroup v5, each claiming 2^31 - 1 elements (or the compact maximum) in a few bytes.
#[test]
fn the_reported_frames_fail_cleanly() {
    let mut metadata_v4 = vec![0, 3, 0, 4, 0, 0, 0, 1, 0, 4];
    metadata_v4.extend_from_slice(b"kcat");
    metadata_v4.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff, 1]);
    let mut metadata_v12 = vec![0, 3, 0, 12, 0, 0, 0, 1, 0, 4];
    metadata_v12.extend_from_slice(b"kcat");
    metadata_v12.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 1, 0]);
    let mut produce_v9 = vec![0, 0, 0, 9, 0, 0, 0, 1, 0, 4];
    produce_v9.extend_from_slice(b"kcat");
    produce_v9.extend_from_slice(&[0, 0, 0xff, 0xff, 0, 0, 0x75, 0x30]);
    produce_v9.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let mut join_v5 = vec![0, 11, 0, 5, 0, 0, 0, 1, 0, 4];
    join_v5.extend_from_slice(b"kcat");
    join_v5.extend_from_slice(&[
        0, 1, b'g', 0, 0, 0x17, 0x70, 0, 0, 0x75, 0x30, 0, 0, 0xff, 0xff,
    ]);
    join_v5.extend_from_slice(&[0, 8]);
    join_v5.extend_from_slice(b"consumer");
    join_v5.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
    for frame in [metadata_v4, metadata_v12, produce_v9, join_v5] {
        let len = frame.len();
        let err =
            kafscale::server::dispatch::decode_frame(Bytes::from(frame)).expect_err("refused");
        assert!(err.to_string().contains("malformed request"), "{err}");
        assert!(len < 64);
    }
}
