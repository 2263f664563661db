//! The library's version: macros in the header (checked against Cargo.toml at compile time)
//! and `cachekit_version()` for the version actually loaded.

use std::ffi::c_char;

use crate::panic::ffi_boundary;

/// Major version of the header (the `libcachekit.so.0` ABI while it is 0).
pub const CACHEKIT_VERSION_MAJOR: u32 = 0;
/// Minor version of the header.
pub const CACHEKIT_VERSION_MINOR: u32 = 1;
/// Patch version of the header.
pub const CACHEKIT_VERSION_PATCH: u32 = 0;

/// Parses a decimal version component at compile time.
const fn parse(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut n = 0u32;
    let mut i = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "a version component is a number");
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

// Bumping the version in Cargo.toml without these (and so without regenerating the header)
// does not compile.
const _: () = assert!(CACHEKIT_VERSION_MAJOR == parse(env!("CARGO_PKG_VERSION_MAJOR")));
const _: () = assert!(CACHEKIT_VERSION_MINOR == parse(env!("CARGO_PKG_VERSION_MINOR")));
const _: () = assert!(CACHEKIT_VERSION_PATCH == parse(env!("CARGO_PKG_VERSION_PATCH")));

/// The version of the library actually loaded, as a static string ("0.1.0"). Compare with the
/// `CACHEKIT_VERSION_*` macros to detect a program built against another header.
#[no_mangle]
pub extern "C" fn cachekit_version() -> *const c_char {
    ffi_boundary(|| concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_string_matches_the_macros() {
        // SAFETY: a static NUL-terminated string.
        let v = unsafe { std::ffi::CStr::from_ptr(cachekit_version()) };
        let want =
            format!("{CACHEKIT_VERSION_MAJOR}.{CACHEKIT_VERSION_MINOR}.{CACHEKIT_VERSION_PATCH}");
        assert_eq!(v.to_str().unwrap(), want);
    }
}
