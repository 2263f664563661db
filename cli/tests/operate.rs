//! The operator's commands against real daemons: `top --once --json`, `namespaces`,
//! `stats --format openmetrics`, and `stop --instance X`, which stops X and only X. (SIGHUP,
//! logged and never stopping the daemon, is sidecar/tests/lifecycle.rs's.)

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use cachekit_testkit::{watchdog, Daemon, Site};

const CLI: &str = env!("CARGO_BIN_EXE_cachekit");

fn run(args: &[&str], dir: Option<&Path>) -> Output {
    let mut c = Command::new(CLI);
    c.args(args)
        .env_remove("CACHEKIT_INSTANCE")
        .env_remove("CACHEKIT_NAMESPACE")
        .env_remove("CACHEKIT_SOCKET");
    match dir {
        Some(d) => c.env("CACHEKIT_DIR", d),
        None => c.env_remove("CACHEKIT_DIR"),
    };
    c.output().expect("run cachekit")
}

fn ok(args: &[&str], dir: Option<&Path>) -> String {
    let o = run(args, dir);
    assert!(
        o.status.success(),
        "cachekit {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(args: &[&str], dir: Option<&Path>) -> serde_json::Value {
    let out = ok(args, dir);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn top_once_json_namespaces_and_openmetrics_show_the_host() {
    watchdog(Duration::from_secs(120), || {
        let d = Daemon::start("cli-top", &[]);
        let s = d.socket().to_str().unwrap().to_string();
        for (ns, n) in [("top-a", 5), ("top-b", 2)] {
            for k in 0..n {
                ok(
                    &["--socket", &s, "-n", ns, "set", &format!("k{k}"), "value"],
                    None,
                );
            }
        }
        // Three hits and a miss in top-a, from CLI processes that exit (their records are
        // folded into the daemon's totals).
        for k in ["k0", "k1", "k2"] {
            ok(&["--socket", &s, "-n", "top-a", "get", k], None);
        }
        assert_eq!(
            run(&["--socket", &s, "-n", "top-a", "get", "nope"], None)
                .status
                .code(),
            Some(1)
        );

        let v = json(&["--socket", &s, "--json", "namespaces"], None);
        let list = v["namespaces"].as_array().unwrap();
        let entries = |ns: &str| {
            list.iter()
                .find(|n| n["name"] == ns)
                .map(|n| n["entries"].as_u64().unwrap())
        };
        assert_eq!(
            (entries("top-a"), entries("top-b")),
            (Some(5), Some(2)),
            "{v}"
        );

        let t = json(
            &[
                "--socket",
                &s,
                "--json",
                "top",
                "--once",
                "--interval",
                "200ms",
            ],
            None,
        );
        let ns = |name: &str| {
            t["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("no {name} in {t}"))
        };
        assert_eq!(ns("top-a")["entries"], 5, "{t}");
        assert_eq!(ns("top-a")["hits"], 3, "{t}");
        assert_eq!(ns("top-a")["misses"], 1, "{t}");
        assert_eq!(ns("top-a")["hit_ratio"], 0.75, "{t}");
        assert_eq!(ns("top-b")["entries"], 2, "{t}");
        assert_eq!(t["entries"], 7, "{t}");
        assert!(t["memory_used_bytes"].as_u64().unwrap() > 0, "{t}");
        assert!(
            t["memory_limit_bytes"].as_u64().unwrap() >= t["memory_used_bytes"].as_u64().unwrap(),
            "{t}"
        );
        assert!(
            t["ops_per_s"].is_number() && t["evictions"].is_number(),
            "{t}"
        );
        // Text mode names the same namespaces.
        let text = ok(
            &["--socket", &s, "top", "--once", "--interval", "100ms"],
            None,
        );
        assert!(
            text.contains("top-a") && text.contains("hit ratio"),
            "{text}"
        );

        let om = ok(&["--socket", &s, "stats", "--format", "openmetrics"], None);
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(
            om.contains("cachekit_hits_total{namespace=\"top-a\"} 3"),
            "{om}"
        );
        assert!(
            om.contains("cachekit_namespace_entries{namespace=\"top-b\"} 2"),
            "{om}"
        );
        // STATS has the host-wide figures too.
        let st = json(&["--socket", &s, "--json", "stats"], None);
        assert!(st["daemon"]["host_hits"].as_u64().unwrap() >= 3, "{st}");
    });
}

#[test]
fn stop_stops_that_instance_and_only_it() {
    watchdog(Duration::from_secs(120), || {
        let site = Site::new("cli-stop");
        let other = format!("{}-b", site.instance());
        let mut a = site.start(&[]);
        let mut b = site.start(&["--instance", &other]);
        let dir = site.dir();
        let out = ok(
            &["--instance", site.instance(), "--json", "stop"],
            Some(dir),
        );
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["pid"], a.pid(), "{v}");
        assert!(
            !a.is_running(),
            "the stopped instance has exited when stop returns"
        );
        assert!(b.is_running(), "the other instance still runs");
        ok(&["--instance", &other, "ping"], Some(dir));
        // Stopping it again: not running, exit code 3, saying so.
        let o = run(&["--instance", site.instance(), "stop"], Some(dir));
        assert_eq!(o.status.code(), Some(3));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("is not running"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        // A lock file naming a pid that is not a cachekitd is refused, and the process
        // is left alone.
        let lock = dir.join(format!("{}.lock", site.instance()));
        let mut bystander = Command::new("sleep").arg("60").spawn().unwrap();
        std::fs::write(&lock, format!("pid={}\n", bystander.id())).unwrap();
        let holder = std::fs::File::open(&lock).unwrap();
        rustix::fs::flock(&holder, rustix::fs::FlockOperation::LockShared).unwrap();
        let o = run(&["--instance", site.instance(), "stop"], Some(dir));
        assert_ne!(o.status.code(), Some(0));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("not cachekitd"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(bystander.try_wait().unwrap().is_none(), "not signalled");
        bystander.kill().unwrap();
        bystander.wait().unwrap();
        // By its socket: the message names the instance the socket is of.
        let sock = dir.join(format!("{other}.sock"));
        let out = ok(&["--socket", sock.to_str().unwrap(), "stop"], None);
        assert!(
            out.contains(&format!("stopped cachekitd instance {other} ")),
            "{out}"
        );
        assert!(!b.is_running());
    });
}
