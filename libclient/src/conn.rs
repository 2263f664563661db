//! One connection to the daemon: connect with a timeout, HELLO (receiving the segment
//! descriptors), then synchronous request/reply.

use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use cachekit_proto::{
    encode_request, read_reply, HelloOk, Limits, Message, Reply, Request, PROTOCOL_VERSION,
};
use rustix::net::{
    connect, recv, socket_with, sockopt, AddressFamily, RecvFlags, SocketAddrUnix, SocketFlags,
    SocketType,
};

use crate::error::Error;

/// An established connection, past HELLO.
pub(crate) struct Conn {
    stream: UnixStream,
    /// What the daemon said in HELLO_OK (limits, epoch, heartbeat timeout).
    pub(crate) hello: HelloOk,
    next_id: u32,
    buf: Vec<u8>,
    request_timeout: Duration,
    /// Set when the daemon sent a connection-level ERROR (request id 0): it closes the
    /// connection after that, so this one must not go back to the pool.
    pub(crate) poisoned: bool,
    /// When the last reply (or HELLO_OK) arrived: the daemon's idle timer runs from about then.
    last_reply: Instant,
}

/// What connecting needs to know.
pub(crate) struct ConnectParams<'a> {
    pub(crate) path: &'a Path,
    pub(crate) start_hint: &'a str,
    pub(crate) client_name: &'a str,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
}

impl Conn {
    /// Connects, sends HELLO and receives HELLO_OK with its descriptors (table, client area).
    pub(crate) fn open(p: &ConnectParams<'_>) -> Result<(Conn, Vec<OwnedFd>), Error> {
        let stream = connect_unix(p)?;
        let hello = Request::Hello(cachekit_proto::Hello::new(p.client_name));
        let mut buf = Vec::with_capacity(128);
        encode_request(&hello, 1, &mut buf).map_err(|e| Error::InvalidArgument {
            message: e.to_string(),
        })?;
        // HELLO_OK is fixed-size and ERROR bounded by the protocol: the default limits decode
        // both whatever the daemon's configuration.
        let receive = || cachekit_proto::fdpass::recv_with_fds(&stream, &Limits::DEFAULT);
        if let Err(e) = (&stream).write_all(&buf) {
            // A daemon that refuses a connection (a connection limit) answers at accept and
            // closes, maybe before HELLO is sent: the send fails, and its reason is waiting
            // in the receive buffer. The daemon is closed, so this read does not wait.
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) {
                if let Ok((frame, _)) = receive() {
                    if let Message::Reply(Reply::Error { code, message }) = frame.message {
                        return Err(Error::from_daemon(code, message));
                    }
                }
            }
            return Err(Error::from_send(e.into(), "HELLO", p.connect_timeout));
        }
        let (frame, fds) =
            receive().map_err(|e| Error::from_recv(e, "HELLO", p.connect_timeout))?;
        let hello = match frame.message {
            Message::Reply(Reply::HelloOk(h)) if frame.request_id == 1 => h,
            Message::Reply(Reply::Error { code, message }) => {
                return Err(Error::from_daemon(code, message))
            }
            other => {
                return Err(Error::Protocol {
                    message: format!(
                        "expected HELLO_OK for request 1, got {} for request {}",
                        other.kind(),
                        frame.request_id
                    ),
                })
            }
        };
        if hello.version != PROTOCOL_VERSION {
            return Err(Error::Protocol {
                message: format!(
                    "cachekitd chose protocol version {}, this client speaks {PROTOCOL_VERSION}",
                    hello.version
                ),
            });
        }
        stream.set_read_timeout(Some(p.request_timeout))?;
        stream.set_write_timeout(Some(p.request_timeout))?;
        let conn = Conn {
            stream,
            hello,
            next_id: 2,
            buf,
            request_timeout: p.request_timeout,
            poisoned: false,
            last_reply: Instant::now(),
        };
        Ok((conn, fds))
    }

    /// The limits the daemon announced.
    pub(crate) fn limits(&self) -> &Limits {
        &self.hello.limits
    }

    /// Like [`call`](Conn::call), for a request the daemon may hold for up to `wait` before it
    /// answers (LEASE): the read waits that much longer than the request timeout.
    pub(crate) fn call_waiting(&mut self, req: &Request, wait: Duration) -> Result<Reply, Error> {
        let longer = self.request_timeout.saturating_add(wait);
        self.stream.set_read_timeout(Some(longer))?;
        let reply = self.call(req);
        self.stream.set_read_timeout(Some(self.request_timeout))?;
        reply
    }

    /// Sends one request and reads its reply. An ERROR reply comes back as `Ok(Reply::Error)`.
    pub(crate) fn call(&mut self, req: &Request) -> Result<Reply, Error> {
        let operation = req.kind().name();
        let id = self.next_id;
        // Request id 0 is reserved for connection-level errors.
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.buf.clear();
        encode_request(req, id, &mut self.buf).map_err(|e| Error::TooLarge {
            message: e.to_string(),
        })?;
        (&self.stream)
            .write_all(&self.buf)
            .map_err(|e| Error::from_send(e.into(), operation, self.request_timeout))?;
        // Do not keep a large request's buffer around for the connection's lifetime.
        if self.buf.capacity() > 64 << 10 {
            self.buf = Vec::new();
        }
        let (rid, reply) = read_reply(&mut &self.stream, &self.hello.limits)
            .map_err(|e| Error::from_recv(e, operation, self.request_timeout))?;
        self.last_reply = Instant::now();
        if rid == 0 {
            self.poisoned = true;
            return match reply {
                Reply::Error { code, message } => Err(Error::from_daemon(code, message)),
                other => Err(Error::Protocol {
                    message: format!("cachekitd sent {} with request id 0", other.kind()),
                }),
            };
        }
        if rid != id {
            self.poisoned = true;
            return Err(Error::Protocol {
                message: format!("reply for request {rid} while waiting for request {id}"),
            });
        }
        if !reply.answers(req.kind()) {
            self.poisoned = true;
            return Err(Error::Protocol {
                message: format!("cachekitd answered {operation} with {}", reply.kind()),
            });
        }
        Ok(reply)
    }

    /// How long since the last reply arrived.
    pub(crate) fn idle_for(&self) -> Duration {
        self.last_reply.elapsed()
    }

    /// Whether the daemon closed this idle connection (after its `idle_timeout_ms`, or
    /// because it stopped): end of stream, or bytes nobody asked for (the daemon sends a frame
    /// unasked only as its last word before closing). Never waits.
    pub(crate) fn closed_by_daemon(&self) -> bool {
        let mut byte = [0u8; 1];
        match recv(
            &self.stream,
            &mut byte[..],
            RecvFlags::PEEK | RecvFlags::DONTWAIT,
        ) {
            Err(rustix::io::Errno::AGAIN) => false,
            Err(rustix::io::Errno::INTR) => false,
            Ok(_) | Err(_) => true,
        }
    }
}

/// A blocking Unix stream connection whose connect waits at most `connect_timeout`: on Linux
/// a blocking connect to a Unix socket with a full backlog waits up to SO_SNDTIMEO, then fails
/// with EAGAIN.
fn connect_unix(p: &ConnectParams<'_>) -> Result<UnixStream, Error> {
    let fail = |e: std::io::Error| Error::connect_failed(p.path, p.start_hint, &e);
    let addr = SocketAddrUnix::new(p.path).map_err(|e| Error::InvalidArgument {
        message: format!(
            "socket path {} is not usable ({e}); Unix socket paths must be under 108 bytes",
            p.path.display()
        ),
    })?;
    let fd = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(std::io::Error::from)?;
    for which in [sockopt::Timeout::Send, sockopt::Timeout::Recv] {
        sockopt::set_socket_timeout(&fd, which, Some(p.connect_timeout))
            .map_err(std::io::Error::from)?;
    }
    loop {
        match connect(&fd, &addr) {
            Ok(()) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(fail(e.into())),
        }
    }
    Ok(UnixStream::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cachekit_proto::{encode_reply, ErrorCode};
    use std::os::unix::net::UnixListener;

    fn params<'a>(path: &'a Path) -> ConnectParams<'a> {
        ConnectParams {
            path,
            start_hint: "cachekitd",
            client_name: "test",
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn missing_socket_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.sock");
        let err = Conn::open(&params(&path)).err().unwrap();
        assert!(err.is_unavailable(), "{err}");
        assert!(err.to_string().contains("start it with `cachekitd`"));
    }

    #[test]
    fn hello_error_is_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let _ = cachekit_proto::read_request(&mut s, &Limits::DEFAULT).unwrap();
            let mut out = Vec::new();
            encode_reply(
                &Reply::error(ErrorCode::NotPermitted, "uid 1000 is not in group cachekit"),
                1,
                &mut out,
            )
            .unwrap();
            s.write_all(&out).unwrap();
        });
        let err = Conn::open(&params(&path)).err().unwrap();
        t.join().unwrap();
        assert!(matches!(err, Error::NotPermitted { .. }), "{err}");
        assert!(err.to_string().contains("group cachekit"));
    }

    #[test]
    fn silent_daemon_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(400));
            drop(s);
        });
        let mut p = params(&path);
        p.connect_timeout = Duration::from_millis(100);
        let err = Conn::open(&p).err().unwrap();
        t.join().unwrap();
        assert!(
            matches!(
                err,
                Error::Timeout {
                    operation: "HELLO",
                    ..
                }
            ),
            "{err}"
        );
    }
}
