//! The walk: reads a message the way the kafka-protocol decoder will, field by field, and
//! checks that every length and count fits in the bytes that remain, without allocating.
//!
//! The walk follows exactly the decoder's path through the bytes: the same fields in the same
//! versions, compact or classic lengths as the version says, known tagged fields read as
//! their type and required to fill the size their tag announces (the decoder reads them
//! without looking at the size, so a mismatch would put the two at different positions).
//! Every count the decoder will size a vector by has therefore been checked to be at most the
//! number of bytes after it, as Kafka's own generated readers check it.

use super::schema::{Field, Message, Type};
use super::WireError;

/// The bytes of one message, a position in them, and the version being read.
pub(super) struct Walk<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The end of the region being read: the message, or a tagged field inside it.
    end: usize,
    version: i16,
    flexible: bool,
    message: &'static str,
    /// Array elements read so far: what the decoder will build one struct or value each for.
    elements: usize,
}

/// Fields of this many levels deep exist in no message; a deeper walk means a broken table.
const MAX_DEPTH: usize = 16;

impl<'a> Walk<'a> {
    pub(super) fn new(buf: &'a [u8], message: &Message, version: i16) -> Walk<'a> {
        Walk {
            buf,
            pos: 0,
            end: buf.len(),
            version,
            flexible: message.flexible.contains(version),
            message: message.name,
            elements: 0,
        }
    }

    /// Array elements read so far.
    pub(super) fn elements(&self) -> usize {
        self.elements
    }

    /// Where the walk stands: the bytes read so far.
    pub(super) fn position(&self) -> usize {
        self.pos
    }

    pub(super) fn skip_to(&mut self, pos: usize) {
        self.pos = pos;
    }

    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    fn error(&self, field: &str, reason: String) -> WireError {
        WireError {
            message: self.message,
            version: self.version,
            field: field.to_owned(),
            at: self.pos,
            reason,
        }
    }

    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], WireError> {
        if n > self.remaining() {
            return Err(self.error(
                field,
                format!("needs {n} bytes, {} remain", self.remaining()),
            ));
        }
        let at = self.pos;
        self.pos += n;
        Ok(&self.buf[at..at + n])
    }

    fn i8(&mut self, field: &str) -> Result<i8, WireError> {
        let b = self.take(1, field)?;
        Ok(i8::from_be_bytes([b[0]]))
    }

    fn i16(&mut self, field: &str) -> Result<i16, WireError> {
        let b = self.take(2, field)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, field: &str) -> Result<i32, WireError> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An unsigned varint of at most 32 bits. The decoder stops after five bytes and drops
    /// bits beyond 32; both are refused here, so that a value read here is the value it reads.
    pub(super) fn uvarint(&mut self, field: &str) -> Result<u32, WireError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.take(1, field)?[0];
            if i == 4 && b > 0x0f {
                return Err(self.error(field, "varint longer than 32 bits".to_owned()));
            }
            value |= u32::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(self.error(field, "varint longer than 32 bits".to_owned()))
    }

    /// The fields of a struct (or a whole message) in this version, then its tagged fields.
    pub(super) fn fields(&mut self, fields: &[Field], depth: usize) -> Result<(), WireError> {
        if depth > MAX_DEPTH {
            return Err(self.error("", "message nests too deep".to_owned()));
        }
        for field in fields {
            if field.tag.is_none() && field.versions.contains(self.version) {
                self.value(field.name, &field.ty, self.nullable(field), depth)?;
            }
        }
        if self.flexible {
            self.tagged_fields(fields, depth)?;
        }
        Ok(())
    }

    /// The tagged-field section: a count, then (tag, size, value) each.
    pub(super) fn tagged_fields(
        &mut self,
        fields: &[Field],
        depth: usize,
    ) -> Result<(), WireError> {
        let count = self.uvarint("tagged fields")?;
        for _ in 0..count {
            // Each entry reads at least two bytes, so this loop ends with the bytes.
            let tag = self.uvarint("tag")?;
            let size = self.uvarint("tagged field size")? as usize;
            if size > self.remaining() {
                return Err(self.error(
                    "tagged field",
                    format!("tag {tag} of {size} bytes, {} remain", self.remaining()),
                ));
            }
            let known = fields.iter().find(|f| f.tag == Some(tag));
            match known {
                None => self.pos += size,
                Some(field) if !field.versions.contains(self.version) => {
                    return Err(self.error(field.name, format!("tag {tag} is not in this version")));
                }
                Some(field) => {
                    let end = self.pos + size;
                    let outer = std::mem::replace(&mut self.end, end);
                    let read = self.value(field.name, &field.ty, self.nullable(field), depth);
                    self.end = outer;
                    read?;
                    if self.pos != end {
                        return Err(self.error(
                            field.name,
                            format!(
                                "tagged field of {size} bytes holds a value of a different size"
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn nullable(&self, field: &Field) -> bool {
        field.nullable.contains(self.version)
    }

    /// A length prefix of a string (`wide` = false) or of bytes or an array (`wide` = true):
    /// `None` for null, else a length already checked against the bytes that remain.
    fn length(
        &mut self,
        name: &str,
        wide: bool,
        nullable: bool,
    ) -> Result<Option<usize>, WireError> {
        let len: i64 = if self.flexible {
            i64::from(self.uvarint(name)?) - 1
        } else if wide {
            i64::from(self.i32(name)?)
        } else {
            i64::from(self.i16(name)?)
        };
        if len == -1 {
            if nullable {
                return Ok(None);
            }
            return Err(self.error(name, "null where the field is not nullable".to_owned()));
        }
        if len < 0 {
            return Err(self.error(name, format!("negative length {len}")));
        }
        if len as u64 > self.remaining() as u64 {
            return Err(self.error(
                name,
                format!(
                    "length {len} exceeds the {} bytes that remain",
                    self.remaining()
                ),
            ));
        }
        Ok(Some(len as usize))
    }

    fn value(
        &mut self,
        name: &str,
        ty: &Type,
        nullable: bool,
        depth: usize,
    ) -> Result<(), WireError> {
        match ty {
            Type::I8 | Type::Bool => self.take(1, name).map(drop),
            Type::I16 | Type::U16 => self.take(2, name).map(drop),
            Type::I32 | Type::U32 => self.take(4, name).map(drop),
            Type::I64 | Type::F64 => self.take(8, name).map(drop),
            Type::Uuid => self.take(16, name).map(drop),
            Type::Str => match self.length(name, false, nullable)? {
                Some(len) => {
                    let text = self.take(len, name)?;
                    // The decoder refuses invalid UTF-8 too; refusing it here keeps the two
                    // walks on the same path for the rest of the message.
                    std::str::from_utf8(text)
                        .map(drop)
                        .map_err(|_| self.error(name, "string is not UTF-8".to_owned()))
                }
                None => Ok(()),
            },
            Type::Bytes | Type::Records => match self.length(name, true, nullable)? {
                Some(len) => self.take(len, name).map(drop),
                None => Ok(()),
            },
            Type::Array(element) => {
                let Some(count) = self.length(name, true, nullable)? else {
                    return Ok(());
                };
                // `length` checked count <= remaining: Kafka's own rule for collections. The
                // walk below then checks that every element is really there.
                self.elements += count;
                for _ in 0..count {
                    self.value(name, element, false, depth + 1)?;
                }
                Ok(())
            }
            Type::Struct(fields) => {
                if nullable && self.i8(name)? != 1 {
                    return Ok(());
                }
                self.fields(fields, depth + 1)
            }
        }
    }
}
