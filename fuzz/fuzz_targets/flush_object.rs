//! The flush object index decoder never panics and never returns an entry outside the
//! object; nor does the decoder of an object's tail (index and footer, as takeover reads it).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = kafscale_core::object_format::decode_index(data) {
        for e in index.entries {
            assert!(e.range().end <= data.len() as u64);
        }
    }
    let _ = kafscale_core::object_format::decode_index_tail(data);
});
