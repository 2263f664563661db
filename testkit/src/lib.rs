//! The one test kit of the workspace: what every Rust test and benchmark that runs real
//! processes needs, written once.
//!
//! - [`cachekitd`]: the daemon binary under test, found by one rule (`$CACHEKITD_BIN`, else
//!   the `cachekitd` in the running executable's Cargo profile directory). A missing or stale
//!   binary is a failure that names the `cargo build` command to run, never a skip.
//! - [`Site`] and [`Daemon`]: a real `cachekitd` in a temp dir of its own under an instance
//!   name of its own, configured by its flags alone, its output in a log file that a failing
//!   test prints. Killed (SIGKILL) and reaped when dropped; kill -9, SIGTERM, SIGSTOP/SIGCONT
//!   and restart in the same dir for the crash stories.
//! - [`Redis`] and [`RedisCluster`]: real `redis-server`s on free loopback ports, without
//!   persistence, in temp dirs, killed when dropped.
//! - [`SentinelGroup`]: a primary, a replica and three sentinels, for failover stories.
//! - [`free_port`], [`free_port_pair`], [`temp_dir`]: private resources, so tests running at
//!   the same time never meet each other or a daemon already running on the machine.
//! - [`watchdog`], [`poll`], [`eventually`]: a hung test fails with its name after a deadline
//!   (and the processes it started are killed) instead of hanging CI; every wait is bounded.
//!
//! Every wait of the kit itself (a daemon or server coming up, a process exiting after a
//! signal) is bounded by [`PATIENCE`].
//!
//! This crate is for tests and benchmarks only (`publish = false`); it panics instead of
//! returning errors, with messages that say what to do.

#![forbid(unsafe_code)]

mod daemon;
mod locate;
mod ports;
mod process;
mod redis;
mod sentinel;
mod wait;

use std::time::Duration;

pub use crate::daemon::{Daemon, Site, DEFAULT_FLAGS};
pub use crate::locate::{cachekitd, BIN_VAR};
pub use crate::ports::{free_port, free_port_pair};
pub use crate::redis::{Redis, RedisCluster};
pub use crate::sentinel::SentinelGroup;
pub use crate::wait::{eventually, poll, test_name, watchdog};
pub use rustix::process::Signal;

/// The longest the kit waits for one of its processes to come up (a daemon answering
/// on its socket, a server answering PING) or to exit after a signal. A bound against hangs,
/// not a performance target: generous, because CI machines have two cores shared by many
/// tests, each starting its own daemons.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A fresh temporary directory, `$TMPDIR/cachekit-<what>-XXXXXX`, removed when dropped.
pub fn temp_dir(what: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("cachekit-{}-", sanitize(what, 24)))
        .tempdir()
        .unwrap_or_else(|e| panic!("creating a temp dir for {what}: {e}"))
}

/// `text` reduced to at most `max` ASCII letters, digits and `-`: fit for file and instance
/// names.
fn sanitize(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(max)
        .collect()
}
