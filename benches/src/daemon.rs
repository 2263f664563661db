//! A private `cachekitd` for the benchmarks: the workspace test kit's daemon (a temp dir and an
//! instance name of its own, configured by its flags alone, killed and reaped on drop, the
//! binary from `$CACHEKITD_BIN` or the build's profile directory), and what the benchmarks
//! read of it.

use cachekit_client::{Client, ClientOptions};
use std::path::Path;

/// A running `cachekitd`; everything of the kit's [`cachekit_testkit::Daemon`] (socket, pid,
/// log) through `Deref`.
pub struct Daemon {
    inner: cachekit_testkit::Daemon,
    /// `--memory` as given.
    pub memory: String,
}

impl Daemon {
    /// Starts a daemon with `--memory memory` (e.g. `"256MiB"`), warnings-only logging (so that
    /// logging costs nothing measurable) and `extra` flags, and waits until it answers.
    pub fn start(memory: &str, extra: &[&str]) -> Daemon {
        let mut flags = vec!["--memory", memory, "--log", "warn"];
        flags.extend_from_slice(extra);
        Daemon {
            inner: cachekit_testkit::Daemon::start("bench", &flags),
            memory: memory.to_string(),
        }
    }

    /// A client of namespace `ns`.
    pub fn client(&self, ns: &str) -> Client {
        connect(self.socket(), ns)
            .unwrap_or_else(|e| panic!("connecting to the bench daemon: {e}; log:\n{}", self.log()))
    }

    /// Bytes of the table segment as mapped by the daemon (`memfd:cachekit-table` in
    /// `/proc/PID/maps`), and the daemon's resident shared memory (`RssShmem`, the pages of
    /// the segments actually touched), both in bytes.
    pub fn segment_memory(&self) -> (Option<u64>, Option<u64>) {
        let pid = self.pid();
        let mapped = std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .ok()
            .and_then(|maps| {
                maps.lines()
                    .filter(|l| l.contains("memfd:cachekit-table"))
                    .filter_map(|l| {
                        let range = l.split_whitespace().next()?;
                        let (a, b) = range.split_once('-')?;
                        let a = u64::from_str_radix(a, 16).ok()?;
                        let b = u64::from_str_radix(b, 16).ok()?;
                        Some(b - a)
                    })
                    .max()
            });
        let shmem = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("RssShmem:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .map(|kib| kib * 1024)
            });
        (mapped, shmem)
    }
}

impl std::ops::Deref for Daemon {
    type Target = cachekit_testkit::Daemon;
    fn deref(&self) -> &cachekit_testkit::Daemon {
        &self.inner
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut cachekit_testkit::Daemon {
        &mut self.inner
    }
}

/// A client of the daemon at `socket`, namespace `ns`.
pub fn connect(socket: &Path, ns: &str) -> Result<Client, cachekit_client::Error> {
    Client::connect(
        ClientOptions::new()
            .socket(socket)
            .namespace(ns)
            .client_name("cachekit-bench"),
    )
}
