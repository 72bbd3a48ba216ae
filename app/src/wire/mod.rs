//! Bounds checks of Kafka messages before they are decoded.
//!
//! The kafka-protocol decoders size a vector by the count a message claims before reading
//! its elements, so 27 bytes claiming 2^31 topics make them ask for 154 GB, and a failed
//! allocation aborts the process. Every message the broker or the CLI decodes from outside
//! is therefore walked first against its definition (the tables in `requests.rs`,
//! `responses.rs`, `data.rs`), on the decoder's own path through the bytes, checking that
//! each length and count fits in what remains. Only a message that passes is decoded; its
//! decoding then allocates at most a bounded multiple of its size (per API figures in
//! `app/tests/decode_bounds.rs`).
//!
//! ```
//! use kafscale::wire;
//! // Metadata v4 claiming 0x7fffffff topics in a 19-byte body.
//! let mut frame = vec![0, 3, 0, 4, 0, 0, 0, 1, 0xff, 0xff];
//! frame.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff, 1]);
//! let err = wire::check_request(&frame, 3, 4, 1).unwrap_err();
//! assert!(err.to_string().contains("Topics"));
//! ```

#[rustfmt::skip]
mod data;
#[rustfmt::skip]
mod requests;
#[rustfmt::skip]
mod responses;
pub mod sample;
pub mod schema;
mod walk;

use schema::{Message, Type, UP};
use walk::Walk;

/// Why a message was refused: the message, the field, the byte position and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} v{version}: {field} at byte {at}: {reason}")]
pub struct WireError {
    pub message: &'static str,
    pub version: i16,
    pub field: String,
    pub at: usize,
    pub reason: String,
}

impl WireError {
    fn unknown(message: &'static str, version: i16) -> WireError {
        WireError {
            message,
            version,
            field: String::new(),
            at: 0,
            reason: "no definition of this message and version".to_owned(),
        }
    }
}

/// Data structures carried inside other messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data {
    ConsumerProtocolSubscription,
    ConsumerProtocolAssignment,
}

/// The request body definition of an API.
pub fn request(api_key: i16) -> Option<&'static Message> {
    requests::REQUESTS.iter().find(|m| m.api_key == api_key)
}

/// The response body definition of an API the CLI calls.
pub fn response(api_key: i16) -> Option<&'static Message> {
    responses::RESPONSES.iter().find(|m| m.api_key == api_key)
}

pub fn data(which: Data) -> &'static Message {
    match which {
        Data::ConsumerProtocolSubscription => &data::CONSUMER_PROTOCOL_SUBSCRIPTION,
        Data::ConsumerProtocolAssignment => &data::CONSUMER_PROTOCOL_ASSIGNMENT,
    }
}

/// The request header: api key, api version and correlation id; the client id from v1 (a
/// classic nullable string even in flexible versions); tagged fields from v2.
const REQUEST_HEADER: Message = schema::message(
    -1,
    "RequestHeader",
    (0, 2),
    schema::NONE,
    &[
        schema::f("RequestApiKey", 0, UP, Type::I16),
        schema::f("RequestApiVersion", 0, UP, Type::I16),
        schema::f("CorrelationId", 0, UP, Type::I32),
        schema::f("ClientId", 1, UP, Type::Str).nullable(1, UP),
    ],
);

/// The response header: the correlation id; tagged fields from v1.
const RESPONSE_HEADER: Message = schema::message(
    -1,
    "ResponseHeader",
    (0, 1),
    schema::NONE,
    &[schema::f("CorrelationId", 0, UP, Type::I32)],
);

/// What a message that passed holds: how many array elements (each becomes a struct or value
/// of the decoded message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub elements: usize,
}

impl Checked {
    /// A generous estimate of the memory its decoding takes: the decoders' element structs
    /// are at most a little over a hundred bytes each.
    pub fn decoded_bytes(&self, frame_len: usize) -> usize {
        frame_len.saturating_add(self.elements.saturating_mul(128))
    }
}

/// Checks a request frame (without its size prefix): the header of `header_version`, then
/// the body of `api_key` in `version`.
pub fn check_request(
    frame: &[u8],
    api_key: i16,
    version: i16,
    header_version: i16,
) -> Result<Checked, WireError> {
    let body = request(api_key).ok_or_else(|| WireError::unknown("request", version))?;
    check_framed(frame, &REQUEST_HEADER, header_version, 2, body, version)
}

/// Checks a response frame (without its size prefix): the header, then the body.
pub fn check_response(
    frame: &[u8],
    api_key: i16,
    version: i16,
    header_version: i16,
) -> Result<Checked, WireError> {
    let body = response(api_key).ok_or_else(|| WireError::unknown("response", version))?;
    check_framed(frame, &RESPONSE_HEADER, header_version, 1, body, version)
}

/// Checks a data structure of `version` (its version prefix already taken off).
pub fn check_data(which: Data, version: i16, bytes: &[u8]) -> Result<Checked, WireError> {
    check_body(bytes, data(which), version, 0)
}

fn check_framed(
    frame: &[u8],
    header: &Message,
    header_version: i16,
    tagged_from: i16,
    body: &Message,
    version: i16,
) -> Result<Checked, WireError> {
    if !header.versions.contains(header_version) {
        return Err(WireError::unknown(header.name, header_version));
    }
    let mut walk = Walk::new(frame, header, header_version);
    walk.fields(header.fields, 0)?;
    if header_version >= tagged_from {
        walk.tagged_fields(&[], 0)?;
    }
    check_body(frame, body, version, walk.position())
}

/// Walks `message` from `start`.
fn check_body(
    buf: &[u8],
    message: &Message,
    version: i16,
    start: usize,
) -> Result<Checked, WireError> {
    if !message.versions.contains(version) {
        return Err(WireError::unknown(message.name, version));
    }
    let mut walk = Walk::new(buf, message, version);
    walk.skip_to(start);
    walk.fields(message.fields, 0)?;
    Ok(Checked {
        elements: walk.elements(),
    })
}

/// Every message definition, for the tests that hold the tables to the decoders.
pub fn all_requests() -> &'static [Message] {
    requests::REQUESTS
}

pub fn all_responses() -> &'static [Message] {
    responses::RESPONSES
}

pub fn all_data() -> &'static [Message] {
    data::DATA
}

#[cfg(test)]
mod tests {
    use super::schema::Field;
    use super::*;

    fn fields_are_ordered(fields: &[Field], path: &str) {
        let mut tags = Vec::new();
        for f in fields {
            assert!(
                f.versions.lo <= f.versions.hi,
                "{path}.{}: empty versions",
                f.name
            );
            if let Some(tag) = f.tag {
                assert!(!tags.contains(&tag), "{path}.{}: tag {tag} twice", f.name);
                tags.push(tag);
            }
            let inner = match f.ty {
                Type::Array(Type::Struct(inner)) => Some(*inner),
                Type::Struct(inner) => Some(inner),
                _ => None,
            };
            if let Some(inner) = inner {
                fields_are_ordered(inner, &format!("{path}.{}", f.name));
            }
        }
    }

    #[test]
    fn tables_are_well_formed() {
        for m in all_requests()
            .iter()
            .chain(all_responses())
            .chain(all_data())
        {
            assert!(m.versions.lo <= m.versions.hi, "{}", m.name);
            fields_are_ordered(m.fields, m.name);
        }
        for list in [all_requests(), all_responses()] {
            for (i, m) in list.iter().enumerate() {
                assert!(
                    list[..i].iter().all(|o| o.api_key != m.api_key),
                    "{} twice",
                    m.name
                );
            }
        }
        assert_eq!(
            data(Data::ConsumerProtocolAssignment).name,
            "ConsumerProtocolAssignment"
        );
    }
}
