//! `cachekit_set_many` and `cachekit_delete_many`: many keys in one request each (one round
//! trip, one turn of the daemon's writer), with a result per item.

use std::ffi::c_char;

use ::cachekit_client::Error;

use crate::args::{buffers_in, handle, str_array_in, write_out};
use crate::client::cachekit_client;
use crate::error::{cachekit_result, Failure};
use crate::panic::ffi_boundary;

/// Stores `count` values at once, each as `cachekit_set` would, with the same `ttl_ms`,
/// `grace_ms` and tags: `keys[i]` (`key_lens[i]` bytes) gets `values[i]` (`value_lens[i]`
/// bytes). One request carries up to 1000 items and the daemon applies them within one turn
/// of its writer; a longer batch, or one whose frame would pass the daemon's frame limit, is
/// sent as several requests, in order.
///
/// `results`, when not NULL, receives one code per item: `CACHEKIT_OK`, or why that item was
/// not stored (`CACHEKIT_TOO_LARGE` for a key or value over its limit, `CACHEKIT_UNAVAILABLE`,
/// ...); one bad item does not stop the others. Returns `CACHEKIT_OK` when every item was
/// stored, else the code of the first item that was not, with its message in
/// `cachekit_last_error`. A failure of the whole batch (a bad tag list, the daemon
/// unreachable and no other path) is returned as such, with `results` left unwritten; items
/// of requests sent before it are stored, and sending the whole batch again is safe.
///
/// # Safety
///
/// `client` must be a live handle; `keys`, `key_lens`, `values`, `value_lens` must point to
/// `count` readable elements each (or be NULL with `count` 0), each buffer to its length of
/// readable bytes (or NULL with length 0); `tags` must point to `tag_count` NUL-terminated
/// strings (or be NULL with count 0); `results` must be NULL or point to `count` writable
/// `cachekit_result`s.
#[no_mangle]
pub unsafe extern "C" fn cachekit_set_many(
    client: *const cachekit_client,
    keys: *const *const u8,
    key_lens: *const usize,
    values: *const *const u8,
    value_lens: *const usize,
    count: usize,
    ttl_ms: u64,
    grace_ms: u64,
    tags: *const *const c_char,
    tag_count: usize,
    results: *mut cachekit_result,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        // SAFETY: the caller promises `count` keys and values with their lengths.
        let (keys, values) = unsafe {
            (
                buffers_in(keys, key_lens, count, "keys", "key_lens")?,
                buffers_in(values, value_lens, count, "values", "value_lens")?,
            )
        };
        // SAFETY: the caller promises `tag_count` readable string pointers at `tags` (or a count of 0).
        let tags = unsafe { str_array_in(tags, tag_count, "tags") }?;
        let opts = crate::client::set_options(ttl_ms, grace_ms, tags);
        let items: Vec<(&[u8], &[u8])> = keys.into_iter().zip(values).collect();
        let outcome = c.client.set_many(&items, &opts)?;
        // SAFETY: `results` is NULL or `count` writable elements, the caller promises.
        unsafe { report(outcome, results, |()| cachekit_result::CACHEKIT_OK) }
    })
}

/// Removes `count` keys at once, each as `cachekit_delete` would, in one request (split as
/// `cachekit_set_many` splits): `keys[i]` has `key_lens[i]` bytes.
///
/// `results`, when not NULL, receives one code per key: `CACHEKIT_OK` if it was there,
/// `CACHEKIT_MISS` if not (both are success), or why it could not be removed. Returns
/// `CACHEKIT_OK` when no key failed, else the code of the first that did (its message in
/// `cachekit_last_error`); a failure of the whole batch as for `cachekit_set_many`.
///
/// # Safety
///
/// `client` must be a live handle; `keys` and `key_lens` must point to `count` readable
/// elements each (or be NULL with `count` 0), each key to `key_lens[i]` readable bytes (or NULL
/// with length 0); `results` must be NULL or point to `count` writable `cachekit_result`s.
#[no_mangle]
pub unsafe extern "C" fn cachekit_delete_many(
    client: *const cachekit_client,
    keys: *const *const u8,
    key_lens: *const usize,
    count: usize,
    results: *mut cachekit_result,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        // SAFETY: the caller promises `count` keys with their lengths.
        let keys = unsafe { buffers_in(keys, key_lens, count, "keys", "key_lens") }?;
        let outcome = c.client.delete_many(&keys)?;
        // SAFETY: `results` is NULL or `count` writable elements, the caller promises.
        unsafe {
            report(outcome, results, |existed| match existed {
                true => cachekit_result::CACHEKIT_OK,
                false => cachekit_result::CACHEKIT_MISS,
            })
        }
    })
}

/// Writes one code per item to `results` (unless NULL); `Err` with the first failure.
///
/// # Safety
/// `results` is NULL or points to `outcome.len()` writable elements.
unsafe fn report<T>(
    outcome: Vec<Result<T, Error>>,
    results: *mut cachekit_result,
    done: impl Fn(T) -> cachekit_result,
) -> Result<cachekit_result, Failure> {
    let mut first = None;
    for (i, r) in outcome.into_iter().enumerate() {
        let code = match r {
            Ok(v) => done(v),
            Err(e) => {
                let code = cachekit_result::of(&e);
                first.get_or_insert(Failure::from(e));
                code
            }
        };
        if !results.is_null() {
            // SAFETY: `i < outcome.len()`, within the `results` array the caller promises.
            unsafe { write_out(results.add(i), code) };
        }
    }
    match first {
        Some(failure) => Err(failure),
        None => Ok(cachekit_result::CACHEKIT_OK),
    }
}
