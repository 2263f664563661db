//! Client-side encryption: the [`Encryption`] options, reading the master key from the
//! environment or a key file, and the per-tenant keys a [`Client`](crate::Client) handle uses.
//!
//! Values are encrypted (AES-256-GCM, `cachekit_envelope`'s encrypted envelope) after
//! compression and before they leave the process, and decrypted after a hit, in the reader's
//! process: the daemon, the shared segment and Redis hold ciphertext only. Keys, namespaces and
//! tags stay plaintext (they route and invalidate), unless [`Encryption::hash_keys`] replaces
//! each key by its keyed hash. Counters (`incr`, `set_i64`) stay plaintext: the daemon adds to
//! them.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use cachekit_envelope::{KeyHasher, Keyring, MasterKey};

use crate::error::Error;
pub use crate::memo::{DEFAULT_MEMO_BYTES, MEMO_MAX_VALUE_BYTES};

/// Client-side encryption settings ([`ClientOptions::encryption`](crate::ClientOptions::encryption)).
///
/// ```
/// use cachekit_client::{ClientOptions, Encryption, MasterKey};
///
/// let key = MasterKey::parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")?;
/// let opts = ClientOptions::new().encryption(Encryption::new(key).tenant("acme"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Encryption {
    /// The master key new writes are encrypted under (through the tenant's derived key).
    pub master_key: MasterKey,
    /// Older master keys still accepted for reading, so a rotation needs no flush: values carry
    /// the key id of the key that wrote them.
    pub previous_keys: Vec<MasterKey>,
    /// The tenant whose key is derived; `None`: each handle's namespace is its tenant, so every
    /// namespace has its own key.
    pub tenant: Option<String>,
    /// Send HMAC-SHA256(key derived from the master key, key) as 64 hex digits instead of each
    /// key, so neither the daemon nor Redis sees key names. Scans and key patterns then see
    /// the hashes. Default false.
    pub hash_keys: bool,
    /// Refuse plaintext values on read ([`Error::Plaintext`]) instead of returning them
    /// (counters excepted: they are plaintext by nature). Default false.
    pub require_encryption: bool,
    /// Budget, in bytes, of the client's memo of opened values: the plaintext of encrypted
    /// values already decrypted, beside the exact envelope they came from, so a hit whose
    /// stored bytes did not change skips AES-GCM. Values of up to [`MEMO_MAX_VALUE_BYTES`]
    /// (16 KiB) are kept; the plaintext
    /// stays in this process's memory (zeroed on eviction and when the client is dropped).
    /// 0 turns the memo off (every hit decrypts). Default [`DEFAULT_MEMO_BYTES`] (1 MiB).
    pub memo_bytes: usize,
}

impl fmt::Debug for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryption")
            .field("master_key", &self.master_key)
            .field("previous_keys", &self.previous_keys.len())
            .field("tenant", &self.tenant)
            .field("hash_keys", &self.hash_keys)
            .field("require_encryption", &self.require_encryption)
            .field("memo_bytes", &self.memo_bytes)
            .finish()
    }
}

impl Encryption {
    /// Encryption under `master_key`, tenant = namespace, no previous keys, keys in the clear,
    /// plaintext values accepted, a memo of [`DEFAULT_MEMO_BYTES`].
    pub fn new(master_key: MasterKey) -> Self {
        Self {
            master_key,
            previous_keys: Vec::new(),
            tenant: None,
            hash_keys: false,
            require_encryption: false,
            memo_bytes: DEFAULT_MEMO_BYTES,
        }
    }

    /// Sets the budget of the memo of opened values (see [`Encryption::memo_bytes`]); 0 turns
    /// it off.
    pub fn memo_bytes(mut self, bytes: usize) -> Self {
        self.memo_bytes = bytes;
        self
    }

    /// Adds an older master key accepted for reading.
    pub fn previous_key(mut self, key: MasterKey) -> Self {
        self.previous_keys.push(key);
        self
    }

    /// Derives every handle's key for this tenant instead of its namespace.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Sends keyed hashes of the keys instead of the keys.
    pub fn hash_keys(mut self, on: bool) -> Self {
        self.hash_keys = on;
        self
    }

    /// Refuses plaintext values on read.
    pub fn require_encryption(mut self, on: bool) -> Self {
        self.require_encryption = on;
        self
    }

    /// Encryption with the master key read from `path`: the file holds 64 hex digits, base64
    /// of 32 bytes, or exactly 32 raw bytes, and must not be readable or writable by group or
    /// other (mode 0600 or 0400).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the file: unreadable, too open (with the `chmod` to
    /// run), or not a key.
    pub fn from_key_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        read_key_file(path.as_ref()).map(Self::new)
    }

    /// Encryption configured by the environment, `None` when `CACHEKIT_MASTER_KEY` and
    /// `CACHEKIT_MASTER_KEY_FILE` are both unset or empty. See
    /// [`ClientOptions::from_env`](crate::ClientOptions::from_env) for the variables.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the variable that is wrong.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, Error> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let invalid = |name: &str, e: &dyn fmt::Display| Error::InvalidArgument {
            message: format!("{name}: {e}"),
        };
        let master = match (get("CACHEKIT_MASTER_KEY"), get("CACHEKIT_MASTER_KEY_FILE")) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidArgument {
                    message: "both CACHEKIT_MASTER_KEY and CACHEKIT_MASTER_KEY_FILE are set; \
                              unset one of them"
                        .into(),
                })
            }
            (Some(text), None) => {
                MasterKey::parse(&text).map_err(|e| invalid("CACHEKIT_MASTER_KEY", &e))?
            }
            (None, Some(path)) => read_key_file(Path::new(&path))?,
            (None, None) => return Ok(None),
        };
        let mut enc = Self::new(master);
        if let Some(list) = get("CACHEKIT_PREVIOUS_MASTER_KEYS") {
            for (i, text) in list.split(',').enumerate() {
                let key = MasterKey::parse(text).map_err(|e| {
                    invalid(
                        &format!("CACHEKIT_PREVIOUS_MASTER_KEYS (key {})", i + 1),
                        &e,
                    )
                })?;
                enc.previous_keys.push(key);
            }
        }
        enc.tenant = get("CACHEKIT_TENANT");
        let flag =
            |name: &str| get(name).is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
        enc.hash_keys = flag("CACHEKIT_HASH_KEYS");
        enc.require_encryption = flag("CACHEKIT_REQUIRE_ENCRYPTION");
        if let Some(text) = get("CACHEKIT_ENCRYPTION_MEMO_BYTES") {
            enc.memo_bytes = text.trim().parse().map_err(|_| {
                invalid(
                    "CACHEKIT_ENCRYPTION_MEMO_BYTES",
                    &format!("{text:?} is not a number of bytes (0 turns the memo off)"),
                )
            })?;
        }
        Ok(Some(enc))
    }
}

fn read_key_file(path: &Path) -> Result<MasterKey, Error> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let invalid = |message: String| Error::InvalidArgument { message };
    let meta = std::fs::metadata(path)
        .map_err(|e| invalid(format!("cannot read the master key file {shown}: {e}")))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(invalid(format!(
            "the master key file {shown} has mode {mode:04o}, so group or other users can \
             read or change it; run `chmod 600 {shown}` (and make it owned by the service's \
             user)"
        )));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| invalid(format!("cannot read the master key file {shown}: {e}")))?;
    if bytes.len() == cachekit_envelope::MASTER_KEY_LEN {
        return MasterKey::from_slice(&bytes).map_err(|e| invalid(e.to_string()));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        invalid(format!(
            "the master key file {shown} holds {} bytes that are not text; it must hold 32 raw \
             bytes, 64 hex digits or base64",
            bytes.len()
        ))
    })?;
    MasterKey::parse(text).map_err(|e| invalid(format!("the master key file {shown}: {e}")))
}

/// What one tenant's values are encrypted and keys hashed with.
pub(crate) struct TenantCrypto {
    pub(crate) keyring: Keyring,
    pub(crate) hasher: Option<KeyHasher>,
}

/// The client's encryption state: the options, and each tenant's keys, derived once.
pub(crate) struct Crypto {
    enc: Encryption,
    tenants: Mutex<HashMap<String, Arc<TenantCrypto>>>,
}

impl Crypto {
    pub(crate) fn new(enc: Encryption) -> Self {
        Self {
            enc,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// The keys of the handle bound to `namespace` (its tenant: the configured one, or the
    /// namespace). HKDF runs once per tenant; later handles share the result.
    pub(crate) fn for_namespace(&self, namespace: &str) -> Arc<TenantCrypto> {
        let tenant = self.enc.tenant.as_deref().unwrap_or(namespace);
        let mut map = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(tenant.to_string())
            .or_insert_with(|| {
                Arc::new(TenantCrypto {
                    keyring: Keyring::new(
                        &self.enc.master_key,
                        &self.enc.previous_keys,
                        tenant.as_bytes(),
                    )
                    .require_encryption(self.enc.require_encryption),
                    hasher: self
                        .enc
                        .hash_keys
                        .then(|| KeyHasher::new(&self.enc.master_key, tenant.as_bytes())),
                })
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn from_vars_reads_the_key_and_the_settings() {
        assert!(Encryption::from_vars(vars(&[])).unwrap().is_none());
        let other = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";
        let e = Encryption::from_vars(vars(&[
            ("CACHEKIT_MASTER_KEY", HEX),
            ("CACHEKIT_PREVIOUS_MASTER_KEYS", other),
            ("CACHEKIT_TENANT", "acme"),
            ("CACHEKIT_HASH_KEYS", "1"),
            ("CACHEKIT_ENCRYPTION_MEMO_BYTES", "0"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(e.memo_bytes, 0);
        assert_eq!(e.master_key, MasterKey::parse(HEX).unwrap());
        assert_eq!(e.previous_keys, [MasterKey::from_bytes([0x42; 32])]);
        assert_eq!(e.tenant.as_deref(), Some("acme"));
        assert!(e.hash_keys && !e.require_encryption);
        let err = Encryption::from_vars(vars(&[("CACHEKIT_MASTER_KEY", "abc")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CACHEKIT_MASTER_KEY: "), "{err}");
        let plain = Encryption::from_vars(vars(&[("CACHEKIT_MASTER_KEY", HEX)]))
            .unwrap()
            .unwrap();
        assert_eq!(plain.memo_bytes, DEFAULT_MEMO_BYTES);
        let err = Encryption::from_vars(vars(&[
            ("CACHEKIT_MASTER_KEY", HEX),
            ("CACHEKIT_ENCRYPTION_MEMO_BYTES", "1M"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("CACHEKIT_ENCRYPTION_MEMO_BYTES"), "{err}");
        assert!(
            !format!("{e:?}").contains("0001"),
            "Debug never prints keys"
        );
    }

    #[test]
    fn key_files_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, format!("{HEX}\n")).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = Encryption::from_key_file(&path).unwrap_err().to_string();
            assert!(err.contains(&format!("mode {mode:04o}")), "{err}");
            assert!(
                err.contains(&format!("chmod 600 {}", path.display())),
                "{err}"
            );
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = Encryption::from_key_file(&path).unwrap();
            assert_eq!(e.master_key, MasterKey::parse(HEX).unwrap());
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, [7u8; 32]).unwrap();
        assert_eq!(
            Encryption::from_key_file(&path).unwrap().master_key,
            MasterKey::from_bytes([7; 32])
        );
        let via_env = Encryption::from_vars(vars(&[(
            "CACHEKIT_MASTER_KEY_FILE",
            path.to_str().unwrap(),
        )]))
        .unwrap()
        .unwrap();
        assert_eq!(via_env.master_key, MasterKey::from_bytes([7; 32]));
        let err = Encryption::from_key_file(dir.path().join("missing")).unwrap_err();
        assert!(
            err.to_string().contains("cannot read the master key file"),
            "{err}"
        );
    }
}
