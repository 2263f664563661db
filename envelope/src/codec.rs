//! Encoding and decoding: configuration, `encode*`, `decode*`, `peek_header`.

use xxhash_rust::xxh3::xxh3_64;

use crate::error::{DecodeError, EncodeError};
use crate::header::{
    Header, FLAG_AES_256_GCM, FLAG_INTEGER, FLAG_LZ4, FORMAT_VERSION, HEADER_LEN, MAX_FORMAT_LEN,
};
use crate::keys::Keyring;
use crate::sealed::{decode_sealed, encode_sealed, Aad, NonceSource, ENCRYPTION_OVERHEAD};

/// Default [`EnvelopeConfig::compress_threshold`]: 256 bytes. Below that, LZ4's per-block
/// overhead and the compression time rarely pay for themselves.
pub const DEFAULT_COMPRESS_THRESHOLD: usize = 256;

/// Default [`EnvelopeConfig::max_value_bytes`]: 1 MiB, the largest value a decoder will allocate
/// for. Every client reading a key must allow at least what its writers allow.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;

/// How values are encoded and which limits decoding enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnvelopeConfig {
    /// Values of at least this many bytes are LZ4-compressed when that makes them shorter; shorter
    /// values, and values LZ4 does not shrink, are stored raw. `0` tries every value,
    /// `usize::MAX` never compresses. Affects encoding only: decoding reads either form.
    pub compress_threshold: usize,
    /// The longest value, in original (uncompressed) bytes, that encoding accepts and decoding
    /// allocates for. Decoding checks the header's length against it before allocating, so a
    /// damaged or hostile envelope costs at most this much memory. The format itself caps it at
    /// 4 GiB - 1 ([`MAX_FORMAT_LEN`]).
    pub max_value_bytes: usize,
}

impl EnvelopeConfig {
    /// The defaults: compress from 256 bytes on, values up to 1 MiB.
    pub const DEFAULT: Self = Self {
        compress_threshold: DEFAULT_COMPRESS_THRESHOLD,
        max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
    };
}

impl Default for EnvelopeConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The longest envelope [`encode`] can produce for a value of `value_len` bytes:
/// `value_len + 16`. A value is only stored compressed when that is shorter than storing it raw,
/// so the envelope never exceeds the value plus the header. (While compressing, `encode_into`
/// briefly needs LZ4's worst case, about `1.1 * value_len + 36` bytes of capacity.)
#[must_use]
pub const fn encoded_len_bound(value_len: usize) -> usize {
    value_len.saturating_add(HEADER_LEN)
}

/// The longest envelope [`encode_into_with`] can produce for a value of `value_len` bytes with
/// encryption on: `value_len + 44` (header 16, nonce 12, tag 16).
#[must_use]
pub const fn encrypted_len_bound(value_len: usize) -> usize {
    value_len.saturating_add(ENCRYPTION_OVERHEAD)
}

/// Encodes `value` into a new envelope. See [`encode_into`].
///
/// # Errors
/// [`EncodeError::ValueTooLarge`] when `value` is longer than `cfg.max_value_bytes`,
/// [`EncodeError::OverFormatLimit`] when it is longer than 4 GiB - 1.
pub fn encode(cfg: &EnvelopeConfig, value: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_into(cfg, value, &mut out)?;
    Ok(out)
}

/// Encodes `value` into `out`, replacing its contents and reusing its capacity.
///
/// The value is LZ4-compressed when it is at least `cfg.compress_threshold` bytes long and the
/// compressed block is strictly shorter than the value; otherwise it is stored raw. On error `out`
/// is left empty.
///
/// # Errors
/// [`EncodeError::ValueTooLarge`] when `value` is longer than `cfg.max_value_bytes`,
/// [`EncodeError::OverFormatLimit`] when it is longer than 4 GiB - 1.
pub fn encode_into(
    cfg: &EnvelopeConfig,
    value: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    encode_impl(cfg, None, value, out, NonceSource::Random)
}

/// Encodes `value` into a new envelope, encrypted when `keys` is given. See
/// [`encode_into_with`].
///
/// # Errors
/// As [`encode_into_with`].
pub fn encode_with(
    cfg: &EnvelopeConfig,
    keys: Option<&Keyring>,
    aad: Aad<'_>,
    value: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_into_with(cfg, keys, aad, value, &mut out)?;
    Ok(out)
}

/// Encodes `value` into `out` like [`encode_into`]; with `keys`, the payload (raw or LZ4,
/// chosen as in [`encode_into`]) is then encrypted with AES-256-GCM under the keyring's current
/// tenant key, with a fresh random 96-bit nonce, bound to `aad` (the value's namespace and key):
/// flag bit 1 set, at most [`encrypted_len_bound`] bytes. Without `keys`, exactly
/// [`encode_into`]. On error `out` is left empty.
///
/// # Errors
/// Those of [`encode_into`]; [`EncodeError::Random`] when the OS RNG fails;
/// [`EncodeError::AadTooLong`] for a namespace over 255 bytes.
pub fn encode_into_with(
    cfg: &EnvelopeConfig,
    keys: Option<&Keyring>,
    aad: Aad<'_>,
    value: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    encode_impl(cfg, keys.map(|k| (k, aad)), value, out, NonceSource::Random)
}

/// [`encode_into_with`] with the caller's nonce: for golden vectors only (feature
/// `fixed-nonce`). Reusing a nonce under one key reveals the XOR of two plaintexts and lets
/// anyone forge tags: never call this outside tests.
///
/// # Errors
/// As [`encode_into_with`].
#[cfg(feature = "fixed-nonce")]
pub fn encode_into_with_fixed_nonce(
    cfg: &EnvelopeConfig,
    keys: &Keyring,
    aad: Aad<'_>,
    value: &[u8],
    nonce: [u8; 12],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    encode_impl(
        cfg,
        Some((keys, aad)),
        value,
        out,
        NonceSource::Fixed(nonce),
    )
}

fn encode_impl(
    cfg: &EnvelopeConfig,
    sealed: Option<(&Keyring, Aad<'_>)>,
    value: &[u8],
    out: &mut Vec<u8>,
    nonce: NonceSource,
) -> Result<(), EncodeError> {
    out.clear();
    let len = value.len();
    if len > cfg.max_value_bytes {
        return Err(EncodeError::ValueTooLarge {
            len,
            max: cfg.max_value_bytes,
        });
    }
    let Ok(original_len) = u32::try_from(len) else {
        return Err(EncodeError::OverFormatLimit { len });
    };
    if let Some((keys, aad)) = sealed {
        return encode_sealed(cfg, keys, aad, value, original_len, out, nonce);
    }
    let mut header = Header {
        version: FORMAT_VERSION,
        flags: 0,
        original_len,
        checksum: xxh3_64(value),
    };
    if len >= cfg.compress_threshold {
        // Compress straight behind the header; lz4_flex wants room for its worst case.
        out.resize(
            HEADER_LEN + lz4_flex::block::get_maximum_output_size(len),
            0,
        );
        // An error here (output too small) cannot happen with that size; treat it like "did not
        // shrink" and store raw, which is always correct.
        if let Ok(n) = lz4_flex::block::compress_into(value, &mut out[HEADER_LEN..]) {
            if n < len {
                out.truncate(HEADER_LEN + n);
                header.flags = FLAG_LZ4;
                out[..HEADER_LEN].copy_from_slice(&header.to_bytes());
                return Ok(());
            }
        }
        out.clear();
    }
    out.reserve(HEADER_LEN + len);
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(value);
    Ok(())
}

/// The envelope of an integer counter: the ASCII decimal of `value` (`-42`, `0`), raw, with
/// [`FLAG_INTEGER`]. At most 36 bytes.
#[must_use]
pub fn encode_integer(value: i64) -> Vec<u8> {
    let digits = value.to_string();
    let header = Header {
        version: FORMAT_VERSION,
        flags: FLAG_INTEGER,
        original_len: digits.len() as u32,
        checksum: xxh3_64(digits.as_bytes()),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + digits.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(digits.as_bytes());
    out
}

/// The i64 a decoded value spells in canonical ASCII decimal (what [`encode_integer`] writes:
/// an optional `-`, digits, no leading zero, no `+`, no spaces), `None` otherwise. Counters
/// accept any value that parses, flagged or not, so a value set as `b"41"` can be incremented.
#[must_use]
pub fn parse_integer(decoded: &[u8]) -> Option<i64> {
    let digits = decoded.strip_prefix(b"-").unwrap_or(decoded);
    let canonical = match digits {
        [] => false,
        [b'0'] => decoded.len() == 1,
        [first, ..] => *first != b'0' && digits.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(decoded).ok()?.parse().ok()
}

/// Reads and validates the header of an envelope (magic, version, flags) without decoding the
/// payload or checking any limit. Cheap: it looks at the first 16 bytes only.
///
/// # Errors
/// [`DecodeError::Truncated`], [`DecodeError::BadMagic`], [`DecodeError::UnsupportedVersion`],
/// [`DecodeError::UnknownFlags`], [`DecodeError::Encrypted`].
pub fn peek_header(bytes: &[u8]) -> Result<Header, DecodeError> {
    Header::parse(bytes)
}

/// Decodes an envelope into a new vector. See [`decode_into`].
///
/// # Errors
/// Every [`DecodeError`] variant; see [`decode_into`].
pub fn decode(cfg: &EnvelopeConfig, bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    decode_into(cfg, bytes, &mut out)?;
    Ok(out)
}

/// Decodes an envelope into `out`, replacing its contents and reusing its capacity.
///
/// Checks, in order: the header (as [`peek_header`]); the original length against
/// `cfg.max_value_bytes`, before anything is allocated; the payload's length (raw) or LZ4
/// decompression into a buffer of exactly the original length, which must be filled exactly; and
/// the xxHash3-64 checksum of the result. On error `out` is left empty.
///
/// # Errors
/// The header errors of [`peek_header`]; [`DecodeError::TooLarge`] when the original length is
/// over `cfg.max_value_bytes`; [`DecodeError::Decompress`], [`DecodeError::LengthMismatch`] or
/// [`DecodeError::LongerThanHeader`] for a damaged payload; [`DecodeError::ChecksumMismatch`]
/// when the decoded bytes are not the ones that were encoded.
pub fn decode_into(
    cfg: &EnvelopeConfig,
    bytes: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    out.clear();
    let result = decode_into_cleared(cfg, bytes, out);
    if result.is_err() {
        out.clear();
    }
    result
}

/// Decodes an envelope into a new vector, decrypting with `keys`. See [`decode_into_with`].
///
/// # Errors
/// As [`decode_into_with`].
pub fn decode_with(
    cfg: &EnvelopeConfig,
    keys: Option<&Keyring>,
    aad: Aad<'_>,
    bytes: &[u8],
) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    decode_into_with(cfg, keys, aad, bytes, &mut out)?;
    Ok(out)
}

/// Decodes an envelope, plaintext or encrypted, into `out` (replacing its contents). A
/// plaintext envelope decodes as in [`decode_into`] (refused with [`DecodeError::Plaintext`]
/// when `keys` requires encryption, unless it is an integer counter: counters are plaintext by
/// nature). An encrypted one needs `keys`, and is decrypted in this order, so that nothing is
/// returned or even looked at before it authenticates: the header checks of [`peek_header`]
/// (magic, version, flags); at least 44 bytes; the key id among the keyring's; the GCM tag over
/// header, nonce, ciphertext and `aad` (the namespace and key it was read under); then the
/// reserved field, the original length against `cfg.max_value_bytes`, and decompression. On
/// error `out` is left empty (and whatever was decrypted into it zeroed).
///
/// # Errors
/// Those of [`decode_into`]; [`DecodeError::Encrypted`] without `keys`;
/// [`DecodeError::Plaintext`]; the decryption failures ([`DecodeError::is_decrypt_failure`]):
/// [`DecodeError::SealedTruncated`], [`DecodeError::UnknownKeyId`],
/// [`DecodeError::Authentication`]; [`DecodeError::Reserved`].
pub fn decode_into_with(
    cfg: &EnvelopeConfig,
    keys: Option<&Keyring>,
    aad: Aad<'_>,
    bytes: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    out.clear();
    let flags = Header::check_prefix(bytes)?;
    let result = if flags & FLAG_AES_256_GCM != 0 {
        match keys {
            Some(keys) => decode_sealed(cfg, keys, aad, bytes, out),
            None => Err(DecodeError::Encrypted),
        }
    } else if keys.is_some_and(Keyring::requires_encryption) {
        // Counters are plaintext by nature, and exempt: but only a real one (the flag alone,
        // no compression, a payload that parses), so the flag cannot smuggle other plaintext
        // past `require_encryption`.
        match flags == FLAG_INTEGER {
            true => decode_into_cleared(cfg, bytes, out)
                .and_then(|()| parse_integer(out).map(|_| ()).ok_or(DecodeError::Plaintext)),
            false => Err(DecodeError::Plaintext),
        }
    } else {
        decode_into_cleared(cfg, bytes, out)
    };
    if result.is_err() {
        out.clear();
    }
    result
}

fn decode_into_cleared(
    cfg: &EnvelopeConfig,
    bytes: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let header = Header::parse(bytes)?;
    let payload = &bytes[HEADER_LEN..];
    // Lossless: usize is at least 32 bits on every target Rust supports for std.
    let len = header.original_len as usize;
    debug_assert!(len <= MAX_FORMAT_LEN);
    if len > cfg.max_value_bytes {
        return Err(DecodeError::TooLarge {
            len,
            max: cfg.max_value_bytes,
        });
    }
    if header.is_compressed() {
        // `out` was cleared, so this zero-fills all `len` bytes: decompression can never expose
        // what the buffer held before (the reused-buffer half of RUSTSEC-2026-0041).
        out.resize(len, 0);
        match lz4_flex::block::decompress_into(payload, out) {
            Ok(n) if n == len => {}
            Ok(n) => {
                return Err(DecodeError::LengthMismatch {
                    header_len: len,
                    decoded_len: n,
                })
            }
            Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }) => {
                return Err(DecodeError::LongerThanHeader { header_len: len })
            }
            Err(source) => return Err(DecodeError::Decompress { source }),
        }
    } else {
        if payload.len() != len {
            return Err(DecodeError::LengthMismatch {
                header_len: len,
                decoded_len: payload.len(),
            });
        }
        out.extend_from_slice(payload);
    }
    let actual = xxh3_64(out);
    if actual != header.checksum {
        return Err(DecodeError::ChecksumMismatch {
            expected: header.checksum,
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{FLAG_AES_256_GCM, MAGIC};

    const CFG: EnvelopeConfig = EnvelopeConfig::DEFAULT;

    fn compressible(len: usize) -> Vec<u8> {
        b"cachekit envelope test pattern; "
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect()
    }

    /// An envelope built by hand: any header, any payload.
    fn raw_envelope(flags: u8, original_len: u32, checksum: u64, payload: &[u8]) -> Vec<u8> {
        let h = Header {
            version: FORMAT_VERSION,
            flags,
            original_len,
            checksum,
        };
        let mut v = h.to_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    fn set_len(env: &mut [u8], len: u32) {
        env[4..8].copy_from_slice(&len.to_le_bytes());
    }

    #[test]
    fn round_trips_raw_and_compressed() {
        for value in [Vec::new(), b"hi".to_vec(), compressible(1024)] {
            let env = encode(&CFG, &value).unwrap();
            assert_eq!(decode(&CFG, &env).unwrap(), value);
            assert!(env.len() <= encoded_len_bound(value.len()));
        }
        let env = encode(&CFG, &compressible(1024)).unwrap();
        assert!(peek_header(&env).unwrap().is_compressed());
        assert!(
            env.len() < 200,
            "1 KiB of a repeated pattern compresses well"
        );
    }

    #[test]
    fn compresses_only_from_the_threshold_and_only_when_it_shrinks() {
        let cfg = EnvelopeConfig {
            compress_threshold: 100,
            ..CFG
        };
        let below = encode(&cfg, &compressible(99)).unwrap();
        assert!(!peek_header(&below).unwrap().is_compressed());
        assert_eq!(below.len(), HEADER_LEN + 99);
        let at = encode(&cfg, &compressible(100)).unwrap();
        assert!(peek_header(&at).unwrap().is_compressed());
        // Bytes with no repeats do not shrink: stored raw even above the threshold.
        let distinct: Vec<u8> = (0..=255).collect();
        let env = encode(&cfg, &distinct).unwrap();
        assert!(!peek_header(&env).unwrap().is_compressed());
        assert_eq!(&env[HEADER_LEN..], &distinct[..]);
    }

    #[test]
    fn buffers_are_replaced_not_appended() {
        let mut buf = vec![0xAA; 5000];
        encode_into(&CFG, b"abc", &mut buf).unwrap();
        assert_eq!(buf, encode(&CFG, b"abc").unwrap());
        let env = buf.clone();
        let mut out = vec![0x55; 5000];
        decode_into(&CFG, &env, &mut out).unwrap();
        assert_eq!(out, b"abc");
        let env = encode(&CFG, &compressible(600)).unwrap();
        decode_into(&CFG, &env, &mut out).unwrap();
        assert_eq!(out, compressible(600));
    }

    #[test]
    fn errors_leave_the_output_empty() {
        let mut out = vec![1, 2, 3];
        assert!(decode_into(&CFG, b"junk", &mut out).is_err());
        assert!(out.is_empty());
        let mut env = encode(&CFG, b"hello").unwrap();
        *env.last_mut().unwrap() ^= 1;
        out.extend_from_slice(b"stale");
        assert!(decode_into(&CFG, &env, &mut out).is_err());
        assert!(out.is_empty());
        let mut buf = vec![9; 10];
        let small = EnvelopeConfig {
            max_value_bytes: 4,
            ..CFG
        };
        assert!(encode_into(&small, b"hello", &mut buf).is_err());
        assert!(buf.is_empty());
    }

    #[test]
    fn encode_rejects_values_over_max_value_bytes() {
        let cfg = EnvelopeConfig {
            max_value_bytes: 10,
            ..CFG
        };
        assert!(encode(&cfg, &[0; 10]).is_ok());
        let err = encode(&cfg, &[0; 11]).unwrap_err();
        assert!(matches!(
            err,
            EncodeError::ValueTooLarge { len: 11, max: 10 }
        ));
    }

    #[test]
    fn truncated_header() {
        let env = encode(&CFG, b"hello").unwrap();
        for len in 0..HEADER_LEN {
            let err = decode(&CFG, &env[..len]).unwrap_err();
            assert!(
                matches!(err, DecodeError::Truncated { len: l } if l == len),
                "{err}"
            );
            assert!(matches!(
                peek_header(&env[..len]),
                Err(DecodeError::Truncated { .. })
            ));
        }
    }

    #[test]
    fn bad_magic() {
        let mut env = encode(&CFG, b"hello").unwrap();
        env[0] = b'{';
        let err = decode(&CFG, &env).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::BadMagic {
                    found: [b'{', 0x4B]
                }
            ),
            "{err}"
        );
        let mut env = encode(&CFG, b"hello").unwrap();
        env[1] ^= 0xFF;
        assert!(matches!(
            decode(&CFG, &env),
            Err(DecodeError::BadMagic { .. })
        ));
    }

    #[test]
    fn unknown_version() {
        for version in [0, 2, 0xFF] {
            let mut env = encode(&CFG, b"hello").unwrap();
            env[2] = version;
            let err = decode(&CFG, &env).unwrap_err();
            assert!(
                matches!(err, DecodeError::UnsupportedVersion { version: v } if v == version),
                "{err}"
            );
        }
    }

    #[test]
    fn integers_round_trip_and_only_canonical_decimals_parse() {
        for v in [0, 1, -1, 42, i64::MAX, i64::MIN] {
            let env = encode_integer(v);
            assert!(peek_header(&env).unwrap().is_integer());
            let decoded = decode(&CFG, &env).unwrap();
            assert_eq!(decoded, v.to_string().into_bytes());
            assert_eq!(parse_integer(&decoded), Some(v));
        }
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"01",
            b"-0",
            b"1.0",
            b"9223372036854775808",
            b"\x80",
        ] {
            assert_eq!(parse_integer(bad), None, "{bad:?}");
        }
        assert!(!peek_header(&encode(&CFG, b"1").unwrap())
            .unwrap()
            .is_integer());
    }

    #[test]
    fn unknown_flag() {
        for bit in 3..8 {
            let mut env = encode(&CFG, b"hello").unwrap();
            env[3] |= 1 << bit;
            let err = decode(&CFG, &env).unwrap_err();
            assert!(
                matches!(err, DecodeError::UnknownFlags { unknown, .. } if unknown == 1 << bit),
                "{err}"
            );
        }
        // Unknown bits win over the encryption bit: "upgrade" is the right advice for both.
        let mut env = encode(&CFG, b"hello").unwrap();
        env[3] = FLAG_AES_256_GCM | 0x80;
        assert!(matches!(
            decode(&CFG, &env),
            Err(DecodeError::UnknownFlags { unknown: 0x80, .. })
        ));
    }

    #[test]
    fn encrypted_flag_is_rejected_not_misread() {
        let mut env = encode(&CFG, b"hello").unwrap();
        env[3] |= FLAG_AES_256_GCM;
        assert!(matches!(decode(&CFG, &env), Err(DecodeError::Encrypted)));
        assert!(matches!(peek_header(&env), Err(DecodeError::Encrypted)));
    }

    #[test]
    fn length_over_limit_is_rejected_before_allocating() {
        // A 16-byte envelope claiming 4 GiB - 1 of LZ4 output: rejected from the header alone.
        let env = raw_envelope(FLAG_LZ4, u32::MAX, 0, &[]);
        let err = decode(&CFG, &env).unwrap_err();
        assert!(
            matches!(err, DecodeError::TooLarge { len, max } if len == MAX_FORMAT_LEN && max == CFG.max_value_bytes),
            "{err}"
        );
        let small = EnvelopeConfig {
            max_value_bytes: 4,
            ..CFG
        };
        let env = encode(&CFG, b"hello").unwrap();
        assert!(matches!(
            decode(&small, &env),
            Err(DecodeError::TooLarge { len: 5, max: 4 })
        ));
        // peek_header checks no limit.
        assert_eq!(peek_header(&env).unwrap().original_len, 5);
    }

    #[test]
    fn decompression_failure() {
        // Token 0xF0: 15+ literals follow, but the length continuation byte is missing.
        let env = raw_envelope(FLAG_LZ4, 100, 0, &[0xF0]);
        let err = decode(&CFG, &env).unwrap_err();
        assert!(matches!(err, DecodeError::Decompress { .. }), "{err}");
        // One literal, then a match with offset 0.
        let env = raw_envelope(FLAG_LZ4, 100, 0, &[0x10, b'a', 0, 0]);
        assert!(matches!(
            decode(&CFG, &env),
            Err(DecodeError::Decompress { .. })
        ));
        // A match reaching before the start of the output.
        let env = raw_envelope(FLAG_LZ4, 100, 0, &[0x10, b'a', 9, 0]);
        assert!(matches!(
            decode(&CFG, &env),
            Err(DecodeError::Decompress { .. })
        ));
    }

    #[test]
    fn length_mismatch() {
        // Raw payload shorter and longer than the header says.
        let mut env = encode(&CFG, b"hello").unwrap();
        set_len(&mut env, 6);
        assert!(matches!(
            decode(&CFG, &env),
            Err(DecodeError::LengthMismatch {
                header_len: 6,
                decoded_len: 5
            })
        ));
        set_len(&mut env, 4);
        assert!(matches!(
            decode(&CFG, &env),
            Err(DecodeError::LengthMismatch {
                header_len: 4,
                decoded_len: 5
            })
        ));
        // LZ4 payload that decompresses to less than the header says.
        let mut env = encode(&CFG, &compressible(1024)).unwrap();
        set_len(&mut env, 1030);
        let err = decode(&CFG, &env).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::LengthMismatch {
                    header_len: 1030,
                    decoded_len: 1024
                }
            ),
            "{err}"
        );
        // ... and to more: decompression stops at the header's length.
        set_len(&mut env, 1000);
        let err = decode(&CFG, &env).unwrap_err();
        assert!(
            matches!(err, DecodeError::LongerThanHeader { header_len: 1000 }),
            "{err}"
        );
    }

    #[test]
    fn checksum_mismatch_on_a_flipped_byte() {
        // A flipped raw payload byte.
        let mut env = encode(&CFG, b"hello").unwrap();
        env[HEADER_LEN] ^= 0x01;
        let err = decode(&CFG, &env).unwrap_err();
        assert!(matches!(err, DecodeError::ChecksumMismatch { .. }), "{err}");
        // A flipped checksum byte.
        let mut env = encode(&CFG, b"hello").unwrap();
        env[8] ^= 0x80;
        assert!(matches!(
            decode(&CFG, &env),
            Err(DecodeError::ChecksumMismatch { .. })
        ));
        // A flipped literal inside an LZ4 payload (the first sequence's literals follow its token).
        let mut env = encode(&CFG, &compressible(1024)).unwrap();
        assert!(peek_header(&env).unwrap().is_compressed());
        env[HEADER_LEN + 2] ^= 0x01;
        assert!(matches!(
            decode(&CFG, &env),
            Err(DecodeError::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn peek_header_reports_the_fields() {
        let value = compressible(1024);
        let env = encode(&CFG, &value).unwrap();
        let h = peek_header(&env).unwrap();
        assert_eq!(&env[..2], &MAGIC);
        assert_eq!(h.version, FORMAT_VERSION);
        assert_eq!(h.flags, FLAG_LZ4);
        assert_eq!(h.original_len, 1024);
        assert_eq!(h.checksum, xxh3_64(&value));
    }
}
