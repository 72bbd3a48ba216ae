//! Request decoding per API: the first two bytes pick an advertised API and one of its
//! versions, the rest is either the body as is or, when the third byte is odd, choices that
//! build a valid body from the message table with one length prefix made hostile. Decoding
//! must end in a request or an error; a length the bytes cannot hold must never be allocated
//! (run with `-malloc_limit_mb`, as `fuzz/run.sh` does, so that such an allocation is a crash).
#![no_main]
use kafscale::server::{dispatch::decode_frame, versions::SUPPORTED};
use kafscale::wire::{self, sample};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [api, version, mode, rest @ ..] = data else {
        return;
    };
    let (key, min, max) = SUPPORTED[*api as usize % SUPPORTED.len()];
    let version = min + (*version as i16 % (max - min + 1));
    let header = key.request_header_version(version);
    let body = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let Some(m) = wire::request(key as i16) else {
            return;
        };
        if !m.versions.contains(version) {
            return;
        }
        let mut choices = rest.iter().copied();
        let mut choose = |n: u32| u32::from(choices.next().unwrap_or(0)) % n.max(1);
        let shape = sample::Shape {
            max_elements: 4,
            max_len: 8,
            dense: false,
        };
        let base = sample::build(m, version, shape, &mut choose, None);
        let hostile = (!base.prefixes.is_empty()).then(|| {
            let index = choose(base.prefixes.len() as u32) as usize;
            let values = base.prefixes[index].kind.hostile_values();
            sample::Hostile {
                index,
                value: values[choose(values.len() as u32) as usize],
            }
        });
        let mut choices = rest.iter().copied();
        let mut again = |n: u32| u32::from(choices.next().unwrap_or(0)) % n.max(1);
        sample::build(m, version, shape, &mut again, hostile).bytes
    };
    let frame = sample::request_frame(key as i16, version, header, &body);
    let _ = decode_frame(bytes::Bytes::from(frame));
});
