//! A Sentinel-managed Redis for the failover tests: a primary, one replica and three
//! sentinels (`redis-server --sentinel`, quorum 2), all on free loopback ports in temp dirs
//! of their own, with short failure detection (800 ms: shorter ones made loaded 2-core machines see
//! healthy servers as down) so a failover takes about two seconds.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::Proc;
use crate::redis::Redis;
use crate::{free_port, PATIENCE};

/// The service name the sentinels monitor.
pub const SERVICE: &str = "cachekit";

/// Milliseconds without an answer before a sentinel deems the primary down.
pub const DOWN_AFTER_MS: u64 = 800;

/// `INFO <section>` of `r` (empty when it does not answer, e.g. killed).
fn info(r: &Redis, section: &str) -> String {
    redis::Client::open(r.url())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        .and_then(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(2)))?;
            redis::cmd("INFO").arg(section).query(&mut c)
        })
        .unwrap_or_default()
}

/// One `redis-server --sentinel`.
struct SentinelProc {
    proc: Proc,
    port: u16,
    dir: tempfile::TempDir,
}

impl SentinelProc {
    fn start(primary_port: u16) -> SentinelProc {
        let port = free_port();
        let dir = crate::temp_dir("sentinel");
        let conf = dir.path().join("sentinel.conf");
        // Sentinel rewrites its config file: it must be writable and its own.
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {dir}\n\
                 sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n\
                 sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {SERVICE} 3000\n\
                 sentinel parallel-syncs {SERVICE} 1\n",
                dir = dir.path().display()
            ),
        )
        .expect("writing sentinel.conf");
        let log = File::create(dir.path().join("sentinel.log")).expect("sentinel log");
        let mut cmd = Command::new("redis-server");
        cmd.arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the sentinel log"))
            .stderr(log);
        let proc = Proc::spawn(&mut cmd, "redis-server --sentinel").unwrap_or_else(|e| {
            panic!(
                "cannot run redis-server --sentinel ({e}): it is not installed; run scripts/setup \
                 (it installs it with apt-get install redis-server)"
            )
        });
        SentinelProc { proc, port, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sentinel.log")).unwrap_or_default()
    }

    fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?
            .get_connection_with_timeout(Duration::from_secs(2))?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        cmd.query(&mut c)
    }

    /// `SENTINEL MASTER <service>` as a field map.
    fn master(&self) -> Option<std::collections::HashMap<String, String>> {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("MASTER").arg(SERVICE);
        self.query(&cmd).ok()
    }
}

/// A primary, a replica and three sentinels.
pub struct SentinelGroup {
    /// `[first primary, first replica]`; after a failover the replica is the primary.
    servers: Vec<Redis>,
    sentinels: Vec<SentinelProc>,
}

impl SentinelGroup {
    /// Starts the group and waits (bounded by [`PATIENCE`]) until the replica is in sync and
    /// every sentinel sees the replica and the two other sentinels.
    pub fn start() -> SentinelGroup {
        let primary = Redis::start();
        let port = primary.port().to_string();
        let replica = Redis::start_with(&["--replicaof", "127.0.0.1", &port]);
        let sentinels = (0..3)
            .map(|_| SentinelProc::start(primary.port()))
            .collect();
        let g = SentinelGroup {
            servers: vec![primary, replica],
            sentinels,
        };
        g.wait(
            "the replica to sync and the sentinels to see each other",
            |g| {
                let synced = info(&g.servers[1], "replication").contains("master_link_status:up");
                synced
                    && g.sentinels.iter().all(|s| {
                        s.master().is_some_and(|m| {
                            m.get("num-slaves").map(String::as_str) == Some("1")
                                && m.get("num-other-sentinels").map(String::as_str) == Some("2")
                        })
                    })
            },
        );
        g
    }

    fn wait(&self, what: &str, mut ok: impl FnMut(&SentinelGroup) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !ok(self) {
            assert!(
                Instant::now() < deadline,
                "waited {PATIENCE:?} for {what}; sentinel logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis+sentinel://127.0.0.1:<p1>,…/<SERVICE>`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{SERVICE}", hosts.join(","))
    }

    /// The first primary (index 0) and the first replica (index 1).
    pub fn server(&mut self, i: usize) -> &mut Redis {
        &mut self.servers[i]
    }

    /// The port the sentinels name as primary now (the first that answers).
    pub fn primary_port(&self) -> Option<u16> {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("GET-MASTER-ADDR-BY-NAME").arg(SERVICE);
        self.sentinels.iter().find_map(|s| {
            s.query::<Option<(String, u16)>>(&cmd)
                .ok()
                .flatten()
                .map(|(_, p)| p)
        })
    }

    /// Waits until every sentinel names `port` as primary and it answers as one.
    pub fn wait_for_primary(&self, port: u16) {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("GET-MASTER-ADDR-BY-NAME").arg(SERVICE);
        let server = self
            .servers
            .iter()
            .find(|r| r.port() == port)
            .expect("a server of the group");
        self.wait(&format!("the sentinels to promote port {port}"), |g| {
            g.sentinels.iter().all(|s| {
                s.query::<Option<(String, u16)>>(&cmd)
                    .ok()
                    .flatten()
                    .is_some_and(|(_, p)| p == port)
            }) && info(server, "replication").contains("role:master")
        });
    }

    /// Every sentinel's log.
    pub fn logs(&self) -> String {
        self.sentinels
            .iter()
            .map(|s| format!("---- sentinel {} ----\n{}", s.port, s.log()))
            .collect()
    }
}

impl Drop for SentinelGroup {
    fn drop(&mut self) {
        for s in &mut self.sentinels {
            s.proc.kill();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}
