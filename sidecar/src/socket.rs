//! The Unix socket: one thread per connection, so a slow or broken client only ever holds
//! up itself. Frames are read with a deadline once started; a malformed frame gets an
//! ERROR reply and, when the stream can no longer be trusted, the connection is closed.

use crate::daemon::{Daemon, Peer};
use crate::ops;
use cachekit_proto::fdpass::send_with_fds;
use cachekit_proto::{
    decode_body, encode_reply, ErrorCode, Header, Kind, Message, Reply, Request, HEADER_LEN,
};
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
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
    Ok(Peer {
        pid: cred.pid.as_raw_nonzero().get(),
        uid,
        gid,
        may_write: daemon.peer_may_write(uid, gid),
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
    let mut frames = FrameReader::new();
    loop {
        let (header, body) = match frames.next(&mut stream, daemon, timeout) {
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
            (false, Request::Hello(h)) => match ops::hello_ok(daemon, h.min_version, h.max_version)
            {
                Ok(ok) => {
                    said_hello = true;
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
            },
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

enum FrameError {
    /// The header is bad (with its kind byte, for the error message).
    Header(cachekit_proto::ProtoError, u8),
    Io(io::Error),
}

/// Reads frames from one connection through a buffer, so a whole small frame costs one
/// `recv`, and touches the socket's timeout only when a frame arrives in pieces.
struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Whether SO_RCVTIMEO is currently set on the socket.
    timed: bool,
}

impl FrameReader {
    fn new() -> FrameReader {
        FrameReader {
            buf: vec![0; 16 << 10],
            start: 0,
            end: 0,
            timed: false,
        }
    }

    fn set_timeout(&mut self, stream: &UnixStream, t: Option<Duration>) -> Result<(), FrameError> {
        if t.is_some() || self.timed {
            stream.set_read_timeout(t).map_err(FrameError::Io)?;
            self.timed = t.is_some();
        }
        Ok(())
    }

    /// Reads once into the free end of the buffer. `Ok(0)` is end of stream.
    fn read_more(&mut self, stream: &mut UnixStream) -> Result<usize, FrameError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match stream.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(FrameError::Io(e)),
            }
        }
    }

    /// Reads until `need` bytes are buffered, before `deadline`.
    fn fill(
        &mut self,
        stream: &mut UnixStream,
        need: usize,
        deadline: Instant,
    ) -> Result<(), FrameError> {
        while self.end - self.start < need {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out());
            }
            self.set_timeout(stream, Some(left))?;
            if self.read_more(stream)? == 0 {
                return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
        }
        Ok(())
    }

    /// Reads one frame. Waits for its first byte as long as the client likes (idle pooled
    /// connections are normal); from then on the whole frame must arrive within `timeout`.
    /// `Ok(None)`: the client closed the connection between frames.
    fn next(
        &mut self,
        stream: &mut UnixStream,
        daemon: &Daemon,
        timeout: Duration,
    ) -> Result<Option<(Header, Vec<u8>)>, FrameError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.set_timeout(stream, None)?;
            if self.read_more(stream)? == 0 {
                return Ok(None);
            }
        }
        let deadline = Instant::now() + timeout;
        self.fill(stream, HEADER_LEN, deadline)?;
        let hb = &self.buf[self.start..self.start + HEADER_LEN];
        let header = match cachekit_proto::decode_header(hb, &daemon.limits) {
            Ok(Some(h)) => h,
            Ok(None) => unreachable!("a whole header is buffered"),
            Err(e) => return Err(FrameError::Header(e, hb[7])),
        };
        self.start += HEADER_LEN;
        // The header was checked against max_frame_bytes before anything is allocated.
        let len = header.body_len as usize;
        let have = (self.end - self.start).min(len);
        let mut body = Vec::with_capacity(len);
        body.extend_from_slice(&self.buf[self.start..self.start + have]);
        self.start += have;
        if have < len {
            body.resize(len, 0);
            read_exact_by(stream, &mut body[have..], deadline, self)?;
        }
        Ok(Some((header, body)))
    }
}

fn timed_out() -> FrameError {
    FrameError::Io(io::Error::new(
        io::ErrorKind::TimedOut,
        "frame not finished within frame_timeout_ms",
    ))
}

/// Reads a large body straight into its buffer, before `deadline`.
fn read_exact_by(
    stream: &mut UnixStream,
    mut buf: &mut [u8],
    deadline: Instant,
    reader: &mut FrameReader,
) -> Result<(), FrameError> {
    while !buf.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        reader.set_timeout(stream, Some(left))?;
        match stream.read(buf) {
            Ok(0) => return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    Ok(())
}
