//! A small in-process stand-in for cachekitd: a real memfd table (cachekit-shm `Writer`), the
//! real protocol (HELLO_OK with SCM_RIGHTS), a heartbeat that tests can pause, and a restart
//! that builds a new segment with a new epoch. It lets the client's logic (hit path, liveness,
//! re-attach) be tested deterministically without the daemon binary.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use cachekit_proto::fdpass::send_with_fds;
use cachekit_proto::{
    encode_reply, read_request, ErrorCode, FetchHit, HelloOk, Limits, Reply, Request,
    PROTOCOL_VERSION,
};
use cachekit_shm::{Backing, InsertOptions, InvalidateMode, TableConfig, Writer};

pub const HEARTBEAT_TIMEOUT_MS: u32 = 300;

struct State {
    writer: Mutex<Writer>,
    epoch: u64,
    heartbeat_paused: AtomicBool,
    stopping: AtomicBool,
    /// Requests received, HELLO included.
    requests: AtomicU64,
    conns: Mutex<Vec<UnixStream>>,
    limits: Limits,
    /// What the daemon can fill a miss from (standing in for Redis): FETCH of a key not in the
    /// table inserts it from here, as cachekitd fills from its Redis tier.
    remote: Mutex<Remote>,
}

/// (namespace, key) -> envelope.
type Remote = HashMap<(String, Vec<u8>), Vec<u8>>;

/// A running fake daemon; stopped on drop.
pub struct FakeDaemon {
    state: Arc<State>,
    path: PathBuf,
    accept: Option<JoinHandle<()>>,
    beat: Option<JoinHandle<()>>,
}

impl FakeDaemon {
    pub fn start(path: &Path) -> FakeDaemon {
        Self::start_with(path, Limits::DEFAULT)
    }

    /// A daemon configured like `cachekitd --max-value-bytes <max_value_bytes>`: it announces
    /// that plus the 64 bytes of envelope headroom, and its frame limit to match.
    pub fn start_with_max_value(path: &Path, max_value_bytes: usize) -> FakeDaemon {
        let limits = Limits {
            max_value_bytes: max_value_bytes + 64,
            ..Limits::DEFAULT
        };
        let limits = Limits {
            max_frame_bytes: limits.largest_frame() as usize,
            ..limits
        };
        Self::start_with(path, limits)
    }

    pub fn start_with(path: &Path, limits: Limits) -> FakeDaemon {
        let cfg = if limits.max_value_bytes > 1 << 20 {
            TableConfig {
                arena_bytes: 64 << 20,
                max_value_bytes: limits.max_value_bytes as u64,
                tag_counters: 1 << 12,
                ..TableConfig::default()
            }
        } else {
            TableConfig {
                arena_bytes: 8 << 20,
                segment_bytes: Some(2 << 20),
                max_value_bytes: 1 << 20,
                tag_counters: 1 << 12,
                ..TableConfig::default()
            }
        };
        let writer = Writer::create(&cfg, Backing::Memfd).expect("create table");
        let state = Arc::new(State {
            epoch: writer.epoch(),
            writer: Mutex::new(writer),
            heartbeat_paused: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            conns: Mutex::new(Vec::new()),
            limits,
            remote: Mutex::new(HashMap::new()),
        });
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).expect("bind fake daemon socket");
        let s = state.clone();
        let accept = std::thread::spawn(move || accept_loop(&s, listener));
        let s = state.clone();
        let beat = std::thread::spawn(move || {
            while !s.stopping.load(Ordering::Relaxed) {
                if !s.heartbeat_paused.load(Ordering::Relaxed) {
                    s.writer.lock().unwrap().heartbeat();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        FakeDaemon {
            state,
            path: path.to_path_buf(),
            accept: Some(accept),
            beat: Some(beat),
        }
    }

    pub fn epoch(&self) -> u64 {
        self.state.epoch
    }

    /// Requests received so far, HELLO included.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Stops publishing the heartbeat (the daemon still answers on the socket).
    pub fn pause_heartbeat(&self) {
        self.state.heartbeat_paused.store(true, Ordering::Relaxed);
    }

    pub fn resume_heartbeat(&self) {
        self.state.heartbeat_paused.store(false, Ordering::Relaxed);
    }

    /// Writes straight into the table, bypassing the socket.
    pub fn insert(&self, ns: &str, key: &[u8], envelope: &[u8]) {
        self.state
            .writer
            .lock()
            .unwrap()
            .insert(ns, key, envelope, &InsertOptions::default())
            .unwrap();
    }

    /// Puts an envelope where only the daemon can find it (its "Redis"): not in the segment
    /// until a FETCH fills it from there.
    pub fn insert_remote(&self, ns: &str, key: &[u8], envelope: &[u8]) {
        self.state
            .remote
            .lock()
            .unwrap()
            .insert((ns.to_string(), key.to_vec()), envelope.to_vec());
    }

    /// Stops listening, closes every connection, removes the socket. The segment's heartbeat
    /// stops with it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.state.stopping.swap(true, Ordering::Relaxed) {
            return;
        }
        let _ = UnixStream::connect(&self.path); // wakes the accept loop
        for c in self.state.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        let _ = std::fs::remove_file(&self.path);
        if let Some(t) = self.accept.take() {
            t.join().unwrap();
        }
        if let Some(t) = self.beat.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(state: &Arc<State>, listener: UnixListener) {
    for stream in listener.incoming() {
        if state.stopping.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = stream else { continue };
        state
            .conns
            .lock()
            .unwrap()
            .push(stream.try_clone().unwrap());
        let s = state.clone();
        std::thread::spawn(move || serve(&s, stream));
    }
}

fn serve(state: &State, mut stream: UnixStream) {
    let mut said_hello = false;
    while let Ok((id, req)) = read_request(&mut stream, &state.limits) {
        state.requests.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::new();
        if !said_hello {
            let Request::Hello(_) = req else { return };
            said_hello = true;
            let w = state.writer.lock().unwrap();
            let fds = w.fds().unwrap();
            let ok = HelloOk {
                version: PROTOCOL_VERSION,
                daemon_epoch: state.epoch,
                layout_version: cachekit_shm::layout::LAYOUT_VERSION as u32,
                segment_size: w.table_bytes() as u64,
                client_area_size: 0,
                client_slot: 0,
                heartbeat_timeout_ms: HEARTBEAT_TIMEOUT_MS,
                fd_count: 2,
                limits: state.limits,
                // As a daemon with Redis: a miss in the segment asks this fake daemon.
                flags: cachekit_proto::HELLO_FLAG_SECOND_TIER,
            };
            encode_reply(&Reply::HelloOk(ok), id, &mut out).unwrap();
            if send_with_fds(&stream, &out, &[fds.table_fd(), fds.client_fd()]).is_err() {
                return;
            }
            continue;
        }
        let reply = handle(state, req);
        encode_reply(&reply, id, &mut out).unwrap();
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

fn handle(state: &State, req: Request) -> Reply {
    let mut w = state.writer.lock().unwrap();
    match req {
        Request::Set(s) => {
            let tags: Vec<&str> = s.tags.iter().map(String::as_str).collect();
            let opts = InsertOptions {
                ttl_ms: s.ttl_ms,
                grace_ms: s.grace_ms,
                tags: &tags,
            };
            match w.insert(&s.namespace, &s.key, &s.value, &opts) {
                Ok(_) => Reply::Ok,
                Err(e) => Reply::error(ErrorCode::InvalidArgument, e.to_string()),
            }
        }
        Request::Delete { namespace, key } => Reply::Deleted {
            existed: w.delete(&namespace, &key),
        },
        Request::Invalidate {
            namespace,
            tags,
            exact,
        } => {
            let mode = if exact {
                InvalidateMode::Exact
            } else {
                InvalidateMode::Hierarchical
            };
            for t in &tags {
                if let Err(e) = w.invalidate(&namespace, t, mode) {
                    return Reply::error(ErrorCode::InvalidArgument, e.to_string());
                }
            }
            Reply::Ok
        }
        Request::Clear { namespace } => {
            w.clear_namespace(&namespace);
            Reply::Ok
        }
        Request::Fetch { namespace, key } => {
            if w.reader().get(&namespace, &key).is_none() {
                // A miss: fill from the remote tier, as cachekitd fills from Redis.
                let remote = state.remote.lock().unwrap();
                if let Some(v) = remote.get(&(namespace.clone(), key.clone())) {
                    w.insert(&namespace, &key, v, &InsertOptions::default())
                        .unwrap();
                }
            }
            match w.reader().get(&namespace, &key) {
                Some((value, m)) => Reply::FetchHit(FetchHit {
                    value,
                    created_ms: m.created_ms,
                    expires_ms: m.expires_ms,
                    grace_until_ms: m.grace_until_ms,
                    stale: m.stale,
                    version: m.version,
                }),
                None => Reply::FetchMiss,
            }
        }
        Request::Stats => Reply::Stats {
            counters: vec![("requests".into(), state.requests.load(Ordering::Relaxed))],
        },
        Request::Ping => Reply::Pong {
            epoch: state.epoch,
            heartbeat_ms: cachekit_shm::now_ms(),
        },
        Request::Hello(_) => Reply::error(ErrorCode::UnexpectedMessage, "second HELLO"),
        // The fake daemon answers the protocol's core only; the rest is tested against the
        // real one.
        other => Reply::error(
            ErrorCode::InvalidArgument,
            format!("the fake daemon does not serve {}", other.kind()),
        ),
    }
}

/// A fresh socket path in a temporary directory (kept alive by the returned guard).
pub fn socket_path() -> (tempfile::TempDir, PathBuf) {
    let dir = cachekit_testkit::temp_dir("fake-daemon");
    let path = dir.path().join("fake.sock");
    (dir, path)
}
