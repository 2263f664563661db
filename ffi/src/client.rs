//! `cachekit_client`: the handle, its lifecycle and its writes (set, delete, invalidate, clear)
//! and ping. Reads are in `value.rs` (get) and `batch.rs` (get_many), counters in `stats.rs`.

use std::ffi::c_char;
use std::time::Duration;

use ::cachekit_client::{Client, SetOptions};

use crate::args::{bytes_in, handle, out_ptr, str_array_in, str_in, write_out};
use crate::error::{cachekit_result, Failure};
use crate::options::{cachekit_options, read_options};
use crate::panic::ffi_boundary;

/// `cachekit_invalidate` flag: invalidate only entries tagged with exactly these paths, not the
/// ones below them.
pub const CACHEKIT_INVALIDATE_EXACT: u32 = 1;

/// A connection to a cachekitd: an attached shared segment, a small socket pool and a
/// namespace. Opaque. Thread-safe: every function that takes a `const cachekit_client *` may
/// be called from any number of threads at once on the same handle.
#[allow(non_camel_case_types)]
pub struct cachekit_client {
    pub(crate) client: Client,
    /// Unique per handle for the life of the process (a freed handle's address can be reused
    /// by the next one; this cannot): names the handle in per-thread state.
    pub(crate) id: u64,
}

impl cachekit_client {
    fn boxed(client: Client) -> *mut cachekit_client {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::into_raw(Box::new(cachekit_client { client, id }))
    }
}

/// Opens a client: connects to the daemon, maps its segment (unless `CACHEKIT_OPEN_LAZY`).
///
/// On `CACHEKIT_OK`, `*out` receives a handle to free with `cachekit_client_close`.
/// Errors: `CACHEKIT_UNAVAILABLE` when cachekitd is not running (the last error message says
/// where it was looked for and how to start it), `CACHEKIT_NOT_PERMITTED`,
/// `CACHEKIT_INVALID_ARGUMENT` / `CACHEKIT_TOO_LARGE` for bad options.
///
/// # Safety
///
/// `options` must point to a `cachekit_options` of `options->struct_size` readable bytes;
/// `out` must point to a writable `cachekit_client *`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_client_open(
    options: *const cachekit_options,
    out: *mut *mut cachekit_client,
) -> cachekit_result {
    ffi_boundary(|| {
        if options.is_null() {
            return Err(Failure::null_argument("options"));
        }
        let out = out_ptr(out, "out")?;
        // SAFETY: non-NULL; the caller promises `struct_size` readable bytes.
        let opts = unsafe { read_options(options) }?;
        let client = if opts.lazy {
            Client::connect_lazy(opts.client)?
        } else {
            Client::connect(opts.client)?
        };
        // SAFETY: `out` is non-NULL and writable, the caller promises.
        unsafe { write_out(out, cachekit_client::boxed(client)) };
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

/// A second handle on another namespace, sharing this one's connections, segment and
/// counters (no new connection). Close both, in any order.
///
/// # Safety
///
/// `client` must be a live handle; `ns` a NUL-terminated string; `out` must point to a
/// writable `cachekit_client *`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_client_with_namespace(
    client: *const cachekit_client,
    ns: *const c_char,
    out: *mut *mut cachekit_client,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        // SAFETY: the caller promises NULL or a NUL-terminated string.
        let ns = unsafe { str_in(ns, "ns") }?;
        let out = out_ptr(out, "out")?;
        let other = c.client.with_namespace(ns)?;
        // SAFETY: `out` is non-NULL and writable, the caller promises.
        unsafe { write_out(out, cachekit_client::boxed(other)) };
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

/// Closes a handle. NULL is a no-op. The handle must not be in use by another thread, and must
/// not be used afterwards. A handle does not survive `fork()`: the child opens its own.
///
/// # Safety
///
/// `client` must be NULL or a handle from `cachekit_client_open` /
/// `cachekit_client_with_namespace` that was not closed yet.
#[no_mangle]
pub unsafe extern "C" fn cachekit_client_close(client: *mut cachekit_client) {
    ffi_boundary(|| {
        if !client.is_null() {
            // SAFETY: a live handle made by `Box::into_raw` in this file, closed once (the
            // caller's promise), with no other thread using it.
            drop(unsafe { Box::from_raw(client) });
        }
    })
}

/// Stores `value` under `key`. When it returns `CACHEKIT_OK`, no read on the host that
/// starts afterwards sees an older value.
///
/// - `ttl_ms`: time to live in ms; **0 = never expires** (until evicted, deleted,
///   invalidated).
/// - `grace_ms`: how long after expiry the value may still be served, marked stale, while a
///   caller refreshes it. 0 = none.
/// - `tags`, `tag_count`: tag paths (`posts/123/comments`) for `cachekit_invalidate`; NULL when
///   `tag_count` is 0.
///
/// Values may be as large as the daemon's `--max-value-bytes` (the client adopts the daemon's
/// limit when it connects).
///
/// Errors: `CACHEKIT_TOO_LARGE` (key, value, tag or tag count over the daemon's limits),
/// `CACHEKIT_INVALID_ARGUMENT` (malformed tag), `CACHEKIT_UNAVAILABLE`, `CACHEKIT_TIMEOUT`,
/// `CACHEKIT_NOT_PERMITTED`.
///
/// # Safety
///
/// `client` must be a live handle; `key`/`value` must point to `key_len`/`value_len`
/// readable bytes (or be NULL with length 0); `tags` must point to `tag_count`
/// NUL-terminated strings (or be NULL with count 0).
#[no_mangle]
pub unsafe extern "C" fn cachekit_set(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_ms: u64,
    grace_ms: u64,
    tags: *const *const c_char,
    tag_count: usize,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        // SAFETY: the caller promises `key_len` readable bytes at `key` (or a length of 0).
        let key = unsafe { bytes_in(key, key_len, "key") }?;
        // SAFETY: the caller promises `value_len` readable bytes at `value` (or a length of 0).
        let value = unsafe { bytes_in(value, value_len, "value") }?;
        // SAFETY: the caller promises `tag_count` readable string pointers at `tags` (or a count of 0).
        let tags = unsafe { str_array_in(tags, tag_count, "tags") }?;
        let opts = set_options(ttl_ms, grace_ms, tags);
        c.client.set(key, value, &opts)?;
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

/// Removes `key`: `CACHEKIT_OK` if it was there, `CACHEKIT_MISS` if not (both are success).
///
/// # Safety
///
/// `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
/// with length 0).
#[no_mangle]
pub unsafe extern "C" fn cachekit_delete(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        // SAFETY: the caller promises `key_len` readable bytes at `key` (or a length of 0).
        let key = unsafe { bytes_in(key, key_len, "key") }?;
        Ok(if c.client.delete(key)? {
            cachekit_result::CACHEKIT_OK
        } else {
            cachekit_result::CACHEKIT_MISS
        })
    })
}

/// Invalidates every entry of the handle's namespace tagged with one of `tags`, and (unless
/// `flags` has `CACHEKIT_INVALIDATE_EXACT`) every entry tagged below one: `posts/123` also
/// covers `posts/123/comments`, never `posts/1234`. O(1) per tag. `tag_count` 0 does nothing.
///
/// Errors: `CACHEKIT_INVALID_ARGUMENT` (malformed tag, unknown flag), `CACHEKIT_TOO_LARGE`,
/// `CACHEKIT_UNAVAILABLE`, `CACHEKIT_TIMEOUT`, `CACHEKIT_NOT_PERMITTED`.
///
/// # Safety
///
/// `client` must be a live handle; `tags` must point to `tag_count` NUL-terminated strings (or
/// be NULL with count 0).
#[no_mangle]
pub unsafe extern "C" fn cachekit_invalidate(
    client: *const cachekit_client,
    tags: *const *const c_char,
    tag_count: usize,
    flags: u32,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        // SAFETY: the caller promises `tag_count` readable string pointers at `tags` (or a count of 0).
        let tags = unsafe { str_array_in(tags, tag_count, "tags") }?;
        if flags & !CACHEKIT_INVALIDATE_EXACT != 0 {
            return Err(Failure::invalid(format!(
                "cachekit_invalidate: unknown flags {:#x}",
                flags & !CACHEKIT_INVALIDATE_EXACT
            )));
        }
        if flags & CACHEKIT_INVALIDATE_EXACT != 0 {
            c.client.invalidate_exact(&tags)?;
        } else {
            c.client.invalidate(&tags)?;
        }
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

/// Drops every entry of the handle's namespace (other namespaces are untouched). O(1).
///
/// # Safety
///
/// `client` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn cachekit_clear(client: *const cachekit_client) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        c.client.clear()?;
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

/// A round trip to the daemon. On `CACHEKIT_OK`, the optional outputs receive the daemon's
/// epoch (it changes when the daemon restarts) and the round-trip time in microseconds.
///
/// # Safety
///
/// `client` must be a live handle; `epoch` and `rtt_us` must each be NULL or point to a
/// writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_ping(
    client: *const cachekit_client,
    epoch: *mut u64,
    rtt_us: *mut u64,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        let pong = c.client.ping()?;
        if !epoch.is_null() {
            // SAFETY: non-NULL and writable, the caller promises.
            unsafe { write_out(epoch, pong.epoch) };
        }
        if !rtt_us.is_null() {
            let us = u64::try_from(pong.rtt.as_micros()).unwrap_or(u64::MAX);
            // SAFETY: non-NULL and writable, the caller promises.
            unsafe { write_out(rtt_us, us) };
        }
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

/// The options of `cachekit_set` and `cachekit_set_many`: a TTL of 0 never expires.
pub(crate) fn set_options(ttl_ms: u64, grace_ms: u64, tags: Vec<&str>) -> SetOptions {
    let opts = SetOptions::new()
        .grace(Duration::from_millis(grace_ms))
        .tags(tags);
    if ttl_ms != 0 {
        opts.ttl(Duration::from_millis(ttl_ms))
    } else {
        opts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::cachekit_result::*;
    use std::ptr::{null, null_mut};

    #[test]
    fn null_handles_are_reported_not_dereferenced() {
        // SAFETY: NULL handles are the error under test; nothing else is read.
        unsafe {
            assert_eq!(cachekit_clear(null()), CACHEKIT_NULL_ARGUMENT);
            assert_eq!(cachekit_delete(null(), null(), 0), CACHEKIT_NULL_ARGUMENT);
            let mut len = 7usize;
            assert_eq!(
                crate::value::cachekit_get_local(
                    null(),
                    null(),
                    0,
                    null_mut(),
                    0,
                    &mut len,
                    null_mut()
                ),
                CACHEKIT_NULL_ARGUMENT
            );
            assert_eq!(len, 7);
            assert_eq!(
                cachekit_set(null(), null(), 0, null(), 0, 0, 0, null(), 0),
                CACHEKIT_NULL_ARGUMENT
            );
            assert_eq!(
                cachekit_invalidate(null(), null(), 0, 0),
                CACHEKIT_NULL_ARGUMENT
            );
            assert_eq!(
                cachekit_ping(null(), null_mut(), null_mut()),
                CACHEKIT_NULL_ARGUMENT
            );
            let mut out = null_mut();
            assert_eq!(
                cachekit_client_open(null(), &mut out),
                CACHEKIT_NULL_ARGUMENT
            );
            assert!(out.is_null());
            cachekit_client_close(null_mut());
        }
    }

    #[test]
    fn a_lazy_client_without_a_daemon_misses_and_refuses_writes() {
        let dir = std::env::temp_dir().join(format!("cachekit-ffi-{}", std::process::id()));
        let sock = std::ffi::CString::new(dir.join("none.sock").to_str().unwrap()).unwrap();
        let opts = cachekit_options {
            struct_size: std::mem::size_of::<cachekit_options>(),
            flags: crate::options::CACHEKIT_OPEN_LAZY,
            pool_size: 0,
            socket_path: sock.as_ptr(),
            instance: null(),
            ns: c"ffi-test".as_ptr(),
            client_name: null(),
            connect_timeout_ms: 0,
            request_timeout_ms: 0,
            redis_url: null(),
            redis_timeout_ms: 0,
            reserved: 0,
            encryption_key: null(),
            encryption_key_len: 0,
            previous_keys: null(),
            previous_keys_count: 0,
            tenant: null(),
            encryption_flags: 0,
            reserved2: 0,
            encryption_memo_bytes: 0,
        };
        let mut c = null_mut();
        // SAFETY: valid options and output.
        assert_eq!(unsafe { cachekit_client_open(&opts, &mut c) }, CACHEKIT_OK);
        assert!(!c.is_null());
        // SAFETY: `c` is live; key, value and outputs are valid buffers.
        unsafe {
            let (mut buf, mut len) = ([0u8; 4], 7usize);
            let (k, cap) = (b"k".as_ptr(), buf.len());
            // Never attached: both gets miss (only cachekit_get tried to connect).
            assert_eq!(
                crate::value::cachekit_get_local(
                    c,
                    k,
                    1,
                    buf.as_mut_ptr(),
                    cap,
                    &mut len,
                    null_mut()
                ),
                CACHEKIT_MISS
            );
            assert_eq!(
                crate::value::cachekit_get(c, k, 1, buf.as_mut_ptr(), cap, &mut len, null_mut()),
                CACHEKIT_MISS
            );
            assert_eq!(len, 7);
            assert_eq!(
                cachekit_set(c, b"k".as_ptr(), 1, b"v".as_ptr(), 1, 0, 0, null(), 0),
                CACHEKIT_UNAVAILABLE
            );
            assert_eq!(cachekit_delete(c, b"k".as_ptr(), 1), CACHEKIT_UNAVAILABLE);
            assert_eq!(
                cachekit_invalidate(c, null(), 0, 2),
                CACHEKIT_INVALID_ARGUMENT
            );
            cachekit_client_close(c);
        }
        // Not lazy: the open itself fails, and says how to start the daemon.
        let opts = cachekit_options { flags: 0, ..opts };
        let mut c = null_mut();
        // SAFETY: valid options and output.
        let code = unsafe { cachekit_client_open(&opts, &mut c) };
        assert_eq!(code, CACHEKIT_UNAVAILABLE);
        assert!(c.is_null(), "outputs are written only on success");
        let msg = crate::error::last_error();
        assert!(msg.contains("cachekitd is not running at"), "{msg}");
    }
}
