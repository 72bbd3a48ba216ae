//! The record batch validator and iterator never panic on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kafscale_core::batch::validate(data);
    let _ = kafscale_core::batch::validate_single(data);
    let bytes = bytes::Bytes::copy_from_slice(data);
    for item in kafscale_core::batch::iter(&bytes) {
        let _ = item;
    }
});
