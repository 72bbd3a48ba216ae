//! The shape of Kafka messages as the bounds checker sees it: fields in wire order with the
//! versions they exist in, their type, the versions in which they may be null, and the tag of
//! tagged fields. This is the protocol specification's message definitions written as data;
//! the tables themselves live in `requests.rs`, `responses.rs` and `data.rs`.

/// A version range, both ends included; `lo > hi` is the empty range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub lo: i16,
    pub hi: i16,
}

impl Versions {
    pub const NONE: Versions = Versions { lo: 1, hi: 0 };

    pub const fn contains(self, version: i16) -> bool {
        self.lo <= version && version <= self.hi
    }
}

/// "Up to the newest version", the `N+` of the specification.
pub(super) const UP: i16 = i16::MAX;

/// What a field holds on the wire.
#[derive(Debug, Clone, Copy)]
pub enum Type {
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    F64,
    Bool,
    Uuid,
    /// A string: an i16 length (a varint length + 1 in flexible versions), then UTF-8.
    Str,
    /// Bytes: an i32 length (a varint length + 1 in flexible versions), then the bytes.
    Bytes,
    /// A record set: bytes, as the kafka-protocol decoders read it.
    Records,
    /// An i32 count (a varint count + 1 in flexible versions), then that many elements.
    Array(&'static Type),
    /// Fields in order, then (in flexible versions) the tagged fields. A nullable struct has
    /// a leading i8, 1 when present.
    Struct(&'static [Field]),
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub ty: Type,
    pub versions: Versions,
    pub nullable: Versions,
    /// Tagged fields appear only in the tagged-field section of flexible versions.
    pub tag: Option<u32>,
}

impl Field {
    pub(super) const fn nullable(mut self, lo: i16, hi: i16) -> Field {
        self.nullable = Versions { lo, hi };
        self
    }

    pub(super) const fn tagged(mut self, tag: u32) -> Field {
        self.tag = Some(tag);
        self
    }
}

/// A field that exists in versions `lo..=hi` (`hi` = [`UP`] for "and later").
pub(super) const fn f(name: &'static str, lo: i16, hi: i16, ty: Type) -> Field {
    Field {
        name,
        ty,
        versions: Versions { lo, hi },
        nullable: Versions::NONE,
        tag: None,
    }
}

/// A top-level message: a request or response body of one API, or a data structure carried
/// inside another message (consumer protocol subscriptions and assignments).
#[derive(Debug, Clone, Copy)]
pub struct Message {
    /// The API key; -1 for data structures.
    pub api_key: i16,
    pub name: &'static str,
    pub versions: Versions,
    /// Versions using compact lengths and tagged fields.
    pub flexible: Versions,
    pub fields: &'static [Field],
}

pub(super) const NONE: (i16, i16) = (1, 0);

pub(super) const fn message(
    api_key: i16,
    name: &'static str,
    versions: (i16, i16),
    flexible: (i16, i16),
    fields: &'static [Field],
) -> Message {
    Message {
        api_key,
        name,
        versions: Versions {
            lo: versions.0,
            hi: versions.1,
        },
        flexible: Versions {
            lo: flexible.0,
            hi: flexible.1,
        },
        fields,
    }
}
