//! The panic boundary. Every exported function runs its whole body through [`ffi_boundary`]
//! (a test in this file checks it), so a Rust panic never unwinds into C: it becomes
//! `CACHEKIT_PANIC` (or the documented neutral value of a function without a result code), with
//! the panic message as the thread's last error.

use std::any::Any;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{cachekit_result, set_last_error, Failure};

/// What an exported function's body returns, and what its C signature returns instead.
pub(crate) trait FfiReturn {
    /// The C return type.
    type C;
    /// The C value of a body that returned normally (records the last error of a failure).
    fn into_c(self) -> Self::C;
    /// The C value of a body that panicked.
    fn on_panic() -> Self::C;
}

impl FfiReturn for Result<cachekit_result, Failure> {
    type C = cachekit_result;
    fn into_c(self) -> cachekit_result {
        match self {
            Ok(code) => code,
            Err(f) => f.record(),
        }
    }
    fn on_panic() -> cachekit_result {
        cachekit_result::CACHEKIT_PANIC
    }
}

/// A length or a negated result code (`cachekit_get_len`): the body returns the length of a
/// hit, or the result code of anything else.
pub(crate) struct LenOrCode(pub(crate) Result<usize, Result<cachekit_result, Failure>>);

impl FfiReturn for LenOrCode {
    type C = i64;
    fn into_c(self) -> i64 {
        match self.0 {
            // A value's length is below 2^24 (the table's length field), far from i64::MAX.
            Ok(len) => i64::try_from(len).unwrap_or(i64::MAX),
            Err(r) => -(r.into_c() as i64),
        }
    }
    fn on_panic() -> i64 {
        -(cachekit_result::CACHEKIT_PANIC as i64)
    }
}

/// `_close` and `_free` functions.
impl FfiReturn for () {
    type C = ();
    fn into_c(self) {}
    fn on_panic() {}
}

/// Counts (`cachekit_batch_len`, `cachekit_stats_len`): 0 after a panic.
impl FfiReturn for usize {
    type C = usize;
    fn into_c(self) -> usize {
        self
    }
    fn on_panic() -> usize {
        0
    }
}

/// Static strings (`cachekit_version`, `cachekit_result_describe`): NULL after a panic.
impl FfiReturn for *const c_char {
    type C = *const c_char;
    fn into_c(self) -> *const c_char {
        self
    }
    fn on_panic() -> *const c_char {
        std::ptr::null()
    }
}

/// Runs the body of an exported function, turning a panic into the function's panic value.
///
/// `AssertUnwindSafe` is sound here: after a panic the caller only gets an error code, and the
/// state a panic could leave half-updated is the client's, whose locks poison and whose
/// segment reader holds no invariant across calls.
pub(crate) fn ffi_boundary<T: FfiReturn>(body: impl FnOnce() -> T) -> T::C {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value.into_c(),
        Err(payload) => {
            let message = format!(
                "panic inside libcachekit: {}; this is a bug in cachekit, please report it",
                panic_message(&*payload)
            );
            // Dropping a payload can itself panic; never let that escape either.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            let _ = catch_unwind(AssertUnwindSafe(|| set_last_error(message)));
            T::on_panic()
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::last_error;

    #[test]
    fn a_panic_becomes_cachekit_panic_with_its_message() {
        let code = ffi_boundary(|| -> Result<cachekit_result, Failure> { panic!("boom {}", 42) });
        assert_eq!(code, cachekit_result::CACHEKIT_PANIC);
        let msg = last_error();
        assert!(msg.contains("panic inside libcachekit: boom 42"), "{msg}");
    }

    #[test]
    fn other_return_types_get_their_neutral_value() {
        let n: usize = ffi_boundary(|| -> usize { panic!("count") });
        assert_eq!(n, 0);
        let p: *const c_char = ffi_boundary(|| -> *const c_char { panic!("string") });
        assert!(p.is_null());
        ffi_boundary(|| -> () { panic!("free") });
        assert!(last_error().contains("free"));
    }

    #[test]
    fn a_failure_is_recorded_and_a_success_passes_through() {
        let ok = ffi_boundary(|| Ok(cachekit_result::CACHEKIT_MISS));
        assert_eq!(ok, cachekit_result::CACHEKIT_MISS);
        let code = ffi_boundary(|| Err(Failure::null_argument("key")));
        assert_eq!(code, cachekit_result::CACHEKIT_NULL_ARGUMENT);
        assert!(last_error().contains("`key` is NULL"));
    }

    /// Every `extern "C"` function of the crate starts its body with `ffi_boundary(`: the one
    /// panic boundary is not something a new export can forget.
    #[test]
    fn every_export_is_inside_the_boundary() {
        let files = [
            ("atomic.rs", include_str!("atomic.rs")),
            ("batch.rs", include_str!("batch.rs")),
            ("namespaces.rs", include_str!("namespaces.rs")),
            ("scan.rs", include_str!("scan.rs")),
            ("lease.rs", include_str!("lease.rs")),
            ("buf.rs", include_str!("buf.rs")),
            ("client.rs", include_str!("client.rs")),
            ("error.rs", include_str!("error.rs")),
            ("stats.rs", include_str!("stats.rs")),
            ("value.rs", include_str!("value.rs")),
            ("version.rs", include_str!("version.rs")),
        ];
        let mut exports = 0;
        for (file, src) in files {
            let mut rest = src;
            while let Some(at) = rest.find("extern \"C\" fn ") {
                let from_sig = &rest[at..];
                let body = &from_sig[from_sig.find('{').expect("a body") + 1..];
                let first = body.trim_start();
                let name: String = from_sig["extern \"C\" fn ".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    first.starts_with("ffi_boundary("),
                    "{file}: {name} does not start with ffi_boundary("
                );
                exports += 1;
                rest = body;
            }
        }
        assert!(exports >= 20, "found only {exports} exports");
        // And no file that exports anything was left out of the list above.
        for (file, src) in [
            ("lib.rs", include_str!("lib.rs")),
            ("options.rs", include_str!("options.rs")),
            ("args.rs", include_str!("args.rs")),
        ] {
            assert!(
                !src.contains(concat!("extern \"C\"", " fn")),
                "{file} exports"
            );
        }
    }
}
