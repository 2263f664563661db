//! `cachekit_batch`: the answer to `cachekit_get_many`, one entry per key, owned by the
//! library until `cachekit_batch_free`.

use ::cachekit_client::Value;

use crate::args::{bytes_in, handle, out_ptr, write_out};
use crate::client::cachekit_client;
use crate::error::{cachekit_result, Failure};
use crate::panic::ffi_boundary;
use crate::value::cachekit_value_info;

/// The values of several keys, in the order asked. Opaque; read with `cachekit_batch_len` and
/// `cachekit_batch_get`, free with `cachekit_batch_free`. Immutable: any number of threads may
/// read one batch at once.
#[allow(non_camel_case_types)]
pub struct cachekit_batch {
    values: Vec<Option<Value>>,
}

/// Gets `count` keys at once: hits come from the shared segment, and the misses are then
/// fetched from the daemon one after the other. `keys[i]` has `key_lens[i]` bytes.
///
/// On `CACHEKIT_OK`, `*out` receives a batch of `count` entries (each a hit or a miss), to free
/// with `cachekit_batch_free`. Errors are those of `cachekit_get`, for the first key that
/// fails; nothing is written then. `count` 0 gives an empty batch (`keys`, `key_lens` may then
/// be NULL).
///
/// # Safety
///
/// `client` must be a live handle; `keys` and `key_lens` must point to `count` readable
/// elements, each `keys[i]` to `key_lens[i]` readable bytes (or NULL with length 0); `out` must
/// point to a writable `cachekit_batch *`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_get_many(
    client: *const cachekit_client,
    keys: *const *const u8,
    key_lens: *const usize,
    count: usize,
    out: *mut *mut cachekit_batch,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        let out = out_ptr(out, "out")?;
        let mut list: Vec<&[u8]> = Vec::with_capacity(count);
        if count > 0 {
            if keys.is_null() {
                return Err(Failure::null_argument("keys"));
            }
            if key_lens.is_null() {
                return Err(Failure::null_argument("key_lens"));
            }
            if count > isize::MAX as usize / std::mem::size_of::<usize>() {
                return Err(Failure::invalid(format!("count {count} is impossible")));
            }
            // SAFETY: both arrays are non-NULL, aligned and `count` long, the caller promises;
            // their byte size fits in isize (checked above).
            let (ptrs, lens) = unsafe {
                (
                    std::slice::from_raw_parts(keys, count),
                    std::slice::from_raw_parts(key_lens, count),
                )
            };
            for (i, (&p, &len)) in ptrs.iter().zip(lens).enumerate() {
                // SAFETY: each key is `len` readable bytes or NULL with length 0.
                list.push(unsafe { bytes_in(p, len, &format!("keys[{i}]")) }?);
            }
        }
        let values = c.client.get_many(&list)?;
        let batch = Box::into_raw(Box::new(cachekit_batch { values }));
        // SAFETY: `out` is non-NULL and writable, the caller promises.
        unsafe { write_out(out, batch) };
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

/// The number of entries in a batch (the `count` it was asked with); 0 for NULL.
///
/// # Safety
///
/// `batch` must be NULL or a live batch.
#[no_mangle]
pub unsafe extern "C" fn cachekit_batch_len(batch: *const cachekit_batch) -> usize {
    ffi_boundary(|| {
        // SAFETY: the caller promises NULL or a live batch.
        unsafe { batch.as_ref() }.map_or(0, |b| b.values.len())
    })
}

/// Entry `index` of a batch: `CACHEKIT_OK` for a hit, with `*value` pointing at its
/// `*value_len` bytes (owned by the batch, valid until `cachekit_batch_free`; never NULL) and
/// `*info` (if `info` is not NULL) describing it; `CACHEKIT_MISS` for a miss (nothing
/// written); `CACHEKIT_INVALID_ARGUMENT` when `index` is out of range.
///
/// # Safety
///
/// `batch` must be a live batch; `value` must point to a writable `const uint8_t *`,
/// `value_len` to a writable `size_t`; `info` must be NULL or point to a writable
/// `cachekit_value_info`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_batch_get(
    batch: *const cachekit_batch,
    index: usize,
    value: *mut *const u8,
    value_len: *mut usize,
    info: *mut cachekit_value_info,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises NULL or a live batch.
        let b = unsafe { handle(batch, "batch") }?;
        let value = out_ptr(value, "value")?;
        let value_len = out_ptr(value_len, "value_len")?;
        let entry = b.values.get(index).ok_or_else(|| {
            Failure::invalid(format!(
                "index {index} is out of range: the batch has {} entries",
                b.values.len()
            ))
        })?;
        let Some(v) = entry else {
            return Ok(cachekit_result::CACHEKIT_MISS);
        };
        // SAFETY: `value`, `value_len` non-NULL and writable, `info` NULL or writable, the
        // caller promises. The bytes live in the batch, which the caller keeps alive.
        unsafe {
            write_out(value, v.bytes.as_ptr());
            write_out(value_len, v.bytes.len());
            if !info.is_null() {
                write_out(info, v.info().into());
            }
        }
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

/// Frees a batch and every value in it. NULL is a no-op.
///
/// # Safety
///
/// `batch` must be NULL or a live batch from `cachekit_get_many`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn cachekit_batch_free(batch: *mut cachekit_batch) {
    ffi_boundary(|| {
        if !batch.is_null() {
            // SAFETY: made by `Box::into_raw` in `cachekit_get_many`, freed once (the caller's
            // promise).
            drop(unsafe { Box::from_raw(batch) });
        }
    })
}
