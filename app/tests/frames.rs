//! The frame decoder is total: arbitrary bytes give a request or an error, never a panic.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use kafscale::server::dispatch::decode_frame;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_frames_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_frame(Bytes::from(data));
    }

    #[test]
    fn valid_headers_with_random_bodies_never_panic(
        key in prop::sample::select(vec![0i16, 1, 2, 3, 18, 19, 20]),
        version in 0i16..20,
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut frame = Vec::new();
        frame.extend_from_slice(&key.to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&1i32.to_be_bytes());
        frame.extend_from_slice(&body);
        let _ = decode_frame(Bytes::from(frame));
    }
}
