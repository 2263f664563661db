//! Real `redis-server`s for the Redis-tier tests and benchmarks.
//!
//! Every server listens on a free loopback port (127.0.0.1 only, protected mode on), keeps
//! nothing on disk (`--save "" --appendonly no`), runs in a temp dir of its own with its
//! output in a log file there, and is killed when dropped. `redis-server` missing is a
//! failure that says to run `scripts/setup`, never a skip.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::process::Proc;
use crate::{free_port, free_port_pair, PATIENCE};

/// One `redis-server` of the test's own.
pub struct Redis {
    /// `None` after [`kill`](Self::kill).
    proc: Option<Proc>,
    port: u16,
    /// Flags beyond the kit's, kept for [`restart`](Self::restart).
    extra: Vec<String>,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts a server and waits (bounded by [`PATIENCE`]) until it answers PING.
    pub fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// Starts a server with `extra` flags (after the kit's, so they win).
    pub fn start_with(extra: &[&str]) -> Redis {
        Redis::start_on(free_port(), extra)
    }

    /// Starts a server that also listens with TLS on `tls_port`, with this certificate and
    /// key (PEM files, the certificate also its own CA); clients need no certificate.
    pub fn start_tls(tls_port: u16, cert: &Path, key: &Path) -> Redis {
        let (cert, key) = (
            cert.to_str().expect("a UTF-8 certificate path"),
            key.to_str().expect("a UTF-8 key path"),
        );
        Redis::start_with(&[
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
        ])
    }

    fn start_on(port: u16, extra: &[&str]) -> Redis {
        let mut r = Redis {
            proc: None,
            port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dir: crate::temp_dir("redis"),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        // Appended to across restarts: the log tells the whole story.
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("creating the redis-server log");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--protected-mode", "yes"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the redis-server log"))
            .stderr(log);
        let proc = Proc::spawn(&mut cmd, "redis-server").unwrap_or_else(|e| {
            panic!(
                "cannot run redis-server ({e}): it is not installed; run scripts/setup (it \
                 installs it with apt-get install redis-server)"
            )
        });
        self.proc = Some(proc);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(mut c) = self.try_conn() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return;
                }
            }
            if let Some(s) = self.proc.as_mut().and_then(Proc::try_wait) {
                panic!("redis-server exited at start ({s}); log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {} within {PATIENCE:?}; log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The URL logging in as `user` with `password`.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!("redis://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// Its pid (the last one, once killed).
    pub fn pid(&self) -> u32 {
        self.proc.as_ref().expect("started").pid()
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Its output, every start of it.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn try_conn(&self) -> redis::RedisResult<redis::Connection> {
        let c =
            redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(2))?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        c.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(c)
    }

    /// An admin connection (the default user), with 5 s read and write timeouts.
    pub fn conn(&self) -> redis::Connection {
        self.try_conn()
            .unwrap_or_else(|e| panic!("connecting to the test redis-server: {e}"))
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

    /// Sends `sig`; panics if it is not running.
    pub fn signal(&mut self, sig: Signal) {
        let p = self.proc.as_mut().expect("started");
        if let Err(e) = p.signal(sig) {
            panic!("{e}; log:\n{}", self.log());
        }
    }

    /// SIGSTOP: a Redis that hangs (accepts connections, answers nothing).
    pub fn pause(&mut self) {
        self.signal(Signal::STOP);
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&mut self) {
        self.signal(Signal::CONT);
    }

    /// Kills the server (SIGKILL) and reaps it: a Redis that is gone.
    pub fn kill(&mut self) {
        if let Some(p) = self.proc.as_mut() {
            p.kill();
        }
    }

    /// Starts it again on the same port with the same flags, empty (nothing persists), after
    /// killing it if it still runs.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- redis-server log (port {}) ----\n{}",
                self.port,
                self.log()
            );
        }
    }
}

/// A local Redis Cluster of three masters (no replicas), each on a free loopback port whose
/// cluster bus port (+10000) is free too. Killed when dropped.
pub struct RedisCluster {
    nodes: Vec<Redis>,
}

impl RedisCluster {
    /// Starts three nodes, joins them with `redis-cli --cluster create`, and waits (bounded
    /// by [`PATIENCE`]) for every node to report `cluster_state:ok`.
    pub fn start() -> RedisCluster {
        let nodes: Vec<Redis> = (0..3)
            .map(|_| {
                Redis::start_on(
                    free_port_pair(10_000),
                    &["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"],
                )
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
            .unwrap_or_else(|e| {
                panic!(
                    "running redis-cli --cluster create ({e}): it comes with redis-server; run \
                     scripts/setup"
                )
            });
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let c = RedisCluster { nodes };
        let ok = crate::eventually(PATIENCE, || {
            c.nodes.iter().all(|n| {
                redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query::<String>(&mut n.conn())
                    .is_ok_and(|i| i.contains("cluster_state:ok"))
            })
        });
        assert!(
            ok,
            "the cluster never reached cluster_state:ok within {PATIENCE:?}"
        );
        c
    }

    /// The seed URLs, comma-separated.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(Redis::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn nodes(&self) -> &[Redis] {
        &self.nodes
    }

    /// `cmdstat_<command>` calls summed over the nodes.
    pub fn calls(&self, command: &str) -> u64 {
        self.nodes.iter().map(|n| n.calls(command)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_answers_pauses_and_comes_back_empty_on_the_same_port() {
        let mut r = Redis::start();
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("v")
            .query(&mut r.conn())
            .unwrap();
        assert!(r.calls("set") >= 1);
        r.pause();
        let mut c = r.try_conn();
        if let Ok(c) = c.as_mut() {
            c.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            assert!(
                redis::cmd("PING").query::<String>(c).is_err(),
                "a paused server answers nothing"
            );
        }
        r.resume();
        let port = r.port();
        r.restart();
        assert_eq!(r.port(), port);
        let v: Option<String> = redis::cmd("GET").arg("k").query(&mut r.conn()).unwrap();
        assert_eq!(v, None, "nothing persists across a restart");
        r.kill();
        assert!(r.try_conn().is_err());
    }
}
