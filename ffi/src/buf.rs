//! Buffers the library allocates for the caller (`cachekit_get_alloc`), freed with
//! `cachekit_buf_free`. Each carries its length in a 16-byte header in front of the bytes, so
//! freeing needs only the pointer.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};

use crate::panic::ffi_boundary;

/// Bytes in front of the data: the length (a `usize`), padded to keep the data 16-aligned.
const HEADER: usize = 16;

fn layout(len: usize) -> Layout {
    Layout::from_size_align(HEADER + len, HEADER).expect("a value's length fits a Layout")
}

/// A new buffer holding a copy of `bytes`, to be freed with [`cachekit_buf_free`]. Never
/// NULL, even for an empty value.
pub(crate) fn alloc_copy(bytes: &[u8]) -> *mut u8 {
    let layout = layout(bytes.len());
    // SAFETY: the layout has a non-zero size (HEADER > 0).
    let base = unsafe { alloc(layout) };
    if base.is_null() {
        handle_alloc_error(layout);
    }
    // SAFETY:
    // - `base` is valid for HEADER + len bytes and 16-aligned, so the usize write at 0 is
    //   aligned and in bounds;
    // - the copy writes `len` bytes at HEADER, in bounds; `bytes` is ours and cannot overlap a
    //   fresh allocation.
    unsafe {
        base.cast::<usize>().write(bytes.len());
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), base.add(HEADER), bytes.len());
        base.add(HEADER)
    }
}

/// Frees a buffer returned by `cachekit_get_alloc`. NULL is a no-op.
///
/// # Safety
///
/// `buf` must be NULL or a buffer from `cachekit_get_alloc` not freed yet; never a pointer
/// from `malloc` or a `cachekit_batch`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_buf_free(buf: *mut u8) {
    ffi_boundary(|| {
        if buf.is_null() {
            return;
        }
        // SAFETY:
        // - `buf` came from `alloc_copy` (the caller's promise), so `buf - HEADER` is the start
        //   of that allocation and holds the length it was made with;
        // - the layout is recomputed from that length exactly as at allocation; freed once.
        unsafe {
            let base = buf.sub(HEADER);
            let len = base.cast::<usize>().read();
            dealloc(base, layout(len));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for len in [0usize, 1, 15, 16, 17, 4096] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let p = alloc_copy(&data);
            assert!(!p.is_null());
            assert_eq!(p as usize % 16, 0);
            // SAFETY: `p` holds `len` bytes.
            assert_eq!(unsafe { std::slice::from_raw_parts(p, len) }, &data[..]);
            // SAFETY: from alloc_copy, freed once.
            unsafe { cachekit_buf_free(p) };
        }
        // SAFETY: NULL is a no-op.
        unsafe { cachekit_buf_free(std::ptr::null_mut()) };
    }
}
