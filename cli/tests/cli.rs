//! The `cachekit` binary: exit codes and output, without a daemon and against the real
//! `cachekitd` (from the workspace test kit, which fails, saying how to build it, when there is
//! none: the test never passes without running).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cachekit_testkit::{eventually, temp_dir, watchdog, Daemon};

const CLI: &str = env!("CARGO_BIN_EXE_cachekit");

fn cachekit(socket: &Path, args: &[&str]) -> Output {
    cachekit_with_stdin(socket, args, None)
}

fn cachekit_with_stdin(socket: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(CLI)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("CACHEKIT_INSTANCE")
        .env_remove("CACHEKIT_NAMESPACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cachekit");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            input.write_all(bytes).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn no_daemon_is_exit_code_3_with_how_to_start_it() {
    let dir = temp_dir("cli-no-daemon");
    let socket = dir.path().join("dev.sock");
    let o = cachekit(&socket, &["get", "k"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("cachekitd is not running at"), "{err}");
    assert!(err.contains("--instance dev"), "{err}");

    let o = cachekit(&socket, &["--json", "ping"]);
    assert_eq!(o.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["error"]["kind"], "unavailable");
}

#[test]
fn usage_errors_are_exit_code_2() {
    let o = Command::new(CLI)
        .args(["set", "k", "v", "--ttl", "soon"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("like 30s"));
}

#[test]
fn end_to_end_with_the_real_daemon() {
    watchdog(Duration::from_secs(120), end_to_end);
}

fn end_to_end() {
    let daemon = Daemon::start("cli", &["--memory", "8MiB"]);
    let socket = daemon.socket().to_path_buf();
    assert!(
        eventually(Duration::from_secs(10), || cachekit(&socket, &["ping"])
            .status
            .success()),
        "cachekit ping never succeeded; daemon log:\n{}",
        daemon.log()
    );

    let o = cachekit(&socket, &["set", "k", "v", "--ttl", "30s", "--tag", "a/b"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cachekit(&socket, &["get", "k"]);
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "v\n"));

    let o = cachekit(&socket, &["--json", "get", "k"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["value"], "v");
    assert_eq!(v["hit"], true);
    assert_eq!(v["source"], "segment");
    assert!(v["expires_ms"].as_u64().unwrap() > v["created_ms"].as_u64().unwrap());

    // Namespaces are separate.
    let o = cachekit(&socket, &["-n", "other", "get", "k"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).trim(), "miss");

    // Hierarchical invalidation of a parent tag.
    assert!(cachekit(&socket, &["invalidate", "a"]).status.success());
    assert_eq!(cachekit(&socket, &["get", "k"]).status.code(), Some(1));

    // Binary values from stdin, back with --raw.
    let bytes: Vec<u8> = (0..=255u8).collect();
    let o = cachekit_with_stdin(&socket, &["set", "bin", "-"], Some(&bytes));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cachekit(&socket, &["get", "bin", "--raw"]);
    assert_eq!(o.stdout, bytes);

    let o = cachekit(&socket, &["--json", "del", "bin"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["existed"], true);
    assert!(cachekit(&socket, &["clear"]).status.success());

    let o = cachekit(&socket, &["--json", "stats"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(v["daemon"]["sets"].as_u64().unwrap() >= 2);
    assert_eq!(v["segment"]["live"], true);

    // Refused before sending: exit code 4.
    let o = cachekit(&socket, &["set", "k", "v", "--tag", "a//b"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("empty segment"));
}

/// `set -f /dev/zero` stops reading one byte past the daemon's max_value_bytes and says so
/// (it read the whole input first: 1.3 GB after 3 s). Run with its address space capped at
/// 256 MiB, so reading without a bound fails instead of filling the machine.
#[test]
fn an_endless_input_is_refused_at_the_limit_without_reading_it_all() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("cli-dev-zero", &["--max-value-bytes", "1MiB"]);
        let o = Command::new("prlimit")
            .arg(format!("--as={}", 256u64 << 20))
            .arg("--")
            .arg(CLI)
            .arg("--socket")
            .arg(daemon.socket())
            .args(["set", "k", "-f", "/dev/zero"])
            .env_remove("CACHEKIT_INSTANCE")
            .env_remove("CACHEKIT_NAMESPACE")
            .output()
            .expect("running prlimit (util-linux)");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(4), "{err}");
        assert!(
            err.contains("/dev/zero is over max_value_bytes = 1048576"),
            "{err}"
        );
        let o = cachekit_with_stdin(daemon.socket(), &["set", "k", "-"], Some(&[b'x'; 1 << 20]));
        assert_eq!(
            o.status.code(),
            Some(0),
            "exactly the limit is stored: {}",
            stderr(&o)
        );
    });
}

#[test]
fn a_zero_timeout_is_refused_naming_the_flag() {
    let o = Command::new(CLI)
        .args(["--timeout", "0s", "ping"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("--timeout") && err.contains("is zero"),
        "{err}"
    );
    assert!(!err.contains("connect_timeout"), "{err}");
}

/// A path that is not a socket is named for what it is, not blamed on a stopped daemon.
#[test]
fn a_socket_path_that_is_not_a_socket_is_named() {
    let dir = temp_dir("cli-not-socket");
    let file = dir.path().join("dev.sock");
    std::fs::write(&file, b"").unwrap();
    for (path, what) in [
        (&file, "a regular file"),
        (&dir.path().to_path_buf(), "a directory"),
    ] {
        let o = cachekit(path, &["get", "k"]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{err}");
        assert!(err.contains(&format!("is {what}, not a socket")), "{err}");
        assert!(!err.contains("stopped daemon"), "{err}");
    }
}
