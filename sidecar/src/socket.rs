//! The Unix socket: one thread per connection, so a slow or broken client only ever holds
//! up itself; who may open one is decided at accept (`admission.rs`), and a connection
//! without a request for `idle_timeout_ms` is closed. Frames are read with a deadline once
//! started (`frames.rs`), decoded, and answered: HELLO here (with the memfds), everything
//! else by `ops`. A malformed frame gets an ERROR reply and, when the stream can no longer
//! be trusted, the connection is closed.

use crate::admission;
use crate::daemon::Daemon;
use crate::frames::{FrameError, FrameReader};
use crate::ops;
use crate::peer::Peer;
use cachekit_proto::fdpass::send_with_fds;
use cachekit_proto::{decode_body, encode_reply, ErrorCode, Kind, Message, Reply, Request};
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

pub fn accept_loop(daemon: Arc<Daemon>, listener: UnixListener) {
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let c = &daemon.counters;
        c.connections_total.fetch_add(1, Ordering::Relaxed);
        // The peer's credentials are known from connect(): decide before spawning a thread.
        let peer = match peer_of(&daemon, &stream) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "SO_PEERCRED failed; closing");
                continue;
            }
        };
        let ticket = match daemon
            .admission
            .admit(&peer, admission::Limits::of(&daemon.cfg))
        {
            Ok(t) => t,
            Err(message) => {
                c.connections_refused.fetch_add(1, Ordering::Relaxed);
                debug!(pid = peer.pid, uid = peer.uid, %message, "connection refused");
                refuse(&stream, message);
                continue;
            }
        };
        let d = daemon.clone();
        // The thread holds the ticket: its place is given back when the thread ends (or
        // right away, if it cannot start).
        let spawned = std::thread::Builder::new()
            .name("cachekitd-conn".into())
            .stack_size(256 << 10)
            .spawn(move || {
                serve(&d, stream, peer);
                drop(ticket);
            });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start a connection thread");
        }
    }
}

/// Tells a refused peer why, and closes. Whatever the peer already sent (its HELLO) is
/// read and dropped first, so that it sees a plain end of stream after the ERROR, not a
/// reset. A peer that sends only after the close gets EPIPE, and still finds the ERROR in
/// its receive buffer (the client library reads it there).
fn refuse(mut stream: &UnixStream, message: String) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = send(stream, &Reply::error(ErrorCode::Unavailable, message), 0);
    if stream.set_nonblocking(true).is_ok() {
        let mut sink = [0u8; 1024];
        // Bounded: at most 16 KiB, never waiting.
        for _ in 0..16 {
            match stream.read(&mut sink) {
                Ok(n) if n > 0 => continue,
                _ => break,
            }
        }
    }
}

fn peer_of(daemon: &Daemon, stream: &UnixStream) -> io::Result<Peer> {
    let cred = rustix::net::sockopt::socket_peercred(stream)?;
    let (uid, gid) = (cred.uid.as_raw(), cred.gid.as_raw());
    let pid = cred.pid.as_raw_nonzero().get();
    let groups = || {
        crate::peer::supplementary_groups(pid, uid, gid).unwrap_or_else(|e| {
            debug!(pid, uid, error = %e, "supplementary groups not counted");
            Vec::new()
        })
    };
    Ok(Peer {
        conn: daemon.next_conn.fetch_add(1, Ordering::Relaxed) + 1,
        pid,
        uid,
        gid,
        may_write: daemon.peer_may_write(uid, gid, groups),
    })
}

/// Releases a connection's fill leases when it ends, however it ends: its holder is gone.
struct LeaseGuard<'a>(&'a Daemon, u64);

impl Drop for LeaseGuard<'_> {
    fn drop(&mut self) {
        let global = self.0.leases.release_connection(self.1);
        crate::ops::drop_global_leases(self.0, global);
    }
}

fn serve(daemon: &Daemon, mut stream: UnixStream, peer: Peer) {
    let timeout = daemon.cfg.frame_timeout;
    let idle = daemon.cfg.connections.idle_timeout;
    if stream.set_write_timeout(Some(timeout)).is_err() {
        return;
    }
    debug!(
        pid = peer.pid,
        uid = peer.uid,
        gid = peer.gid,
        write = peer.may_write,
        "client connected"
    );
    let mut said_hello = false;
    // The fill leases this connection holds: released when `serve` returns.
    let _leases = LeaseGuard(daemon, peer.conn);
    // This connection's hold on its process's counters file: let go when `serve` returns.
    let mut _record = None;
    let mut frames = FrameReader::new();
    // Replies are encoded here, one after the other: no allocation per reply.
    let mut out = Vec::new();
    loop {
        let (header, body) = match frames.next(&mut stream, &daemon.limits, timeout, idle) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(FrameError::Idle) => {
                daemon
                    .counters
                    .connections_idle_closed
                    .fetch_add(1, Ordering::Relaxed);
                debug!(pid = peer.pid, "idle connection; closing");
                let message = format!(
                    "closing this connection: no request for idle_timeout_ms = {} \
                     (--idle-timeout-ms); a client reconnects on its next call",
                    idle.unwrap_or_default().as_millis()
                );
                let _ = send(&stream, &Reply::error(ErrorCode::Unavailable, message), 0);
                break;
            }
            Err(FrameError::Header(e, kind)) => {
                daemon.counters.bad_frames.fetch_add(1, Ordering::Relaxed);
                debug!(pid = peer.pid, error = %e, "bad frame header; closing");
                let message = match (&e, kind) {
                    // The only frame a user can make too large is a SET: say which setting.
                    (cachekit_proto::ProtoError::FrameTooLarge { frame_bytes, .. }, k) if k == Kind::Set as u8 => format!(
                        "SET of {frame_bytes} bytes is larger than any value this daemon accepts: max_value_bytes = {}; raise it with cachekitd --max-value-bytes",
                        daemon.cfg.max_value_bytes
                    ),
                    _ => e.to_string(),
                };
                let _ = send(&stream, &Reply::error(e.code(), message), 0);
                break;
            }
            Err(FrameError::Io(e)) => {
                debug!(pid = peer.pid, error = %e, "connection ended inside a frame");
                break;
            }
        };
        let id = header.request_id;
        let req = match decode_body(&header, &body, &daemon.limits) {
            Ok(Message::Request(r)) => r,
            Ok(Message::Reply(_)) => {
                daemon.counters.bad_frames.fetch_add(1, Ordering::Relaxed);
                let _ = send(
                    &stream,
                    &Reply::error(
                        ErrorCode::UnexpectedMessage,
                        "a reply was sent to the daemon; send requests",
                    ),
                    id,
                );
                break;
            }
            Err(e) => {
                // The whole body was read: the stream is still at a frame boundary, so
                // answer and go on.
                daemon.counters.bad_frames.fetch_add(1, Ordering::Relaxed);
                daemon.counters.errors.fetch_add(1, Ordering::Relaxed);
                debug!(pid = peer.pid, error = %e, "malformed frame body");
                if send(&stream, &Reply::error(e.code(), e.to_string()), id).is_err() {
                    break;
                }
                continue;
            }
        };
        let sent = match (said_hello, req) {
            (false, Request::Hello(h)) => {
                match ops::hello_ok(daemon, peer.pid, h.min_version, h.max_version) {
                    Ok((ok, record)) => {
                        said_hello = true;
                        info!(pid = peer.pid, uid = peer.uid, name = %h.client_name, "client attached");
                        let mut buf = Vec::new();
                        encode_reply(&Reply::HelloOk(ok), id, &mut buf)
                            .expect("HELLO_OK always encodes");
                        let shared = [daemon.fds.table_fd(), daemon.fds.client_fd()];
                        let sent = match &record {
                            Some(lease) => {
                                send_with_fds(&stream, &buf, &[shared[0], shared[1], lease.fd()])
                            }
                            None => send_with_fds(&stream, &buf, &shared),
                        };
                        _record = record;
                        sent
                    }
                    Err(reply) => {
                        let _ = send(&stream, &reply, id);
                        break;
                    }
                }
            }
            (false, _) => {
                let _ = send(
                    &stream,
                    &Reply::error(ErrorCode::UnexpectedMessage, "send HELLO first"),
                    id,
                );
                break;
            }
            (true, req) => {
                let reply = ops::handle(daemon, &peer, req);
                send_with(&stream, &reply, id, &mut out)
            }
        };
        if let Err(e) = sent {
            debug!(pid = peer.pid, error = %e, "write failed; closing");
            break;
        }
    }
    let _ = stream.flush();
}

fn send(stream: &UnixStream, reply: &Reply, id: u32) -> io::Result<()> {
    send_with(stream, reply, id, &mut Vec::new())
}

/// [`send`] encoding into `buf`, which keeps its allocation unless it grew past 64 KiB (a
/// large reply's buffer is not kept for the connection's lifetime).
fn send_with(mut stream: &UnixStream, reply: &Reply, id: u32, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    encode_reply(reply, id, buf).map_err(io::Error::other)?;
    let sent = stream.write_all(buf);
    if buf.capacity() > 64 << 10 {
        *buf = Vec::new();
    }
    sent
}
