//! Reading why a store refused: the causes under an error (an HTTP or gRPC client's
//! "error sending request" or "transport error" says why only there), and whether they say
//! a TLS handshake was refused over certificates, which no retry changes.

use std::error::Error;

/// `text`, then each cause not already in it, `: `-separated.
pub(crate) fn with_causes(mut text: String, mut cause: Option<&(dyn Error + 'static)>) -> String {
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// Whether `text` (an error with its causes) says a TLS handshake was refused over
/// certificates, by either side, rather than by the network.
pub(crate) fn tls_refused(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    [
        "invalid peer certificate",
        "badcertificate",
        "certificaterequired",
        "unknownca",
        "unsupportedcertificate",
        "certificateunknown",
    ]
    .iter()
    .any(|m| text.contains(m))
}
