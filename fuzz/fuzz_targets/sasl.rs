//! What a client sends during a SASL exchange (SCRAM's first and final messages) and the
//! DER of a client certificate's subject: each is parsed to a value or an error, never a
//! panic.
#![no_main]
use kafscale::security::{principal, scram};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first message, then (after a 0xff byte, if any) the final one.
    let (first, last) = match data.iter().position(|b| *b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    for hash in [scram::Hash::Sha256, scram::Hash::Sha512] {
        if let Ok(parsed) = scram::parse_client_first(first) {
            let known = scram::credential(hash, &[7u8; 64][..hash.output_len()], b"salt", 4096);
            let (_, pending) = scram::server_first(hash, parsed, Some(known), b"secret");
            let _ = pending.finish(last);
        }
    }
    let _ = principal::certificate_subject(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(rules) = kafscale::security::PrincipalRules::parse(text) {
            let _ = rules.apply("CN=a,OU=b,O=c");
        }
    }
});
