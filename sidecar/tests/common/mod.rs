//! Raw protocol connections to a real `cachekitd` for the integration tests.
//!
//! The daemons come from the workspace test kit (`cachekit-testkit`): each runs in a temp dir
//! of its own under an instance name of its own, is killed when dropped, and a failing test
//! prints its log. Every wait here is bounded by [`WATCHDOG`]: a broken daemon fails a test,
//! never hangs it.

#![allow(dead_code)] // each test file uses its own part of these helpers

use cachekit_proto::fdpass::recv_with_fds;
use cachekit_proto::{
    encode_request, read_reply, ErrorCode, Hello, HelloOk, Limits, Message, RecvError, Reply,
    Request,
};
use cachekit_shm::Reader;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

pub use cachekit_testkit::{Daemon, Site};

/// The longest any test waits for a reply or a process exit.
pub const WATCHDOG: Duration = Duration::from_secs(5);

/// Protocol connections to a daemon of the kit.
pub trait Connect {
    /// A raw connection, before HELLO.
    fn connect(&self) -> Conn;
    /// A connection that said HELLO and mapped the table it was handed.
    fn client(&self, name: &str) -> Client;
}

impl Connect for Daemon {
    fn connect(&self) -> Conn {
        Conn::open(self.socket())
    }

    fn client(&self, name: &str) -> Client {
        Client::attach(self.connect(), name)
    }
}

/// One raw protocol connection, with read and write timeouts of [`WATCHDOG`].
pub struct Conn {
    pub stream: UnixStream,
    /// Limits for decoding replies: the defaults until HELLO_OK brings the daemon's own.
    pub limits: Limits,
    next_id: u32,
}

impl Conn {
    pub fn open(socket: &Path) -> Conn {
        let stream = UnixStream::connect(socket)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()));
        stream.set_read_timeout(Some(WATCHDOG)).unwrap();
        stream.set_write_timeout(Some(WATCHDOG)).unwrap();
        Conn {
            stream,
            limits: Limits::DEFAULT,
            next_id: 1,
        }
    }

    /// The next request id (clients number from 1; 0 is the daemon's connection-level id).
    pub fn next_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Encodes and sends `req` without checking any limit; returns its request id.
    pub fn send(&mut self, req: &Request) -> u32 {
        let id = self.next_id();
        let mut buf = Vec::new();
        encode_request(req, id, &mut buf).expect("encoding a request");
        self.send_raw(&buf);
        id
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("writing to cachekitd");
    }

    /// The next reply, or why there is none.
    pub fn try_reply(&mut self) -> Result<(u32, Reply), RecvError> {
        read_reply(&mut self.stream, &self.limits)
    }

    /// The next reply (panics if none arrives within the watchdog).
    pub fn reply(&mut self) -> (u32, Reply) {
        self.try_reply()
            .unwrap_or_else(|e| panic!("no reply from cachekitd: {e}"))
    }

    /// One request, one reply, with the request id echoed.
    pub fn call(&mut self, req: &Request) -> Reply {
        let id = self.send(req);
        let (got, reply) = self.reply();
        assert_eq!(
            got, id,
            "the reply to {req:?} carries another request id: {reply:?}"
        );
        reply
    }

    /// HELLO, answered by HELLO_OK with its file descriptors (received with `recvmsg`).
    pub fn hello(&mut self, name: &str) -> (u32, Reply, Vec<OwnedFd>) {
        let id = self.send(&Request::Hello(Hello::new(name)));
        let (frame, fds) = recv_with_fds(&self.stream, &self.limits)
            .unwrap_or_else(|e| panic!("no reply to HELLO: {e}"));
        let reply = match frame.message {
            Message::Reply(r) => r,
            Message::Request(r) => panic!("the daemon sent a request: {r:?}"),
        };
        assert_eq!(
            frame.request_id, id,
            "the reply to HELLO carries another request id"
        );
        if let Reply::HelloOk(ok) = &reply {
            self.limits = ok.limits;
        }
        (frame.request_id, reply, fds)
    }

    /// Asserts that the daemon closed this connection, without sending anything more: the
    /// next read sees end of stream (or a reset, when bytes we sent were left unread).
    pub fn expect_closed(&mut self) {
        let mut b = [0u8; 64];
        match self.stream.read(&mut b) {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Ok(n) => panic!(
                "expected the daemon to close the connection; it sent {:?}",
                &b[..n]
            ),
            Err(e) => {
                panic!("expected the daemon to close the connection within {WATCHDOG:?}: {e}")
            }
        }
    }

    /// Every counter of STATS.
    pub fn stats(&mut self) -> HashMap<String, u64> {
        match self.call(&Request::Stats) {
            Reply::Stats { counters } => counters.into_iter().collect(),
            other => panic!("STATS answered {other:?}"),
        }
    }

    /// One counter of STATS.
    pub fn stat(&mut self, name: &str) -> u64 {
        let stats = self.stats();
        *stats
            .get(name)
            .unwrap_or_else(|| panic!("STATS has no {name:?}: {stats:?}"))
    }

    /// PONG's epoch.
    pub fn ping(&mut self) -> u64 {
        match self.call(&Request::Ping) {
            Reply::Pong { epoch, .. } => epoch,
            other => panic!("PING answered {other:?}"),
        }
    }
}

/// A connection after HELLO_OK, with the table mapped the way a client maps it.
pub struct Client {
    pub conn: Conn,
    pub hello: HelloOk,
    pub reader: Reader,
    pub fds: Vec<OwnedFd>,
}

impl Client {
    pub fn attach(mut conn: Conn, name: &str) -> Client {
        let (_, reply, fds) = conn.hello(name);
        let Reply::HelloOk(hello) = reply else {
            panic!("HELLO answered {reply:?}")
        };
        assert_eq!(
            fds.len(),
            usize::from(hello.fd_count),
            "HELLO_OK carries the descriptors it counts"
        );
        assert!(
            fds.len() == 3 || (fds.len() == 2 && hello.client_slot == u32::MAX),
            "HELLO_OK carries the table, the client area and (unless every record is taken) this process's counters file"
        );
        let mut reader = Reader::attach(fds[0].as_fd(), Some(fds[1].as_fd()))
            .expect("mapping the table handed over in HELLO_OK");
        if let Some(counters) = fds.get(2) {
            reader
                .count_into(counters.as_fd())
                .expect("mapping the counters file handed over in HELLO_OK");
        }
        Client {
            conn,
            hello,
            reader,
            fds,
        }
    }
}

impl std::ops::Deref for Client {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl std::ops::DerefMut for Client {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

/// Asserts `reply` is an ERROR with `code` whose message mentions every one of `words`.
#[track_caller]
pub fn assert_error(reply: &Reply, code: ErrorCode, words: &[&str]) {
    match reply {
        Reply::Error { code: c, message } => {
            assert_eq!(*c, code, "wrong code; message: {message}");
            for w in words {
                assert!(
                    message.contains(w),
                    "the message should name {w:?}: {message}"
                );
            }
        }
        other => panic!("expected ERROR {code:?}, got {other:?}"),
    }
}
