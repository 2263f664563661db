//! `cachekit_scan`: the entries of a namespace on this host, a page per request
//! (`cachekit_scan_open`, `cachekit_scan_next`, `cachekit_scan_free`), and
//! `cachekit_delete_matching`, which deletes what a scan would select.

use std::ffi::c_char;

use ::cachekit_client::{Client, ScanItem, ScanOptions};

use crate::args::{bytes_in, handle, opt_str_in, out_ptr, write_out};
use crate::client::cachekit_client;
use crate::error::{cachekit_result, Failure};
use crate::panic::ffi_boundary;

/// One entry found by `cachekit_scan_next`. Times are Unix milliseconds.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct cachekit_scan_item {
    /// Bytes the entry takes in the table (its stored envelope, not the decoded value).
    pub stored_len: u64,
    /// When the entry was written.
    pub created_ms: u64,
    /// When it stops being fresh; 0 = never.
    pub expires_ms: u64,
    /// When it stops being servable at all; 0 = never.
    pub grace_until_ms: u64,
    /// Its version on this host (as `cachekit_value_info.version`).
    pub version: u64,
}

impl From<&ScanItem> for cachekit_scan_item {
    fn from(i: &ScanItem) -> Self {
        cachekit_scan_item {
            stored_len: i.stored_len as u64,
            created_ms: i.created_ms,
            expires_ms: i.expires_ms.unwrap_or(0),
            grace_until_ms: i.grace_until_ms.unwrap_or(0),
            version: i.version,
        }
    }
}

/// A scan in progress. Opaque; made by `cachekit_scan_open`, read with `cachekit_scan_next`,
/// freed with `cachekit_scan_free`. It holds its own reference to the client's connections:
/// the handle it was opened on may be closed first. One thread at a time.
#[allow(non_camel_case_types)]
pub struct cachekit_scan {
    client: Client,
    options: ScanOptions,
    /// The cursor of the next page; 0 once the last page was fetched.
    cursor: u64,
    /// The current page, and the index of the next item to hand out.
    page: Vec<ScanItem>,
    next: usize,
}

impl cachekit_scan {
    /// The next item, fetching pages as needed (a page may be empty while the cursor is not
    /// done); `None` at the end. A failed fetch leaves the scan where it was: call again.
    fn peek(&mut self) -> Result<Option<&ScanItem>, Failure> {
        while self.next == self.page.len() {
            if self.cursor == 0 {
                return Ok(None);
            }
            let (cursor, items) = self.client.scan_page(self.cursor, &self.options)?;
            self.cursor = cursor;
            self.page = items;
            self.next = 0;
        }
        Ok(self.page.get(self.next))
    }
}

/// Reads the selection arguments shared by `cachekit_scan_open` and
/// `cachekit_delete_matching`.
///
/// # Safety
/// `pattern` points to `pattern_len` readable bytes (or is NULL with length 0); `tag` is NULL
/// or a NUL-terminated string.
unsafe fn selection(
    pattern: *const u8,
    pattern_len: usize,
    tag: *const c_char,
    exact: bool,
) -> Result<ScanOptions, Failure> {
    let given = !pattern.is_null();
    // SAFETY: the caller's promise.
    let pattern = unsafe { bytes_in(pattern, pattern_len, "pattern") }?;
    // SAFETY: the caller's promise.
    let tag = unsafe { opt_str_in(tag, "tag") }?;
    let mut o = ScanOptions::new();
    if given {
        // Even an empty one: the client refuses it (NULL is how to say "every key").
        o = o.pattern(pattern);
    }
    if let Some(tag) = tag {
        if exact {
            o = o.exact_tag(tag);
        } else {
            o = o.tag(tag);
        }
    } else if exact {
        return Err(Failure::invalid(
            "`exact` is set without a `tag`; give the tag to match exactly",
        ));
    }
    Ok(o)
}

/// Starts a scan of the handle's namespace on this host (not Redis) and fetches its first
/// page. On `CACHEKIT_OK`, `*out` receives a scan to read with `cachekit_scan_next` and free
/// with `cachekit_scan_free`.
///
/// - `pattern`, `pattern_len`: a glob over the key bytes, as Redis's `SCAN MATCH`: `*`, `?`,
///   `[abc]`, `[^a]` / `[!a]`, `[a-z]`, `\x` for a literal x. NULL (with length 0) selects
///   every key; an empty pattern at a non-NULL pointer is `CACHEKIT_INVALID_ARGUMENT` (a
///   pattern built from an empty variable must not select everything).
/// - `tag`: NULL, or only entries tagged with this tag or (unless `exact`) a tag below it.
///   Tags are matched by their counter in the table: an entry whose tag shares the counter
///   (one chance in the daemon's tag_count per tag) may be included too.
/// - `page_size`: items per request, 1 to 1000; 0 = the daemon's default (100).
///
/// The daemon walks a bounded slice of its index per request, so writers are never held up
/// for long. An entry present for the whole scan is returned exactly once; entries written or
/// deleted meanwhile may or may not be.
///
/// Errors: `CACHEKIT_INVALID_ARGUMENT` (a malformed tag, `exact` without a tag, a page size
/// over 1000), `CACHEKIT_UNAVAILABLE`, `CACHEKIT_TIMEOUT`, `CACHEKIT_NULL_ARGUMENT`.
///
/// # Safety
///
/// `client` must be a live handle; `pattern` must point to `pattern_len` readable bytes (or be
/// NULL with length 0); `tag` must be NULL or a NUL-terminated string; `out` must point to a
/// writable `cachekit_scan *`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_scan_open(
    client: *const cachekit_client,
    pattern: *const u8,
    pattern_len: usize,
    tag: *const c_char,
    exact: bool,
    page_size: u32,
    out: *mut *mut cachekit_scan,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        // SAFETY: the caller's promises are `selection`'s.
        let options = unsafe { selection(pattern, pattern_len, tag, exact) }?.page_size(page_size);
        let out = out_ptr(out, "out")?;
        let (cursor, page) = c.client.scan_page(0, &options)?;
        let scan = cachekit_scan {
            client: c.client.clone(),
            options,
            cursor,
            page,
            next: 0,
        };
        // SAFETY: `out` is non-NULL and writable, the caller promises.
        unsafe { write_out(out, Box::into_raw(Box::new(scan))) };
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

/// The next entry of a scan.
///
/// - `CACHEKIT_OK`: its key is in `key_buf[0..*key_len]` and `*item` (if `item` is not NULL)
///   describes it.
/// - `CACHEKIT_MISS`: the scan is over. Nothing written.
/// - `CACHEKIT_BUFFER_TOO_SMALL`: `*key_len` receives the key's length; the scan stays on this
///   entry: call again with a buffer that large. `key_buf = NULL, key_buf_len = 0` is a pure
///   size query. Keys are at most the daemon's max_key_bytes (256 by default).
/// - errors of fetching the next page (`CACHEKIT_UNAVAILABLE`, `CACHEKIT_TIMEOUT`): the scan
///   stays where it was; calling again retries.
///
/// # Safety
///
/// `scan` must be a live scan, not used by another thread meanwhile; `key_buf` must point to
/// `key_buf_len` writable bytes (or be NULL with length 0); `key_len` to a writable `size_t`;
/// `item` must be NULL or point to a writable `cachekit_scan_item`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_scan_next(
    scan: *mut cachekit_scan,
    key_buf: *mut u8,
    key_buf_len: usize,
    key_len: *mut usize,
    item: *mut cachekit_scan_item,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises NULL or a live scan that no other thread uses.
        let scan = unsafe { scan.as_mut() }.ok_or_else(|| Failure::null_argument("scan"))?;
        let key_len = out_ptr(key_len, "key_len")?;
        if key_buf.is_null() && key_buf_len > 0 {
            return Err(Failure::null_argument("key_buf"));
        }
        let Some(found) = scan.peek()? else {
            return Ok(cachekit_result::CACHEKIT_MISS);
        };
        let len = found.key.len();
        if len > key_buf_len {
            // SAFETY: non-NULL and writable, the caller promises.
            unsafe { write_out(key_len, len) };
            return Err(Failure::buffer_too_small("the key", len, key_buf_len));
        }
        // SAFETY:
        // - `key_buf` has `key_buf_len >= len` writable bytes (non-NULL when len > 0), the
        //   caller promises; the key is ours and cannot overlap it;
        // - `key_len` is non-NULL and `item` NULL or writable, the caller promises.
        unsafe {
            if len > 0 {
                std::ptr::copy_nonoverlapping(found.key.as_ptr(), key_buf, len);
            }
            write_out(key_len, len);
            if !item.is_null() {
                write_out(item, found.into());
            }
        }
        scan.next += 1;
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

/// Frees a scan (finished or not). NULL is a no-op.
///
/// # Safety
///
/// `scan` must be NULL or a scan from `cachekit_scan_open` not freed yet, not in use by
/// another thread.
#[no_mangle]
pub unsafe extern "C" fn cachekit_scan_free(scan: *mut cachekit_scan) {
    ffi_boundary(|| {
        if !scan.is_null() {
            // SAFETY: made by `Box::into_raw` in `cachekit_scan_open`, freed once (the
            // caller's promise).
            drop(unsafe { Box::from_raw(scan) });
        }
    })
}

/// Deletes every entry of the handle's namespace that a scan with the same `pattern`, `tag`
/// and `exact` would select, on this host and, with Redis, in Redis (so other hosts drop them
/// too), a bounded page per request. Unlike `cachekit_invalidate` it frees the memory. On
/// `CACHEKIT_OK`, `*deleted` (if not NULL) receives how many entries were deleted (this
/// host's table and Redis records counted separately). With neither a pattern (NULL) nor a tag
/// it deletes the whole namespace.
///
/// Errors: as `cachekit_scan_open`; `CACHEKIT_NOT_PERMITTED`.
///
/// # Safety
///
/// `client` must be a live handle; `pattern` must point to `pattern_len` readable bytes (or be
/// NULL with length 0); `tag` must be NULL or a NUL-terminated string; `deleted` must be NULL
/// or point to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_delete_matching(
    client: *const cachekit_client,
    pattern: *const u8,
    pattern_len: usize,
    tag: *const c_char,
    exact: bool,
    deleted: *mut u64,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        // SAFETY: the caller's promises are `selection`'s.
        let options = unsafe { selection(pattern, pattern_len, tag, exact) }?;
        let n = c.client.delete_matching(&options)?;
        if !deleted.is_null() {
            // SAFETY: non-NULL and writable, the caller promises.
            unsafe { write_out(deleted, n) };
        }
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::cachekit_result::*;
    use std::ptr::{null, null_mut};

    #[test]
    fn selections_are_read_and_checked() {
        // SAFETY: literal buffers and strings.
        unsafe {
            let all = selection(null(), 0, null(), false).unwrap();
            assert_eq!(all, ScanOptions::new());
            let s = selection(b"user:*".as_ptr(), 6, c"t/1".as_ptr(), true).unwrap();
            assert_eq!(s, ScanOptions::new().pattern("user:*").exact_tag("t/1"));
            let e = selection(null(), 0, null(), true).unwrap_err();
            assert_eq!(e.code, CACHEKIT_INVALID_ARGUMENT);
            let empty = selection(b"".as_ptr(), 0, null(), false).unwrap();
            assert_eq!(empty.pattern, Some(Vec::new()), "refused by the client");
            let e = selection(null(), 3, null(), false).unwrap_err();
            assert_eq!(e.code, CACHEKIT_NULL_ARGUMENT);
        }
    }

    #[test]
    fn null_arguments_are_reported() {
        let mut len = 5usize;
        // SAFETY: NULLs are the errors under test; nothing is dereferenced.
        unsafe {
            let mut out = null_mut();
            assert_eq!(
                cachekit_scan_open(null(), null(), 0, null(), false, 0, &mut out),
                CACHEKIT_NULL_ARGUMENT
            );
            assert!(out.is_null());
            assert_eq!(
                cachekit_scan_next(null_mut(), null_mut(), 0, &mut len, null_mut()),
                CACHEKIT_NULL_ARGUMENT
            );
            assert_eq!(
                cachekit_delete_matching(null(), null(), 0, null(), false, null_mut()),
                CACHEKIT_NULL_ARGUMENT
            );
            cachekit_scan_free(null_mut());
        }
        assert_eq!(len, 5);
    }
}
