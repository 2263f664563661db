//! Test-only settings read from the environment, honoured only in builds with debug assertions
//! (the `ci` profile the tests use; never a release build): each shortens a wait or triggers
//! a failure a test must provoke. Each variable is named `CACHEKIT_TEST_*` and documented where
//! it is read.

use std::time::Duration;

/// Whether `name` is set to a non-empty value (in a build with debug assertions).
pub fn flag(name: &str) -> bool {
    cfg!(debug_assertions) && std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// `name` as milliseconds (in a build with debug assertions); `None` when unset or not a
/// number.
pub fn millis(name: &str) -> Option<Duration> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let v = std::env::var(name).ok()?;
    v.trim().parse().ok().map(Duration::from_millis)
}
