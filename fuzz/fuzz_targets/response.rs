//! The CLI's reading of a broker's answer: a bounds check, then the decoder, for every
//! response the CLI reads. The first two bytes pick the API and version.
#![no_main]
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Decodable;
use kafscale::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [api, version, rest @ ..] = data else {
        return;
    };
    let all = wire::all_responses();
    let m = &all[*api as usize % all.len()];
    let Ok(key) = ApiKey::try_from(m.api_key) else {
        return;
    };
    let version = m.versions.lo + (*version as i16 % (m.versions.hi - m.versions.lo + 1));
    let header = key.response_header_version(version);
    if wire::check_response(rest, m.api_key, version, header).is_ok() {
        let mut body = bytes::Bytes::copy_from_slice(rest);
        let _ = ResponseHeader::decode(&mut body, header);
        let _ = ResponseKind::decode(key, &mut body, version);
    }
});
