//! Valid messages built from the definitions, with any one length prefix replaced by a
//! hostile value: the decode-bound tests and the fuzz targets build requests of every API and
//! version here. Choices come from a caller's function, so a seed or fuzz input drives them.

use super::schema::{Field, Message, Type};

/// How large the built message is.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Elements of an array: up to this many, or exactly this many when `dense`.
    pub max_elements: u32,
    /// Bytes of a string or bytes field: up to this many (none when `dense`).
    pub max_len: u32,
    /// Arrays full, strings and bytes empty, nothing null, no optional tagged fields: the
    /// most elements per byte a valid message can hold.
    pub dense: bool,
}

/// How a length prefix is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    I16,
    I32,
    /// An unsigned varint of length + 1 (or of a count or size as is).
    Varint,
}

impl Prefix {
    /// Values a hostile peer would put in a prefix of this kind: maxima, and negative
    /// lengths other than -1.
    pub fn hostile_values(self) -> &'static [i64] {
        match self {
            Prefix::I16 => &[i16::MAX as i64, -2, i16::MIN as i64],
            Prefix::I32 => &[i32::MAX as i64, -2, i32::MIN as i64, 1 << 28],
            Prefix::Varint => &[u32::MAX as i64, i32::MAX as i64, 1 << 28, 0x3fff],
        }
    }
}

/// One length prefix written into the message.
#[derive(Debug, Clone, Copy)]
pub struct PrefixAt {
    pub field: &'static str,
    pub kind: Prefix,
}

/// A built message and the length prefixes in it, in the order they were written.
#[derive(Debug, Clone)]
pub struct Sample {
    pub bytes: Vec<u8>,
    pub prefixes: Vec<PrefixAt>,
}

/// Replace the `index`-th length prefix by `value`; the bytes after it stay as built.
#[derive(Debug, Clone, Copy)]
pub struct Hostile {
    pub index: usize,
    pub value: i64,
}

struct Builder<'c> {
    choose: &'c mut dyn FnMut(u32) -> u32,
    shape: Shape,
    version: i16,
    flexible: bool,
    hostile: Option<Hostile>,
    out: Vec<u8>,
    prefixes: Vec<PrefixAt>,
    /// Inside a tagged field: decoders leave out tagged fields that hold their default, so
    /// values here are never null, empty, zero, -1 or false (what defaults are).
    in_tag: bool,
}

/// Builds a body of `message` in `version`. `choose(n)` returns a number below `n`.
pub fn build(
    message: &Message,
    version: i16,
    shape: Shape,
    choose: &mut dyn FnMut(u32) -> u32,
    hostile: Option<Hostile>,
) -> Sample {
    let mut b = Builder {
        choose,
        shape,
        version,
        flexible: message.flexible.contains(version),
        hostile,
        out: Vec::new(),
        prefixes: Vec::new(),
        in_tag: false,
    };
    b.fields(message.fields);
    Sample {
        bytes: b.out,
        prefixes: b.prefixes,
    }
}

/// A request frame (without its size prefix): a header of `header_version` with correlation
/// id 1 and client id "t", then `body`.
pub fn request_frame(api_key: i16, version: i16, header_version: i16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16);
    out.extend_from_slice(&api_key.to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    if header_version >= 1 {
        out.extend_from_slice(&1i16.to_be_bytes());
        out.push(b't');
    }
    if header_version >= 2 {
        out.push(0);
    }
    out.extend_from_slice(body);
    out
}

/// A response frame (without its size prefix): correlation id 1, then `body`.
pub fn response_frame(header_version: i16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&1i32.to_be_bytes());
    if header_version >= 1 {
        out.push(0);
    }
    out.extend_from_slice(body);
    out
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Builder<'_> {
    fn pick(&mut self, n: u32) -> u32 {
        if n == 0 {
            0
        } else {
            (self.choose)(n) % n
        }
    }

    /// Writes a length prefix holding `value`, or the hostile value if it is this one's turn.
    fn prefix(&mut self, field: &'static str, kind: Prefix, value: i64) {
        let index = self.prefixes.len();
        self.prefixes.push(PrefixAt { field, kind });
        let value = match self.hostile {
            Some(h) if h.index == index => h.value,
            _ => value,
        };
        match kind {
            Prefix::I16 => self.out.extend_from_slice(&(value as i16).to_be_bytes()),
            Prefix::I32 => self.out.extend_from_slice(&(value as i32).to_be_bytes()),
            Prefix::Varint => put_uvarint(&mut self.out, value as u32),
        }
    }

    /// A length (or null, -1) as a string (`wide` = false) or bytes/array prefix.
    fn length(&mut self, field: &'static str, wide: bool, len: i64) {
        if self.flexible {
            self.prefix(field, Prefix::Varint, len + 1);
        } else if wide {
            self.prefix(field, Prefix::I32, len);
        } else {
            self.prefix(field, Prefix::I16, len);
        }
    }

    fn null(&mut self, nullable: bool) -> bool {
        nullable && !self.shape.dense && self.pick(5) == 0
    }

    fn fields(&mut self, fields: &'static [Field]) {
        for field in fields {
            if field.tag.is_none() && field.versions.contains(self.version) {
                let nullable = field.nullable.contains(self.version);
                self.value(field.name, &field.ty, nullable);
            }
        }
        if !self.flexible {
            return;
        }
        let present: Vec<&'static Field> = fields
            .iter()
            .filter(|f| f.tag.is_some() && f.versions.contains(self.version))
            .filter(|_| !self.shape.dense)
            .collect();
        let present: Vec<&'static Field> =
            present.into_iter().filter(|_| self.pick(2) == 0).collect();
        self.prefix("tagged fields", Prefix::Varint, present.len() as i64);
        for field in present {
            put_uvarint(&mut self.out, field.tag.unwrap_or_default());
            // The size is known only once the value is built: build it apart, then insert.
            let size_index = self.prefixes.len();
            self.prefixes.push(PrefixAt {
                field: field.name,
                kind: Prefix::Varint,
            });
            let outer = std::mem::take(&mut self.out);
            let was_in_tag = std::mem::replace(&mut self.in_tag, true);
            self.value(field.name, &field.ty, false);
            self.in_tag = was_in_tag;
            let value = std::mem::replace(&mut self.out, outer);
            let size = match self.hostile {
                Some(h) if h.index == size_index => h.value as u32,
                _ => value.len() as u32,
            };
            put_uvarint(&mut self.out, size);
            self.out.extend_from_slice(&value);
        }
    }

    fn text(&mut self) -> Vec<u8> {
        if self.shape.dense {
            return Vec::new();
        }
        let len = self
            .pick(self.shape.max_len + 1)
            .max(u32::from(self.in_tag));
        (0..len).map(|_| b'a' + self.pick(26) as u8).collect()
    }

    /// A small number that is no default (0, -1) when inside a tagged field.
    fn number(&mut self, range: u32) -> u32 {
        if self.in_tag {
            1 + self.pick(100)
        } else {
            self.pick(range)
        }
    }

    fn value(&mut self, name: &'static str, ty: &'static Type, nullable: bool) {
        match ty {
            Type::I8 => {
                let v = self.number(256) as u8;
                self.out.push(v);
            }
            Type::Bool => {
                let v = if self.in_tag { 1 } else { self.pick(2) as u8 };
                self.out.push(v);
            }
            Type::I16 | Type::U16 => {
                let v = self.number(1 << 16) as u16;
                self.out.extend_from_slice(&v.to_be_bytes());
            }
            Type::I32 | Type::U32 => {
                let v = self.number(u32::MAX);
                self.out.extend_from_slice(&v.to_be_bytes());
            }
            Type::I64 => {
                let v = if self.in_tag {
                    u64::from(self.number(0))
                } else {
                    (u64::from(self.pick(u32::MAX)) << 32) | u64::from(self.pick(u32::MAX))
                };
                self.out.extend_from_slice(&v.to_be_bytes());
            }
            Type::F64 => {
                // Whole numbers: they survive a decode and re-encode bit for bit.
                let v = f64::from(self.number(1000));
                self.out.extend_from_slice(&v.to_be_bytes());
            }
            Type::Uuid => {
                for _ in 0..16 {
                    let v = self.pick(256) as u8;
                    self.out.push(v);
                }
            }
            Type::Str | Type::Bytes | Type::Records => {
                let wide = !matches!(ty, Type::Str);
                if self.null(nullable) {
                    self.length(name, wide, -1);
                } else {
                    let text = self.text();
                    self.length(name, wide, text.len() as i64);
                    self.out.extend_from_slice(&text);
                }
            }
            Type::Array(element) => {
                if self.null(nullable) {
                    self.length(name, true, -1);
                    return;
                }
                let count = if self.shape.dense {
                    self.shape.max_elements
                } else {
                    self.pick(self.shape.max_elements + 1)
                        .max(u32::from(self.in_tag))
                };
                self.length(name, true, i64::from(count));
                for _ in 0..count {
                    self.value(name, element, false);
                }
            }
            Type::Struct(fields) => {
                if nullable {
                    if self.null(true) {
                        self.out.push(0xff);
                        return;
                    }
                    self.out.push(1);
                }
                self.fields(fields);
            }
        }
    }
}
