//! The flush object index decoder never panics and never returns an entry outside the object.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = kafscale_core::object_format::decode_index(data) {
        for e in entries {
            assert!(e.range().end <= data.len() as u64);
        }
    }
});
