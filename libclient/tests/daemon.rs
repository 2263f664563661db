//! The client against the real `cachekitd` binary: the hit path, a stuck daemon (SIGSTOP), a
//! killed and restarted daemon (kill -9, new segment, new epoch).
//!
//! The binary is looked up in `$CACHEKITD_BIN`, then next to this workspace's build output
//! (`target/debug/cachekitd`, built by `cargo build -p cachekitd` or by `cargo test` on the
//! workspace). When it is not there the tests print why and pass without running.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cachekit_client::{Client, ClientOptions, Error, SetOptions, Source};
use common::{eventually, watchdog};

fn daemon_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CACHEKITD_BIN") {
        return Some(PathBuf::from(p));
    }
    // tests run from target/<profile>/deps/<test>: the binary is in target/<profile>.
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let candidate = profile_dir.join("cachekitd");
    candidate.exists().then_some(candidate)
}

struct Daemon {
    child: Child,
    reaped: bool,
}

impl Daemon {
    fn start(bin: &Path, dir: &Path) -> Daemon {
        Self::start_with(bin, dir, &["--memory", "8MiB"])
    }

    /// A daemon with `extra` flags (say, `--max-value-bytes 4MiB`).
    fn start_with(bin: &Path, dir: &Path, extra: &[&str]) -> Daemon {
        let child = Command::new(bin)
            .args(["--dir"])
            .arg(dir)
            .args([
                "--instance",
                "itest",
                "--heartbeat-ms",
                "50",
                "--heartbeat-timeout-ms",
                "200",
                "--log",
                "warn",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start cachekitd");
        Daemon {
            child,
            reaped: false,
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    fn kill(mut self) {
        self.child.kill().expect("kill -9 cachekitd");
        self.child.wait().expect("reap cachekitd");
        self.reaped = true;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        // SIGKILL works on a stopped process too; reap it so no zombie outlives the test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(dir: &Path) -> Client {
    let opts = ClientOptions::new()
        .socket(dir.join("itest.sock"))
        .namespace("itest")
        .request_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(300));
    let mut client = None;
    assert!(
        eventually(10, || {
            client = Client::connect(opts.clone()).ok();
            client.is_some()
        }),
        "cachekitd did not come up within 10 s"
    );
    client.unwrap()
}

#[test]
fn against_the_real_daemon() {
    let Some(bin) = daemon_binary() else {
        eprintln!("skipped: no cachekitd binary (build it with `cargo build -p cachekitd`, or set CACHEKITD_BIN)");
        return;
    };
    watchdog(120, move || {
        let dir = tempfile::tempdir().unwrap();
        let first = Daemon::start(&bin, dir.path());
        let client = connect(dir.path());

        // Hits: from the segment, no socket request.
        client
            .set(
                "k",
                b"v1",
                &SetOptions::new().ttl(Duration::from_secs(60)).tag("a/b"),
            )
            .unwrap();
        let before = client.request_count();
        for _ in 0..100 {
            let v = client.get("k").unwrap().unwrap();
            assert_eq!(
                (v.bytes.as_slice(), v.source),
                (&b"v1"[..], Source::Segment)
            );
        }
        assert_eq!(client.request_count(), before);
        // A miss asks the daemon.
        assert!(client.get("absent").unwrap().is_none());
        assert_eq!(client.request_count(), before + 1);
        // Invalidation is immediate.
        client.invalidate(&["a"]).unwrap();
        assert!(client.get("k").unwrap().is_none());
        client.set("k", b"v1", &SetOptions::new()).unwrap();
        assert!(client.stats().unwrap().daemon_counter("sets").is_some());
        let first_epoch = client.ping().unwrap().epoch;

        // A stuck daemon: its heartbeat goes stale and its socket does not answer, so gets
        // miss (they must not serve a segment that may miss invalidations) and writes fail.
        first.signal("STOP");
        assert!(eventually(10, || client.get("k").unwrap().is_none()));
        let e = client.set("k", b"v2", &SetOptions::new()).unwrap_err();
        assert!(e.is_unavailable(), "{e}");
        first.signal("CONT");
        assert!(eventually(10, || client
            .get("k")
            .unwrap()
            .is_some_and(|v| v.source == Source::Segment)));

        // Killed and restarted: a new segment with a new epoch, picked up without any
        // reconnect code here.
        first.kill();
        assert!(eventually(10, || client.get("k").unwrap().is_none()));
        let e = client.set("k", b"v3", &SetOptions::new()).unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e}");
        assert!(
            e.to_string().contains("start it with `cachekitd --dir"),
            "{e}"
        );

        let _second = Daemon::start(&bin, dir.path());
        assert!(eventually(10, || client
            .set("k", b"v3", &SetOptions::new())
            .is_ok()));
        let v = client.get("k").unwrap().unwrap();
        assert_eq!(
            (v.bytes.as_slice(), v.source),
            (&b"v3"[..], Source::Segment)
        );
        let segment = client.segment().unwrap();
        assert_ne!(segment.epoch, first_epoch);
        assert!(segment.live);
        assert!(client.local_stats().reattaches >= 1);
    });
}

/// Incompressible bytes (xorshift), so the envelope does not shrink them.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn values_as_large_as_the_daemon_allows() {
    const MIB: usize = 1 << 20;
    let Some(bin) = daemon_binary() else {
        eprintln!("skipped: no cachekitd binary (build it with `cargo build -p cachekitd`, or set CACHEKITD_BIN)");
        return;
    };
    watchdog(120, move || {
        // cachekitd --max-value-bytes 4MiB: a 3 MiB value round-trips.
        let dir = tempfile::tempdir().unwrap();
        let _big = Daemon::start_with(&bin, dir.path(), &["--max-value-bytes", "4MiB"]);
        let client = connect(dir.path());
        assert_eq!(client.max_value_bytes(), 4 * MIB);
        let value = noise(3 * MIB);
        client.set("3mib", &value, &SetOptions::new()).unwrap();
        let v = client.get("3mib").unwrap().unwrap();
        assert_eq!(v.source, Source::Segment);
        assert!(v.bytes == value, "3 MiB value came back different");
        let mut buf = Vec::new();
        let info = client.get_into("3mib", &mut buf).unwrap().unwrap();
        assert_eq!(info.len, value.len());
        assert!(buf == value);
        let before = client.request_count();
        assert!(client.get_local("3mib").unwrap().unwrap().bytes == value);
        assert_eq!(client.request_count(), before);
        // Up to the limit exactly, and not a byte more.
        client
            .set("4mib", noise(4 * MIB), &SetOptions::new())
            .unwrap();
        assert_eq!(client.get("4mib").unwrap().unwrap().bytes.len(), 4 * MIB);
        let e = client
            .set("over", noise(4 * MIB + 1), &SetOptions::new())
            .unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("max_value_bytes = 4194304"), "{e}");

        // A default daemon (1 MiB): a 2 MiB value is refused, naming the limit.
        let dir = tempfile::tempdir().unwrap();
        let _default = Daemon::start_with(&bin, dir.path(), &[]);
        let client = connect(dir.path());
        assert_eq!(client.max_value_bytes(), MIB);
        let e = client
            .set("2mib", noise(2 * MIB), &SetOptions::new())
            .unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("max_value_bytes = 1048576"), "{e}");
        client.set("1mib", noise(MIB), &SetOptions::new()).unwrap();
        assert_eq!(client.get("1mib").unwrap().unwrap().bytes.len(), MIB);
    });
}
