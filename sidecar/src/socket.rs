//! The Unix socket: one thread per connection, so a slow or broken client only ever holds
//! up itself. Frames are read with a deadline once started (`frames.rs`), decoded, and
//! answered: HELLO here (with the memfds), everything else by `ops`. A malformed frame gets
//! an ERROR reply and, when the stream can no longer be trusted, the connection is closed.

use crate::daemon::{Daemon, Peer};
use crate::frames::{FrameError, FrameReader};
use crate::ops;
use cachekit_proto::fdpass::send_with_fds;
use cachekit_proto::{decode_body, encode_reply, ErrorCode, Kind, Message, Reply, Request};
use std::io::{self, Write};
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
        if c.connections_open.load(Ordering::Relaxed) >= daemon.cfg.max_connections {
            c.connections_refused.fetch_add(1, Ordering::Relaxed);
            let reply = Reply::error(
                ErrorCode::Unavailable,
                format!("cachekitd has {} connections open, its max_connections; raise it or close idle clients", daemon.cfg.max_connections),
            );
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = send(&stream, &reply, 0);
            continue;
        }
        c.connections_open.fetch_add(1, Ordering::Relaxed);
        let d = daemon.clone();
        let spawned = std::thread::Builder::new()
            .name("cachekitd-conn".into())
            .stack_size(256 << 10)
            .spawn(move || {
                serve(&d, stream);
                d.counters.connections_open.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start a connection thread");
            daemon
                .counters
                .connections_open
                .fetch_sub(1, Ordering::Relaxed);
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
        pid,
        uid,
        gid,
        may_write: daemon.peer_may_write(uid, gid, groups),
    })
}

fn serve(daemon: &Daemon, mut stream: UnixStream) {
    let peer = match peer_of(daemon, &stream) {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "SO_PEERCRED failed; closing");
            return;
        }
    };
    let timeout = daemon.cfg.frame_timeout;
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
    // This connection's client-area record: freed when `serve` returns.
    let mut _record = None;
    let mut frames = FrameReader::new();
    loop {
        let (header, body) = match frames.next(&mut stream, &daemon.limits, timeout) {
            Ok(Some(f)) => f,
            Ok(None) => break,
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
                        _record = record;
                        info!(pid = peer.pid, uid = peer.uid, name = %h.client_name, "client attached");
                        let mut buf = Vec::new();
                        encode_reply(&Reply::HelloOk(ok), id, &mut buf)
                            .expect("HELLO_OK always encodes");
                        send_with_fds(
                            &stream,
                            &buf,
                            &[daemon.fds.table_fd(), daemon.fds.client_fd()],
                        )
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
                send(&stream, &reply, id)
            }
        };
        if let Err(e) = sent {
            debug!(pid = peer.pid, error = %e, "write failed; closing");
            break;
        }
    }
    let _ = stream.flush();
}

fn send(mut stream: &UnixStream, reply: &Reply, id: u32) -> io::Result<()> {
    let mut buf = Vec::new();
    encode_reply(reply, id, &mut buf).map_err(io::Error::other)?;
    stream.write_all(&buf)
}
