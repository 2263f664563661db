//! Primitive field encodings shared by requests and replies (see "Field encodings" in the crate
//! documentation). Reading is bounds-checked against the body; writing checks the wire bounds.

use crate::error::{EncodeError, Field, ProtoError};
use crate::header::Kind;

/// Largest length a `bytes`/`str` length prefix can carry.
pub(crate) const WIRE_MAX_LEN: usize = u32::MAX as usize;
/// Largest count a `list` count prefix can carry.
pub(crate) const WIRE_MAX_COUNT: usize = u16::MAX as usize;

/// Fails unless `len <= limit`.
pub(crate) fn check_len(field: Field, len: usize, limit: usize) -> Result<(), ProtoError> {
    if len > limit {
        return Err(ProtoError::FieldTooLarge { field, len, limit });
    }
    Ok(())
}

/// Fails unless `count <= limit`.
pub(crate) fn check_count(field: Field, count: usize, limit: usize) -> Result<(), ProtoError> {
    if count > limit {
        return Err(ProtoError::TooManyItems {
            field,
            count,
            limit,
        });
    }
    Ok(())
}

/// A read position inside one complete message body.
pub(crate) struct Cursor<'a> {
    kind: Kind,
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(kind: Kind, body: &'a [u8]) -> Self {
        Cursor { kind, rest: body }
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    fn take(&mut self, needed: usize, field: &'static str) -> Result<&'a [u8], ProtoError> {
        match self.rest.split_at_checked(needed) {
            Some((head, tail)) => {
                self.rest = tail;
                Ok(head)
            }
            None => Err(ProtoError::Truncated {
                kind: self.kind,
                field,
                needed,
                remaining: self.rest.len(),
            }),
        }
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ProtoError> {
        let bytes = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProtoError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ProtoError> {
        self.array(field).map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ProtoError> {
        self.array(field).map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ProtoError> {
        self.array(field).map(u64::from_le_bytes)
    }

    /// A `bool`: one byte, 0 or 1.
    pub(crate) fn flag(&mut self, field: &'static str) -> Result<bool, ProtoError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(ProtoError::InvalidFlag {
                kind: self.kind,
                field,
                value,
            }),
        }
    }

    /// An `opt_u64`: a presence byte (0 or 1), then the u64 only when present.
    pub(crate) fn opt_u64(&mut self, field: &'static str) -> Result<Option<u64>, ProtoError> {
        if self.flag(field)? {
            self.u64(field).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A `bytes`: u32 length, checked against `limit` and then against the body, then the bytes.
    pub(crate) fn bytes(&mut self, field: Field, limit: usize) -> Result<&'a [u8], ProtoError> {
        let len = self.u32(field.name())?;
        // A u32 always fits in usize on the 32- and 64-bit targets this crate supports;
        // saturate rather than truncate anywhere else.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        check_len(field, len, limit)?;
        self.take(len, field.name())
    }

    /// A `str`: like `bytes`, and valid UTF-8.
    pub(crate) fn str(&mut self, field: Field, limit: usize) -> Result<&'a str, ProtoError> {
        let bytes = self.bytes(field, limit)?;
        std::str::from_utf8(bytes).map_err(|e| ProtoError::InvalidUtf8 {
            field,
            valid_up_to: e.valid_up_to(),
        })
    }

    /// A `list` count: u16, checked against `limit`. Returns the count and a capacity to
    /// reserve that the remaining body can actually fill (each item takes at least
    /// `min_item_bytes`), so a large count in a short body reserves nothing large.
    pub(crate) fn count(
        &mut self,
        field: Field,
        limit: usize,
        min_item_bytes: usize,
    ) -> Result<(usize, usize), ProtoError> {
        let count = usize::from(self.u16(field.name())?);
        check_count(field, count, limit)?;
        let fits = self.remaining() / min_item_bytes.max(1);
        Ok((count, count.min(fits)))
    }

    /// Ends decoding: the body must be used up exactly.
    pub(crate) fn finish(self) -> Result<(), ProtoError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::TrailingBytes {
                kind: self.kind,
                extra: self.rest.len(),
            })
        }
    }
}

pub(crate) fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_flag(out: &mut Vec<u8>, v: bool) {
    out.push(u8::from(v));
}

pub(crate) fn put_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => {
            out.push(1);
            put_u64(out, v);
        }
        None => out.push(0),
    }
}

/// Writes a `bytes`/`str`; `limit` is the fixed protocol limit, if any, else [`WIRE_MAX_LEN`].
pub(crate) fn put_bytes(
    out: &mut Vec<u8>,
    field: Field,
    bytes: &[u8],
    limit: usize,
) -> Result<(), EncodeError> {
    let limit = limit.min(WIRE_MAX_LEN);
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|_| bytes.len() <= limit)
        .ok_or(EncodeError::FieldTooLarge {
            field,
            len: bytes.len(),
            limit,
        })?;
    put_u32(out, len);
    out.extend_from_slice(bytes);
    Ok(())
}

/// Writes a `list` count; `limit` is the fixed protocol limit, if any, else [`WIRE_MAX_COUNT`].
pub(crate) fn put_count(
    out: &mut Vec<u8>,
    field: Field,
    count: usize,
    limit: usize,
) -> Result<(), EncodeError> {
    let limit = limit.min(WIRE_MAX_COUNT);
    let wire =
        u16::try_from(count)
            .ok()
            .filter(|_| count <= limit)
            .ok_or(EncodeError::TooManyItems {
                field,
                count,
                limit,
            })?;
    put_u16(out, wire);
    Ok(())
}

/// Encoded size of a `bytes`/`str` field.
pub(crate) fn bytes_len(len: usize) -> u64 {
    4 + len as u64
}

/// Encoded size of an `opt_u64` field.
pub(crate) fn opt_u64_len(v: Option<u64>) -> u64 {
    if v.is_some() {
        9
    } else {
        1
    }
}

/// Encoded size of a list of strings: the u16 count, then each `str`.
pub(crate) fn str_list_len(items: &[String]) -> u64 {
    2 + items.iter().map(|s| bytes_len(s.len())).sum::<u64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_integers() {
        let body = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
        let mut c = Cursor::new(Kind::Ping, &body);
        assert_eq!(c.u8("a"), Ok(1));
        assert_eq!(c.u16("b"), Ok(0x0302));
        assert_eq!(c.u32("c"), Ok(0x0706_0504));
        assert_eq!(c.u64("d"), Ok(0x0f0e_0d0c_0b0a_0908));
        assert_eq!(c.finish(), Ok(()));
    }

    #[test]
    fn truncation_names_the_field() {
        let mut c = Cursor::new(Kind::Pong, &[1, 2, 3]);
        assert_eq!(
            c.u64("epoch"),
            Err(ProtoError::Truncated {
                kind: Kind::Pong,
                field: "epoch",
                needed: 8,
                remaining: 3
            })
        );
    }

    #[test]
    fn limit_is_checked_before_the_body() {
        // Announces 5 bytes with only 1 present: over a limit of 4, the limit error wins.
        let body = [5, 0, 0, 0, b'x'];
        let mut c = Cursor::new(Kind::Fetch, &body);
        assert_eq!(
            c.bytes(Field::Key, 4),
            Err(ProtoError::FieldTooLarge {
                field: Field::Key,
                len: 5,
                limit: 4
            })
        );
        let mut c = Cursor::new(Kind::Fetch, &body);
        assert!(matches!(
            c.bytes(Field::Key, 8),
            Err(ProtoError::Truncated {
                needed: 5,
                remaining: 1,
                ..
            })
        ));
    }

    #[test]
    fn count_capacity_is_bounded_by_the_body() {
        let body = [0xff, 0xff, 0, 0];
        let mut c = Cursor::new(Kind::StatsReply, &body);
        assert_eq!(c.count(Field::Stats, usize::MAX, 4), Ok((65535, 0)));
    }

    #[test]
    fn put_bytes_enforces_the_fixed_limit() {
        let mut out = Vec::new();
        assert_eq!(
            put_bytes(&mut out, Field::ClientName, &[0; 3], 2),
            Err(EncodeError::FieldTooLarge {
                field: Field::ClientName,
                len: 3,
                limit: 2
            })
        );
        assert!(out.is_empty());
        assert_eq!(
            put_count(&mut out, Field::Tags, 70_000, usize::MAX),
            Err(EncodeError::TooManyItems {
                field: Field::Tags,
                count: 70_000,
                limit: 65_535
            })
        );
    }
}
