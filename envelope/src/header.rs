//! The fixed 16-byte header: constants, parsing and writing.
//!
//! Offsets follow the table in the crate documentation; change neither without bumping
//! [`FORMAT_VERSION`] and regenerating the golden vectors.

use crate::error::DecodeError;

/// The two bytes every envelope starts with.
///
/// `0xF8` never occurs in UTF-8 text and starts none of the usual framings (JSON, pickle, gzip,
/// zstd, LZ4 frames), so a value written by something other than a cachekit client is recognised.
pub const MAGIC: [u8; 2] = [0xF8, 0x4B];

/// The envelope format version this crate writes and the only one it reads.
pub const FORMAT_VERSION: u8 = 1;

/// Length of the fixed header that precedes the payload, in bytes.
pub const HEADER_LEN: usize = 16;

/// Flag bit 0: the payload is an LZ4 block (no frame, no prepended size) that decompresses to
/// exactly `original_len` bytes.
pub const FLAG_LZ4: u8 = 1 << 0;

/// Flag bit 1: the payload is AES-256-GCM encrypted (after compression, when bit 0 is set too);
/// the header's bytes 8..16 hold the key id and a reserved zero, and a nonce precedes the
/// payload, a tag follows it (see the crate documentation). Decoded by
/// [`decode_into_with`](crate::decode_into_with) with a [`Keyring`](crate::Keyring); the plain
/// decoders refuse it with [`DecodeError::Encrypted`].
pub const FLAG_AES_256_GCM: u8 = 1 << 1;

/// Flag bit 2: the value is an integer counter: the payload (never compressed) is the ASCII
/// decimal of an i64, as [`encode_integer`](crate::encode_integer) writes it. Written by the
/// daemon's INCR and by clients storing integers, so every binding reads counters as integers.
pub const FLAG_INTEGER: u8 = 1 << 2;

/// Every flag bit a plaintext envelope may carry (bit 1, encryption, is handled on its own).
pub const KNOWN_FLAGS: u8 = FLAG_LZ4 | FLAG_INTEGER;

/// The largest original length the format can carry: the length field is a `u32`.
pub const MAX_FORMAT_LEN: usize = u32::MAX as usize;

// Byte offsets of each field, as in the crate-level table.
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 2;
const OFF_FLAGS: usize = 3;
const OFF_LEN: usize = 4;
const OFF_CHECKSUM: usize = 8;

// The header is exactly its fields, packed, with the checksum 8-byte aligned.
const _: () = assert!(OFF_CHECKSUM + 8 == HEADER_LEN);
const _: () = assert!(OFF_CHECKSUM.is_multiple_of(8));
const _: () = assert!(KNOWN_FLAGS & FLAG_AES_256_GCM == 0);

/// The decoded fixed header of an envelope, as returned by [`peek_header`](crate::peek_header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Format version; always [`FORMAT_VERSION`] for a header this crate returns.
    pub version: u8,
    /// Flag bits ([`FLAG_LZ4`]); only bits in [`KNOWN_FLAGS`] are ever set in a returned header.
    pub flags: u8,
    /// Length of the original (uncompressed) value, in bytes.
    pub original_len: u32,
    /// xxHash3-64 (seed 0) of the original value.
    pub checksum: u64,
}

impl Header {
    /// Whether the payload is LZ4-compressed.
    #[must_use]
    pub const fn is_compressed(&self) -> bool {
        self.flags & FLAG_LZ4 != 0
    }

    /// Whether the value is an integer counter ([`FLAG_INTEGER`]).
    #[must_use]
    pub const fn is_integer(&self) -> bool {
        self.flags & FLAG_INTEGER != 0
    }

    /// Serialises the header in the on-wire layout.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[OFF_MAGIC..OFF_VERSION].copy_from_slice(&MAGIC);
        b[OFF_VERSION] = self.version;
        b[OFF_FLAGS] = self.flags;
        b[OFF_LEN..OFF_CHECKSUM].copy_from_slice(&self.original_len.to_le_bytes());
        b[OFF_CHECKSUM..HEADER_LEN].copy_from_slice(&self.checksum.to_le_bytes());
        b
    }

    /// Checks the parts of the header every envelope shares (length, magic, version, flags) and
    /// returns the flags byte; encrypted envelopes (flag bit 1) pass.
    pub(crate) fn check_prefix(bytes: &[u8]) -> Result<u8, DecodeError> {
        let Some(h) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(DecodeError::Truncated { len: bytes.len() });
        };
        let magic = [h[OFF_MAGIC], h[OFF_MAGIC + 1]];
        if magic != MAGIC {
            return Err(DecodeError::BadMagic { found: magic });
        }
        let version = h[OFF_VERSION];
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion { version });
        }
        let flags = h[OFF_FLAGS];
        // Unknown bits first: they mean a newer writer, whatever else is set.
        let unknown = flags & !(KNOWN_FLAGS | FLAG_AES_256_GCM);
        if unknown != 0 {
            return Err(DecodeError::UnknownFlags { flags, unknown });
        }
        Ok(flags)
    }

    /// Parses and validates the header of a plaintext envelope at the start of `bytes` (magic,
    /// version, flags), without looking at the payload or at any configured limit. An encrypted
    /// envelope is [`DecodeError::Encrypted`]: its bytes 8..16 are no checksum.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        let flags = Self::check_prefix(bytes)?;
        if flags & FLAG_AES_256_GCM != 0 {
            return Err(DecodeError::Encrypted);
        }
        let h = &bytes[..HEADER_LEN];
        let version = h[OFF_VERSION];
        let mut len = [0u8; 4];
        len.copy_from_slice(&h[OFF_LEN..OFF_CHECKSUM]);
        let mut sum = [0u8; 8];
        sum.copy_from_slice(&h[OFF_CHECKSUM..HEADER_LEN]);
        Ok(Self {
            version,
            flags,
            original_len: u32::from_le_bytes(len),
            checksum: u64::from_le_bytes(sum),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_documented_table() {
        let h = Header {
            version: FORMAT_VERSION,
            flags: FLAG_LZ4,
            original_len: 0x0403_0201,
            checksum: 0x0807_0605_0403_0201,
        };
        assert_eq!(
            h.to_bytes(),
            [0xF8, 0x4B, 1, 1, 1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(Header::parse(&h.to_bytes()).unwrap(), h);
    }
}
