//! The cachekit value envelope.
//!
//! Every cachekit client (Rust, C through this library, the Redis fallback) encodes a value into
//! an envelope before it reaches the daemon, the shared segment or Redis, and decodes it after.
//! The daemon and the segment only ever store envelopes, opaque bytes to them.
//!
//! ```
//! use cachekit_envelope::{decode, encode, EnvelopeConfig};
//!
//! let cfg = EnvelopeConfig::default(); // compress from 256 bytes, values up to 1 MiB
//! let envelope = encode(&cfg, b"hello, cachekit")?;
//! assert_eq!(decode(&cfg, &envelope)?, b"hello, cachekit");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Format (version 1)
//!
//! A fixed 16-byte header, then the payload. Integers are little-endian.
//!
//! | offset | size | field          | contents                                                     |
//! |-------:|-----:|----------------|--------------------------------------------------------------|
//! |      0 |    2 | `magic`        | `F8 4B`; `0xF8` never starts UTF-8 text or a common framing   |
//! |      2 |    1 | `version`      | `1`                                                          |
//! |      3 |    1 | `flags`        | bit 0: payload is LZ4; bit 1: AES-256-GCM (below); bit 2: integer counter; 3–7: 0 |
//! |      4 |    4 | `original_len` | `u32`, length of the original value in bytes                 |
//! |      8 |    8 | `checksum`     | `u64`, xxHash3-64 (seed 0) of the original value             |
//! |     16 |    … | payload        | the value itself, or (bit 0) one LZ4 block decompressing to exactly `original_len` bytes |
//!
//! The per-value overhead is therefore 16 bytes; a value is stored compressed only when the LZ4
//! block is strictly shorter than the value, so an envelope is never longer than
//! `value.len() + 16` ([`encoded_len_bound`]). The payload runs to the end of the input: the
//! envelope carries no length of its own, the container (segment slot, socket frame, Redis string)
//! does. The LZ4 payload is a bare block (the LZ4 block format, no frame and no prepended size).
//!
//! Bit 2 ([`FLAG_INTEGER`]) marks an integer counter: the payload is the raw ASCII decimal of an
//! i64 ([`encode_integer`], [`parse_integer`]); it changes nothing else, so decoding ignores it
//! and bindings use it to hand back an integer.
//!
//! Decoders reject, with a typed [`DecodeError`], a wrong magic, any version but 1, any flag bit
//! but bits 0 and 2 (bit 1 gets [`DecodeError::Encrypted`], the others [`DecodeError::UnknownFlags`]), and
//! any payload that does not decode to exactly `original_len` bytes hashing to `checksum`. A new
//! flag, a new field or a different header therefore needs a new version, and so does anything
//! that changes the bytes of the golden vectors in `tests/golden/`.
//!
//! # Encrypted envelopes (flag bit 1)
//!
//! With a [`Keyring`] ([`encode_into_with`], [`decode_into_with`]) the payload (the raw value,
//! or the LZ4 block when bit 0 is set: compressed, then encrypted) is encrypted with AES-256-GCM:
//!
//! | offset | size | field | contents |
//! |---:|---:|---|---|
//! | 0 | 2 | `magic` | `F8 4B` |
//! | 2 | 1 | `version` | `1` |
//! | 3 | 1 | `flags` | bit 1 set; bit 0 if the plaintext payload is an LZ4 block |
//! | 4 | 4 | `original_len` | `u32`, the value's length before compression |
//! | 8 | 4 | `key_id` | `u32`, which tenant key encrypted it (see [`MasterKey::key_id`]) |
//! | 12 | 4 | reserved | `0`; refused otherwise |
//! | 16 | 12 | `nonce` | 96 random bits from the OS RNG, fresh per encryption |
//! | 28 | n | ciphertext | of the payload |
//! | 28+n | 16 | tag | the GCM tag |
//!
//! The associated data is the 16 header bytes, then `u8 len(namespace)`, the namespace,
//! `u32 len(key)` (LE), the key ([`Aad`]): the tag authenticates the header and binds the value
//! to where it is stored, so bytes copied to another key or namespace do not decrypt. The tag
//! replaces the xxh3 checksum, which would tell equal plaintexts apart. Overhead: 44 bytes
//! ([`ENCRYPTION_OVERHEAD`]). Keys are derived by HKDF-SHA256 from a 32-byte [`MasterKey`] per
//! tenant (see [`Keyring`] and the `keys` module's table). The decoder authenticates before it
//! looks at anything the tag covers (length, reserved field) and never returns bytes that did
//! not authenticate. Golden vectors: `tests/golden/encrypted.txt`. The AEAD is `ring`'s
//! (measured against RustCrypto `aes-gcm` in `benches/aead.rs`).

//! # Limits and why
//!
//! - **`max_value_bytes`** (default 1 MiB, [`DEFAULT_MAX_VALUE_BYTES`]): [`encode`] refuses longer
//!   values and [`decode`] checks the header's `original_len` against it *before allocating*, then
//!   decompresses into a buffer of exactly that length with `lz4_flex`'s safe decoder. A damaged or
//!   hostile envelope (anyone who can write to the Redis fallback can plant one) therefore costs at
//!   most `max_value_bytes` of memory: there is no decompression bomb. LZ4's own
//!   `decompress_size_prepended`, which trusts a size read from the input, is deliberately not
//!   used. Readers must allow at least what writers allow.
//! - **`original_len` is a `u32`**: values are at most 4 GiB - 1 ([`MAX_FORMAT_LEN`]) whatever
//!   `max_value_bytes` says; a cache value that size is a mistake anyway.
//! - **`compress_threshold`** (default 256 bytes, [`DEFAULT_COMPRESS_THRESHOLD`]): shorter values
//!   are stored raw. LZ4 compresses at roughly 0.5–1 GB/s and decompresses at 2.4–3.2 GB/s on this
//!   project's machines, and a short value rarely contains enough repetition to win back the
//!   block's token bytes.
//! - **Checksum**: xxHash3-64 of the original bytes (8–17 GB/s), checked after decoding. It detects
//!   damage and mix-ups, not tampering: it is not a MAC.
//!
//! # Errors
//!
//! One enum per operation: [`EncodeError`] and [`DecodeError`]. Each message names the limit
//! involved and says what to do, e.g. `decoded length 3 MiB is over max_value_bytes = 1 MiB; raise
//! max_value_bytes ...`. On error, the `_into` functions leave their output buffer empty.
//!
//! # Testing
//!
//! Unit tests cover every error path; `tests/roundtrip.rs` is a proptest round trip;
//! `tests/golden.rs` checks the checked-in vectors in `tests/golden/vectors.txt` in both
//! directions; `fuzz/` is a cargo-fuzz project whose `decode` target feeds arbitrary bytes to the
//! decoder (`cd envelope/fuzz && cargo fuzz run -s none decode`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod codec;
mod error;
mod header;
mod keys;
mod sealed;

#[cfg(feature = "fixed-nonce")]
pub use codec::encode_into_with_fixed_nonce;
pub use codec::{
    decode, decode_into, decode_into_with, decode_with, encode, encode_integer, encode_into,
    encode_into_with, encode_with, encoded_len_bound, encrypted_len_bound, parse_integer,
    peek_header, EnvelopeConfig, DEFAULT_COMPRESS_THRESHOLD, DEFAULT_MAX_VALUE_BYTES,
};
pub use error::{DecodeError, EncodeError};
pub use header::{
    Header, FLAG_AES_256_GCM, FLAG_INTEGER, FLAG_LZ4, FORMAT_VERSION, HEADER_LEN, KNOWN_FLAGS,
    MAGIC, MAX_FORMAT_LEN,
};
pub use keys::{KeyError, KeyHasher, Keyring, MasterKey, MASTER_KEY_LEN};
pub use sealed::{Aad, ENCRYPTION_OVERHEAD, SEALED_PREFIX_LEN, TAG_LEN};
