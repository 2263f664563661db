//! `cachekit_namespaces`: the namespaces this host's table holds entries of, with their entry
//! counts and bytes (`cachekit_namespaces_open`, `cachekit_namespaces_next`,
//! `cachekit_namespaces_free`).

use std::ffi::c_char;

use ::cachekit_client::NamespaceInfo;

use crate::args::{handle, out_ptr, write_out};
use crate::client::cachekit_client;
use crate::error::{cachekit_result, Failure};
use crate::panic::ffi_boundary;

/// The namespaces of the host's table, largest first, as one request answered them. Opaque;
/// made by `cachekit_namespaces_open`, read with `cachekit_namespaces_next`, freed with
/// `cachekit_namespaces_free`. One thread at a time.
#[allow(non_camel_case_types)]
pub struct cachekit_namespaces {
    list: Vec<NamespaceInfo>,
    next: usize,
}

/// Asks the daemon which namespaces its table holds entries of (this host only, not Redis).
/// On `CACHEKIT_OK`, `*out` receives the list, to read with `cachekit_namespaces_next` and free
/// with `cachekit_namespaces_free`.
///
/// Errors: `CACHEKIT_UNAVAILABLE`, `CACHEKIT_TIMEOUT`, `CACHEKIT_NULL_ARGUMENT`.
///
/// # Safety
///
/// `client` must be a live handle; `out` must point to a writable `cachekit_namespaces *`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_namespaces_open(
    client: *const cachekit_client,
    out: *mut *mut cachekit_namespaces,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        let out = out_ptr(out, "out")?;
        let list = c.client.namespaces()?;
        // SAFETY: `out` is non-NULL and writable, the caller promises.
        unsafe {
            write_out(
                out,
                Box::into_raw(Box::new(cachekit_namespaces { list, next: 0 })),
            )
        };
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

/// The next namespace of the list.
///
/// - `CACHEKIT_OK`: its name is in `name_buf`, NUL-terminated; `*name_size` receives the size
///   it takes, NUL included; `*entries` and `*bytes` (each if not NULL) receive its entry count
///   and the bytes those entries take in the table.
/// - `CACHEKIT_MISS`: the list is over. Nothing written.
/// - `CACHEKIT_BUFFER_TOO_SMALL`: `*name_size` receives the size needed, NUL included; the
///   list stays on this namespace: call again with a buffer that large. `name_buf = NULL,
///   name_buf_len = 0` is a pure size query. Names are at most 127 bytes (128 with the NUL).
///
/// # Safety
///
/// `list` must be a live list, not used by another thread meanwhile; `name_buf` must point to
/// `name_buf_len` writable bytes (or be NULL with length 0); `name_size` to a writable
/// `size_t`; `entries` and `bytes` must each be NULL or point to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_namespaces_next(
    list: *mut cachekit_namespaces,
    name_buf: *mut c_char,
    name_buf_len: usize,
    name_size: *mut usize,
    entries: *mut u64,
    bytes: *mut u64,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises NULL or a live list that no other thread uses.
        let list = unsafe { list.as_mut() }.ok_or_else(|| Failure::null_argument("list"))?;
        let name_size = out_ptr(name_size, "name_size")?;
        if name_buf.is_null() && name_buf_len > 0 {
            return Err(Failure::null_argument("name_buf"));
        }
        let Some(ns) = list.list.get(list.next) else {
            return Ok(cachekit_result::CACHEKIT_MISS);
        };
        let size = ns.name.len() + 1;
        if size > name_buf_len {
            // SAFETY: non-NULL and writable, the caller promises.
            unsafe { write_out(name_size, size) };
            return Err(Failure::buffer_too_small(
                "the namespace's name",
                size,
                name_buf_len,
            ));
        }
        // SAFETY:
        // - `name_buf` is non-NULL (name_buf_len >= size >= 1) with `name_buf_len >= size`
        //   writable bytes, the caller promises; the name is ours and cannot overlap it;
        // - `name_size` is non-NULL, `entries` and `bytes` NULL or writable, the caller
        //   promises.
        unsafe {
            std::ptr::copy_nonoverlapping(ns.name.as_ptr(), name_buf.cast::<u8>(), ns.name.len());
            *name_buf.add(ns.name.len()) = 0;
            write_out(name_size, size);
            if !entries.is_null() {
                write_out(entries, ns.entries);
            }
            if !bytes.is_null() {
                write_out(bytes, ns.bytes);
            }
        }
        list.next += 1;
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

/// Frees a namespace list. NULL is a no-op.
///
/// # Safety
///
/// `list` must be NULL or a list from `cachekit_namespaces_open` not freed yet, not in use by
/// another thread.
#[no_mangle]
pub unsafe extern "C" fn cachekit_namespaces_free(list: *mut cachekit_namespaces) {
    ffi_boundary(|| {
        if !list.is_null() {
            // SAFETY: made by `Box::into_raw` in `cachekit_namespaces_open`, freed once (the
            // caller's promise).
            drop(unsafe { Box::from_raw(list) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::cachekit_result::*;
    use std::ptr::{null, null_mut};

    #[test]
    fn names_are_copied_nul_terminated_with_a_size_query() {
        let list = Box::into_raw(Box::new(cachekit_namespaces {
            list: vec![NamespaceInfo {
                name: "app".into(),
                entries: 3,
                bytes: 300,
            }],
            next: 0,
        }));
        let (mut size, mut entries, mut bytes) = (0usize, 0u64, 0u64);
        let mut buf = [0x55 as c_char; 8];
        // SAFETY: `list` is live; the buffers are valid for their lengths.
        unsafe {
            assert_eq!(
                cachekit_namespaces_next(list, null_mut(), 0, &mut size, null_mut(), null_mut()),
                CACHEKIT_BUFFER_TOO_SMALL
            );
            assert_eq!(size, 4);
            assert_eq!(
                cachekit_namespaces_next(
                    list,
                    buf.as_mut_ptr(),
                    3,
                    &mut size,
                    &mut entries,
                    &mut bytes
                ),
                CACHEKIT_BUFFER_TOO_SMALL
            );
            assert_eq!((entries, bytes), (0, 0));
            assert_eq!(
                cachekit_namespaces_next(
                    list,
                    buf.as_mut_ptr(),
                    8,
                    &mut size,
                    &mut entries,
                    &mut bytes
                ),
                CACHEKIT_OK
            );
            assert_eq!(
                std::ffi::CStr::from_ptr(buf.as_ptr()).to_str().unwrap(),
                "app"
            );
            assert_eq!((size, entries, bytes), (4, 3, 300));
            assert_eq!(
                cachekit_namespaces_next(
                    list,
                    buf.as_mut_ptr(),
                    8,
                    &mut size,
                    null_mut(),
                    null_mut()
                ),
                CACHEKIT_MISS
            );
            cachekit_namespaces_free(list);
            cachekit_namespaces_free(null_mut());
            let mut out = null_mut();
            assert_eq!(
                cachekit_namespaces_open(null(), &mut out),
                CACHEKIT_NULL_ARGUMENT
            );
            assert!(out.is_null());
        }
    }
}
