//! Where a daemon instance puts its socket, shared by the daemon and every client.
//!
//! Candidate directories, in order: `/run/cachekit`, `$XDG_RUNTIME_DIR/cachekit`,
//! `/tmp/cachekit-<uid>`. The daemon uses the first one it can create and write; a client
//! uses the first one holding `<instance>.sock`. `CACHEKIT_DIR` overrides both.

use std::path::{Path, PathBuf};

/// The instance name used when none is given.
pub const DEFAULT_INSTANCE: &str = "default";

/// Candidate runtime directories, most preferred first.
pub fn candidate_dirs() -> Vec<PathBuf> {
    if let Some(d) = std::env::var_os("CACHEKIT_DIR").filter(|d| !d.is_empty()) {
        return vec![PathBuf::from(d)];
    }
    let mut dirs = vec![PathBuf::from("/run/cachekit")];
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        dirs.push(Path::new(&x).join("cachekit"));
    }
    dirs.push(PathBuf::from(format!(
        "/tmp/cachekit-{}",
        rustix::process::getuid().as_raw()
    )));
    dirs
}

/// The socket file name of an instance.
pub fn socket_name(instance: &str) -> String {
    format!("{instance}.sock")
}

/// Checks an instance name: letters, digits, `-`, `_`, `.`, 1 to 64 bytes, not starting with `.`.
pub fn validate_instance(instance: &str) -> Result<(), String> {
    let ok = !instance.is_empty()
        && instance.len() <= 64
        && !instance.starts_with('.')
        && instance
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "instance name {instance:?} is invalid: use 1 to 64 letters, digits, '-', '_' or '.'"
        ))
    }
}

/// The socket a client should connect to for `instance`: the first candidate directory
/// that holds it, else where the daemon would put it in the first candidate.
pub fn client_socket(instance: &str) -> PathBuf {
    let name = socket_name(instance);
    let dirs = candidate_dirs();
    dirs.iter()
        .map(|d| d.join(&name))
        .find(|p| p.exists())
        .unwrap_or_else(|| dirs[0].join(&name))
}
