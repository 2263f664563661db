//! A real `redis-server` for the Redis-tier tests, and hosts (daemons) attached to it.
//!
//! Every server runs on a free loopback port (127.0.0.1 only) with `--save "" --appendonly
//! no`, in a temp dir of its own, and is killed when dropped. `redis-server` missing is a
//! test failure that says to run `scripts/setup`, never a skip. Every wait is bounded.

#![allow(dead_code)] // each test file uses its own part of these helpers

use crate::common::{Client, Conn, Daemon, Site};
use cachekit_proto::{Reply, Request, Set};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The longest a test waits for Redis-tier propagation before failing.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A `redis-server` process of the test's own.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("finding a free loopback port")
}

impl RedisServer {
    /// Starts a server that also listens with TLS on `tls_port`, with this certificate and
    /// key (PEM files); clients need no certificate of their own.
    pub fn start_tls(tls_port: u16, cert: &std::path::Path, key: &std::path::Path) -> RedisServer {
        let mut r = RedisServer {
            child: None,
            port: free_port(),
            dir: tempfile::Builder::new()
                .prefix("cachekit-redis-tls-")
                .tempdir()
                .expect("temp dir"),
        };
        let (cert, key) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
        r.spawn_with(&[
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            cert,
            "--tls-key-file",
            key,
            "--tls-ca-cert-file",
            cert,
            "--tls-auth-clients",
            "no",
        ]);
        r
    }

    /// A free loopback port.
    pub fn free_port() -> u16 {
        free_port()
    }

    /// Starts a server and waits (bounded) until it answers PING.
    pub fn start() -> RedisServer {
        let mut r = RedisServer {
            child: None,
            port: free_port(),
            dir: tempfile::Builder::new()
                .prefix("cachekit-redis-test-")
                .tempdir()
                .expect("temp dir"),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        self.spawn_with(&[]);
    }

    fn spawn_with(&mut self, extra: &[&str]) {
        let log = std::fs::File::create(self.dir.path().join("redis.log")).expect("log file");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--protected-mode", "yes"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): it is not installed; run scripts/setup (it installs it with apt-get install redis-server)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(mut c) = self.try_conn() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {} within 5 s; log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The URL logging in as `user` with `password`.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!("redis://{user}:{password}@127.0.0.1:{}", self.port)
    }

    fn try_conn(&self) -> redis::RedisResult<redis::Connection> {
        let c =
            redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(2))?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        c.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(c)
    }

    /// An admin connection (the default user).
    pub fn conn(&self) -> redis::Connection {
        self.try_conn()
            .expect("connecting to the test redis-server")
    }

    /// Creates an ACL user with every permission.
    pub fn add_user(&self, user: &str, password: &str) {
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(user)
            .arg("on")
            .arg(format!(">{password}"))
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .query(&mut self.conn())
            .expect("ACL SETUSER");
    }

    /// Closes every connection of `user`; returns how many.
    pub fn kill_user(&self, user: &str) -> u64 {
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("USER")
            .arg(user)
            .query(&mut self.conn())
            .expect("CLIENT KILL USER")
    }

    /// `calls` of `cmdstat_<command>` in INFO commandstats (0 before the first call).
    pub fn calls(&self, command: &str) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.conn())
            .expect("INFO commandstats");
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().expect("a call count"))
    }

    /// Sends `sig` to the server (SIGSTOP: a Redis that hangs; SIGCONT: back).
    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_child(self.child.as_ref().expect("running"));
        rustix::process::kill_process(pid, sig).expect("signalling redis-server");
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty: no persistence).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("---- redis-server log ----\n{}", self.log());
        }
    }
}

/// The flags that attach a daemon to Redis, with short intervals for tests (except those
/// `extra` sets itself).
pub fn redis_flags(url: &str, extra: &[&str]) -> Vec<String> {
    let defaults = [
        "--redis-url",
        url,
        "--redis-poll-ms",
        "200",
        "--redis-timeout-ms",
        "500",
        "--redis-breaker-open-ms",
        "300",
        "--log",
        "info",
    ];
    let mut out: Vec<String> = defaults
        .chunks(2)
        .filter(|kv| !extra.contains(&kv[0]))
        .flat_map(|kv| [kv[0].to_string(), kv[1].to_string()])
        .collect();
    out.extend(extra.iter().map(|s| s.to_string()));
    out
}

/// Starts a host: a daemon on `site` attached to `url`, with `extra` flags.
pub fn start_host(site: &Site, url: &str, extra: &[&str]) -> Daemon {
    let args = redis_flags(url, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    site.start(&args)
}

/// SET over the raw protocol; panics unless OK.
pub fn set(conn: &mut Conn, ns: &str, key: &str, value: &[u8], tags: &[&str]) {
    let reply = conn.call(&Request::Set(Set {
        namespace: ns.into(),
        key: key.as_bytes().to_vec(),
        value: value.to_vec(),
        ttl_ms: Some(60_000),
        grace_ms: 0,
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }));
    assert_eq!(reply, Reply::Ok, "SET {key}");
}

/// INVALIDATE (hierarchical) over the raw protocol; panics unless OK.
pub fn invalidate(conn: &mut Conn, ns: &str, tags: &[&str]) {
    let reply = conn.call(&Request::Invalidate {
        namespace: ns.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        exact: false,
    });
    assert_eq!(reply, Reply::Ok, "INVALIDATE {tags:?}");
}

/// FETCH over the raw protocol: the value, or `None` on a miss.
pub fn fetch(conn: &mut Conn, ns: &str, key: &str) -> Option<Vec<u8>> {
    match conn.call(&Request::Fetch {
        namespace: ns.into(),
        key: key.as_bytes().to_vec(),
    }) {
        Reply::FetchHit(h) => Some(h.value),
        Reply::FetchMiss => None,
        other => panic!("FETCH {key} answered {other:?}"),
    }
}

/// The value in the host's table, read from the mapped segment as any client would.
pub fn in_table(client: &Client, ns: &str, key: &str) -> Option<Vec<u8>> {
    client.reader.get(ns, key.as_bytes()).map(|(v, _)| v)
}

/// Polls `cond` until it holds or `within` passes; returns whether it held.
pub fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// p-th percentile (0..=100) of `samples` (sorted in place).
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p / 100.0).round() as usize;
    samples[i.min(samples.len() - 1)]
}

/// A local Redis Cluster of three masters (no replicas), each on a free loopback port whose
/// cluster bus port (+10000) is free too. Killed when dropped.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

fn free_cluster_port() -> u16 {
    for _ in 0..100 {
        let p = free_port();
        if p < 55_000 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
    panic!("no free loopback port pair for a cluster node");
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let mut r = RedisServer {
                    child: None,
                    port: free_cluster_port(),
                    dir: tempfile::Builder::new()
                        .prefix("cachekit-redis-cluster-")
                        .tempdir()
                        .expect("temp dir"),
                };
                r.spawn_with(&["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]);
                r
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect(
                "running redis-cli --cluster create (installed with redis-server by scripts/setup)",
            );
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let c = RedisCluster { nodes };
        let ok = eventually(PATIENCE, || {
            c.nodes.iter().all(|n| {
                redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query::<String>(&mut n.conn())
                    .is_ok_and(|i| i.contains("cluster_state:ok"))
            })
        });
        assert!(ok, "the cluster never reached cluster_state:ok");
        c
    }

    /// The seed URLs, comma-separated.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// `cmdstat_<command>` calls summed over the nodes.
    pub fn calls(&self, command: &str) -> u64 {
        self.nodes.iter().map(|n| n.calls(command)).sum()
    }
}
