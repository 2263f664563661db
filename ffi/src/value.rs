//! Reading one value: `cachekit_get` (into the caller's buffer, with a size query),
//! `cachekit_get_alloc` (into a buffer the library allocates), `cachekit_get_local` (like
//! `cachekit_get`, from the shared segment only), and `cachekit_value_info`, the metadata of a
//! hit.

use std::cell::RefCell;

use ::cachekit_client::{HitInfo, Source};

use crate::args::{bytes_in, handle, out_ptr, write_out};
use crate::buf::alloc_copy;
use crate::client::cachekit_client;
use crate::error::{cachekit_result, Failure};
use crate::panic::{ffi_boundary, LenOrCode};

/// Where a hit came from.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum cachekit_source {
    /// Read straight from the shared segment: no syscall, no socket.
    CACHEKIT_SOURCE_SEGMENT = 0,
    /// Answered by the daemon over the socket (the segment did not have it, or its heartbeat
    /// was stale).
    CACHEKIT_SOURCE_DAEMON = 1,
    /// Computed by this very call (a query that held the key's fill lease).
    CACHEKIT_SOURCE_COMPUTED = 2,
}

/// Metadata of a hit. Times are Unix milliseconds, the same in every process.
///
/// A **stale** hit (past `expires_ms`, within the grace period) returns `CACHEKIT_OK` like a
/// fresh one, with `stale` set: serve it, and refresh it (stale-while-revalidate). A miss is
/// `CACHEKIT_MISS`. So `rc == CACHEKIT_OK` means "use this value", and `info.stale` tells
/// whether to refresh it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct cachekit_value_info {
    /// When the entry was written.
    pub created_ms: u64,
    /// When it stops being fresh; 0 = never.
    pub expires_ms: u64,
    /// When it stops being servable at all (equal to `expires_ms` when there is no grace
    /// period); 0 = never.
    pub grace_until_ms: u64,
    /// Where the hit came from (a `cachekit_source`).
    pub source: cachekit_source,
    /// Past `expires_ms`, within grace: serve it and refresh it.
    pub stale: bool,
    /// The value is an integer counter (written by `cachekit_incr` or `cachekit_set_i64`): its
    /// bytes are the ASCII decimal of an int64 (`-42`, `0`, `9223372036854775807`).
    pub integer: bool,
    /// The entry's version on this host, for `cachekit_cas`: it changes with every write of
    /// the key. 0 = unknown (a value answered from Redis that the daemon did not keep); a
    /// `cachekit_cas` with version 0 never stores.
    pub version: u64,
}

const _: () = assert!(std::mem::size_of::<cachekit_value_info>() == 40);

impl From<HitInfo> for cachekit_value_info {
    fn from(h: HitInfo) -> Self {
        cachekit_value_info {
            created_ms: h.created_ms,
            expires_ms: h.expires_ms.unwrap_or(0),
            grace_until_ms: h.grace_until_ms.unwrap_or(0),
            source: match h.source {
                Source::Segment => cachekit_source::CACHEKIT_SOURCE_SEGMENT,
                Source::Daemon => cachekit_source::CACHEKIT_SOURCE_DAEMON,
                Source::Computed => cachekit_source::CACHEKIT_SOURCE_COMPUTED,
            },
            stale: h.stale,
            integer: h.integer,
            version: h.version,
        }
    }
}

/// A per-thread buffer larger than this is released after the call instead of kept.
const SCRATCH_KEEP: usize = 256 << 10;

thread_local! {
    /// The decoded value, before it is copied into the caller's buffer. One per thread, so a
    /// hit allocates nothing once the buffer is warm.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Which get a read is.
#[derive(Clone, Copy)]
enum Reach {
    /// `Client::get_into`: the segment, then the daemon (or Redis).
    Full,
    /// `Client::get_local_into`: the segment only.
    Local,
}

/// Gets `key` into this thread's scratch buffer and hands the bytes to `then`.
fn with_value<T>(
    client: &cachekit_client,
    key: &[u8],
    reach: Reach,
    then: impl FnOnce(&[u8], HitInfo) -> Result<T, Failure>,
) -> Result<Option<T>, Failure> {
    SCRATCH.with(|cell| {
        let mut fresh = Vec::new();
        let mut borrowed = cell.try_borrow_mut();
        let buf = match borrowed.as_deref_mut() {
            Ok(b) => b,
            Err(_) => &mut fresh,
        };
        let hit = match reach {
            Reach::Full => client.client.get_into(key, buf),
            Reach::Local => client.client.get_local_into(key, buf),
        };
        let result = match hit {
            Ok(Some(info)) => then(buf, info).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(e.into()),
        };
        if buf.capacity() > SCRATCH_KEEP {
            *buf = Vec::new();
        }
        result
    })
}

/// Gets the value of `key` into the caller's buffer.
///
/// - `CACHEKIT_OK`: a hit (fresh or stale); the value is in `buf[0..*value_len]` and `*info`
///   (if `info` is not NULL) describes it.
/// - `CACHEKIT_MISS`: not in the cache, or the daemon cannot be reached. Nothing written.
/// - `CACHEKIT_BUFFER_TOO_SMALL`: `*value_len` receives the value's length; nothing else is
///   written. Call again with a buffer that large (the value may have changed meanwhile: loop
///   while you get this code). `buf = NULL, buf_len = 0` is a pure size query.
/// - errors: `CACHEKIT_TOO_LARGE` (key over `max_key_bytes`), `CACHEKIT_CORRUPT_VALUE`,
///   `CACHEKIT_NOT_PERMITTED`, `CACHEKIT_PROTOCOL`, `CACHEKIT_NULL_ARGUMENT`.
///
/// A hit costs no syscall and no lock. Each calling thread keeps one copy buffer of the largest
/// value it read, up to 256 KiB.
///
/// # Safety
///
/// `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
/// with length 0); `buf` to `buf_len` writable bytes (or NULL with length 0); `value_len` to a
/// writable `size_t`; `info` must be NULL or point to a writable `cachekit_value_info`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_get(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    buf: *mut u8,
    buf_len: usize,
    value_len: *mut usize,
    info: *mut cachekit_value_info,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller's promises are `get_into_buf`'s.
        unsafe {
            get_into_buf(
                client,
                key,
                key_len,
                buf,
                buf_len,
                value_len,
                info,
                Reach::Full,
            )
        }
    })
}

/// Gets the value of `key` into the caller's buffer, like `cachekit_get`, and returns its
/// length: one call and its return value, no out-parameter to read back (which costs a
/// binding like Python's cffi as much as the call's other work).
///
/// - `>= 0`: a hit (fresh or stale) of that many bytes, now in `buf[0..n]`; `*info` (if `info`
///   is not NULL) describes it.
/// - `-CACHEKIT_MISS` (-1): not in the cache, or the daemon cannot be reached. Nothing written.
/// - `-CACHEKIT_BUFFER_TOO_SMALL` (-2): the value is longer than `buf_len`; nothing written.
///   `cachekit_get` with the same key tells its length.
/// - otherwise minus the `cachekit_result` of the failure, as `cachekit_get` would return it
///   (the message in `cachekit_last_error_message`).
///
/// # Safety
///
/// `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
/// with length 0); `buf` to `buf_len` writable bytes (or NULL with length 0); `info` must be
/// NULL or point to a writable `cachekit_value_info`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_get_len(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    buf: *mut u8,
    buf_len: usize,
    info: *mut cachekit_value_info,
) -> i64 {
    ffi_boundary(|| {
        let mut len = 0usize;
        // SAFETY: the caller's promises are `get_into_buf`'s; `len` is a writable `usize`.
        let rc = unsafe {
            get_into_buf(
                client,
                key,
                key_len,
                buf,
                buf_len,
                &mut len,
                info,
                Reach::Full,
            )
        };
        LenOrCode(match rc {
            Ok(cachekit_result::CACHEKIT_OK) => Ok(len),
            other => Err(other),
        })
    })
}

/// Gets the value of `key` from the shared segment only: like `cachekit_get` (same
/// parameters, same results, same outputs), except that it never leaves the process. No socket
/// request, no Redis, no reconnect, no lock: a read of shared memory, so it never blocks (for
/// event loops: call it inline, and `cachekit_get` on a thread that may wait only when it
/// misses).
///
/// - `CACHEKIT_OK`: a hit from the segment (`info->source` is `CACHEKIT_SOURCE_SEGMENT`),
///   fresh or stale, exactly as `cachekit_get` would have served it.
/// - `CACHEKIT_MISS`: the segment does not hold the key, or cannot be used: not attached yet
///   (a `CACHEKIT_OPEN_LAZY` handle that has not reached the daemon), the daemon's heartbeat
///   is stale, or the daemon was found gone. A key the daemon could fill (from Redis) misses
///   here until a `cachekit_get` or a write brings it into the segment.
/// - `CACHEKIT_BUFFER_TOO_SMALL`: as for `cachekit_get`.
/// - errors: `CACHEKIT_TOO_LARGE` (key over `max_key_bytes`), `CACHEKIT_CORRUPT_VALUE`,
///   `CACHEKIT_NULL_ARGUMENT`.
///
/// # Safety
///
/// As `cachekit_get`: `client` must be a live handle; `key` must point to `key_len` readable
/// bytes (or be NULL with length 0); `buf` to `buf_len` writable bytes (or NULL with length 0);
/// `value_len` to a writable `size_t`; `info` must be NULL or point to a writable
/// `cachekit_value_info`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_get_local(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    buf: *mut u8,
    buf_len: usize,
    value_len: *mut usize,
    info: *mut cachekit_value_info,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller's promises are `get_into_buf`'s.
        unsafe {
            get_into_buf(
                client,
                key,
                key_len,
                buf,
                buf_len,
                value_len,
                info,
                Reach::Local,
            )
        }
    })
}

/// The body of `cachekit_get` and `cachekit_get_local`.
///
/// # Safety
///
/// As `cachekit_get`.
#[allow(clippy::too_many_arguments)]
unsafe fn get_into_buf(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    buf: *mut u8,
    buf_len: usize,
    value_len: *mut usize,
    info: *mut cachekit_value_info,
    reach: Reach,
) -> Result<cachekit_result, Failure> {
    // SAFETY: the caller promises a live handle or NULL.
    let c = unsafe { handle(client, "client") }?;
    // SAFETY: the caller promises `key_len` readable bytes at `key` (or a length of 0).
    let key = unsafe { bytes_in(key, key_len, "key") }?;
    let value_len = out_ptr(value_len, "value_len")?;
    if buf.is_null() && buf_len > 0 {
        return Err(Failure::null_argument("buf"));
    }
    let found = with_value(c, key, reach, |bytes, hit| {
        if bytes.len() > buf_len {
            // SAFETY: non-NULL and writable, the caller promises.
            unsafe { write_out(value_len, bytes.len()) };
            return Err(Failure::buffer_too_small("the value", bytes.len(), buf_len));
        }
        // SAFETY:
        // - `buf` has `buf_len >= bytes.len()` writable bytes (non-NULL when bytes is not
        //   empty, since then buf_len > 0), the caller promises;
        // - `bytes` is this thread's scratch buffer, which cannot overlap the caller's;
        // - `value_len` is non-NULL and `info` NULL or writable, the caller promises.
        unsafe {
            if !bytes.is_empty() {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len());
            }
            write_out(value_len, bytes.len());
            if !info.is_null() {
                write_out(info, hit.into());
            }
        }
        Ok(())
    })?;
    Ok(match found {
        Some(()) => cachekit_result::CACHEKIT_OK,
        None => cachekit_result::CACHEKIT_MISS,
    })
}

/// Gets the value of `key` into a buffer the library allocates.
///
/// On `CACHEKIT_OK`, `*value` receives a buffer (never NULL, even for an empty value) of
/// `*value_len` bytes, which the caller frees with `cachekit_buf_free`, and `*info` (if `info`
/// is not NULL) describes the hit. On `CACHEKIT_MISS` and errors nothing is written.
///
/// # Safety
///
/// `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
/// with length 0); `value` must point to a writable `uint8_t *`, `value_len` to a writable
/// `size_t`; `info` must be NULL or point to a writable `cachekit_value_info`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_get_alloc(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    value: *mut *mut u8,
    value_len: *mut usize,
    info: *mut cachekit_value_info,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        // SAFETY: the caller promises `key_len` readable bytes at `key` (or a length of 0).
        let key = unsafe { bytes_in(key, key_len, "key") }?;
        let value = out_ptr(value, "value")?;
        let value_len = out_ptr(value_len, "value_len")?;
        let found = with_value(c, key, Reach::Full, |bytes, hit| {
            let copy = alloc_copy(bytes);
            // SAFETY: `value` and `value_len` are non-NULL and writable, `info` NULL or
            // writable, the caller promises.
            unsafe {
                write_out(value, copy);
                write_out(value_len, bytes.len());
                if !info.is_null() {
                    write_out(info, hit.into());
                }
            }
            Ok(())
        })?;
        Ok(match found {
            Some(()) => cachekit_result::CACHEKIT_OK,
            None => cachekit_result::CACHEKIT_MISS,
        })
    })
}
