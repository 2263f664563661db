//! Error types, one per operation: [`EncodeError`] for `encode*`, [`DecodeError`] for `decode*`
//! and `peek_header`.
//!
//! Every message says what went wrong, names the limit involved, and says what to do.

use std::fmt;

use crate::header::{FLAG_AES_256_GCM, FORMAT_VERSION, HEADER_LEN, KNOWN_FLAGS, MAGIC};

/// Why a value could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The value is longer than `max_value_bytes`, so no reader with the same configuration would
    /// accept it.
    #[error(
        "value is {}, over max_value_bytes = {}; raise max_value_bytes (on every client: readers \
         reject longer values) or store a smaller value",
        Size(*.len),
        Size(*.max)
    )]
    ValueTooLarge {
        /// Length of the value, in bytes.
        len: usize,
        /// The configured `max_value_bytes`.
        max: usize,
    },

    /// The value does not fit the format's 32-bit length field (only reachable when
    /// `max_value_bytes` is set above 4 GiB - 1).
    #[error(
        "value is {}, over the envelope format's limit of 4294967295 bytes (4 GiB - 1, a u32 \
         length field); split the value, and keep max_value_bytes below 4 GiB",
        Size(*.len)
    )]
    OverFormatLimit {
        /// Length of the value, in bytes.
        len: usize,
    },

    /// The operating system's random number generator failed to give a nonce.
    #[error(
        "the operating system's random number generator (getrandom) failed, so no nonce could \
         be drawn and the value was not encrypted; check that /dev/urandom and the getrandom \
         system call are available to this process (seccomp, containers)"
    )]
    Random,

    /// The namespace is too long for the associated data's one-byte length (255 bytes).
    #[error(
        "namespace is {namespace_len} bytes, over the 255 an encrypted envelope can bind; use a \
         shorter namespace (the daemon allows 127 bytes)"
    )]
    AadTooLong {
        /// Length of the namespace, in bytes.
        namespace_len: usize,
    },
}

/// Why bytes could not be decoded into a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is shorter than the fixed header.
    #[error(
        "envelope is {len} bytes, shorter than the {HEADER_LEN}-byte header; the stored value was \
         cut off or was not written by a cachekit client: delete the key and refill it"
    )]
    Truncated {
        /// Length of the input, in bytes.
        len: usize,
    },

    /// The input does not start with the envelope magic, so it was not written by a cachekit client.
    #[error(
        "not a cachekit envelope: starts with {:02x} {:02x}, expected {:02x} {:02x}; another \
         application writes this key (give cachekit its own namespace or Redis database) or the \
         value is damaged",
        .found[0], .found[1], MAGIC[0], MAGIC[1]
    )]
    BadMagic {
        /// The first two bytes of the input.
        found: [u8; 2],
    },

    /// The envelope has a format version this build cannot read.
    #[error(
        "envelope format version {version} is not supported (this build reads version \
         {FORMAT_VERSION}); upgrade cachekit on this client to match the writer"
    )]
    UnsupportedVersion {
        /// The version byte found in the header.
        version: u8,
    },

    /// The flags byte sets bits this build does not know, so the payload cannot be interpreted.
    #[error(
        "envelope flags {flags:#04x} set unknown bits {unknown:#04x} (this build knows \
         {KNOWN_FLAGS:#04x} and {FLAG_AES_256_GCM:#04x}); the value was written by a newer client: \
         upgrade cachekit on this client"
    )]
    UnknownFlags {
        /// The whole flags byte.
        flags: u8,
        /// The bits of `flags` this build does not know.
        unknown: u8,
    },

    /// The value is AES-256-GCM encrypted (flag bit 1) and this client has no key configured.
    #[error(
        "value is AES-256-GCM encrypted and this client has no encryption key; configure the \
         writers' master key (ClientOptions::encryption, or CACHEKIT_MASTER_KEY / \
         CACHEKIT_MASTER_KEY_FILE) and the same tenant on this client"
    )]
    Encrypted,

    /// This client requires encryption and the value is a plaintext envelope.
    #[error(
        "value is not encrypted and this client requires encryption (require_encryption); a \
         client without a key wrote it: give that writer the key, or delete the key, or turn \
         require_encryption off to accept plaintext values"
    )]
    Plaintext,

    /// An encrypted envelope is shorter than its header, nonce and tag (44 bytes).
    #[error(
        "encrypted envelope is {len} bytes, shorter than the 44 bytes of header, nonce and tag; \
         the stored value was cut off or tampered with: delete the key and refill it"
    )]
    SealedTruncated {
        /// Length of the input, in bytes.
        len: usize,
    },

    /// The envelope's key id is none of this client's keys.
    #[error(
        "value is encrypted with key id {found:08x}, which none of this client's keys has (it \
         has {}); the writer used another master key or tenant: configure the same master key \
         and tenant (add an old master key to previous_keys after a rotation), or the key id \
         was tampered with",
        KeyIds(.known)
    )]
    UnknownKeyId {
        /// The key id in the envelope.
        found: u32,
        /// This client's key ids for the tenant, the current one first.
        known: Vec<u32>,
    },

    /// The GCM tag did not verify: a wrong key, a tampered byte, or a ciphertext moved to another
    /// key or namespace. Nothing was decrypted into the output.
    #[error(
        "decryption failed: the value does not authenticate under this client's key for this \
         key and namespace (a wrong master key or tenant, a tampered byte, or a value copied \
         from another key or namespace); nothing was returned: delete the key and refill it, \
         or configure the writers' master key and tenant"
    )]
    Authentication,

    /// An authenticated encrypted envelope's reserved field is not 0: a newer writer.
    #[error(
        "encrypted envelope's reserved field is {value:#x}, not 0; a newer client wrote it: \
         upgrade cachekit on this client"
    )]
    Reserved {
        /// The reserved field's value.
        value: u32,
    },

    /// The header's original length is over `max_value_bytes`; nothing was allocated.
    #[error(
        "decoded length {} is over max_value_bytes = {}; raise max_value_bytes (it must be at \
         least the writers' limit) or delete the key",
        Size(*.len),
        Size(*.max)
    )]
    TooLarge {
        /// The original length claimed by the header, in bytes.
        len: usize,
        /// The configured `max_value_bytes`.
        max: usize,
    },

    /// The LZ4 payload is malformed.
    #[error(
        "LZ4 payload is corrupt ({source}); the stored value is damaged: delete the key and \
         refill it"
    )]
    Decompress {
        /// The LZ4 decoder's description of the problem.
        #[source]
        source: lz4_flex::block::DecompressError,
    },

    /// The payload decodes to fewer or more bytes than the header's original length.
    #[error(
        "payload decodes to {decoded_len} bytes but the header says {header_len}; the stored \
         value is damaged: delete the key and refill it"
    )]
    LengthMismatch {
        /// The original length claimed by the header, in bytes.
        header_len: usize,
        /// The length the payload actually has (raw) or decompresses to (LZ4), in bytes.
        decoded_len: usize,
    },

    /// The LZ4 payload would decompress past the header's original length; decompression stopped
    /// at that bound.
    #[error(
        "LZ4 payload decompresses to more than the {header_len} bytes the header says (stopped \
         there); the stored value is damaged: delete the key and refill it"
    )]
    LongerThanHeader {
        /// The original length claimed by the header, in bytes.
        header_len: usize,
    },

    /// The decoded bytes do not hash to the header's xxHash3-64 checksum.
    #[error(
        "checksum mismatch: header says xxh3 {expected:016x}, decoded bytes hash to \
         {actual:016x}; the stored value is damaged: delete the key and refill it"
    )]
    ChecksumMismatch {
        /// The checksum stored in the header.
        expected: u64,
        /// The checksum of the decoded bytes.
        actual: u64,
    },
}

impl DecodeError {
    /// Whether this is a decryption failure: the tag did not verify, no key of this client has
    /// the envelope's key id, or the encrypted envelope is cut short. A wrong key, a tampered
    /// byte and a moved ciphertext all end here, never in garbage or a miss.
    #[must_use]
    pub fn is_decrypt_failure(&self) -> bool {
        matches!(
            self,
            DecodeError::Authentication
                | DecodeError::UnknownKeyId { .. }
                | DecodeError::SealedTruncated { .. }
        )
    }
}

struct KeyIds<'a>(&'a [u32]);

impl fmt::Display for KeyIds<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{id:08x}")?;
        }
        Ok(())
    }
}

/// Formats a byte count for messages: `1 MiB`, `3 KiB`, `1048577 bytes (1.0 MiB)`, `300 bytes`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Size(pub(crate) usize);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KIB: usize = 1 << 10;
        const MIB: usize = 1 << 20;
        const GIB: usize = 1 << 30;
        let n = self.0;
        for (unit, name) in [(GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
            if n >= unit && n.is_multiple_of(unit) {
                return write!(f, "{} {name}", n / unit);
            }
        }
        for (unit, name) in [(GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
            if n >= unit {
                // Precision loss is fine: the exact count is printed first.
                #[allow(clippy::cast_precision_loss)]
                let approx = n as f64 / unit as f64;
                return write!(f, "{n} bytes ({approx:.1} {name})");
            }
        }
        write!(f, "{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_the_limits_people_configure() {
        assert_eq!(Size(0).to_string(), "0 bytes");
        assert_eq!(Size(300).to_string(), "300 bytes");
        assert_eq!(Size(1024).to_string(), "1 KiB");
        assert_eq!(Size(3 << 20).to_string(), "3 MiB");
        assert_eq!(Size((1 << 20) + 1).to_string(), "1048577 bytes (1.0 MiB)");
        assert_eq!(Size(1536).to_string(), "1536 bytes (1.5 KiB)");
    }

    #[test]
    fn messages_name_the_limit_and_the_remedy() {
        let e = DecodeError::TooLarge {
            len: 3 << 20,
            max: 1 << 20,
        };
        let msg = e.to_string();
        assert!(
            msg.starts_with("decoded length 3 MiB is over max_value_bytes = 1 MiB; raise"),
            "{msg}"
        );
        let e = EncodeError::ValueTooLarge {
            len: 3 << 20,
            max: 1 << 20,
        };
        assert!(e
            .to_string()
            .starts_with("value is 3 MiB, over max_value_bytes = 1 MiB; raise max_value_bytes"));
        let e = DecodeError::UnknownFlags {
            flags: 0x85,
            unknown: 0x84,
        };
        assert!(e.to_string().contains("unknown bits 0x84"), "{e}");
    }
}
