//! Turning C arguments into Rust values: the one place that checks pointers for NULL, lengths
//! for sanity and strings for UTF-8, so every export applies the same rules (written at the top
//! of the header):
//!
//! - a `(pointer, length)` pair may have a NULL pointer only when the length is 0;
//! - a required pointer that is NULL gives `CACHEKIT_NULL_ARGUMENT`;
//! - strings are NUL-terminated UTF-8; anything else gives `CACHEKIT_INVALID_ARGUMENT`.

use std::ffi::{c_char, CStr};

use crate::error::Failure;

/// Longest byte buffer accepted: Rust slices are limited to `isize::MAX` bytes.
const MAX_LEN: usize = isize::MAX as usize;

/// A handle argument as a reference.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` that outlives `'a` and is not mutated meanwhile
/// (handles are only freed by their `_close`/`_free` function, which the header forbids to
/// call concurrently with any other use).
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: `as_ref` is sound for NULL or a valid pointer, which the caller promises.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null_argument(name))
}

/// A `(pointer, length)` input buffer as a slice.
///
/// # Safety
/// When `len > 0`, `ptr` is NULL or points to `len` readable bytes that stay valid and
/// unmodified for `'a`.
pub(crate) unsafe fn bytes_in<'a>(
    ptr: *const u8,
    len: usize,
    name: &str,
) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::null_argument(name));
    }
    if len > MAX_LEN {
        return Err(Failure::invalid(format!(
            "`{name}_len` is {len}, which no buffer can have"
        )));
    }
    // SAFETY:
    // - `ptr` is non-NULL and, as the caller promises, points to `len` readable bytes valid
    //   for `'a`; u8 has no alignment requirement;
    // - `len <= isize::MAX`, checked above.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A NUL-terminated UTF-8 string.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn str_in<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::null_argument(name));
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string valid for `'a`.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str()
        .map_err(|e| Failure::invalid(format!("`{name}` is not valid UTF-8 ({e})")))
}

/// An optional NUL-terminated UTF-8 string: NULL is `None`.
///
/// # Safety
/// As [`str_in`].
pub(crate) unsafe fn opt_str_in<'a>(
    ptr: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { str_in(ptr, name) }.map(Some)
}

/// An array of `count` NUL-terminated UTF-8 strings.
///
/// # Safety
/// When `count > 0`, `ptr` is NULL or points to `count` readable pointers, each NULL or a
/// NUL-terminated string, all valid for `'a`.
pub(crate) unsafe fn str_array_in<'a>(
    ptr: *const *const c_char,
    count: usize,
    name: &str,
) -> Result<Vec<&'a str>, Failure> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(Failure::null_argument(name));
    }
    if count > MAX_LEN / std::mem::size_of::<*const c_char>() {
        return Err(Failure::invalid(format!(
            "`{name}` count {count} is impossible"
        )));
    }
    // SAFETY: non-NULL, aligned and `count` elements long, as the caller promises; the size in
    // bytes fits in isize (checked above).
    let ptrs = unsafe { std::slice::from_raw_parts(ptr, count) };
    ptrs.iter()
        .enumerate()
        // SAFETY: each element is NULL or a NUL-terminated string valid for `'a`.
        .map(|(i, &p)| unsafe { str_in(p, &format!("{name}[{i}]")) })
        .collect()
}

/// Checks that a required output pointer is not NULL (before any work, so that outputs are
/// written only on success and a NULL output is reported before side effects).
pub(crate) fn out_ptr<T>(ptr: *mut T, name: &str) -> Result<*mut T, Failure> {
    if ptr.is_null() {
        Err(Failure::null_argument(name))
    } else {
        Ok(ptr)
    }
}

/// Writes an output.
///
/// # Safety
/// `ptr` is non-NULL, aligned and writable for one `T` (what it held before is not dropped).
pub(crate) unsafe fn write_out<T>(ptr: *mut T, value: T) {
    // SAFETY: the caller's promise.
    unsafe { ptr.write(value) }
}

/// `count` `(pointer, length)` buffers given as two parallel arrays (`ptrs[i]` has `lens[i]`
/// bytes; the arrays are named `name` and `lens_name` in errors), as slices. Both arrays may be NULL when `count` is 0.
///
/// # Safety
/// When `count > 0`, `ptrs` and `lens` are NULL or point to `count` readable elements each,
/// and every `ptrs[i]` is NULL or points to `lens[i]` readable bytes; all stay valid and
/// unmodified for `'a`.
pub(crate) unsafe fn buffers_in<'a>(
    ptrs: *const *const u8,
    lens: *const usize,
    count: usize,
    name: &str,
    lens_name: &str,
) -> Result<Vec<&'a [u8]>, Failure> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if ptrs.is_null() {
        return Err(Failure::null_argument(name));
    }
    if lens.is_null() {
        return Err(Failure::null_argument(lens_name));
    }
    if count > MAX_LEN / std::mem::size_of::<usize>() {
        return Err(Failure::invalid(format!("count {count} is impossible")));
    }
    // SAFETY:
    // - both arrays are non-NULL and, as the caller promises, `count` readable elements long;
    //   pointers and usize are aligned as the caller's arrays of them are;
    // - their byte size fits in isize (checked above).
    let (ptrs, lens) = unsafe {
        (
            std::slice::from_raw_parts(ptrs, count),
            std::slice::from_raw_parts(lens, count),
        )
    };
    ptrs.iter()
        .zip(lens)
        .enumerate()
        // SAFETY: each buffer is `len` readable bytes or NULL with length 0, the caller
        // promises.
        .map(|(i, (&p, &len))| unsafe { bytes_in(p, len, &format!("{name}[{i}]")) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::cachekit_result::*;

    #[test]
    fn buffers() {
        // SAFETY: NULL with length 0 is the documented empty buffer.
        let empty = unsafe { bytes_in(std::ptr::null(), 0, "key") };
        assert_eq!(empty.unwrap(), b"");
        // SAFETY: NULL with a length is the error under test; it is never dereferenced.
        let e = unsafe { bytes_in(std::ptr::null(), 3, "key") }.unwrap_err();
        assert_eq!(e.code, CACHEKIT_NULL_ARGUMENT);
        assert!(e.message.contains("`key`"));
        let v = b"abc";
        // SAFETY: `v` has 3 readable bytes.
        assert_eq!(unsafe { bytes_in(v.as_ptr(), 3, "key") }.unwrap(), b"abc");
    }

    #[test]
    fn strings() {
        // SAFETY: a NUL-terminated literal.
        assert_eq!(unsafe { str_in(c"app".as_ptr(), "ns") }.unwrap(), "app");
        let bad = [0xffu8 as c_char, 0];
        // SAFETY: NUL-terminated.
        let e = unsafe { str_in(bad.as_ptr(), "ns") }.unwrap_err();
        assert_eq!(e.code, CACHEKIT_INVALID_ARGUMENT);
        // SAFETY: NULL is allowed.
        assert_eq!(unsafe { opt_str_in(std::ptr::null(), "ns") }.unwrap(), None);
        let tags = [c"a".as_ptr(), std::ptr::null()];
        // SAFETY: two readable pointers; the NULL one is the error under test.
        let e = unsafe { str_array_in(tags.as_ptr(), 2, "tags") }.unwrap_err();
        assert_eq!(e.code, CACHEKIT_NULL_ARGUMENT);
        assert!(e.message.contains("`tags[1]`"), "{}", e.message);
    }
}
