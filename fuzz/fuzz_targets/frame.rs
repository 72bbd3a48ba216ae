//! Any frame body decodes to a request or an error; it never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kafscale::server::dispatch::decode_frame(bytes::Bytes::copy_from_slice(data));
});
