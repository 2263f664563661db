//! Keys for encrypted envelopes: the master key, the per-tenant keys derived from it (HKDF-SHA256),
//! their key ids, the keyring a client decrypts with (current and previous master keys), and the
//! keyed hash of cache keys.
//!
//! Every derivation is HKDF-SHA256 with `ikm` = the 32-byte master key and `salt` = `cachekit`;
//! only the `info` differs (`tenant` is the tenant id's bytes, by default the namespace):
//!
//! | what | info | output |
//! |---|---|---|
//! | tenant key (AES-256-GCM) | `cachekit/v1/tenant/` + tenant | 32 bytes |
//! | key id (in the envelope) | `cachekit key id v1` + tenant | 4 bytes, read as a u32 LE |
//! | key-hashing key (HMAC-SHA256) | `cachekit/v1/keys/` + tenant | 32 bytes |
//!
//! A hashed cache key is the 64 lowercase hex digits of HMAC-SHA256(key-hashing key, key).

use std::fmt;

use ring::aead::{LessSafeKey, UnboundKey, AES_256_GCM};
use ring::{hkdf, hmac};

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;

const SALT: &[u8] = b"cachekit";
const INFO_TENANT: &[u8] = b"cachekit/v1/tenant/";
const INFO_KEY_ID: &[u8] = b"cachekit key id v1";
const INFO_KEYS: &[u8] = b"cachekit/v1/keys/";

/// A 32-byte master key: every tenant key is derived from it. Its `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; MASTER_KEY_LEN]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Why bytes or text are not a master key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct KeyError {
    message: String,
}

impl KeyError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl MasterKey {
    /// The master key with these bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The master key with these bytes, which must be exactly 32.
    ///
    /// # Errors
    /// A [`KeyError`] naming the length found.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        <[u8; MASTER_KEY_LEN]>::try_from(bytes)
            .map(Self)
            .map_err(|_| {
                KeyError::new(format!(
                    "the master key is {} bytes; it must be exactly 32 random bytes (generate one \
                     with `head -c 32 /dev/urandom | base64`)",
                    bytes.len()
                ))
            })
    }

    /// Parses a master key written as text: 64 hex digits, or base64 (standard or URL-safe
    /// alphabet, padding optional) of 32 bytes. Surrounding whitespace is ignored.
    ///
    /// # Errors
    /// A [`KeyError`] saying which forms are accepted; it never quotes the text.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let t = text.trim();
        let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            unhex(t)
        } else {
            unbase64(t)
        };
        match bytes {
            Some(b) if b.len() == MASTER_KEY_LEN => Self::from_slice(&b),
            Some(b) => Err(KeyError::new(format!(
                "the master key text decodes to {} bytes; it must be 32 bytes, written as 64 hex \
                 digits or as base64 (`head -c 32 /dev/urandom | base64` makes one)",
                b.len()
            ))),
            None => Err(KeyError::new(
                "the master key text is neither 64 hex digits nor base64 of 32 bytes \
                 (`head -c 32 /dev/urandom | base64` makes one)",
            )),
        }
    }

    /// The raw key bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.0
    }

    fn prk(&self) -> hkdf::Prk {
        hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(&self.0)
    }

    /// The key id an envelope encrypted with this master key's key for `tenant` carries.
    #[must_use]
    pub fn key_id(&self, tenant: &[u8]) -> u32 {
        let mut id = [0u8; 4];
        self.prk()
            .expand(&[INFO_KEY_ID, tenant], Len(4))
            .and_then(|okm| okm.fill(&mut id))
            .expect("HKDF-SHA256 gives 4 bytes");
        u32::from_le_bytes(id)
    }

    fn tenant_key(&self, tenant: &[u8]) -> TenantKey {
        let prk = self.prk();
        let info = [INFO_TENANT, tenant];
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .expect("HKDF-SHA256 gives 32 bytes");
        TenantKey {
            id: self.key_id(tenant),
            key: LessSafeKey::new(UnboundKey::from(okm)),
        }
    }
}

/// An HKDF output length.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// One AES-256-GCM key of a tenant, with its key id.
pub(crate) struct TenantKey {
    pub(crate) id: u32,
    pub(crate) key: LessSafeKey,
}

/// What a client encrypts and decrypts one tenant's values with: the tenant key of the current
/// master key (new writes), and those of the previous master keys (reads only, so a rotated key
/// needs no flush). The envelope's key id picks the key.
pub struct Keyring {
    current: TenantKey,
    previous: Vec<TenantKey>,
    require_encryption: bool,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("key_id", &format_args!("{:08x}", self.current.id))
            .field(
                "previous_key_ids",
                &self
                    .previous
                    .iter()
                    .map(|k| format!("{:08x}", k.id))
                    .collect::<Vec<_>>(),
            )
            .field("require_encryption", &self.require_encryption)
            .finish()
    }
}

impl Keyring {
    /// The keyring of `tenant`: keys derived from `master` (writes and reads) and from each of
    /// `previous` (reads). Plaintext values are accepted on read; see
    /// [`require_encryption`](Keyring::require_encryption).
    #[must_use]
    pub fn new(master: &MasterKey, previous: &[MasterKey], tenant: &[u8]) -> Self {
        Self {
            current: master.tenant_key(tenant),
            previous: previous.iter().map(|m| m.tenant_key(tenant)).collect(),
            require_encryption: false,
        }
    }

    /// Refuse plaintext (unencrypted) values on read with
    /// [`DecodeError::Plaintext`](crate::DecodeError::Plaintext) instead of returning them.
    #[must_use]
    pub fn require_encryption(mut self, on: bool) -> Self {
        self.require_encryption = on;
        self
    }

    /// Whether plaintext values are refused on read.
    #[must_use]
    pub fn requires_encryption(&self) -> bool {
        self.require_encryption
    }

    /// The key id new writes carry.
    #[must_use]
    pub fn key_id(&self) -> u32 {
        self.current.id
    }

    /// Every key id this keyring decrypts, the current one first.
    #[must_use]
    pub fn key_ids(&self) -> Vec<u32> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|k| k.id)
            .collect()
    }

    pub(crate) fn current(&self) -> &TenantKey {
        &self.current
    }

    pub(crate) fn find(&self, id: u32) -> Option<&TenantKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
    }
}

/// Hashes cache keys for clients that must not show key names to the daemon or Redis:
/// HMAC-SHA256 with a key derived from the master key for one tenant, as 64 hex digits.
#[derive(Clone)]
pub struct KeyHasher(hmac::Key);

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHasher(<redacted>)")
    }
}

impl KeyHasher {
    /// The key hasher of `tenant` under `master`.
    #[must_use]
    pub fn new(master: &MasterKey, tenant: &[u8]) -> Self {
        let prk = master.prk();
        let info = [INFO_KEYS, tenant];
        let okm = prk
            .expand(&info, hmac::HMAC_SHA256)
            .expect("HKDF-SHA256 gives 32 bytes");
        Self(hmac::Key::from(okm))
    }

    /// The hashed form of `key`: 64 lowercase hex digits.
    #[must_use]
    pub fn hash(&self, key: &[u8]) -> Vec<u8> {
        let tag = hmac::sign(&self.0, key);
        let mut out = Vec::with_capacity(64);
        for b in tag.as_ref() {
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xF)]);
        }
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn unhex(t: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    t.as_bytes()
        .chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// Base64, standard (`+/`) or URL-safe (`-_`) alphabet, `=` padding optional.
fn unbase64(t: &str) -> Option<Vec<u8>> {
    let t = t.trim_end_matches('=');
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    if t.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(t.len() * 3 / 4);
    for chunk in t.as_bytes().chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_and_both_base64_alphabets() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(250));
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(MasterKey::parse(&hex).unwrap().as_bytes(), &bytes);
        assert_eq!(
            MasterKey::parse(&hex.to_uppercase()).unwrap().as_bytes(),
            &bytes
        );
        // base64 of the same bytes, written by hand from the standard alphabet.
        let std = "+h9EaY6z2P0iR2yRttsAJUpvlLneAyhNcpe84QYrUHU=";
        assert_eq!(MasterKey::parse(std).unwrap().as_bytes(), &bytes);
        let url = std.replace('+', "-").replace('/', "_");
        assert_eq!(
            MasterKey::parse(url.trim_end_matches('='))
                .unwrap()
                .as_bytes(),
            &bytes
        );
        assert_eq!(
            MasterKey::parse(&format!(" {std}\n")).unwrap().as_bytes(),
            &bytes
        );
    }

    #[test]
    fn refuses_wrong_lengths_without_quoting_the_key() {
        for bad in ["", "abcd", "zz", &"a".repeat(63), &"QUJD".repeat(12)] {
            let e = MasterKey::parse(bad).unwrap_err().to_string();
            assert!(e.contains("32"), "{e}");
        }
        let e = MasterKey::from_slice(&[1; 16]).unwrap_err().to_string();
        assert!(e.starts_with("the master key is 16 bytes"), "{e}");
        assert_eq!(
            format!("{:?}", MasterKey::from_bytes([1; 32])),
            "MasterKey(<redacted>)"
        );
    }

    #[test]
    fn derivations_differ_by_tenant_and_by_master() {
        let a = MasterKey::from_bytes([1; 32]);
        let b = MasterKey::from_bytes([2; 32]);
        assert_ne!(a.key_id(b"t1"), a.key_id(b"t2"));
        assert_ne!(a.key_id(b"t1"), b.key_id(b"t1"));
        assert_eq!(a.key_id(b"t1"), a.key_id(b"t1"));
        let ring = Keyring::new(&b, std::slice::from_ref(&a), b"t1");
        assert_eq!(ring.key_ids(), vec![b.key_id(b"t1"), a.key_id(b"t1")]);
        assert!(ring.find(a.key_id(b"t1")).is_some());
        assert!(ring.find(a.key_id(b"t2")).is_none());
        let h = KeyHasher::new(&a, b"t1");
        let hashed = h.hash(b"user:1");
        assert_eq!(hashed.len(), 64);
        assert!(hashed.iter().all(u8::is_ascii_hexdigit));
        assert_ne!(hashed, KeyHasher::new(&a, b"t2").hash(b"user:1"));
        assert_ne!(hashed, KeyHasher::new(&b, b"t1").hash(b"user:1"));
        assert_ne!(hashed, h.hash(b"user:2"));
    }
}
