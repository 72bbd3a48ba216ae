//! Records inside a batch: core's reader on raw bytes, and core's batch unpacker
//! (decompression with its cap, then records) on a batch whose header is valid. Neither may
//! panic or allocate what a count or length claims beyond the bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [count, rest @ ..] = data else {
        return;
    };
    for r in kafscale_core::records::iter(rest, i32::from(*count) * 1_000_000) {
        match r {
            Ok(r) => {
                let _ = r.headers.iter().count();
            }
            Err(_) => break,
        }
    }
    let bytes = bytes::Bytes::copy_from_slice(rest);
    let _ = kafscale_core::unpack::read_batch(&bytes);
});
