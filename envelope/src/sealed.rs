//! Encrypted envelopes (flag bit 1, AES-256-GCM): encoding and the authenticate-first decoder.
//!
//! Layout (integers little-endian; the crate documentation has the full table):
//! `F8 4B | 01 | flags | original_len u32 | key_id u32 | 0u32 | nonce[12] | ciphertext | tag[16]`.
//! The associated data is the 16 header bytes, `u8 len(namespace)`, the namespace,
//! `u32 len(key)`, the key: a ciphertext copied to another key or namespace fails
//! authentication.

use std::cell::RefCell;

use ring::aead::{Aad as RingAad, Nonce, Tag, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{DecodeError, EncodeError};
use crate::header::{FLAG_AES_256_GCM, FLAG_LZ4, FORMAT_VERSION, HEADER_LEN, MAGIC};
use crate::keys::{Keyring, TenantKey};
use crate::EnvelopeConfig;

/// Length of the GCM tag at the end of an encrypted envelope.
pub const TAG_LEN: usize = 16;
/// Offset of the ciphertext: the 16-byte header, then the 12-byte nonce.
pub const SEALED_PREFIX_LEN: usize = HEADER_LEN + NONCE_LEN;
/// Bytes an encrypted envelope adds to its payload: header 16 + nonce 12 + tag 16 = 44.
pub const ENCRYPTION_OVERHEAD: usize = SEALED_PREFIX_LEN + TAG_LEN;

const OFF_KEY_ID: usize = 8;
const OFF_RESERVED: usize = 12;

// Room for the associated data of any namespace (≤ 255 bytes, one length byte) and a key of up
// to 4 KiB (the table's key limit) without touching the heap.
const AAD_STACK: usize = HEADER_LEN + 1 + 255 + 4 + 4096;

/// What an encrypted value is bound to besides its header: the namespace and the key it is
/// stored under (the key as sent to the daemon, after hashing when key hashing is on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aad<'a> {
    namespace: &'a [u8],
    key: &'a [u8],
}

impl<'a> Aad<'a> {
    /// The binding to `key` in `namespace`.
    #[must_use]
    pub fn new(namespace: &'a str, key: &'a [u8]) -> Self {
        Self {
            namespace: namespace.as_bytes(),
            key,
        }
    }

    /// Runs `f` with the associated data of an envelope whose header is `header`.
    fn with_bytes<R>(&self, header: &[u8], f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let ns_len = u8::try_from(self.namespace.len()).ok()?;
        let key_len = u32::try_from(self.key.len()).ok()?;
        let total = HEADER_LEN + 1 + self.namespace.len() + 4 + self.key.len();
        let fill = |buf: &mut [u8]| {
            let (h, rest) = buf.split_at_mut(HEADER_LEN);
            h.copy_from_slice(&header[..HEADER_LEN]);
            rest[0] = ns_len;
            let rest = &mut rest[1..];
            let (ns, rest) = rest.split_at_mut(self.namespace.len());
            ns.copy_from_slice(self.namespace);
            let (kl, k) = rest.split_at_mut(4);
            kl.copy_from_slice(&key_len.to_le_bytes());
            k.copy_from_slice(self.key);
        };
        if total <= AAD_STACK {
            let mut buf = [0u8; AAD_STACK];
            fill(&mut buf[..total]);
            Some(f(&buf[..total]))
        } else {
            let mut buf = vec![0u8; total];
            fill(&mut buf);
            Some(f(&buf))
        }
    }
}

/// Where the nonce of an encryption comes from.
pub(crate) enum NonceSource {
    /// 96 bits from the operating system's RNG (`getrandom`), fresh for every encryption.
    Random,
    /// Given by the caller: golden vectors only.
    #[cfg_attr(not(feature = "fixed-nonce"), allow(dead_code))]
    Fixed([u8; NONCE_LEN]),
}

/// Encodes `value` encrypted under `keys`' current key, bound to `aad`, into `out`.
pub(crate) fn encode_sealed(
    cfg: &EnvelopeConfig,
    keys: &Keyring,
    aad: Aad<'_>,
    value: &[u8],
    original_len: u32,
    out: &mut Vec<u8>,
    nonce: NonceSource,
) -> Result<(), EncodeError> {
    let len = value.len();
    let key = keys.current();
    out.clear();
    out.resize(SEALED_PREFIX_LEN, 0);
    let mut flags = FLAG_AES_256_GCM;
    if len >= cfg.compress_threshold {
        out.resize(
            SEALED_PREFIX_LEN + lz4_flex::block::get_maximum_output_size(len),
            0,
        );
        match lz4_flex::block::compress_into(value, &mut out[SEALED_PREFIX_LEN..]) {
            Ok(n) if n < len => {
                out.truncate(SEALED_PREFIX_LEN + n);
                flags |= FLAG_LZ4;
            }
            _ => out.truncate(SEALED_PREFIX_LEN),
        }
    }
    if flags & FLAG_LZ4 == 0 {
        out.extend_from_slice(value);
    }
    out[..2].copy_from_slice(&MAGIC);
    out[2] = FORMAT_VERSION;
    out[3] = flags;
    out[4..OFF_KEY_ID].copy_from_slice(&original_len.to_le_bytes());
    out[OFF_KEY_ID..OFF_RESERVED].copy_from_slice(&key.id.to_le_bytes());
    out[OFF_RESERVED..HEADER_LEN].fill(0);
    let nonce = match nonce {
        NonceSource::Fixed(n) => n,
        NonceSource::Random => {
            let mut n = [0u8; NONCE_LEN];
            if SystemRandom::new().fill(&mut n).is_err() {
                out.clear();
                return Err(EncodeError::Random);
            }
            n
        }
    };
    out[HEADER_LEN..SEALED_PREFIX_LEN].copy_from_slice(&nonce);
    let (prefix, payload) = out.split_at_mut(SEALED_PREFIX_LEN);
    let sealed = aad.with_bytes(prefix, |aad| {
        key.key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            RingAad::from(aad),
            payload,
        )
    });
    match sealed {
        Some(Ok(tag)) => {
            out.extend_from_slice(tag.as_ref());
            Ok(())
        }
        Some(Err(_)) => {
            out.clear();
            Err(EncodeError::OverFormatLimit { len })
        }
        None => {
            out.clear();
            Err(EncodeError::AadTooLong {
                namespace_len: aad.namespace.len(),
            })
        }
    }
}

thread_local! {
    /// The decrypted LZ4 block of a compressed value, before decompression into the output.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Decodes an encrypted envelope whose first 16 bytes passed the header checks (magic, version,
/// flags). Nothing derived from the ciphertext is looked at, and nothing is returned, before the
/// tag has been verified. `out` is empty on entry and left empty on error.
pub(crate) fn decode_sealed(
    cfg: &EnvelopeConfig,
    keys: &Keyring,
    aad: Aad<'_>,
    bytes: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    if bytes.len() < ENCRYPTION_OVERHEAD {
        return Err(DecodeError::SealedTruncated { len: bytes.len() });
    }
    let u32_at = |off: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&bytes[off..off + 4]);
        u32::from_le_bytes(b)
    };
    let key_id = u32_at(OFF_KEY_ID);
    let Some(key) = keys.find(key_id) else {
        return Err(DecodeError::UnknownKeyId {
            found: key_id,
            known: keys.key_ids(),
        });
    };
    let flags = bytes[3];
    let ct_end = bytes.len() - TAG_LEN;
    let ciphertext = &bytes[SEALED_PREFIX_LEN..ct_end];
    if flags & FLAG_LZ4 == 0 {
        open_into(key, aad, bytes, ciphertext, out)?;
    } else {
        SCRATCH.with_borrow_mut(|block| {
            block.clear();
            open_into(key, aad, bytes, ciphertext, block)?;
            finish(cfg, flags, u32_at, Some(block), out)
        })?;
        return Ok(());
    }
    finish(cfg, flags, u32_at, None, out)
}

/// The authenticated plaintext payload's checks (reserved field, length against the limit and
/// the header), and the decompression of an LZ4 block.
fn finish(
    cfg: &EnvelopeConfig,
    flags: u8,
    u32_at: impl Fn(usize) -> u32,
    block: Option<&mut Vec<u8>>,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let reserved = u32_at(OFF_RESERVED);
    let len = u32_at(4) as usize;
    let checked = if reserved != 0 {
        Err(DecodeError::Reserved { value: reserved })
    } else if len > cfg.max_value_bytes {
        Err(DecodeError::TooLarge {
            len,
            max: cfg.max_value_bytes,
        })
    } else {
        Ok(())
    };
    let result = checked.and_then(|()| match block {
        None if out.len() == len => Ok(()),
        None => Err(DecodeError::LengthMismatch {
            header_len: len,
            decoded_len: out.len(),
        }),
        Some(block) => {
            debug_assert!(flags & FLAG_LZ4 != 0);
            out.clear();
            out.resize(len, 0);
            let r = match lz4_flex::block::decompress_into(block, out) {
                Ok(n) if n == len => Ok(()),
                Ok(n) => Err(DecodeError::LengthMismatch {
                    header_len: len,
                    decoded_len: n,
                }),
                Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }) => {
                    Err(DecodeError::LongerThanHeader { header_len: len })
                }
                Err(source) => Err(DecodeError::Decompress { source }),
            };
            block.fill(0);
            block.clear();
            r
        }
    });
    if result.is_err() {
        out.fill(0);
        out.clear();
    }
    result
}

/// Copies `ciphertext` into `dst` and decrypts it there, checking the tag at the end of `bytes`
/// against the header, nonce and `aad`. On failure `dst` is zeroed and emptied: bytes that did
/// not authenticate are never handed on.
fn open_into(
    key: &TenantKey,
    aad: Aad<'_>,
    bytes: &[u8],
    ciphertext: &[u8],
    dst: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&bytes[HEADER_LEN..SEALED_PREFIX_LEN]);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&bytes[bytes.len() - TAG_LEN..]);
    dst.clear();
    dst.extend_from_slice(ciphertext);
    let opened = aad.with_bytes(&bytes[..HEADER_LEN], |aad| {
        key.key
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                RingAad::from(aad),
                Tag::from(tag),
                dst,
                0..,
            )
            .map(|_| ())
    });
    if matches!(opened, Some(Ok(()))) {
        Ok(())
    } else {
        dst.fill(0);
        dst.clear();
        Err(DecodeError::Authentication)
    }
}
