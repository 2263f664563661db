//! `cachekit-worker`: a real cachekit client process, driven line by line over stdin; one JSON
//! object per line on stdout answers each command. Tests hold several of these and make them
//! act step by step. The process exits when stdin closes (its test is gone) or on `quit`.
//!
//! Commands (fields separated by spaces; `-` stands for "none"):
//!
//! | command | does | answer (besides `"ok": true`) |
//! |---|---|---|
//! | `connect SOCKET NAMESPACE` | `Client::connect` | `requests` |
//! | `ns NAMESPACE` | switch to `with_namespace(NAMESPACE)` of the connected client | |
//! | `get KEY` | `get` | `hit`, `value`, `stale`, `source`, `expires_ms`, `grace_until_ms`, `before_ms`, `after_ms` (wall clock around the call), `requests` |
//! | `set KEY VALUE [TTL_MS] [GRACE_MS] [TAG,TAG..]` | `set` | `requests` |
//! | `delete KEY` | `delete` | `existed` |
//! | `invalidate TAG[,TAG..] [exact]` | `invalidate` / `invalidate_exact` | |
//! | `clear` | `clear` (this namespace) | |
//! | `stats` | `stats` | `daemon` (counters), `local` |
//! | `local` | `local_stats` (no request) | `local` |
//! | `ping` | `ping` | `epoch` |
//! | `stress JSON` | [`cachekit_tests::stress::run`] with these `StressParams` | `report` |
//! | `hosts JSON` | [`cachekit_tests::hosts::run`] with these `HostsParams` | `report` |
//! | `quit` | exits | |
//!
//! A failed operation answers `{"ok": false, "error": KIND, "message": ...}`, where KIND is
//! `unavailable`, `timeout`, `not_permitted`, `invalid_argument`, `too_large`, `protocol`,
//! `daemon`, `io`, `envelope` or `usage` (a malformed command).
#![forbid(unsafe_code)]

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use cachekit_client::{Client, ClientOptions, Error, LocalStats, SetOptions, Source};
use cachekit_tests::hosts::{self, HostsParams};
use cachekit_tests::now_ms;
use cachekit_tests::stress::{self, StressParams};
use serde_json::{json, Value};

struct Failure {
    kind: &'static str,
    message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let kind = match &e {
            Error::Unavailable { .. } => "unavailable",
            Error::Timeout { .. } => "timeout",
            Error::NotPermitted { .. } => "not_permitted",
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::TooLarge { .. } => "too_large",
            Error::Protocol { .. } => "protocol",
            Error::Daemon { .. } => "daemon",
            Error::Io(_) => "io",
            Error::Envelope(_) => "envelope",
            _ => "other",
        };
        Failure {
            kind,
            message: e.to_string(),
        }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        kind: "usage",
        message: message.into(),
    }
}

#[derive(Default)]
struct Worker {
    /// The client `connect` made (its namespace is the one given there).
    base: Option<Client>,
    /// The handle commands use: `base`, or `base.with_namespace(..)` after `ns`.
    client: Option<Client>,
}

fn none_or<T: std::str::FromStr>(field: Option<&str>, what: &str) -> Result<Option<T>, Failure> {
    match field {
        None | Some("-") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| usage(format!("{what} {s:?} is not a number"))),
    }
}

fn local_json(l: &LocalStats) -> Value {
    json!({
        "requests": l.requests,
        "connects": l.connects,
        "connect_failures": l.connect_failures,
        "retries": l.retries,
        "segment_hits": l.segment_hits,
        "segment_stale_hits": l.segment_stale_hits,
        "segment_misses": l.segment_misses,
        "segment_corrupt": l.segment_corrupt,
        "fetches": l.fetches,
        "fetch_hits": l.fetch_hits,
        "fetch_misses": l.fetch_misses,
        "unavailable_misses": l.unavailable_misses,
        "stale_heartbeat": l.stale_heartbeat,
        "reattaches": l.reattaches,
        "attach_failures": l.attach_failures,
        "decode_errors": l.decode_errors,
        "journaled_writes": l.journaled_writes,
        "journal_failures": l.journal_failures,
    })
}

impl Worker {
    fn client(&self) -> Result<&Client, Failure> {
        self.client
            .as_ref()
            .ok_or_else(|| usage("not connected: send `connect SOCKET NAMESPACE` first"))
    }

    fn handle(&mut self, line: &str) -> Result<Value, Failure> {
        let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
        let args: Vec<&str> = rest.split_whitespace().collect();
        let arg = |i: usize, what: &str| {
            args.get(i)
                .copied()
                .ok_or_else(|| usage(format!("`{cmd}` needs {what}")))
        };
        match cmd {
            "connect" => {
                let opts = ClientOptions::new()
                    .socket(PathBuf::from(arg(0, "a socket path")?))
                    .namespace(arg(1, "a namespace")?)
                    .client_name(format!("cachekit-worker-{}", std::process::id()))
                    .request_timeout(Duration::from_secs(5));
                let c = Client::connect(opts)?;
                let requests = c.request_count();
                self.base = Some(c.clone());
                self.client = Some(c);
                Ok(json!({ "requests": requests }))
            }
            "ns" => {
                let base = self.base.as_ref().ok_or_else(|| usage("not connected"))?;
                self.client = Some(base.with_namespace(arg(0, "a namespace")?)?);
                Ok(json!({}))
            }
            "get" => {
                let c = self.client()?;
                let key = arg(0, "a key")?;
                let before_ms = now_ms();
                let got = c.get(key);
                let after_ms = now_ms();
                let requests = c.request_count();
                Ok(match got? {
                    Some(v) => json!({
                        "hit": true,
                        "value": String::from_utf8_lossy(&v.bytes),
                        "stale": v.stale,
                        "source": match v.source { Source::Segment => "segment", Source::Daemon => "daemon", Source::Computed => "computed" },
                        "created_ms": v.created_ms,
                        "expires_ms": v.expires_ms,
                        "grace_until_ms": v.grace_until_ms,
                        "before_ms": before_ms,
                        "after_ms": after_ms,
                        "requests": requests,
                    }),
                    None => json!({
                        "hit": false,
                        "before_ms": before_ms,
                        "after_ms": after_ms,
                        "requests": requests,
                    }),
                })
            }
            "set" => {
                let c = self.client()?;
                let (key, value) = (arg(0, "a key")?, arg(1, "a value")?);
                let mut opts = SetOptions::new();
                if let Some(ttl) = none_or::<u64>(args.get(2).copied(), "ttl_ms")? {
                    opts = opts.ttl(Duration::from_millis(ttl));
                }
                if let Some(grace) = none_or::<u64>(args.get(3).copied(), "grace_ms")? {
                    opts = opts.grace(Duration::from_millis(grace));
                }
                if let Some(tags) = args.get(4).filter(|t| **t != "-") {
                    opts = opts.tags(tags.split(','));
                }
                c.set(key, value, &opts)?;
                Ok(json!({ "requests": c.request_count() }))
            }
            "delete" => {
                let existed = self.client()?.delete(arg(0, "a key")?)?;
                Ok(json!({ "existed": existed }))
            }
            "invalidate" => {
                let c = self.client()?;
                let tags: Vec<&str> = arg(0, "a tag")?.split(',').collect();
                match args.get(1).copied() {
                    None => c.invalidate(&tags)?,
                    Some("exact") => c.invalidate_exact(&tags)?,
                    Some(other) => return Err(usage(format!("unknown mode {other:?}"))),
                }
                Ok(json!({}))
            }
            "clear" => {
                self.client()?.clear()?;
                Ok(json!({}))
            }
            "stats" => {
                let s = self.client()?.stats()?;
                let daemon: serde_json::Map<String, Value> =
                    s.daemon.into_iter().map(|(k, v)| (k, json!(v))).collect();
                Ok(json!({ "daemon": daemon, "local": local_json(&s.local) }))
            }
            "local" => Ok(json!({ "local": local_json(&self.client()?.local_stats()) })),
            "ping" => {
                let p = self.client()?.ping()?;
                Ok(json!({ "epoch": p.epoch }))
            }
            "stress" => {
                let params: StressParams = serde_json::from_str(rest)
                    .map_err(|e| usage(format!("bad stress parameters: {e}")))?;
                let report = stress::run(self.client()?, &params).map_err(|e| Failure {
                    kind: "io",
                    message: format!("stress run: {e}"),
                })?;
                Ok(json!({ "report": report }))
            }
            "hosts" => {
                let params: HostsParams = serde_json::from_str(rest)
                    .map_err(|e| usage(format!("bad hosts parameters: {e}")))?;
                let report = hosts::run(self.client()?, &params).map_err(|e| Failure {
                    kind: "io",
                    message: format!("hosts run: {e}"),
                })?;
                Ok(json!({ "report": report }))
            }
            other => Err(usage(format!("unknown command {other:?}"))),
        }
    }
}

fn main() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut worker = Worker::default();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "quit" {
            let _ = writeln!(out, "{}", json!({ "ok": true }));
            break;
        }
        let reply = match worker.handle(line) {
            Ok(mut v) => {
                v["ok"] = json!(true);
                v
            }
            Err(f) => json!({ "ok": false, "error": f.kind, "message": f.message }),
        };
        if writeln!(out, "{reply}").and_then(|()| out.flush()).is_err() {
            break; // the test is gone
        }
    }
}
