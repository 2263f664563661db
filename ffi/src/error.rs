//! Result codes (`cachekit_result`), the thread-local last error message, and the two
//! functions that describe them to C.

use std::cell::RefCell;
use std::ffi::{c_char, CStr};

use ::cachekit_client::Error;

use crate::args::write_out;
use crate::panic::ffi_boundary;

/// What a cachekit function returned. `CACHEKIT_OK` is 0; `CACHEKIT_MISS` is an answer, not an
/// error; every other code is an error and leaves a message for `cachekit_last_error_message`.
///
/// Codes 4 to 12 and 15 to 17 are the Rust client's `Error` variants, one code per variant. New codes are
/// only ever added at the end; treat an unknown code as an error.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum cachekit_result {
    /// Success. A get returned a value (fresh, or stale within grace: see
    /// `cachekit_value_info.stale`).
    CACHEKIT_OK = 0,
    /// The key is not in the cache (get, batch entry), was not there (delete), or no such
    /// counter (stats lookup). Nothing was written to the outputs.
    CACHEKIT_MISS = 1,
    /// The caller's buffer is too small; the needed size was written to the size output (and
    /// nothing else was).
    CACHEKIT_BUFFER_TOO_SMALL = 2,
    /// A required pointer argument was NULL.
    CACHEKIT_NULL_ARGUMENT = 3,
    /// An argument is refused: bad UTF-8, an empty or malformed namespace or tag, unknown flags,
    /// a wrong `struct_size`, an index out of range, an unknown instance name.
    CACHEKIT_INVALID_ARGUMENT = 4,
    /// A key, namespace, value, tag or tag list is over a limit; the message names the limit
    /// and the setting that raises it.
    CACHEKIT_TOO_LARGE = 5,
    /// cachekitd cannot be reached (not running, socket missing, connection lost) or cannot
    /// serve now. Gets never return it: they miss instead.
    CACHEKIT_UNAVAILABLE = 6,
    /// cachekitd did not answer in time (stuck or overloaded).
    CACHEKIT_TIMEOUT = 7,
    /// The socket's permissions or the daemon refuse this process.
    CACHEKIT_NOT_PERMITTED = 8,
    /// cachekitd answered something this library does not understand (version mismatch).
    CACHEKIT_PROTOCOL = 9,
    /// cachekitd reported an internal failure.
    CACHEKIT_DAEMON = 10,
    /// An operating-system error that is none of the above.
    CACHEKIT_IO = 11,
    /// A stored value is not a valid envelope (damaged, or written by something else).
    CACHEKIT_CORRUPT_VALUE = 12,
    /// A bug: a Rust panic was caught at the library boundary. The handle may still be used.
    CACHEKIT_PANIC = 13,
    /// An error this build of the library has no code for (a newer client error kind).
    CACHEKIT_OTHER_ERROR = 14,
    /// An encrypted value did not decrypt: a wrong master key or tenant, a tampered byte, or a
    /// value copied from another key or namespace. Never garbage, never a miss.
    CACHEKIT_DECRYPT = 15,
    /// The value is encrypted and this handle has no key: set `cachekit_options.encryption_key`
    /// (or `CACHEKIT_MASTER_KEY` / `CACHEKIT_MASTER_KEY_FILE`).
    CACHEKIT_ENCRYPTED = 16,
    /// The value is plaintext and this handle requires encryption
    /// (`CACHEKIT_ENCRYPT_REQUIRE`).
    CACHEKIT_PLAINTEXT = 17,
}

impl cachekit_result {
    /// Every code, in order (for tests and `describe`).
    #[cfg(test)]
    pub(crate) const ALL: [cachekit_result; 18] = {
        use cachekit_result::*;
        [
            CACHEKIT_OK,
            CACHEKIT_MISS,
            CACHEKIT_BUFFER_TOO_SMALL,
            CACHEKIT_NULL_ARGUMENT,
            CACHEKIT_INVALID_ARGUMENT,
            CACHEKIT_TOO_LARGE,
            CACHEKIT_UNAVAILABLE,
            CACHEKIT_TIMEOUT,
            CACHEKIT_NOT_PERMITTED,
            CACHEKIT_PROTOCOL,
            CACHEKIT_DAEMON,
            CACHEKIT_IO,
            CACHEKIT_CORRUPT_VALUE,
            CACHEKIT_PANIC,
            CACHEKIT_OTHER_ERROR,
            CACHEKIT_DECRYPT,
            CACHEKIT_ENCRYPTED,
            CACHEKIT_PLAINTEXT,
        ]
    };

    /// The code of a client error: one code per `Error` variant.
    pub(crate) fn of(e: &Error) -> cachekit_result {
        use cachekit_result::*;
        match e {
            Error::InvalidArgument { .. } => CACHEKIT_INVALID_ARGUMENT,
            Error::TooLarge { .. } => CACHEKIT_TOO_LARGE,
            Error::Unavailable { .. } => CACHEKIT_UNAVAILABLE,
            Error::Timeout { .. } => CACHEKIT_TIMEOUT,
            Error::NotPermitted { .. } => CACHEKIT_NOT_PERMITTED,
            Error::Protocol { .. } => CACHEKIT_PROTOCOL,
            Error::Daemon { .. } => CACHEKIT_DAEMON,
            Error::Io(_) => CACHEKIT_IO,
            Error::Envelope(_) => CACHEKIT_CORRUPT_VALUE,
            Error::Decrypt { .. } => CACHEKIT_DECRYPT,
            Error::Encrypted { .. } => CACHEKIT_ENCRYPTED,
            Error::Plaintext { .. } => CACHEKIT_PLAINTEXT,
            // `Error` is non_exhaustive: a variant added to the client after this build.
            _ => CACHEKIT_OTHER_ERROR,
        }
    }

    /// A static, NUL-terminated sentence for a code.
    fn describe(code: u32) -> &'static CStr {
        match code {
            0 => c"success",
            1 => c"miss: the key is not in the cache",
            2 => c"buffer too small: the needed size was written to the size output",
            3 => c"a required pointer argument is NULL",
            4 => c"invalid argument",
            5 => c"too large: a key, namespace, value or tag is over its limit",
            6 => c"cachekitd is unavailable (not running, or cannot serve now)",
            7 => c"cachekitd did not answer in time",
            8 => c"not permitted",
            9 => c"protocol error talking to cachekitd",
            10 => c"cachekitd reported an internal failure",
            11 => c"operating-system error",
            12 => c"a stored value is damaged (not a valid envelope)",
            13 => c"a panic was caught inside libcachekit (a bug)",
            14 => c"an error this version of libcachekit has no code for",
            15 => c"decryption failed: wrong key or tenant, tampered value, or value moved from another key",
            16 => c"the value is encrypted and this handle has no encryption key",
            17 => c"the value is not encrypted and this handle requires encryption",
            _ => c"unknown cachekit result code",
        }
    }
}

/// An error on its way to C: a code and the message `cachekit_last_error_message` will give.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: cachekit_result,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: cachekit_result, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn null_argument(name: &str) -> Failure {
        Failure::new(
            cachekit_result::CACHEKIT_NULL_ARGUMENT,
            format!("argument `{name}` is NULL; pass a valid pointer"),
        )
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(cachekit_result::CACHEKIT_INVALID_ARGUMENT, message)
    }

    pub(crate) fn buffer_too_small(what: &str, needed: usize, given: usize) -> Failure {
        Failure::new(
            cachekit_result::CACHEKIT_BUFFER_TOO_SMALL,
            format!("{what} needs {needed} bytes; the buffer has {given}"),
        )
    }

    /// Stores the message as the thread's last error and returns the code.
    pub(crate) fn record(self) -> cachekit_result {
        set_last_error(self.message);
        self.code
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::new(cachekit_result::of(&e), e.to_string())
    }
}

thread_local! {
    /// The message of the last failed call on this thread.
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

pub(crate) fn set_last_error(mut message: String) {
    // A NUL inside would cut the C string short: show it instead.
    if message.contains('\0') {
        message = message.replace('\0', "\\0");
    }
    LAST_ERROR.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            *m = message;
        }
    });
}

#[cfg(test)]
pub(crate) fn last_error() -> String {
    LAST_ERROR.with(|m| m.borrow().clone())
}

/// Describes a result code with a static, NUL-terminated English sentence.
///
/// Never allocates, never fails, never returns NULL (except after an internal panic, which
/// cannot happen here); an unknown code gives "unknown cachekit result code". For the details
/// of the last failure, use `cachekit_last_error_message`.
#[no_mangle]
pub extern "C" fn cachekit_result_describe(code: u32) -> *const c_char {
    ffi_boundary(|| cachekit_result::describe(code).as_ptr())
}

/// Copies the message of the last call on this thread that returned an error code (anything
/// but `CACHEKIT_OK` and `CACHEKIT_MISS`) into `buf`, NUL-terminated.
///
/// The message says what went wrong and what to do, e.g. "cachekitd is not running at
/// /run/cachekit/default.sock; start it with `cachekitd`". It stays until the next failure on
/// the same thread: successful calls do not clear it, so read it right after the failing call.
/// With no failure yet on this thread, it is the empty string. This function never changes it.
///
/// `*needed` receives the size the message takes, NUL included, on `CACHEKIT_OK` and on
/// `CACHEKIT_BUFFER_TOO_SMALL`. `buf` may be NULL when `len` is 0 (a size query).
///
/// # Safety
///
/// `buf` must point to `len` writable bytes (or `len` is 0); `needed` must point to a writable
/// `size_t`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_last_error_message(
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> cachekit_result {
    ffi_boundary(|| {
        // Failures of this function must not replace the message it reports: return bare codes.
        if needed.is_null() || (buf.is_null() && len > 0) {
            return Ok(cachekit_result::CACHEKIT_NULL_ARGUMENT);
        }
        LAST_ERROR.with(|m| {
            let m = m.borrow();
            let size = m.len() + 1;
            if len < size {
                // SAFETY: `needed` is non-NULL and the caller promises it is writable.
                unsafe { write_out(needed, size) };
                return Ok(cachekit_result::CACHEKIT_BUFFER_TOO_SMALL);
            }
            // SAFETY:
            // - `buf` is non-NULL (len >= size >= 1) and the caller promises `len` writable
            //   bytes, and `size <= len`;
            // - the source is our own String, which cannot overlap the caller's buffer.
            unsafe {
                std::ptr::copy_nonoverlapping(m.as_ptr(), buf.cast::<u8>(), m.len());
                *buf.add(m.len()) = 0;
                write_out(needed, size);
            }
            Ok(cachekit_result::CACHEKIT_OK)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn codes_are_stable() {
        for (i, code) in cachekit_result::ALL.iter().enumerate() {
            assert_eq!(*code as u32, i as u32, "{code:?}");
        }
    }

    #[test]
    fn every_code_has_its_own_description() {
        let mut seen = std::collections::HashSet::new();
        for code in cachekit_result::ALL {
            let d = cachekit_result::describe(code as u32).to_str().unwrap();
            assert!(!d.is_empty() && seen.insert(d), "{code:?}: {d}");
            assert_ne!(d, "unknown cachekit result code");
        }
        assert_eq!(
            cachekit_result::describe(9999).to_str().unwrap(),
            "unknown cachekit result code"
        );
    }

    #[test]
    fn client_errors_map_one_to_one() {
        use cachekit_result::*;
        let m = || "m".to_string();
        let cases = [
            (
                Error::InvalidArgument { message: m() },
                CACHEKIT_INVALID_ARGUMENT,
            ),
            (Error::TooLarge { message: m() }, CACHEKIT_TOO_LARGE),
            (Error::Unavailable { message: m() }, CACHEKIT_UNAVAILABLE),
            (
                Error::Timeout {
                    operation: "SET",
                    after: std::time::Duration::from_secs(1),
                },
                CACHEKIT_TIMEOUT,
            ),
            (Error::NotPermitted { message: m() }, CACHEKIT_NOT_PERMITTED),
            (Error::Protocol { message: m() }, CACHEKIT_PROTOCOL),
            (
                Error::Daemon {
                    code: cachekit_client::ErrorCode::Internal,
                    message: m(),
                },
                CACHEKIT_DAEMON,
            ),
            (Error::Io(io::Error::other("x")), CACHEKIT_IO),
            (Error::Decrypt { message: m() }, CACHEKIT_DECRYPT),
            (Error::Encrypted { message: m() }, CACHEKIT_ENCRYPTED),
            (Error::Plaintext { message: m() }, CACHEKIT_PLAINTEXT),
        ];
        let mut seen = std::collections::HashSet::new();
        for (e, code) in cases {
            assert_eq!(cachekit_result::of(&e), code, "{e:?}");
            assert!(seen.insert(code));
            let f = Failure::from(e);
            assert_eq!(f.code, code);
        }
    }

    #[test]
    fn last_error_message_copies_with_a_size_query() {
        set_last_error("cachekitd is not running".into());
        let mut needed = 0usize;
        // SAFETY: a size query: NULL buffer of length 0, valid `needed`.
        let code = unsafe { cachekit_last_error_message(std::ptr::null_mut(), 0, &mut needed) };
        assert_eq!(code, cachekit_result::CACHEKIT_BUFFER_TOO_SMALL);
        assert_eq!(needed, "cachekitd is not running".len() + 1);
        let mut buf = vec![0x55 as c_char; needed];
        // SAFETY: `buf` has `needed` writable bytes.
        let code = unsafe { cachekit_last_error_message(buf.as_mut_ptr(), buf.len(), &mut needed) };
        assert_eq!(code, cachekit_result::CACHEKIT_OK);
        // SAFETY: the function NUL-terminated `buf`.
        let s = unsafe { CStr::from_ptr(buf.as_ptr()) };
        assert_eq!(s.to_str().unwrap(), "cachekitd is not running");
        // Its own failures do not replace the message.
        // SAFETY: NULL `needed` is the error under test.
        let code =
            unsafe { cachekit_last_error_message(buf.as_mut_ptr(), 4, std::ptr::null_mut()) };
        assert_eq!(code, cachekit_result::CACHEKIT_NULL_ARGUMENT);
        assert_eq!(last_error(), "cachekitd is not running");
    }

    #[test]
    fn last_error_is_per_thread_and_nuls_are_shown() {
        set_last_error("a\0b".into());
        assert_eq!(last_error(), "a\\0b");
        let other = std::thread::spawn(last_error).join().unwrap();
        assert_eq!(other, "");
    }
}
