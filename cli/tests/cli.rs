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
    assert!(stderr(&o).contains("like 250ms, 1.5s"), "{}", stderr(&o));
    let o = Command::new(CLI)
        .args(["set", "k", "v", "--ttl=-1s"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("a negative duration is refused"),
        "{}",
        stderr(&o)
    );
}

/// The one TTL rule of every binding: `--ttl 0` means "never expires" in set, incr and touch
/// (as no --ttl, as --persist); durations are written as everywhere (`1.5s`, `250ms`).
#[test]
fn a_zero_ttl_never_expires() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("cli-ttl-rule", &["--memory", "8MiB"]);
        let s = daemon.socket();
        assert!(
            eventually(Duration::from_secs(10), || cachekit(s, &["ping"])
                .status
                .success()),
            "cachekit ping never succeeded; daemon log:\n{}",
            daemon.log()
        );
        let set = json_of(&ok(s, &["--json", "set", "set", "v", "--ttl", "0"]));
        assert_eq!(set["ttl_ms"], serde_json::Value::Null, "{set}");
        ok(s, &["incr", "incr", "--ttl", "0"]);
        ok(s, &["set", "touch", "v", "--ttl", "1.5s"]);
        let left = json_of(&ok(s, &["--json", "ttl", "touch"]))["ttl_ms"]
            .as_u64()
            .unwrap();
        assert!(left > 0 && left <= 1500, "{left}");
        assert_eq!(
            stdout(&ok(s, &["touch", "touch", "--ttl", "0"])),
            "touch never expires\n"
        );
        for key in ["set", "incr", "touch"] {
            assert_eq!(stdout(&ok(s, &["ttl", key])), "never\n", "{key}");
        }
        ok(s, &["--timeout", "1.5s", "set", "t", "v", "--ttl", "250ms"]);
    });
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

fn lines(o: &Output) -> Vec<String> {
    let mut v: Vec<String> = stdout(o).lines().map(String::from).collect();
    v.sort();
    v
}

fn json_of(o: &Output) -> serde_json::Value {
    serde_json::from_str(stdout(o).trim())
        .unwrap_or_else(|e| panic!("{e}: stdout {:?}, stderr {:?}", stdout(o), stderr(o)))
}

/// Runs a command that must succeed and returns its output.
fn ok(socket: &Path, args: &[&str]) -> Output {
    let o = cachekit(socket, args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    o
}

#[test]
fn management_commands_with_the_real_daemon() {
    watchdog(Duration::from_secs(120), management_commands);
}

fn management_commands() {
    let daemon = Daemon::start("cli-manage", &["--memory", "8MiB"]);
    let s = daemon.socket().to_path_buf();
    let s = s.as_path();
    assert!(
        eventually(Duration::from_secs(10), || cachekit(s, &["ping"])
            .status
            .success()),
        "cachekit ping never succeeded; daemon log:\n{}",
        daemon.log()
    );
    ok(
        s,
        &["set", "user:1", "a", "--ttl", "30s", "--tag", "users/1"],
    );
    ok(s, &["set", "user:2", "b", "--tag", "users/2"]);
    ok(s, &["set", "other", "c"]);
    ok(s, &["-n", "elsewhere", "set", "user:3", "d"]);

    // keys: this namespace only, by glob, by tag.
    assert_eq!(lines(&ok(s, &["keys"])), ["other", "user:1", "user:2"]);
    assert_eq!(lines(&ok(s, &["keys", "user:*"])), ["user:1", "user:2"]);
    assert_eq!(
        lines(&ok(s, &["keys", "--tag", "users"])),
        ["user:1", "user:2"]
    );
    assert_eq!(
        lines(&ok(s, &["keys", "--tag", "users/2", "--exact"])),
        ["user:2"]
    );
    let v = json_of(&ok(s, &["--json", "keys", "user:[1]"]));
    assert_eq!(v["count"], 1);
    assert_eq!(v["keys"][0]["key"], "user:1");
    assert!(
        v["keys"][0]["expires_ms"].as_u64().unwrap() > v["keys"][0]["created_ms"].as_u64().unwrap()
    );
    assert!(v["keys"][0]["version"].as_u64().unwrap() > 0);

    // ttl: time left, never, or a miss (exit 1, like get).
    let v = json_of(&ok(s, &["--json", "ttl", "user:1"]));
    let left = v["ttl_ms"].as_u64().unwrap();
    assert!(left > 20_000 && left <= 30_000, "{v}");
    assert_eq!(stdout(&ok(s, &["ttl", "user:2"])), "never\n");
    let o = cachekit(s, &["ttl", "nope"]);
    assert_eq!((o.status.code(), stderr(&o).trim()), (Some(1), "miss"));

    // touch: a new ttl, or none; a missing key is a miss.
    assert_eq!(
        stdout(&ok(s, &["touch", "user:2", "--ttl", "1m"])),
        "user:2 expires in 1m\n"
    );
    let left = json_of(&ok(s, &["--json", "ttl", "user:2"]))["ttl_ms"]
        .as_u64()
        .unwrap();
    assert!(left > 50_000 && left <= 60_000, "{left}");
    ok(s, &["touch", "user:2", "--persist"]);
    assert_eq!(stdout(&ok(s, &["ttl", "user:2"])), "never\n");
    let o = cachekit(s, &["touch", "nope", "--persist"]);
    assert_eq!((o.status.code(), stderr(&o).trim()), (Some(1), "miss"));
    assert_eq!(
        cachekit(s, &["touch", "user:2"]).status.code(),
        Some(2),
        "--ttl or --persist"
    );

    // incr / decr: created from 0 (or --initial), negative deltas, integers on read.
    let counter = |args: &[&str]| stdout(&ok(s, args)).trim().to_string();
    assert_eq!(counter(&["incr", "c"]), "1");
    assert_eq!(counter(&["incr", "c", "10"]), "11");
    assert_eq!(counter(&["decr", "c", "20"]), "-9");
    assert_eq!(counter(&["incr", "c", "-1"]), "-10");
    assert_eq!(
        counter(&["incr", "made", "--initial", "100", "--ttl", "1m"]),
        "101"
    );
    assert!(
        json_of(&ok(s, &["--json", "ttl", "made"]))["ttl_ms"]
            .as_u64()
            .unwrap()
            > 50_000
    );
    let v = json_of(&ok(s, &["--json", "get", "c"]));
    assert_eq!(
        (v["value"].as_str(), v["integer"].as_bool()),
        (Some("-10"), Some(true))
    );
    let o = cachekit(s, &["incr", "absent", "--no-create"]);
    assert_eq!((o.status.code(), stderr(&o).trim()), (Some(1), "miss"));
    assert_eq!(cachekit(s, &["get", "absent"]).status.code(), Some(1));
    let o = cachekit(s, &["incr", "user:2"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("not an integer"), "{}", stderr(&o));
    assert_eq!(stdout(&ok(s, &["get", "user:2"])), "b\n", "left unchanged");
    let o = cachekit(s, &["incr", "c", "1", "--initial", "5", "--no-create"]);
    assert_eq!(o.status.code(), Some(2));

    // set --if-absent / --if-present: exit 1 when not stored.
    ok(s, &["set", "lock", "1", "--if-absent", "--ttl", "1m"]);
    let o = cachekit(s, &["set", "lock", "2", "--if-absent"]);
    assert_eq!(
        (o.status.code(), stderr(&o).trim()),
        (Some(1), "not stored: it exists")
    );
    let o = cachekit(s, &["set", "nolock", "2", "--if-present"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(cachekit(s, &["get", "nolock"]).status.code(), Some(1));
    ok(s, &["set", "lock", "3", "--if-present"]);
    assert_eq!(stdout(&ok(s, &["get", "lock"])), "3\n");

    // namespaces: this host's table, every namespace.
    let v = json_of(&ok(s, &["--json", "namespaces"]));
    let list = v["namespaces"].as_array().unwrap();
    let entries = |name: &str| {
        list.iter().find(|n| n["name"] == name).map(|n| {
            (
                n["entries"].as_u64().unwrap(),
                n["bytes"].as_u64().unwrap() > 0,
            )
        })
    };
    // default: user:1, user:2, other, c, made, lock.
    assert_eq!(entries("default"), Some((6, true)), "{v}");
    assert_eq!(entries("elsewhere"), Some((1, true)), "{v}");
    let text = stdout(&ok(s, &["namespaces"]));
    assert!(text.starts_with("NAMESPACE"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [
                    "elsewhere",
                    "1",
                    &list.iter().find(|n| n["name"] == "elsewhere").unwrap()["bytes"].to_string()
                ]),
        "{text}"
    );

    // del by pattern and by tag: counts, and only the selected keys go.
    assert_eq!(
        stdout(&ok(s, &["del", "--pattern", "user:*"])),
        "deleted 2 entries in namespace default\n"
    );
    assert_eq!(lines(&ok(s, &["keys"])), ["c", "lock", "made", "other"]);
    assert_eq!(lines(&ok(s, &["-n", "elsewhere", "keys"])), ["user:3"]);
    ok(s, &["set", "t1", "x", "--tag", "posts/1"]);
    ok(s, &["set", "t2", "x", "--tag", "posts/1/comments"]);
    let v = json_of(&ok(s, &["--json", "del", "--tag", "posts/1", "--exact"]));
    assert_eq!(v["deleted"], 1);
    assert_eq!(
        json_of(&ok(s, &["--json", "del", "--tag", "posts"]))["deleted"],
        1
    );
    assert_eq!(cachekit(s, &["get", "t2"]).status.code(), Some(1));
    // `del KEY` is as before; an empty pattern is refused (it would select every key).
    assert_eq!(
        json_of(&ok(s, &["--json", "del", "other"]))["existed"],
        true
    );
    let o = cachekit(s, &["del", "--pattern", ""]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("'*' selects every key"),
        "{}",
        stderr(&o)
    );
    assert_eq!(cachekit(s, &["del"]).status.code(), Some(2));
    assert_eq!(lines(&ok(s, &["keys"])), ["c", "lock", "made"]);
}

/// `keys` walks every page (2500 keys at 1000 per page) and returns each match once; `del
/// --pattern` deletes exactly the matches.
#[test]
fn keys_and_del_pattern_page_through_a_larger_namespace() {
    watchdog(Duration::from_secs(120), || {
        let daemon = Daemon::start("cli-pages", &["--memory", "16MiB"]);
        let s = daemon.socket();
        let mut opts = cachekit_client::ClientOptions::new().namespace("many");
        opts.socket = Some(s.to_path_buf());
        let client = cachekit_client::Client::connect(opts).expect("connect");
        let opts = cachekit_client::SetOptions::new();
        for i in 0..2500 {
            client.set(format!("k:{i}"), b"v", &opts).unwrap();
        }
        let keys: Vec<String> = stdout(&ok(s, &["-n", "many", "keys", "k:1*"]))
            .lines()
            .map(String::from)
            .collect();
        let mut want: Vec<String> = (0..2500)
            .map(|i| format!("k:{i}"))
            .filter(|k| k.starts_with("k:1"))
            .collect();
        let mut got = keys.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "every match exactly once");
        assert_eq!(lines(&ok(s, &["-n", "many", "keys"])).len(), 2500);
        let v = json_of(&ok(
            s,
            &["-n", "many", "--json", "del", "--pattern", "k:2*"],
        ));
        let twos = (0..2500).filter(|i| i.to_string().starts_with('2')).count();
        assert_eq!(v["deleted"], twos as u64);
        assert_eq!(lines(&ok(s, &["-n", "many", "keys"])).len(), 2500 - twos);
    });
}

/// Concurrent `incr` processes lose no update; of concurrent `set --if-absent`, one stores.
#[test]
fn concurrent_cli_processes_are_atomic() {
    watchdog(Duration::from_secs(120), || {
        let daemon = Daemon::start("cli-atomic", &["--memory", "8MiB"]);
        let s = daemon.socket();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..25 {
                        ok(s, &["incr", "hits"]);
                    }
                });
            }
        });
        assert_eq!(stdout(&ok(s, &["get", "hits"])), "100\n");
        let codes: Vec<Option<i32>> = std::thread::scope(|scope| {
            let runs: Vec<_> = (0..8)
                .map(|i| {
                    scope.spawn(move || {
                        cachekit(s, &["set", "lock", &i.to_string(), "--if-absent"])
                            .status
                            .code()
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(
            codes.iter().filter(|c| **c == Some(0)).count(),
            1,
            "{codes:?}"
        );
        assert_eq!(
            codes.iter().filter(|c| **c == Some(1)).count(),
            7,
            "{codes:?}"
        );
    });
}
