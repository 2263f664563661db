//! Compute once per host: `cachekit_lease` (a key's fill lease, over the Rust client's
//! `FillLease`), `cachekit_lease_options`, the two-step API (`cachekit_lease_acquire` →
//! compute → `cachekit_lease_fill` / `cachekit_lease_release`), `cachekit_refresh_lease`, and
//! `cachekit_query`, the one-call form with a compute callback.

use std::ffi::{c_int, c_void};
use std::mem::size_of;
use std::time::Duration;

use ::cachekit_client::{
    FillLease, LeaseOptions, LeaseOutcome, OnTimeout, QueryError, QueryOptions, Value,
};

use crate::args::{bytes_in, handle, out_ptr, write_out};
use crate::atomic::{cachekit_set_options, read_set_options_flags, CACHEKIT_SET_INTEGER};
use crate::buf::alloc_copy;
use crate::client::cachekit_client;
use crate::error::{cachekit_result, Failure};
use crate::panic::ffi_boundary;
use crate::value::cachekit_value_info;

/// `cachekit_lease_options.flags`: also take the lease in Redis, so that one host of all those
/// sharing the daemon's Redis computes (the daemon falls back to the host's lease when Redis
/// is unreachable).
pub const CACHEKIT_LEASE_GLOBAL: u32 = 1;

/// `cachekit_lease_options.flags`, `cachekit_query` only: when the wait for another caller's
/// value times out, return `CACHEKIT_LEASE_BUSY` instead of computing the value anyway (the
/// default: the wait only bounds the delay).
pub const CACHEKIT_LEASE_ERROR_ON_TIMEOUT: u32 = 2;

/// Every flag this build knows.
const KNOWN_LEASE_FLAGS: u32 = CACHEKIT_LEASE_GLOBAL | CACHEKIT_LEASE_ERROR_ON_TIMEOUT;

/// How a lease is waited for and held. NULL means every default. Otherwise zero-initialise it
/// and set `struct_size`: **every zero field means "the default"**, as in `cachekit_options`.
///
/// ```c
/// cachekit_lease_options lo = {0};
/// lo.struct_size = sizeof lo;
/// lo.wait_timeout_ms = 2000;
/// ```
///
/// The struct has no padding on 64-bit targets (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct cachekit_lease_options {
    /// Must be `sizeof(cachekit_lease_options)` as the program sees it.
    pub struct_size: usize,
    /// `CACHEKIT_LEASE_*` bits; 0 for none. Unknown bits are refused.
    pub flags: u32,
    /// Must be 0 (room for a later field).
    pub reserved: u32,
    /// How long to wait for another holder's value, ms. 0 = 10000. The call blocks in the
    /// daemon that long at most (plus one round trip).
    pub wait_timeout_ms: u64,
    /// How long the holder may compute before the lease passes to a waiter, ms. 0 = 30000;
    /// the daemon caps it at 10 minutes. A holder that dies releases its lease at once.
    pub lease_timeout_ms: u64,
}

/// The smallest `struct_size` accepted: the size of the first published version (this one).
const MIN_LEASE_OPTIONS_SIZE: usize = size_of::<cachekit_lease_options>();

/// Pins the layout the doc comment promises (64-bit targets).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(size_of::<cachekit_lease_options>() == 32);

/// Lease options as the Rust client takes them, and the query's choice on a timeout.
struct ReadLeaseOptions {
    lease: LeaseOptions,
    on_timeout: OnTimeout,
}

/// Reads optional lease options (NULL: every default).
///
/// # Safety
/// `opts` is NULL, or aligned and points to at least `struct_size` readable bytes (its first
/// field).
unsafe fn read_lease_options(
    opts: *const cachekit_lease_options,
) -> Result<ReadLeaseOptions, Failure> {
    let mut out = ReadLeaseOptions {
        lease: LeaseOptions::default(),
        on_timeout: OnTimeout::Compute,
    };
    if opts.is_null() {
        return Ok(out);
    }
    // SAFETY: non-NULL, aligned and readable for at least the first field, the caller promises.
    let struct_size = unsafe { opts.cast::<usize>().read() };
    if struct_size < MIN_LEASE_OPTIONS_SIZE {
        return Err(Failure::invalid(format!(
            "cachekit_lease_options.struct_size is {struct_size}; set it to \
             sizeof(cachekit_lease_options) ({MIN_LEASE_OPTIONS_SIZE} with this header)"
        )));
    }
    if struct_size > MIN_LEASE_OPTIONS_SIZE {
        // A newer header: its extra fields must be zero ("default"), or this library would
        // silently ignore a setting.
        // SAFETY: the caller promises `struct_size` readable bytes; we read those past ours.
        let extra = unsafe {
            std::slice::from_raw_parts(
                opts.cast::<u8>().add(MIN_LEASE_OPTIONS_SIZE),
                struct_size - MIN_LEASE_OPTIONS_SIZE,
            )
        };
        if extra.iter().any(|&b| b != 0) {
            return Err(Failure::invalid(format!(
                "cachekit_lease_options sets fields that libcachekit {} does not know \
                 (struct_size {struct_size}, this library's is {MIN_LEASE_OPTIONS_SIZE}); use \
                 a newer libcachekit",
                env!("CARGO_PKG_VERSION")
            )));
        }
    }
    // SAFETY: at least our size is readable (checked above) and every bit pattern is a valid
    // `cachekit_lease_options` (integers only).
    let o = unsafe { opts.read() };
    if o.flags & !KNOWN_LEASE_FLAGS != 0 {
        return Err(Failure::invalid(format!(
            "cachekit_lease_options.flags has unknown bits {:#x}",
            o.flags & !KNOWN_LEASE_FLAGS
        )));
    }
    if o.reserved != 0 {
        return Err(Failure::invalid(
            "cachekit_lease_options.reserved is not 0; zero-initialise the struct",
        ));
    }
    if o.wait_timeout_ms != 0 {
        out.lease.wait_timeout = Duration::from_millis(o.wait_timeout_ms);
    }
    if o.lease_timeout_ms != 0 {
        out.lease.lease_timeout = Duration::from_millis(o.lease_timeout_ms);
    }
    out.lease.global = o.flags & CACHEKIT_LEASE_GLOBAL != 0;
    if o.flags & CACHEKIT_LEASE_ERROR_ON_TIMEOUT != 0 {
        out.on_timeout = OnTimeout::Error;
    }
    Ok(out)
}

/// Set options for a leased fill: those of `cachekit_set_options`, without
/// `CACHEKIT_SET_INTEGER` (a fill stores bytes).
///
/// # Safety
/// As `read_set_options_flags`.
unsafe fn read_fill_options(
    opts: *const cachekit_set_options,
) -> Result<::cachekit_client::SetOptions, Failure> {
    // SAFETY: the caller's promise, passed on.
    let (set, flags) = unsafe { read_set_options_flags(opts) }?;
    if flags & CACHEKIT_SET_INTEGER != 0 {
        return Err(Failure::invalid(
            "CACHEKIT_SET_INTEGER is not supported by a leased fill or cachekit_query; store \
             the decimal as bytes, or use cachekit_add / cachekit_set_i64",
        ));
    }
    Ok(set)
}

/// A key's fill lease, held by this process: compute the value, then end it with
/// `cachekit_lease_fill` (the value reaches every waiter) or `cachekit_lease_release` (the
/// computation failed; one waiter takes the lease over). Opaque.
///
/// It holds a daemon connection of its own, so a process that dies (even by `kill -9`)
/// releases its leases at once. Used by one thread at a time; it may move between threads.
/// It does not survive `fork()`, and does not depend on its client handle staying open.
#[allow(non_camel_case_types)]
pub struct cachekit_lease {
    lease: FillLease,
}

/// Copies a value into the caller's buffer, with `cachekit_get`'s rules: `CACHEKIT_OK`, or
/// `CACHEKIT_BUFFER_TOO_SMALL` with only `*value_len` written.
///
/// # Safety
/// `buf` points to `buf_len` writable bytes (or is NULL with length 0, checked by the caller);
/// `value_len` is non-NULL and writable; `info` is NULL or writable.
unsafe fn value_out(
    v: &Value,
    buf: *mut u8,
    buf_len: usize,
    value_len: *mut usize,
    info: *mut cachekit_value_info,
) -> Result<cachekit_result, Failure> {
    let bytes = &v.bytes;
    if bytes.len() > buf_len {
        // SAFETY: non-NULL and writable, the caller promises.
        unsafe { write_out(value_len, bytes.len()) };
        return Err(Failure::buffer_too_small("the value", bytes.len(), buf_len));
    }
    // SAFETY:
    // - `buf` has `buf_len >= bytes.len()` writable bytes (non-NULL when bytes is not empty,
    //   since then buf_len > 0), the caller promises;
    // - `bytes` is our own Vec, which cannot overlap the caller's buffer;
    // - `value_len` is non-NULL and `info` NULL or writable, the caller promises.
    unsafe {
        if !bytes.is_empty() {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len());
        }
        write_out(value_len, bytes.len());
        if !info.is_null() {
            write_out(info, v.info().into());
        }
    }
    Ok(cachekit_result::CACHEKIT_OK)
}

/// Asks for the fill lease of `key`, after a miss: the one call of the host that gets it
/// computes the value; every other caller, in any process, waits for that value.
///
/// - `CACHEKIT_OK`: a value is there, or the holder's value came within the wait: it is in
///   `buf[0..*value_len]` and `*info` (if `info` is not NULL) describes it, as for
///   `cachekit_get` (it may be stale within grace). No lease.
/// - `CACHEKIT_LEASE_GRANTED`: `*out` receives the lease and nothing else is written: compute
///   the value, then `cachekit_lease_fill` it (or `cachekit_lease_release` it when the
///   computation fails). Fill or release it promptly: waiters block until then, or until
///   `lease_timeout_ms`.
/// - `CACHEKIT_LEASE_BUSY`: another caller holds the lease and its value did not come within
///   `wait_timeout_ms`. Nothing written. Compute the value yourself, ask again, or fail.
/// - `CACHEKIT_BUFFER_TOO_SMALL`: a value came but does not fit; `*value_len` receives its
///   length and nothing else is written. Call again with a buffer that large (the value is
///   then answered at once, unless it went meanwhile).
/// - errors: `CACHEKIT_UNAVAILABLE` / `CACHEKIT_TIMEOUT` (no daemon to coordinate with:
///   compute, and cache nothing), `CACHEKIT_NOT_PERMITTED` (the peer may not write),
///   `CACHEKIT_TOO_LARGE` (key), `CACHEKIT_INVALID_ARGUMENT` (options),
///   `CACHEKIT_CORRUPT_VALUE`, `CACHEKIT_NULL_ARGUMENT`.
///
/// It always asks the daemon (call `cachekit_get` first: a hit needs no lease). It blocks up
/// to `wait_timeout_ms`; the client's request timeout does not cut that wait short.
///
/// # Safety
///
/// `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
/// with length 0); `options` must be NULL or point to a `cachekit_lease_options` of
/// `options->struct_size` readable bytes; `out` must point to a writable `cachekit_lease *`;
/// `buf` to `buf_len` writable bytes (or NULL with length 0); `value_len` to a writable
/// `size_t`; `info` must be NULL or point to a writable `cachekit_value_info`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn cachekit_lease_acquire(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    options: *const cachekit_lease_options,
    out: *mut *mut cachekit_lease,
    buf: *mut u8,
    buf_len: usize,
    value_len: *mut usize,
    info: *mut cachekit_value_info,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        // SAFETY: the caller promises `key_len` readable bytes at `key` (or a length of 0).
        let key = unsafe { bytes_in(key, key_len, "key") }?;
        // SAFETY: the caller promises NULL or a whole `cachekit_lease_options`.
        let opts = unsafe { read_lease_options(options) }?;
        let out = out_ptr(out, "out")?;
        let value_len = out_ptr(value_len, "value_len")?;
        if buf.is_null() && buf_len > 0 {
            return Err(Failure::null_argument("buf"));
        }
        match c.client.lease(key, &opts.lease)? {
            LeaseOutcome::Hit(v) => {
                // SAFETY: the caller's promises on `buf`, `value_len` and `info`; `buf` is
                // non-NULL or its length 0 (checked above).
                unsafe { value_out(&v, buf, buf_len, value_len, info) }
            }
            LeaseOutcome::Granted(lease) => {
                let boxed = Box::into_raw(Box::new(cachekit_lease { lease }));
                // SAFETY: `out` is non-NULL and writable, the caller promises.
                unsafe { write_out(out, boxed) };
                Ok(cachekit_result::CACHEKIT_LEASE_GRANTED)
            }
            LeaseOutcome::Busy => Ok(cachekit_result::CACHEKIT_LEASE_BUSY),
        }
    })
}

/// Asks for the lease to refresh `key`'s stale value (a hit with `cachekit_value_info.stale`
/// set). Never waits: serve the stale value either way.
///
/// - `CACHEKIT_LEASE_GRANTED`: `*out` receives the lease: compute the new value, then
///   `cachekit_lease_fill` it (or `cachekit_lease_release` it). Exactly one caller of the host
///   gets it while the key is being refreshed.
/// - `CACHEKIT_LEASE_BUSY`: someone else is refreshing it. Nothing written.
/// - errors: as `cachekit_lease_acquire`.
///
/// # Safety
///
/// `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
/// with length 0); `options` must be NULL or point to a `cachekit_lease_options` of
/// `options->struct_size` readable bytes; `out` must point to a writable `cachekit_lease *`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_refresh_lease(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    options: *const cachekit_lease_options,
    out: *mut *mut cachekit_lease,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        // SAFETY: the caller promises `key_len` readable bytes at `key` (or a length of 0).
        let key = unsafe { bytes_in(key, key_len, "key") }?;
        // SAFETY: the caller promises NULL or a whole `cachekit_lease_options`.
        let opts = unsafe { read_lease_options(options) }?;
        let out = out_ptr(out, "out")?;
        match c.client.refresh_lease(key, &opts.lease)? {
            Some(lease) => {
                let boxed = Box::into_raw(Box::new(cachekit_lease { lease }));
                // SAFETY: `out` is non-NULL and writable, the caller promises.
                unsafe { write_out(out, boxed) };
                Ok(cachekit_result::CACHEKIT_LEASE_GRANTED)
            }
            None => Ok(cachekit_result::CACHEKIT_LEASE_BUSY),
        }
    })
}

/// Stores the computed `value` under the lease's key and ends the lease: every waiter gets
/// the value. **Consumes the lease whatever it returns** (on an error the lease is released,
/// so a waiter takes over); never use it again.
///
/// `options`: TTL, grace and tags as for `cachekit_add` (NULL: never expires, no tags);
/// `CACHEKIT_SET_INTEGER` is refused. On `CACHEKIT_OK`, `*stored` (if `stored` is not NULL)
/// tells whether the value was stored as fresh: false when the key was written or deleted, or
/// one of its tags invalidated, while it was computed (it would be stale: serve it to your
/// caller, it is simply not cached), or when the lease had passed on (`lease_timeout_ms`).
///
/// Errors: as `cachekit_set`; `CACHEKIT_INVALID_ARGUMENT` for bad options.
///
/// # Safety
///
/// `lease` must be a lease from `cachekit_lease_acquire` / `cachekit_refresh_lease` not
/// consumed yet (or NULL: `CACHEKIT_NULL_ARGUMENT`); `value` must point to `value_len`
/// readable bytes (or be NULL with length 0); `options` must be NULL or point to a
/// `cachekit_set_options` of `options->struct_size` readable bytes; `stored` must be NULL or
/// point to a writable `bool`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_lease_fill(
    lease: *mut cachekit_lease,
    value: *const u8,
    value_len: usize,
    options: *const cachekit_set_options,
    stored: *mut bool,
) -> cachekit_result {
    ffi_boundary(|| {
        if lease.is_null() {
            return Err(Failure::null_argument("lease"));
        }
        // SAFETY: a lease made by `Box::into_raw` in this file, consumed once (the caller's
        // promise). Dropping it on any early return releases it.
        let lease = unsafe { Box::from_raw(lease) };
        // SAFETY: the caller promises `value_len` readable bytes at `value` (or a length of 0).
        let value = unsafe { bytes_in(value, value_len, "value") }?;
        // SAFETY: the caller promises NULL or a whole `cachekit_set_options`.
        let set = unsafe { read_fill_options(options) }?;
        let done = lease.lease.fill(value, &set)?.is_some();
        if !stored.is_null() {
            // SAFETY: non-NULL and writable, the caller promises.
            unsafe { write_out(stored, done) };
        }
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

/// Ends the lease without a value (the computation failed): nothing is cached and one waiter
/// takes the lease over. Consumes the lease. NULL is a no-op. Never fails: when the daemon
/// cannot be reached, closing the lease's connection releases it all the same.
///
/// # Safety
///
/// `lease` must be NULL or a lease from `cachekit_lease_acquire` / `cachekit_refresh_lease`
/// not consumed yet.
#[no_mangle]
pub unsafe extern "C" fn cachekit_lease_release(lease: *mut cachekit_lease) {
    ffi_boundary(|| {
        if !lease.is_null() {
            // SAFETY: a lease made by `Box::into_raw` in this file, consumed once (the
            // caller's promise).
            let lease = unsafe { Box::from_raw(lease) };
            let _ = lease.lease.release();
        }
    })
}

/// Where the compute callback of `cachekit_query` puts its value
/// (`cachekit_compute_out_set`). Opaque; valid only during the callback.
#[allow(non_camel_case_types)]
pub struct cachekit_compute_out {
    value: Option<Vec<u8>>,
}

/// The compute callback of `cachekit_query`: computes the value and hands it over with
/// `cachekit_compute_out_set(out, ...)`, then returns 0; any other return is a failure
/// (nothing is cached, `cachekit_query` returns `CACHEKIT_COMPUTE_FAILED`; keep the details in
/// `user_data`). Returning 0 without setting a value stores the empty value. It runs on the
/// calling thread, at most once per `cachekit_query`, and must return normally (no
/// `longjmp` or C++ exception across the library).
#[allow(non_camel_case_types)]
pub type cachekit_compute_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, out: *mut cachekit_compute_out) -> c_int>;

/// Hands the computed value to `cachekit_query`: the bytes are copied at once (they stay the
/// caller's). Calling it again replaces the value.
///
/// Errors: `CACHEKIT_NULL_ARGUMENT`.
///
/// # Safety
///
/// `out` must be the pointer the callback received, during the callback; `value` must point
/// to `value_len` readable bytes (or be NULL with length 0).
#[no_mangle]
pub unsafe extern "C" fn cachekit_compute_out_set(
    out: *mut cachekit_compute_out,
    value: *const u8,
    value_len: usize,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises the live pointer of the running callback, or NULL; no
        // other reference to it exists while the callback runs.
        let out = unsafe { out.as_mut() }.ok_or_else(|| Failure::null_argument("out"))?;
        // SAFETY: the caller promises `value_len` readable bytes at `value` (or a length of 0).
        let value = unsafe { bytes_in(value, value_len, "value") }?;
        out.value = Some(value.to_vec());
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

/// The value of `key`, computed by `compute` at most once per host at a time (the t87s query
/// semantics of the Rust `Client::query`):
///
/// 1. a fresh hit is returned from the shared segment (no request, no callback);
/// 2. a stale hit (past its TTL, within grace) is returned at once, unless this caller is the
///    one of the host that gets to refresh it: then the callback runs and the new value is
///    stored and returned (a failed refresh returns the stale value);
/// 3. on a miss exactly one caller of the host runs its callback (it holds the key's fill
///    lease); every other caller, in any process, waits up to `wait_timeout_ms` for that
///    value. When the holder's callback fails, the holder gets `CACHEKIT_COMPUTE_FAILED` and
///    the waiters go on waiting for the next holder. When the wait times out the caller runs
///    its own callback, or returns `CACHEKIT_LEASE_BUSY` with
///    `CACHEKIT_LEASE_ERROR_ON_TIMEOUT`.
///
/// A value computed while the key was written or one of its tags invalidated is returned but
/// not stored as fresh. With the daemon unreachable the callback runs and nothing is cached.
///
/// On `CACHEKIT_OK`, `*value` receives a library buffer of `*value_len` bytes (never NULL) to
/// free with `cachekit_buf_free`, and `*info` (if `info` is not NULL) describes it
/// (`source` is `CACHEKIT_SOURCE_COMPUTED` when this call's callback made it).
///
/// `lease_options` and `set_options` may be NULL (defaults; the value then never expires).
///
/// Errors: `CACHEKIT_COMPUTE_FAILED`; `CACHEKIT_TOO_LARGE` (key, value),
/// `CACHEKIT_INVALID_ARGUMENT` (options), `CACHEKIT_NOT_PERMITTED`, `CACHEKIT_CORRUPT_VALUE`,
/// `CACHEKIT_NULL_ARGUMENT` (including a NULL `compute`).
///
/// # Safety
///
/// `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
/// with length 0); `lease_options` / `set_options` must be NULL or point to a whole struct of
/// their `struct_size`; `compute` must be safe to call with `user_data`; `value` must point
/// to a writable `uint8_t *`, `value_len` to a writable `size_t`; `info` must be NULL or point
/// to a writable `cachekit_value_info`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn cachekit_query(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    lease_options: *const cachekit_lease_options,
    set_options: *const cachekit_set_options,
    compute: cachekit_compute_fn,
    user_data: *mut c_void,
    value: *mut *mut u8,
    value_len: *mut usize,
    info: *mut cachekit_value_info,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        // SAFETY: the caller promises `key_len` readable bytes at `key` (or a length of 0).
        let key = unsafe { bytes_in(key, key_len, "key") }?;
        // SAFETY: the caller promises NULL or a whole `cachekit_lease_options`.
        let lease = unsafe { read_lease_options(lease_options) }?;
        // SAFETY: the caller promises NULL or a whole `cachekit_set_options`.
        let set = unsafe { read_fill_options(set_options) }?;
        let compute = compute.ok_or_else(|| Failure::null_argument("compute"))?;
        let value = out_ptr(value, "value")?;
        let value_len = out_ptr(value_len, "value_len")?;
        let options = QueryOptions {
            set,
            lease: lease.lease,
            on_timeout: lease.on_timeout,
        };
        let got = c.client.query(key, &options, || {
            let mut out = cachekit_compute_out { value: None };
            // SAFETY: the caller promises `compute` may be called with `user_data`; `out`
            // lives through the call and is not otherwise referenced meanwhile.
            let rc = unsafe { compute(user_data, &raw mut out) };
            match rc {
                0 => Ok(out.value.unwrap_or_default()),
                rc => Err(rc),
            }
        });
        match got {
            Ok(v) => {
                let copy = alloc_copy(&v.bytes);
                // SAFETY: `value` and `value_len` are non-NULL and writable, `info` NULL or
                // writable, the caller promises.
                unsafe {
                    write_out(value, copy);
                    write_out(value_len, v.bytes.len());
                    if !info.is_null() {
                        write_out(info, v.info().into());
                    }
                }
                Ok(cachekit_result::CACHEKIT_OK)
            }
            Err(QueryError::Compute(rc)) => Err(Failure::new(
                cachekit_result::CACHEKIT_COMPUTE_FAILED,
                format!("the compute callback returned {rc}; nothing was cached"),
            )),
            Err(QueryError::Timeout { .. }) => Ok(cachekit_result::CACHEKIT_LEASE_BUSY),
            Err(QueryError::Cache(e)) => Err(e.into()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::cachekit_result::*;

    fn zeroed() -> cachekit_lease_options {
        cachekit_lease_options {
            struct_size: size_of::<cachekit_lease_options>(),
            flags: 0,
            reserved: 0,
            wait_timeout_ms: 0,
            lease_timeout_ms: 0,
        }
    }

    #[test]
    fn null_and_zero_mean_default() {
        // SAFETY: NULL is allowed.
        let d = unsafe { read_lease_options(std::ptr::null()) }.unwrap();
        assert_eq!(d.lease, LeaseOptions::default());
        assert_eq!(d.on_timeout, OnTimeout::Compute);
        let o = zeroed();
        // SAFETY: a whole, valid struct.
        let z = unsafe { read_lease_options(&o) }.unwrap();
        assert_eq!(z.lease, LeaseOptions::default());
    }

    #[test]
    fn fields_are_read() {
        let mut o = zeroed();
        o.wait_timeout_ms = 1500;
        o.lease_timeout_ms = 4000;
        o.flags = CACHEKIT_LEASE_GLOBAL | CACHEKIT_LEASE_ERROR_ON_TIMEOUT;
        // SAFETY: a whole, valid struct.
        let r = unsafe { read_lease_options(&o) }.unwrap();
        assert_eq!(r.lease.wait_timeout, Duration::from_millis(1500));
        assert_eq!(r.lease.lease_timeout, Duration::from_millis(4000));
        assert!(r.lease.global);
        assert_eq!(r.on_timeout, OnTimeout::Error);
    }

    #[test]
    fn bad_options_are_refused() {
        let mut o = zeroed();
        o.struct_size = 8;
        // SAFETY: a whole struct; only struct_size is wrong.
        let e = unsafe { read_lease_options(&o) }.err().unwrap();
        assert_eq!(e.code, CACHEKIT_INVALID_ARGUMENT);
        assert!(e.message.contains("sizeof(cachekit_lease_options)"));
        let mut o = zeroed();
        o.flags = 0x40;
        // SAFETY: a whole struct.
        let e = unsafe { read_lease_options(&o) }.err().unwrap();
        assert!(e.message.contains("0x40"), "{}", e.message);
        let mut o = zeroed();
        o.reserved = 1;
        // SAFETY: a whole struct.
        let e = unsafe { read_lease_options(&o) }.err().unwrap();
        assert!(e.message.contains("reserved"), "{}", e.message);
    }

    #[test]
    fn null_leases_and_outs() {
        // SAFETY: NULL is a no-op.
        unsafe { cachekit_lease_release(std::ptr::null_mut()) };
        // SAFETY: NULL lease is the error under test.
        let rc = unsafe {
            cachekit_lease_fill(
                std::ptr::null_mut(),
                std::ptr::null(),
                0,
                std::ptr::null(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(rc, CACHEKIT_NULL_ARGUMENT);
        // SAFETY: NULL out is the error under test.
        let rc = unsafe { cachekit_compute_out_set(std::ptr::null_mut(), std::ptr::null(), 0) };
        assert_eq!(rc, CACHEKIT_NULL_ARGUMENT);
        let mut out = cachekit_compute_out { value: None };
        // SAFETY: a live out and 3 readable bytes.
        let rc = unsafe { cachekit_compute_out_set(&raw mut out, b"abc".as_ptr(), 3) };
        assert_eq!(rc, CACHEKIT_OK);
        assert_eq!(out.value.as_deref(), Some(&b"abc"[..]));
    }
}
