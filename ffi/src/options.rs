//! `cachekit_options`: how `cachekit_client_open` finds the daemon. An extensible struct: the
//! caller sets `struct_size = sizeof(cachekit_options)`, so a program built against an older
//! header (a smaller struct) and one built against a newer header both work with this library.

use std::ffi::c_char;
use std::mem::size_of;
use std::time::Duration;

use ::cachekit_client::MASTER_KEY_LEN;
use ::cachekit_client::{ClientOptions, Encryption, MasterKey};

use crate::args::opt_str_in;
use crate::error::Failure;

/// `cachekit_options.flags`: connect on first use instead of in `cachekit_client_open`. Open
/// then succeeds while the daemon is down; until it comes up, gets miss and writes return
/// `CACHEKIT_UNAVAILABLE`.
pub const CACHEKIT_OPEN_LAZY: u32 = 1;

/// `cachekit_options.flags`: `redis_url` lists the seed nodes of a Redis Cluster.
pub const CACHEKIT_OPEN_REDIS_CLUSTER: u32 = 2;

/// `cachekit_options.flags`: do not fall back to Redis directly while the daemon is down, even
/// with a `redis_url` (gets then miss and writes fail, as without one).
pub const CACHEKIT_OPEN_NO_REDIS_FALLBACK: u32 = 4;

/// `cachekit_options.encryption_flags`: send a keyed hash (HMAC-SHA256, 64 hex digits) of
/// each key instead of the key, so neither the daemon nor Redis sees key names.
pub const CACHEKIT_ENCRYPT_HASH_KEYS: u32 = 1;

/// `cachekit_options.encryption_flags`: refuse plaintext values on read
/// (`CACHEKIT_PLAINTEXT`) instead of returning them; counters excepted.
pub const CACHEKIT_ENCRYPT_REQUIRE: u32 = 2;

/// `cachekit_options.encryption_flags`: no memo of opened values: every encrypted hit is
/// authenticated and decrypted, and no plaintext is kept in this process after a get returns
/// (see `encryption_memo_bytes`).
pub const CACHEKIT_ENCRYPT_NO_MEMO: u32 = 4;

/// Every `encryption_flags` bit this build knows.
const KNOWN_ENCRYPT_FLAGS: u32 =
    CACHEKIT_ENCRYPT_HASH_KEYS | CACHEKIT_ENCRYPT_REQUIRE | CACHEKIT_ENCRYPT_NO_MEMO;

/// Every flag this build knows.
const KNOWN_FLAGS: u32 =
    CACHEKIT_OPEN_LAZY | CACHEKIT_OPEN_REDIS_CLUSTER | CACHEKIT_OPEN_NO_REDIS_FALLBACK;

/// Options of `cachekit_client_open`. Zero-initialise it, set `struct_size`, then set what you
/// need: **every zero or NULL field means "the default"**.
///
/// ```c
/// cachekit_options opts = {0};
/// opts.struct_size = sizeof opts;
/// opts.ns = "sessions";
/// ```
///
/// Strings are NUL-terminated UTF-8, read during the call only. A NULL `socket_path`,
/// `instance` or `ns` is taken from the environment (`CACHEKIT_SOCKET`, `CACHEKIT_INSTANCE`,
/// `CACHEKIT_NAMESPACE`, `CACHEKIT_REDIS_URL`; `CACHEKIT_DIR` is honoured when the socket is
/// looked up), else the default. Later versions append fields; old programs keep working
/// because their `struct_size` is smaller, and a zero field means what it always did. The
/// struct has no padding on 64-bit targets (128 bytes; 72 before the encryption fields, 120
/// before `encryption_memo_bytes`).
///
/// Encryption (AES-256-GCM in this process; the daemon and Redis see ciphertext only):
///
/// ```c
/// opts.encryption_key = key32;       // 32 bytes
/// opts.encryption_key_len = 32;
/// opts.previous_keys = old_keys;     // count x 32 bytes, back to back
/// opts.previous_keys_count = 1;
/// opts.tenant = "acme";              // NULL = the namespace
/// opts.encryption_flags = CACHEKIT_ENCRYPT_REQUIRE;
/// opts.encryption_memo_bytes = 4 << 20; // 0 = 1 MiB; CACHEKIT_ENCRYPT_NO_MEMO turns it off
/// ```
///
/// With no `encryption_key`, `CACHEKIT_MASTER_KEY` or `CACHEKIT_MASTER_KEY_FILE` from the
/// environment turn encryption on (see the Rust client's `ClientOptions::from_env`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct cachekit_options {
    /// Must be `sizeof(cachekit_options)` as the program sees it.
    pub struct_size: usize,
    /// `CACHEKIT_OPEN_*` bits; 0 for none. Unknown bits are refused.
    pub flags: u32,
    /// Most connections open at once (misses and writes only; hits use none). 0 = 4.
    pub pool_size: u32,
    /// The daemon's socket. Overrides `instance`. NULL = look up `instance`'s socket.
    pub socket_path: *const c_char,
    /// The daemon instance whose socket is looked up in `/run/cachekit`,
    /// `$XDG_RUNTIME_DIR/cachekit`, `/tmp/cachekit-<uid>`. NULL = "default".
    pub instance: *const c_char,
    /// The namespace of the handle (1 to 127 bytes). NULL = "default".
    pub ns: *const c_char,
    /// Name sent to the daemon for its logs. NULL = the program's name.
    pub client_name: *const c_char,
    /// Timeout to connect and handshake, ms. 0 = 1000.
    pub connect_timeout_ms: u32,
    /// Timeout of one request to the daemon, ms. 0 = 5000.
    pub request_timeout_ms: u32,
    /// Redis for the direct fallback: while the daemon is down, gets and writes go to Redis
    /// directly (same records and invalidation log as the daemons).
    /// `redis://[user:password@]host:port[/db]`, `rediss://...`, `unix:///path`; with
    /// `CACHEKIT_OPEN_REDIS_CLUSTER`, seed URLs separated by commas. NULL = none.
    pub redis_url: *const c_char,
    /// Timeout of each call of the direct fallback, ms. 0 = 250.
    pub redis_timeout_ms: u32,
    /// Must be 0 (room for a later field).
    pub reserved: u32,
    /// The 32-byte master key values are encrypted under (through a key derived per tenant).
    /// NULL = no encryption (unless the environment sets a key). Read during the call only.
    pub encryption_key: *const u8,
    /// Length of `encryption_key`: 32 when it is set, else 0.
    pub encryption_key_len: usize,
    /// Older master keys still accepted for reading (key rotation): `previous_keys_count`
    /// keys of 32 bytes, back to back. NULL when the count is 0.
    pub previous_keys: *const u8,
    /// How many keys `previous_keys` holds.
    pub previous_keys_count: usize,
    /// The tenant whose key is derived (NUL-terminated UTF-8). NULL = each handle's namespace.
    pub tenant: *const c_char,
    /// `CACHEKIT_ENCRYPT_*` bits; 0 for none. Unknown bits are refused.
    pub encryption_flags: u32,
    /// Must be 0 (room for a later field).
    pub reserved2: u32,
    /// Budget in bytes of the memo of opened values: the plaintext of encrypted values this
    /// client already decrypted (up to 16 KiB each), beside the exact stored bytes they came
    /// from, so a hit whose bytes did not change skips AES-GCM. The plaintext stays in this
    /// process's memory until evicted or the client is closed (zeroed then). 0 = 1 MiB; set
    /// `CACHEKIT_ENCRYPT_NO_MEMO` in `encryption_flags` to turn it off.
    pub encryption_memo_bytes: usize,
}

/// The smallest `struct_size` accepted: the size of the first published version, without the
/// encryption fields.
const MIN_STRUCT_SIZE: usize = 72;

/// Pins the layout the header promises (64-bit targets).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(size_of::<cachekit_options>() == 128);

/// Every field zero or NULL: what the fields a caller's older, shorter struct lacks mean.
const ZERO: cachekit_options = cachekit_options {
    struct_size: 0,
    flags: 0,
    pool_size: 0,
    socket_path: std::ptr::null(),
    instance: std::ptr::null(),
    ns: std::ptr::null(),
    client_name: std::ptr::null(),
    connect_timeout_ms: 0,
    request_timeout_ms: 0,
    redis_url: std::ptr::null(),
    redis_timeout_ms: 0,
    reserved: 0,
    encryption_key: std::ptr::null(),
    encryption_key_len: 0,
    previous_keys: std::ptr::null(),
    previous_keys_count: 0,
    tenant: std::ptr::null(),
    encryption_flags: 0,
    reserved2: 0,
    encryption_memo_bytes: 0,
};

/// What an open asks for, once read from C.
#[derive(Debug)]
pub(crate) struct OpenOptions {
    pub(crate) client: ClientOptions,
    pub(crate) lazy: bool,
}

/// Reads a `cachekit_options` of the caller's `struct_size`.
///
/// # Safety
/// `opts` is non-NULL, aligned, and points to at least `struct_size` readable bytes (where
/// `struct_size` is its first field), whose string fields are NULL or NUL-terminated strings.
pub(crate) unsafe fn read_options(opts: *const cachekit_options) -> Result<OpenOptions, Failure> {
    // SAFETY: `opts` is aligned and readable for at least the first field, the caller promises.
    let struct_size = unsafe { opts.cast::<usize>().read() };
    if struct_size < MIN_STRUCT_SIZE {
        return Err(Failure::invalid(format!(
            "cachekit_options.struct_size is {struct_size}; set it to sizeof(cachekit_options) \
             ({MIN_STRUCT_SIZE} with this header)"
        )));
    }
    let ours = size_of::<cachekit_options>();
    if struct_size > ours {
        // A newer header: its extra fields must be zero ("default"), or this library would
        // silently ignore a setting.
        // SAFETY: the caller promises `struct_size` readable bytes; we read those past ours.
        let extra =
            unsafe { std::slice::from_raw_parts(opts.cast::<u8>().add(ours), struct_size - ours) };
        if extra.iter().any(|&b| b != 0) {
            return Err(Failure::invalid(format!(
                "cachekit_options sets fields that libcachekit {} does not know (struct_size \
                 {struct_size}, this library's is {ours}); use a newer libcachekit",
                env!("CARGO_PKG_VERSION")
            )));
        }
    }
    let mut o = ZERO;
    // SAFETY:
    // - the caller promises `struct_size` readable bytes at `opts`; we copy at most that many;
    // - `o` is a local `cachekit_options`, writable for `ours` bytes, not overlapping `opts`;
    // - every bit pattern is a valid `cachekit_options` (integers and raw pointers), and the
    //   fields past the copied prefix keep their zero ("default").
    unsafe {
        std::ptr::copy_nonoverlapping(
            opts.cast::<u8>(),
            (&raw mut o).cast::<u8>(),
            struct_size.min(ours),
        );
    }
    if o.flags & !KNOWN_FLAGS != 0 {
        return Err(Failure::invalid(format!(
            "cachekit_options.flags has unknown bits {:#x}",
            o.flags & !KNOWN_FLAGS
        )));
    }
    if o.reserved != 0 || o.reserved2 != 0 {
        return Err(Failure::invalid(
            "cachekit_options.reserved is not 0; zero-initialise the struct",
        ));
    }
    let mut client = ClientOptions::from_env();
    // SAFETY: the caller promises the encryption fields point to what they say.
    if let Some(enc) = unsafe { read_encryption(&o) }? {
        client = client.encryption(enc);
    }
    // SAFETY: the caller promises NULL or a NUL-terminated string at `o.socket_path`.
    let socket = unsafe { opt_str_in(o.socket_path, "options.socket_path") }?;
    // SAFETY: the caller promises NULL or a NUL-terminated string at `o.instance`.
    let instance = unsafe { opt_str_in(o.instance, "options.instance") }?;
    // SAFETY: the caller promises NULL or a NUL-terminated string at `o.ns`.
    let ns = unsafe { opt_str_in(o.ns, "options.ns") }?;
    // SAFETY: the caller promises NULL or a NUL-terminated string at `o.client_name`.
    let name = unsafe { opt_str_in(o.client_name, "options.client_name") }?;
    // SAFETY: the caller promises NULL or a NUL-terminated string at `o.redis_url`.
    let redis_url = unsafe { opt_str_in(o.redis_url, "options.redis_url") }?;
    if socket.is_some() || instance.is_some() {
        // Explicit settings beat the environment as a whole: an instance given here is not
        // overridden by a CACHEKIT_SOCKET from the environment.
        client.socket = socket.map(Into::into);
    }
    if let Some(instance) = instance {
        client.instance = instance.to_string();
    }
    if let Some(ns) = ns {
        client.namespace = ns.to_string();
    }
    if let Some(name) = name {
        client = client.client_name(name);
    }
    if o.pool_size != 0 {
        client.pool_size = o.pool_size as usize;
    }
    if o.connect_timeout_ms != 0 {
        client.connect_timeout = Duration::from_millis(o.connect_timeout_ms.into());
    }
    if o.request_timeout_ms != 0 {
        client.request_timeout = Duration::from_millis(o.request_timeout_ms.into());
    }
    if let Some(url) = redis_url {
        client.redis_url = Some(url.to_string());
    }
    if o.flags & CACHEKIT_OPEN_REDIS_CLUSTER != 0 {
        client.redis_cluster = true;
    }
    if o.flags & CACHEKIT_OPEN_NO_REDIS_FALLBACK != 0 {
        client.redis_fallback = false;
    }
    if o.redis_timeout_ms != 0 {
        client.redis_timeout = Duration::from_millis(o.redis_timeout_ms.into());
    }
    Ok(OpenOptions {
        client,
        lazy: o.flags & CACHEKIT_OPEN_LAZY != 0,
    })
}

/// The encryption settings of `o`, `None` when it sets no key (the environment may).
///
/// # Safety
/// `o.encryption_key` is NULL or points to `o.encryption_key_len` readable bytes;
/// `o.previous_keys` is NULL or points to `32 * o.previous_keys_count` readable bytes;
/// `o.tenant` is NULL or a NUL-terminated string.
unsafe fn read_encryption(o: &cachekit_options) -> Result<Option<Encryption>, Failure> {
    if o.encryption_flags & !KNOWN_ENCRYPT_FLAGS != 0 {
        return Err(Failure::invalid(format!(
            "cachekit_options.encryption_flags has unknown bits {:#x}",
            o.encryption_flags & !KNOWN_ENCRYPT_FLAGS
        )));
    }
    // SAFETY: the caller promises NULL or a NUL-terminated string at `o.tenant`.
    let tenant = unsafe { opt_str_in(o.tenant, "options.tenant") }?;
    if o.encryption_key.is_null() {
        if o.encryption_key_len != 0
            || o.previous_keys_count != 0
            || tenant.is_some()
            || o.encryption_flags != 0
            || o.encryption_memo_bytes != 0
        {
            return Err(Failure::invalid(
                "cachekit_options sets encryption settings but no encryption_key; set \
                 encryption_key and encryption_key_len = 32",
            ));
        }
        return Ok(None);
    }
    let invalid =
        |e: cachekit_client::KeyError| Failure::invalid(format!("options.encryption_key: {e}"));
    if o.encryption_key_len != MASTER_KEY_LEN {
        return Err(Failure::invalid(format!(
            "cachekit_options.encryption_key_len is {}; a master key is exactly {MASTER_KEY_LEN} bytes",
            o.encryption_key_len
        )));
    }
    // SAFETY: non-NULL, and the caller promises `encryption_key_len` (checked: 32) readable
    // bytes there.
    let key = unsafe { std::slice::from_raw_parts(o.encryption_key, o.encryption_key_len) };
    let mut enc = Encryption::new(MasterKey::from_slice(key).map_err(invalid)?);
    if o.previous_keys_count > 0 {
        if o.previous_keys.is_null() {
            return Err(Failure::invalid(
                "cachekit_options.previous_keys is NULL but previous_keys_count is not 0",
            ));
        }
        // At most 4096 previous keys: more is a mistake, and the cap keeps the slice below
        // isize::MAX bytes whatever the count says.
        const MAX_PREVIOUS: usize = 4096;
        if o.previous_keys_count > MAX_PREVIOUS {
            return Err(Failure::invalid(format!(
                "cachekit_options.previous_keys_count is {}; at most {MAX_PREVIOUS} previous keys",
                o.previous_keys_count
            )));
        }
        let len = o.previous_keys_count * MASTER_KEY_LEN;
        // SAFETY: non-NULL, and the caller promises `32 * previous_keys_count` readable bytes.
        let all = unsafe { std::slice::from_raw_parts(o.previous_keys, len) };
        for k in all.chunks_exact(MASTER_KEY_LEN) {
            enc = enc.previous_key(MasterKey::from_slice(k).map_err(invalid)?);
        }
    }
    if let Some(t) = tenant {
        enc = enc.tenant(t);
    }
    if o.encryption_flags & CACHEKIT_ENCRYPT_NO_MEMO != 0 {
        if o.encryption_memo_bytes != 0 {
            return Err(Failure::invalid(
                "cachekit_options sets both CACHEKIT_ENCRYPT_NO_MEMO and encryption_memo_bytes; \
                 set one of them",
            ));
        }
        enc = enc.memo_bytes(0);
    } else if o.encryption_memo_bytes != 0 {
        enc = enc.memo_bytes(o.encryption_memo_bytes);
    }
    Ok(Some(
        enc.hash_keys(o.encryption_flags & CACHEKIT_ENCRYPT_HASH_KEYS != 0)
            .require_encryption(o.encryption_flags & CACHEKIT_ENCRYPT_REQUIRE != 0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::cachekit_result::*;

    fn zeroed() -> cachekit_options {
        cachekit_options {
            struct_size: size_of::<cachekit_options>(),
            ..ZERO
        }
    }

    #[test]
    fn a_72_byte_struct_of_the_first_version_still_opens() {
        let mut o = zeroed();
        o.struct_size = 72;
        // Garbage past the caller's 72 bytes is not read.
        o.encryption_key_len = 99;
        // SAFETY: a whole struct (more than the 72 bytes it claims).
        let r = unsafe { read_options(&o) }.unwrap();
        assert!(r.client.encryption.is_none() || std::env::var_os("CACHEKIT_MASTER_KEY").is_some());
    }

    #[test]
    fn a_120_byte_struct_without_the_memo_field_still_opens() {
        let key = [7u8; 32];
        let mut o = zeroed();
        o.struct_size = 120;
        o.encryption_key = key.as_ptr();
        o.encryption_key_len = 32;
        // Garbage past the caller's 120 bytes is not read.
        o.encryption_memo_bytes = 99;
        // SAFETY: a whole struct (more than the 120 bytes it claims) whose key is 32 bytes.
        let enc = unsafe { read_options(&o) }
            .unwrap()
            .client
            .encryption
            .unwrap();
        assert_eq!(enc.memo_bytes, cachekit_client::DEFAULT_MEMO_BYTES);
    }

    #[test]
    fn encryption_fields() {
        let key = [7u8; 32];
        let previous = [[1u8; 32], [2u8; 32]].concat();
        let mut o = zeroed();
        o.encryption_key = key.as_ptr();
        o.encryption_key_len = 32;
        o.previous_keys = previous.as_ptr();
        o.previous_keys_count = 2;
        o.tenant = c"acme".as_ptr();
        o.encryption_flags = CACHEKIT_ENCRYPT_HASH_KEYS | CACHEKIT_ENCRYPT_REQUIRE;
        // SAFETY: a whole struct whose pointers point to what their lengths say.
        let enc = unsafe { read_options(&o) }
            .unwrap()
            .client
            .encryption
            .unwrap();
        assert_eq!(enc.master_key, MasterKey::from_bytes(key));
        assert_eq!(
            enc.previous_keys,
            [
                MasterKey::from_bytes([1; 32]),
                MasterKey::from_bytes([2; 32])
            ]
        );
        assert_eq!(enc.tenant.as_deref(), Some("acme"));
        assert!(enc.hash_keys && enc.require_encryption);
        assert_eq!(
            enc.memo_bytes,
            cachekit_client::DEFAULT_MEMO_BYTES,
            "0 = the default"
        );
        let memo = |bytes: usize, flags: u32| {
            let mut m = o;
            m.encryption_memo_bytes = bytes;
            m.encryption_flags = flags;
            // SAFETY: a whole struct whose pointers point to what their lengths say.
            unsafe { read_options(&m) }.map(|r| r.client.encryption.unwrap().memo_bytes)
        };
        assert_eq!(memo(4 << 20, 0).unwrap(), 4 << 20);
        assert_eq!(memo(0, CACHEKIT_ENCRYPT_NO_MEMO).unwrap(), 0);
        let both = memo(1, CACHEKIT_ENCRYPT_NO_MEMO).unwrap_err();
        assert_eq!(both.code, CACHEKIT_INVALID_ARGUMENT, "{}", both.message);
        for bad in [
            {
                let mut b = o;
                b.encryption_key_len = 16;
                b
            },
            {
                let mut b = o;
                b.encryption_flags = 8;
                b
            },
            {
                let mut b = o;
                b.previous_keys = std::ptr::null();
                b
            },
            {
                let mut b = o;
                b.encryption_key = std::ptr::null();
                b
            },
            {
                let mut b = o;
                b.reserved2 = 1;
                b
            },
        ] {
            // SAFETY: as above; the refused fields are never dereferenced beyond their lengths.
            let e = unsafe { read_options(&bad) }.unwrap_err();
            assert_eq!(e.code, CACHEKIT_INVALID_ARGUMENT, "{}", e.message);
        }
    }

    #[test]
    fn zero_means_default() {
        let o = zeroed();
        // SAFETY: a whole, valid struct.
        let r = unsafe { read_options(&o) }.unwrap();
        assert_eq!(r.client.pool_size, 4);
        assert!(!r.lazy);
    }

    #[test]
    fn fields_are_read() {
        let mut o = zeroed();
        o.socket_path = c"/tmp/x.sock".as_ptr();
        o.ns = c"app".as_ptr();
        o.pool_size = 2;
        o.request_timeout_ms = 250;
        o.flags = CACHEKIT_OPEN_LAZY | CACHEKIT_OPEN_REDIS_CLUSTER;
        o.redis_url = c"redis://a:6379,redis://b:6379".as_ptr();
        o.redis_timeout_ms = 100;
        // SAFETY: a whole, valid struct.
        let r = unsafe { read_options(&o) }.unwrap();
        assert_eq!(
            r.client.redis_url.as_deref(),
            Some("redis://a:6379,redis://b:6379")
        );
        assert!(r.client.redis_cluster && r.client.redis_fallback);
        assert_eq!(r.client.redis_timeout, Duration::from_millis(100));
        assert_eq!(
            r.client.socket.as_deref(),
            Some(std::path::Path::new("/tmp/x.sock"))
        );
        assert_eq!(r.client.namespace, "app");
        assert_eq!(r.client.pool_size, 2);
        assert_eq!(r.client.request_timeout, Duration::from_millis(250));
        assert!(r.lazy);
    }

    #[test]
    fn struct_size_is_checked() {
        let mut o = zeroed();
        o.struct_size = 0;
        // SAFETY: a whole struct; only struct_size is wrong.
        let e = unsafe { read_options(&o) }.unwrap_err();
        assert_eq!(e.code, CACHEKIT_INVALID_ARGUMENT);
        assert!(
            e.message.contains("sizeof(cachekit_options)"),
            "{}",
            e.message
        );

        // A newer program's larger struct: zero extra fields are fine, set ones are refused.
        #[repr(C)]
        struct Newer {
            base: cachekit_options,
            redis_url: *const c_char,
        }
        let mut n = Newer {
            base: zeroed(),
            redis_url: std::ptr::null(),
        };
        n.base.struct_size = size_of::<Newer>();
        // SAFETY: `n` is `struct_size` readable bytes, starting with a cachekit_options.
        unsafe { read_options((&raw const n).cast()) }.unwrap();
        n.redis_url = c"redis://x".as_ptr();
        // SAFETY: as above.
        let e = unsafe { read_options((&raw const n).cast()) }.unwrap_err();
        assert!(e.message.contains("does not know"), "{}", e.message);
    }

    #[test]
    fn reserved_must_be_zero() {
        let mut o = zeroed();
        o.reserved = 1;
        // SAFETY: a whole, valid struct.
        let e = unsafe { read_options(&o) }.unwrap_err();
        assert!(e.message.contains("reserved"), "{}", e.message);
    }

    #[test]
    fn unknown_flags_are_refused() {
        let mut o = zeroed();
        o.flags = 0x80;
        // SAFETY: a whole, valid struct.
        let e = unsafe { read_options(&o) }.unwrap_err();
        assert!(e.message.contains("0x80"), "{}", e.message);
    }
}
