//! The atomic writes of a `cachekit_client`, each one request the daemon applies atomically:
//! `cachekit_add`, `cachekit_replace`, `cachekit_cas` (with their `cachekit_set_options`),
//! `cachekit_set_i64`, `cachekit_incr`, `cachekit_decr`, `cachekit_get_and_delete`,
//! `cachekit_touch`, `cachekit_persist`, and `cachekit_ttl`.

use std::cell::RefCell;
use std::ffi::c_char;
use std::mem::size_of;
use std::time::Duration;

use ::cachekit_client::{IncrOptions, IntegerCondition, SetOptions, Ttl, Value};

use crate::args::{bytes_in, handle, out_ptr, str_array_in, write_out};
use crate::client::cachekit_client;
use crate::error::{cachekit_result, Failure};
use crate::panic::ffi_boundary;
use crate::value::cachekit_value_info;

/// `cachekit_set_options.flags`: the entry is written already expired (a time to live of 0;
/// `ttl_ms` must then be 0). With `cachekit_cas` this is a compare-and-delete: the entry goes
/// only if it is still the version the caller read (how a lock is released).
pub const CACHEKIT_SET_EXPIRE_NOW: u32 = 1;

/// `cachekit_set_options.flags`: the value is an int64 in ASCII decimal (`-42`, `0`; no `+`,
/// no spaces, no leading zeros), stored as a counter as `cachekit_set_i64` stores it: readers
/// see `cachekit_value_info.integer`, and `cachekit_incr` adds to it. Anything else is
/// `CACHEKIT_INVALID_ARGUMENT`.
pub const CACHEKIT_SET_INTEGER: u32 = 2;

/// Every flag this build knows.
const KNOWN_SET_FLAGS: u32 = CACHEKIT_SET_EXPIRE_NOW | CACHEKIT_SET_INTEGER;

/// How `cachekit_add`, `cachekit_replace`, `cachekit_cas` and `cachekit_set_i64` store the
/// entry: what `cachekit_set` takes as parameters, in an extensible struct. NULL means every
/// default. Otherwise zero-initialise it and set `struct_size`: **every zero or NULL field
/// means "the default"**, as in `cachekit_options`.
///
/// ```c
/// cachekit_set_options so = {0};
/// so.struct_size = sizeof so;
/// so.ttl_ms = 30000;
/// ```
///
/// The struct has no padding on 64-bit targets (48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct cachekit_set_options {
    /// Must be `sizeof(cachekit_set_options)` as the program sees it.
    pub struct_size: usize,
    /// `CACHEKIT_SET_*` bits; 0 for none. Unknown bits are refused.
    pub flags: u32,
    /// Must be 0 (room for a later field).
    pub reserved: u32,
    /// Time to live in ms; **0 = never expires**, as in `cachekit_set` (for an entry that
    /// expires at once, set `CACHEKIT_SET_EXPIRE_NOW`).
    pub ttl_ms: u64,
    /// How long after expiry the value may still be served, marked stale. 0 = none.
    pub grace_ms: u64,
    /// Tag paths (`posts/123/comments`) for `cachekit_invalidate`; NULL when `tag_count` is 0.
    pub tags: *const *const c_char,
    /// Number of strings at `tags`.
    pub tag_count: usize,
}

/// The smallest `struct_size` accepted: the size of the first published version (this one).
const MIN_SET_OPTIONS_SIZE: usize = size_of::<cachekit_set_options>();

/// Pins the layout the doc comment promises (64-bit targets).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(size_of::<cachekit_set_options>() == 48);

/// Reads optional set options (NULL: every default).
///
/// # Safety
/// `opts` is NULL, or aligned and points to at least `struct_size` readable bytes (its first
/// field), whose `tags` point to `tag_count` NUL-terminated strings (or is NULL with count 0).
unsafe fn read_set_options(opts: *const cachekit_set_options) -> Result<SetOptions, Failure> {
    // SAFETY: the caller's promise, passed on.
    unsafe { read_set_options_flags(opts) }.map(|(o, _)| o)
}

/// Reads optional set options and their flags (NULL: every default, no flags).
///
/// # Safety
/// As [`read_set_options`].
pub(crate) unsafe fn read_set_options_flags(
    opts: *const cachekit_set_options,
) -> Result<(SetOptions, u32), Failure> {
    if opts.is_null() {
        return Ok((SetOptions::new(), 0));
    }
    // SAFETY: non-NULL, aligned and readable for at least the first field, the caller promises.
    let struct_size = unsafe { opts.cast::<usize>().read() };
    if struct_size < MIN_SET_OPTIONS_SIZE {
        return Err(Failure::invalid(format!(
            "cachekit_set_options.struct_size is {struct_size}; set it to \
             sizeof(cachekit_set_options) ({MIN_SET_OPTIONS_SIZE} with this header)"
        )));
    }
    if struct_size > MIN_SET_OPTIONS_SIZE {
        // A newer header: its extra fields must be zero ("default"), or this library would
        // silently ignore a setting.
        // SAFETY: the caller promises `struct_size` readable bytes; we read those past ours.
        let extra = unsafe {
            std::slice::from_raw_parts(
                opts.cast::<u8>().add(MIN_SET_OPTIONS_SIZE),
                struct_size - MIN_SET_OPTIONS_SIZE,
            )
        };
        if extra.iter().any(|&b| b != 0) {
            return Err(Failure::invalid(format!(
                "cachekit_set_options sets fields that libcachekit {} does not know \
                 (struct_size {struct_size}, this library's is {MIN_SET_OPTIONS_SIZE}); use a \
                 newer libcachekit",
                env!("CARGO_PKG_VERSION")
            )));
        }
    }
    // SAFETY: at least our size is readable (checked above) and every bit pattern is a valid
    // `cachekit_set_options` (integers and raw pointers).
    let o = unsafe { opts.read() };
    if o.flags & !KNOWN_SET_FLAGS != 0 {
        return Err(Failure::invalid(format!(
            "cachekit_set_options.flags has unknown bits {:#x}",
            o.flags & !KNOWN_SET_FLAGS
        )));
    }
    if o.reserved != 0 {
        return Err(Failure::invalid(
            "cachekit_set_options.reserved is not 0; zero-initialise the struct",
        ));
    }
    // SAFETY: the caller promises `tag_count` readable string pointers at `tags` (or a count
    // of 0).
    let tags = unsafe { str_array_in(o.tags, o.tag_count, "options.tags") }?;
    let mut set = SetOptions::new()
        .grace(Duration::from_millis(o.grace_ms))
        .tags(tags);
    if o.flags & CACHEKIT_SET_EXPIRE_NOW != 0 {
        if o.ttl_ms != 0 {
            return Err(Failure::invalid(format!(
                "cachekit_set_options has CACHEKIT_SET_EXPIRE_NOW and ttl_ms {}; give one of \
                 them",
                o.ttl_ms
            )));
        }
        set = set.expired();
    } else if o.ttl_ms != 0 {
        set = set.ttl(Duration::from_millis(o.ttl_ms));
    }
    Ok((set, o.flags))
}

/// The int64 that `value` is the canonical ASCII decimal of (`CACHEKIT_SET_INTEGER`).
fn integer_value(value: &[u8]) -> Result<i64, Failure> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|n| n.to_string().as_bytes() == value)
        .ok_or_else(|| {
            Failure::invalid(format!(
                "the value {:?} is not an int64 in decimal (`-42`, `0`: no `+`, spaces or \
                 leading zeros), which CACHEKIT_SET_INTEGER needs",
                String::from_utf8_lossy(&value[..value.len().min(40)])
            ))
        })
}

/// Which conditional write.
#[derive(Clone, Copy)]
enum Condition {
    Absent,
    Present,
    Version(u64),
}

/// The body of `cachekit_add`, `cachekit_replace` and `cachekit_cas`.
///
/// # Safety
/// As `cachekit_add`.
#[allow(clippy::too_many_arguments)]
unsafe fn set_if(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    options: *const cachekit_set_options,
    stored: *mut bool,
    condition: Condition,
) -> Result<cachekit_result, Failure> {
    // SAFETY: the caller promises a live handle or NULL.
    let c = unsafe { handle(client, "client") }?;
    // SAFETY: the caller promises `key_len` readable bytes at `key` (or a length of 0).
    let key = unsafe { bytes_in(key, key_len, "key") }?;
    // SAFETY: the caller promises `value_len` readable bytes at `value` (or a length of 0).
    let value = unsafe { bytes_in(value, value_len, "value") }?;
    // SAFETY: the caller promises NULL or a whole `cachekit_set_options`.
    let (opts, flags) = unsafe { read_set_options_flags(options) }?;
    let stored = out_ptr(stored, "stored")?;
    let done = if flags & CACHEKIT_SET_INTEGER != 0 {
        let n = integer_value(value)?;
        let condition = match condition {
            Condition::Absent => IntegerCondition::Absent,
            Condition::Present => IntegerCondition::Present,
            Condition::Version(v) => IntegerCondition::Version(v),
        };
        c.client.set_i64_if(key, n, condition, &opts)?
    } else {
        match condition {
            Condition::Absent => c.client.add(key, value, &opts)?,
            Condition::Present => c.client.replace(key, value, &opts)?,
            Condition::Version(v) => c.client.cas(key, value, v, &opts)?,
        }
    };
    // SAFETY: non-NULL and writable, the caller promises.
    unsafe { write_out(stored, done) };
    Ok(cachekit_result::CACHEKIT_OK)
}

/// Stores `value` under `key` only if the key has no fresh entry (an expired or invalidated
/// one counts as none). On `CACHEKIT_OK`, `*stored` tells whether it stored. Of any number of
/// concurrent adds of one key (from any processes of the host, and of other hosts sharing
/// Redis), exactly one stores.
///
/// `options`: NULL for the defaults (never expires, no grace, no tags). With
/// `CACHEKIT_SET_INTEGER` in its flags, `value` is the decimal of an int64 stored as a counter
/// (so `cachekit_add` of "0" then `cachekit_incr` works).
///
/// Errors: as `cachekit_set`; `CACHEKIT_INVALID_ARGUMENT` for bad options.
///
/// # Safety
///
/// `client` must be a live handle; `key`/`value` must point to `key_len`/`value_len`
/// readable bytes (or be NULL with length 0); `options` must be NULL or point to a
/// `cachekit_set_options` of `options->struct_size` readable bytes; `stored` must point to a
/// writable `bool`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_add(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    options: *const cachekit_set_options,
    stored: *mut bool,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller's promises are `set_if`'s.
        unsafe {
            set_if(
                client,
                key,
                key_len,
                value,
                value_len,
                options,
                stored,
                Condition::Absent,
            )
        }
    })
}

/// Stores `value` under `key` only if the key has a fresh entry. On `CACHEKIT_OK`, `*stored`
/// tells whether it stored. Parameters and errors as `cachekit_add`.
///
/// # Safety
///
/// As `cachekit_add`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_replace(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    options: *const cachekit_set_options,
    stored: *mut bool,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller's promises are `set_if`'s.
        unsafe {
            set_if(
                client,
                key,
                key_len,
                value,
                value_len,
                options,
                stored,
                Condition::Present,
            )
        }
    })
}

/// Compare and set: stores `value` under `key` only if the key's fresh entry is still the one
/// whose `cachekit_value_info.version` the caller read. On `CACHEKIT_OK`, `*stored` tells
/// whether it stored; when not, read again and retry. Version 0 never stores. With
/// `CACHEKIT_SET_EXPIRE_NOW` it is a compare-and-delete.
///
/// Versions are per host: with Redis, a cas also fails when another host wrote the key since,
/// unless that host wrote the very same bytes. Parameters and errors as `cachekit_add`.
///
/// # Safety
///
/// As `cachekit_add`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn cachekit_cas(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    version: u64,
    options: *const cachekit_set_options,
    stored: *mut bool,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller's promises are `set_if`'s.
        unsafe {
            set_if(
                client,
                key,
                key_len,
                value,
                value_len,
                options,
                stored,
                Condition::Version(version),
            )
        }
    })
}

/// Stores the integer `value` as a counter (what `cachekit_incr` writes: the ASCII decimal,
/// flagged integer), so every binding reads it back as an integer and `cachekit_incr` adds to
/// it. `options` as for `cachekit_add`; errors as `cachekit_set`.
///
/// # Safety
///
/// `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
/// with length 0); `options` must be NULL or point to a `cachekit_set_options` of
/// `options->struct_size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn cachekit_set_i64(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    value: i64,
    options: *const cachekit_set_options,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        // SAFETY: the caller promises `key_len` readable bytes at `key` (or a length of 0).
        let key = unsafe { bytes_in(key, key_len, "key") }?;
        // SAFETY: the caller promises NULL or a whole `cachekit_set_options`.
        let opts = unsafe { read_set_options(options) }?;
        c.client.set_i64(key, value, &opts)?;
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

/// The body of `cachekit_incr` and `cachekit_decr`.
///
/// # Safety
/// As `cachekit_incr`.
#[allow(clippy::too_many_arguments)]
unsafe fn counter(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    delta: i64,
    initial: *const i64,
    ttl_ms: u64,
    value: *mut i64,
    decrement: bool,
) -> Result<cachekit_result, Failure> {
    // SAFETY: the caller promises a live handle or NULL.
    let c = unsafe { handle(client, "client") }?;
    // SAFETY: the caller promises `key_len` readable bytes at `key` (or a length of 0).
    let key = unsafe { bytes_in(key, key_len, "key") }?;
    let value = out_ptr(value, "value")?;
    let mut opts = IncrOptions::new();
    // SAFETY: the caller promises NULL or a readable, aligned int64_t.
    if let Some(&initial) = unsafe { initial.as_ref() } {
        opts = opts.initial(initial);
    }
    if ttl_ms != 0 {
        opts = opts.ttl(Duration::from_millis(ttl_ms));
    }
    let result = if decrement {
        c.client.decr(key, delta, &opts)?
    } else {
        c.client.incr(key, delta, &opts)?
    };
    Ok(match result {
        Some(n) => {
            // SAFETY: non-NULL and writable, the caller promises.
            unsafe { write_out(value, n) };
            cachekit_result::CACHEKIT_OK
        }
        None => cachekit_result::CACHEKIT_MISS,
    })
}

/// Adds `delta` to the counter at `key`, atomically: concurrent incrs from any number of
/// processes (and hosts sharing Redis) never lose an update. On `CACHEKIT_OK`, `*value`
/// receives the result.
///
/// - A missing key (no fresh entry): with `initial` NULL, `CACHEKIT_MISS` and nothing is
///   stored; otherwise the counter is created as `*initial + delta` (the initial value is the
///   value before the delta), with time to live `ttl_ms` (**0 = never expires**, as in
///   `cachekit_set`). An existing counter keeps its expiry and tags.
/// - The value must be an int64 in ASCII decimal (a counter, `cachekit_set_i64`, or a value
///   set as such bytes): anything else is `CACHEKIT_INVALID_ARGUMENT`, and so is a result
///   that would overflow an int64; the value is unchanged then.
///
/// Errors otherwise as `cachekit_set`.
///
/// # Safety
///
/// `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
/// with length 0); `initial` must be NULL or point to a readable `int64_t`; `value` must point
/// to a writable `int64_t`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_incr(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    delta: i64,
    initial: *const i64,
    ttl_ms: u64,
    value: *mut i64,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller's promises are `counter`'s.
        unsafe { counter(client, key, key_len, delta, initial, ttl_ms, value, false) }
    })
}

/// Subtracts `delta`: `cachekit_incr` of `-delta` (same parameters and results; a missing key
/// with `initial` is created as `*initial - delta`). `delta` INT64_MIN is
/// `CACHEKIT_INVALID_ARGUMENT`.
///
/// # Safety
///
/// As `cachekit_incr`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_decr(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    delta: i64,
    initial: *const i64,
    ttl_ms: u64,
    value: *mut i64,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller's promises are `counter`'s.
        unsafe { counter(client, key, key_len, delta, initial, ttl_ms, value, true) }
    })
}

/// A value `cachekit_get_and_delete` removed but could not hand over (the buffer was too
/// small): the handle, namespace and key it was taken with, and the value.
struct Taken {
    /// The handle's `id` (not its address, which a later handle may reuse).
    client: u64,
    namespace: String,
    key: Vec<u8>,
    value: Value,
}

thread_local! {
    /// At most one value per thread waiting for the caller's larger buffer.
    static TAKEN: RefCell<Option<Taken>> = const { RefCell::new(None) };
}

/// Removes `key` and returns the value it had, atomically: of concurrent get_and_deletes of
/// one key, one gets the value. The buffer contract is `cachekit_get`'s:
///
/// - `CACHEKIT_OK`: the key had a fresh entry, now removed; its value is in
///   `buf[0..*value_len]` and `*info` (if `info` is not NULL) describes it.
/// - `CACHEKIT_MISS`: the key had no fresh entry. Nothing written.
/// - `CACHEKIT_BUFFER_TOO_SMALL`: `*value_len` receives the value's length. The entry is
///   already removed: its value is kept for this thread, and the next `cachekit_get_and_delete`
///   on this thread with the same handle and key returns it (without a request) when the
///   buffer is large enough. Any other `cachekit_get_and_delete` on the thread discards it.
///   `buf = NULL, buf_len = 0` is a size query that removes the entry.
/// - errors: as `cachekit_delete`; `CACHEKIT_CORRUPT_VALUE`.
///
/// # Safety
///
/// As `cachekit_get`: `client` must be a live handle; `key` must point to `key_len` readable
/// bytes (or be NULL with length 0); `buf` to `buf_len` writable bytes (or NULL with length
/// 0); `value_len` to a writable `size_t`; `info` must be NULL or point to a writable
/// `cachekit_value_info`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_get_and_delete(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
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
        let value_len = out_ptr(value_len, "value_len")?;
        if buf.is_null() && buf_len > 0 {
            return Err(Failure::null_argument("buf"));
        }
        let namespace = c.client.namespace();
        let pending = TAKEN
            .with(|t| t.borrow_mut().take())
            .filter(|t| t.client == c.id && t.namespace == namespace && t.key == key);
        let value = match pending {
            Some(t) => t.value,
            None => match c.client.get_and_delete(key)? {
                Some(v) => v,
                None => return Ok(cachekit_result::CACHEKIT_MISS),
            },
        };
        let len = value.bytes.len();
        if len > buf_len {
            // SAFETY: non-NULL and writable, the caller promises.
            unsafe { write_out(value_len, len) };
            TAKEN.with(|t| {
                *t.borrow_mut() = Some(Taken {
                    client: c.id,
                    namespace: namespace.to_string(),
                    key: key.to_vec(),
                    value,
                })
            });
            return Err(Failure::buffer_too_small("the value", len, buf_len));
        }
        // SAFETY:
        // - `buf` has `buf_len >= len` writable bytes (non-NULL when len > 0, since then
        //   buf_len > 0), the caller promises;
        // - `value.bytes` is ours and cannot overlap the caller's buffer;
        // - `value_len` is non-NULL and `info` NULL or writable, the caller promises.
        unsafe {
            if len > 0 {
                std::ptr::copy_nonoverlapping(value.bytes.as_ptr(), buf, len);
            }
            write_out(value_len, len);
            if !info.is_null() {
                write_out(info, value.info().into());
            }
        }
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

/// Gives `key`'s fresh entry a new time to live from now; its value, tags and grace length
/// stay. `ttl_ms`: **0 = never expires** (as `cachekit_persist` and as in `cachekit_set`),
/// otherwise ms; to drop a key, delete it. On `CACHEKIT_OK`, `*found` tells whether the key
/// had a fresh entry (nothing changes when it had not).
///
/// Errors: `CACHEKIT_INVALID_ARGUMENT` for a negative `ttl_ms`; as `cachekit_delete`
/// otherwise.
///
/// # Safety
///
/// `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
/// with length 0); `found` must point to a writable `bool`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_touch(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    ttl_ms: i64,
    found: *mut bool,
) -> cachekit_result {
    ffi_boundary(|| {
        let ttl = match u64::try_from(ttl_ms) {
            Ok(0) => None,
            Ok(ms) => Some(Duration::from_millis(ms)),
            Err(_) => {
                return Err(Failure::invalid(format!(
                    "ttl_ms is {ttl_ms}: a negative TTL is refused (0 means never expires; to \
                     drop the key, use cachekit_delete)"
                )))
            }
        };
        // SAFETY: the caller's promises are `touch`'s.
        unsafe { touch(client, key, key_len, ttl, found) }
    })
}

/// Makes `key`'s fresh entry never expire: `cachekit_touch` with `ttl_ms` 0.
///
/// # Safety
///
/// As `cachekit_touch`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_persist(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    found: *mut bool,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller's promises are `touch`'s.
        unsafe { touch(client, key, key_len, None, found) }
    })
}

/// The body of `cachekit_touch` and `cachekit_persist`.
///
/// # Safety
/// As `cachekit_touch`.
unsafe fn touch(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    ttl: Option<Duration>,
    found: *mut bool,
) -> Result<cachekit_result, Failure> {
    // SAFETY: the caller promises a live handle or NULL.
    let c = unsafe { handle(client, "client") }?;
    // SAFETY: the caller promises `key_len` readable bytes at `key` (or a length of 0).
    let key = unsafe { bytes_in(key, key_len, "key") }?;
    let found = out_ptr(found, "found")?;
    let had = c.client.touch(key, ttl)?;
    // SAFETY: non-NULL and writable, the caller promises.
    unsafe { write_out(found, had) };
    Ok(cachekit_result::CACHEKIT_OK)
}

/// How long `key` stays fresh, read like a get (from the shared segment on a hit). On
/// `CACHEKIT_OK`, `*ttl_ms` receives the ms left (0 for a stale entry served within its grace
/// period), or -1 when it never expires. `CACHEKIT_MISS` when the key has no entry (nothing
/// written).
///
/// Errors: as `cachekit_get`.
///
/// # Safety
///
/// `client` must be a live handle; `key` must point to `key_len` readable bytes (or be NULL
/// with length 0); `ttl_ms` must point to a writable `int64_t`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_ttl(
    client: *const cachekit_client,
    key: *const u8,
    key_len: usize,
    ttl_ms: *mut i64,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        // SAFETY: the caller promises `key_len` readable bytes at `key` (or a length of 0).
        let key = unsafe { bytes_in(key, key_len, "key") }?;
        let ttl_ms = out_ptr(ttl_ms, "ttl_ms")?;
        let ms = match c.client.ttl(key)? {
            Ttl::Missing => return Ok(cachekit_result::CACHEKIT_MISS),
            Ttl::Never => -1,
            Ttl::Remaining(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        };
        // SAFETY: non-NULL and writable, the caller promises.
        unsafe { write_out(ttl_ms, ms) };
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::cachekit_result::*;
    use std::ptr::{null, null_mut};

    fn zeroed() -> cachekit_set_options {
        cachekit_set_options {
            struct_size: size_of::<cachekit_set_options>(),
            flags: 0,
            reserved: 0,
            ttl_ms: 0,
            grace_ms: 0,
            tags: null(),
            tag_count: 0,
        }
    }

    #[test]
    fn set_options_zero_and_null_mean_default() {
        // SAFETY: NULL is allowed; a whole struct.
        unsafe {
            assert_eq!(read_set_options(null()).unwrap(), SetOptions::new());
            assert_eq!(read_set_options(&zeroed()).unwrap(), SetOptions::new());
        }
    }

    #[test]
    fn set_options_are_read_and_checked() {
        let tags = [c"a/b".as_ptr()];
        let o = cachekit_set_options {
            ttl_ms: 1500,
            grace_ms: 20,
            tags: tags.as_ptr(),
            tag_count: 1,
            ..zeroed()
        };
        // SAFETY: a whole struct whose tags are one valid string.
        let s = unsafe { read_set_options(&o) }.unwrap();
        assert_eq!(s.ttl, Some(Duration::from_millis(1500)));
        assert_eq!(s.grace, Duration::from_millis(20));
        assert_eq!(s.tags, ["a/b"]);

        assert_eq!(integer_value(b"-42").unwrap(), -42);
        for bad in [&b"+1"[..], b"01", b" 1", b"", b"x", b"99999999999999999999"] {
            assert_eq!(
                integer_value(bad).unwrap_err().code,
                CACHEKIT_INVALID_ARGUMENT
            );
        }

        let now = cachekit_set_options {
            flags: CACHEKIT_SET_EXPIRE_NOW,
            ..zeroed()
        };
        // SAFETY: a whole struct.
        let s = unsafe { read_set_options(&now) }.unwrap();
        assert!(s.expired);
        assert_eq!(s.ttl, None);

        for (bad, says) in [
            (cachekit_set_options { ttl_ms: 5, ..now }, "give one of"),
            (
                cachekit_set_options {
                    flags: 0x10,
                    ..zeroed()
                },
                "0x10",
            ),
            (
                cachekit_set_options {
                    reserved: 1,
                    ..zeroed()
                },
                "reserved",
            ),
            (
                cachekit_set_options {
                    struct_size: 8,
                    ..zeroed()
                },
                "sizeof(cachekit_set_options)",
            ),
        ] {
            // SAFETY: a whole struct (struct_size 8 claims less than there is).
            let e = unsafe { read_set_options(&bad) }.unwrap_err();
            assert_eq!(e.code, CACHEKIT_INVALID_ARGUMENT);
            assert!(e.message.contains(says), "{}", e.message);
        }
    }

    #[test]
    fn null_handles_are_reported_not_dereferenced() {
        let mut stored = true;
        let mut v = 7i64;
        // SAFETY: NULL handles are the error under test; nothing else is read.
        unsafe {
            assert_eq!(
                cachekit_add(null(), null(), 0, null(), 0, null(), &mut stored),
                CACHEKIT_NULL_ARGUMENT
            );
            assert_eq!(
                cachekit_incr(null(), null(), 0, 1, null(), 0, &mut v),
                CACHEKIT_NULL_ARGUMENT
            );
            assert_eq!(
                cachekit_ttl(null(), null(), 0, &mut v),
                CACHEKIT_NULL_ARGUMENT
            );
            assert_eq!(
                cachekit_touch(null(), null(), 0, 1000, &mut stored),
                CACHEKIT_NULL_ARGUMENT
            );
            let mut len = 3usize;
            assert_eq!(
                cachekit_get_and_delete(null(), null(), 0, null_mut(), 0, &mut len, null_mut()),
                CACHEKIT_NULL_ARGUMENT
            );
            assert_eq!(len, 3);
        }
        assert!(stored);
        assert_eq!(v, 7);
    }
}
