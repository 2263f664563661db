//! Who may write, with real uids: the `cachekit` binary run under `setpriv` as other users
//! and groups against a real `cachekitd` (run as the test's user, root). Each case is one
//! daemon configuration and the peers it must let write, and must not.
//!
//! The rule (docs/ARCHITECTURE.md, "Credentials"): a peer may write when its uid is in
//! `writer_uids`, or its primary gid or one of its supplementary groups is in `writer_gids`;
//! when neither list is given both are the daemon's own uid and gid, and giving either
//! replaces both defaults.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use cachekit_testkit::{watchdog, Daemon, Site};

const CLI: &str = env!("CARGO_BIN_EXE_cachekit");

/// A uid and gid no account on a test machine has (setpriv needs no account).
const U: u32 = 4242;
const OTHER_GID: u32 = 4343;

/// Who runs the CLI: uid, primary gid, supplementary groups.
#[derive(Clone, Copy, Debug)]
struct Who(u32, u32, &'static [u32]);

const ROOT: Who = Who(0, 0, &[]);

/// Runs `cachekit --socket S args` as `who` (`setpriv`, from util-linux).
fn cachekit_as(who: Who, socket: &Path, args: &[&str]) -> Output {
    let Who(uid, gid, groups) = who;
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"));
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        cmd.arg(format!("--groups={}", list.join(",")));
    }
    cmd.arg("--")
        .arg(CLI)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("CACHEKIT_INSTANCE")
        .env_remove("CACHEKIT_NAMESPACE")
        .output()
        .unwrap_or_else(|e| {
            panic!("running setpriv (util-linux; these tests run as root to switch uids): {e}")
        })
}

/// A daemon of the site `story` with `flags`, whose socket any uid can open (the site's
/// directory is made searchable and the socket 0666: only the write rule is under test).
fn daemon(story: &str, flags: &[&str]) -> Daemon {
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata("/proc/self").map(|m| m.uid()).ok(),
        Some(0),
        "these tests switch to other uids with setpriv and must run as root (they do in CI and scripts/test)"
    );
    let site = Site::new(story);
    std::fs::set_permissions(site.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut all = vec!["--socket-mode", "0666"];
    all.extend_from_slice(flags);
    site.start(&all)
}

/// Asserts that each of `writers` may set a key and each of `readers` gets NOT_PERMITTED
/// (exit 4, naming writer_uids) but can still read.
fn check(d: &Daemon, writers: &[Who], readers: &[Who]) {
    let socket = d.socket();
    for (i, who) in writers.iter().enumerate() {
        let key = format!("w{i}");
        let o = cachekit_as(*who, socket, &["set", &key, "v"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{who:?} should be allowed to write: {}\nlog:\n{}",
            String::from_utf8_lossy(&o.stderr),
            d.log()
        );
    }
    for who in readers {
        let o = cachekit_as(*who, socket, &["set", "r", "v"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(4),
            "{who:?} should be refused: {err}\nlog:\n{}",
            d.log()
        );
        assert!(err.contains("writer_uids"), "{err}");
        for args in [
            &["incr", "r"][..],
            &["set", "r", "v", "--if-absent"],
            &["touch", "r", "--persist"],
            &["del", "--pattern", "*"],
        ] {
            let o = cachekit_as(*who, socket, args);
            assert_eq!(
                o.status.code(),
                Some(4),
                "{who:?} {args:?} should be refused"
            );
        }
        for args in [&["keys"][..], &["namespaces"]] {
            let o = cachekit_as(*who, socket, args);
            assert_eq!(o.status.code(), Some(0), "{who:?} may still {args:?}");
        }
        let (args, want): (&[&str], &[u8]) = if writers.is_empty() {
            (&["ping"], b"")
        } else {
            (&["get", "w0"], b"v")
        };
        let o = cachekit_as(*who, socket, args);
        assert_eq!(o.status.code(), Some(0), "{who:?} may still read");
        assert!(o.stdout.starts_with(want), "{who:?}: {:?}", o.stdout);
    }
}

#[test]
fn by_default_the_daemons_uid_and_gid_write_counting_supplementary_groups() {
    watchdog(Duration::from_secs(120), || {
        let d = daemon("perm-default", &[]);
        check(
            &d,
            &[ROOT, Who(U, 0, &[]), Who(U, U, &[0]), Who(U, U, &[7, 0])],
            &[Who(U, U, &[]), Who(U, U, &[7])],
        );
    });
}

#[test]
fn writer_uids_alone_leaves_no_group_writers() {
    watchdog(Duration::from_secs(120), || {
        // Before: root's group still wrote, so a uid whose primary group is root overwrote
        // root's values.
        let d = daemon("perm-uids", &["--writer-uids", "0"]);
        check(&d, &[ROOT], &[Who(U, 0, &[]), Who(U, U, &[0])]);
    });
}

#[test]
fn an_empty_writer_gids_on_the_command_line_means_no_group() {
    watchdog(Duration::from_secs(120), || {
        let d = daemon(
            "perm-nogids",
            &["--writer-uids", &U.to_string(), "--writer-gids", ""],
        );
        check(&d, &[Who(U, U, &[])], &[ROOT, Who(U + 1, 0, &[0])]);
        let d = daemon("perm-nobody", &["--writer-gids", ""]);
        check(&d, &[], &[ROOT, Who(U, U, &[0])]);
    });
}

#[test]
fn writer_gids_alone_counts_supplementary_groups_and_leaves_no_uid_writers() {
    watchdog(Duration::from_secs(120), || {
        let d = daemon("perm-gids", &["--writer-gids", &OTHER_GID.to_string()]);
        check(
            &d,
            &[
                Who(U, OTHER_GID, &[]),
                Who(U, U, &[OTHER_GID]),
                Who(U, U, &[1, OTHER_GID, 2]),
            ],
            &[ROOT, Who(U, U, &[1, 2])],
        );
    });
}

#[test]
fn the_same_rule_holds_for_the_config_file() {
    watchdog(Duration::from_secs(120), || {
        let dir = cachekit_testkit::temp_dir("perm-toml");
        let file = dir.path().join("cachekitd.toml");
        std::fs::write(&file, format!("writer_uids = [{U}]\n")).unwrap();
        let d = daemon("perm-toml", &["--config", file.to_str().unwrap()]);
        check(&d, &[Who(U, U, &[])], &[ROOT, Who(U + 1, 0, &[0])]);
    });
}
