//! `ClientOptions::default()` honours `CACHEKIT_SOCKET` as every other binding does: the
//! README's Rust example (`examples/quickstart.rs`, run here as it is) reaches a daemon on a
//! socket of its own through the environment alone.
//!
//! The only test of this binary: it sets a process environment variable, which no other
//! thread may read at the same time.

#[path = "../examples/quickstart.rs"]
mod quickstart;

use std::time::Duration;

use cachekit_client::ClientOptions;
use cachekit_testkit::{watchdog, Daemon};

#[test]
fn the_readme_example_finds_the_daemon_through_cachekit_socket() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("env-default", &["--memory", "8MiB"]);
        // Not the default place: without the variable the example would miss it.
        assert_ne!(
            ClientOptions::from_vars(|_| None).resolve_socket(),
            daemon.socket()
        );
        std::env::set_var("CACHEKIT_SOCKET", daemon.socket());
        assert_eq!(
            ClientOptions::default().resolve_socket(),
            daemon.socket(),
            "ClientOptions::default() ignores CACHEKIT_SOCKET"
        );
        quickstart::main().expect("the README example against the daemon of CACHEKIT_SOCKET");
    });
}
