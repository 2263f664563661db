//! Blocking helpers over any `Read` / `Write`, such as `std::os::unix::net::UnixStream`.
//!
//! Each helper moves exactly one frame: reading takes the 12-byte header first, checks it, then
//! reads exactly the announced body and nothing more, so the stream stays positioned at the next
//! frame.
//!
//! Do not read HELLO_OK with these helpers: the segment file descriptors ride on that frame as
//! SCM_RIGHTS ancillary data, which plain `read` discards (closing the descriptors). Receive it
//! with `recvmsg` and give the bytes to [`decode_frame`](crate::decode_frame).

use std::io::{self, Read, Write};

use crate::error::{EncodeError, ProtoError};
use crate::frame::{decode_body, encode_frame, encode_reply, encode_request, Frame, Message};
use crate::header::{Header, Kind, HEADER_LEN};
use crate::limits::Limits;
use crate::reply::{ErrorCode, Reply};
use crate::request::Request;

/// Failure to receive a frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The peer closed the connection cleanly, between two frames.
    #[error("connection closed by the peer")]
    Closed,
    /// Reading failed, or the connection ended inside a frame (`ErrorKind::UnexpectedEof`); the
    /// stream is no longer at a frame boundary.
    #[error("reading a frame failed: {0}")]
    Io(#[from] io::Error),
    /// The header is invalid (bad magic, version, kind, or over `max_frame_bytes`); the body was
    /// not read, so the stream is no longer at a frame boundary.
    #[error("invalid frame header: {0}")]
    Header(#[source] ProtoError),
    /// The header was valid and the whole body was read, but the body does not decode. The
    /// stream is still at a frame boundary: answer ERROR with this request id and carry on.
    #[error("invalid {kind} frame (request id {request_id}): {error}")]
    Body {
        /// The request id from the header.
        request_id: u32,
        /// The kind from the header.
        kind: Kind,
        /// What is wrong with the body.
        #[source]
        error: ProtoError,
    },
    /// A well-formed frame going the wrong way: a reply where a request was expected or the
    /// reverse. The stream is still at a frame boundary.
    #[error("unexpected {kind} frame (request id {request_id}): expected a {expected}")]
    Unexpected {
        /// The request id from the header.
        request_id: u32,
        /// The kind received.
        kind: Kind,
        /// `"request"` or `"reply"`.
        expected: &'static str,
    },
}

impl RecvError {
    /// Whether the stream is still at a frame boundary, so the connection can go on (after an
    /// ERROR reply, for a daemon). For every other error, close the connection.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, RecvError::Body { .. } | RecvError::Unexpected { .. })
    }

    /// The code a daemon answers with, with [`RecvError::request_id`] (or 0 if none).
    pub fn code(&self) -> ErrorCode {
        match self {
            RecvError::Header(e) | RecvError::Body { error: e, .. } => e.code(),
            RecvError::Unexpected { .. } => ErrorCode::UnexpectedMessage,
            RecvError::Closed | RecvError::Io(_) => ErrorCode::BadFrame,
        }
    }

    /// The request id of the offending frame, when its header was read.
    pub fn request_id(&self) -> Option<u32> {
        match self {
            RecvError::Body { request_id, .. } | RecvError::Unexpected { request_id, .. } => {
                Some(*request_id)
            }
            RecvError::Closed | RecvError::Io(_) | RecvError::Header(_) => None,
        }
    }
}

/// Failure to send a frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The message cannot be encoded; nothing was written.
    #[error("cannot encode the frame: {0}")]
    Encode(#[from] EncodeError),
    /// Writing failed; part of the frame may have been written, so close the connection.
    #[error("writing a frame failed: {0}")]
    Io(#[from] io::Error),
}

/// Reads exactly one frame: the header, then exactly the body it announces.
///
/// An oversized length prefix fails with [`RecvError::Header`] before any body byte is read.
/// The body buffer grows with the bytes that actually arrive, up to the announced length.
pub fn read_frame<R: Read + ?Sized>(r: &mut R, limits: &Limits) -> Result<Frame, RecvError> {
    let mut bytes = [0u8; HEADER_LEN];
    read_header(r, &mut bytes)?;
    let header = Header::parse(&bytes, limits).map_err(RecvError::Header)?;
    let body_len = header.body_len as usize;
    let mut body = Vec::new();
    r.take(u64::from(header.body_len)).read_to_end(&mut body)?;
    if body.len() != body_len {
        return Err(RecvError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "connection closed inside a {} body: got {} of {} bytes",
                header.kind,
                body.len(),
                body_len
            ),
        )));
    }
    let message = decode_body(&header, &body, limits).map_err(|error| RecvError::Body {
        request_id: header.request_id,
        kind: header.kind,
        error,
    })?;
    Ok(Frame {
        request_id: header.request_id,
        message,
    })
}

/// Reads one frame that must be a request; returns its request id and the request.
pub fn read_request<R: Read + ?Sized>(
    r: &mut R,
    limits: &Limits,
) -> Result<(u32, Request), RecvError> {
    let frame = read_frame(r, limits)?;
    match frame.message {
        Message::Request(request) => Ok((frame.request_id, request)),
        Message::Reply(reply) => Err(RecvError::Unexpected {
            request_id: frame.request_id,
            kind: reply.kind(),
            expected: "request",
        }),
    }
}

/// Reads one frame that must be a reply; returns its request id and the reply.
pub fn read_reply<R: Read + ?Sized>(r: &mut R, limits: &Limits) -> Result<(u32, Reply), RecvError> {
    let frame = read_frame(r, limits)?;
    match frame.message {
        Message::Reply(reply) => Ok((frame.request_id, reply)),
        Message::Request(request) => Err(RecvError::Unexpected {
            request_id: frame.request_id,
            kind: request.kind(),
            expected: "reply",
        }),
    }
}

/// Writes one frame with a single `write_all`, then flushes.
pub fn write_frame<W: Write + ?Sized>(w: &mut W, frame: &Frame) -> Result<(), SendError> {
    let mut buf = Vec::new();
    encode_frame(frame, &mut buf)?;
    send(w, &buf)
}

/// Writes one request frame with a single `write_all`, then flushes.
pub fn write_request<W: Write + ?Sized>(
    w: &mut W,
    request_id: u32,
    request: &Request,
) -> Result<(), SendError> {
    let mut buf = Vec::new();
    encode_request(request, request_id, &mut buf)?;
    send(w, &buf)
}

/// Writes one reply frame with a single `write_all`, then flushes.
pub fn write_reply<W: Write + ?Sized>(
    w: &mut W,
    request_id: u32,
    reply: &Reply,
) -> Result<(), SendError> {
    let mut buf = Vec::new();
    encode_reply(reply, request_id, &mut buf)?;
    send(w, &buf)
}

fn send<W: Write + ?Sized>(w: &mut W, buf: &[u8]) -> Result<(), SendError> {
    w.write_all(buf)?;
    w.flush()?;
    Ok(())
}

/// Fills `bytes` with the header; `Closed` if the stream ends before its first byte.
fn read_header<R: Read + ?Sized>(r: &mut R, bytes: &mut [u8; HEADER_LEN]) -> Result<(), RecvError> {
    let mut filled = 0;
    while filled < HEADER_LEN {
        match r.read(&mut bytes[filled..]) {
            Ok(0) if filled == 0 => return Err(RecvError::Closed),
            Ok(0) => {
                return Err(RecvError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                    "connection closed inside a frame header: got {filled} of {HEADER_LEN} bytes"
                ),
                )))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(RecvError::Io(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::os::unix::net::UnixStream;

    fn ping_bytes(request_id: u32) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_request(&Request::Ping, request_id, &mut buf).unwrap();
        buf
    }

    #[test]
    fn reads_frames_back_to_back_and_then_closed() {
        let mut buf = ping_bytes(1);
        encode_reply(&Reply::Ok, 2, &mut buf).unwrap();
        let mut r = Cursor::new(buf);
        let limits = Limits::DEFAULT;
        assert_eq!(read_request(&mut r, &limits).unwrap(), (1, Request::Ping));
        assert_eq!(read_reply(&mut r, &limits).unwrap(), (2, Reply::Ok));
        assert!(matches!(
            read_frame(&mut r, &limits),
            Err(RecvError::Closed)
        ));
    }

    #[test]
    fn eof_inside_header_or_body_is_unexpected_eof() {
        let mut full = Vec::new();
        encode_reply(&Reply::Deleted { existed: true }, 9, &mut full).unwrap();
        for cut in 1..full.len() {
            let err = read_frame(&mut Cursor::new(&full[..cut]), &Limits::DEFAULT).unwrap_err();
            match err {
                RecvError::Io(e) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn oversized_header_is_rejected_without_reading_the_body() {
        let mut buf = Vec::new();
        let set = Request::Clear {
            namespace: "n".repeat(100),
        };
        encode_request(&set, 3, &mut buf).unwrap();
        let limits = Limits {
            max_frame_bytes: 64,
            ..Limits::DEFAULT
        };
        let mut r = Cursor::new(&buf);
        let err = read_frame(&mut r, &limits).unwrap_err();
        assert!(matches!(
            err,
            RecvError::Header(ProtoError::FrameTooLarge { .. })
        ));
        assert!(!err.is_recoverable());
        assert_eq!(err.code(), ErrorCode::TooLarge);
        assert_eq!(r.position(), HEADER_LEN as u64, "the body must not be read");
    }

    #[test]
    fn bad_body_keeps_the_stream_in_sync() {
        let mut buf = Vec::new();
        let set = Request::Clear {
            namespace: "too-long-namespace".into(),
        };
        encode_request(&set, 5, &mut buf).unwrap();
        encode_request(&Request::Ping, 6, &mut buf).unwrap();
        let limits = Limits {
            max_namespace_bytes: 4,
            ..Limits::DEFAULT
        };
        let mut r = Cursor::new(buf);
        let err = read_request(&mut r, &limits).unwrap_err();
        assert!(err.is_recoverable());
        assert_eq!(err.request_id(), Some(5));
        assert_eq!(err.code(), ErrorCode::TooLarge);
        assert!(err.to_string().contains("max_namespace_bytes = 4"), "{err}");
        assert_eq!(read_request(&mut r, &limits).unwrap(), (6, Request::Ping));
    }

    #[test]
    fn wrong_direction_is_unexpected() {
        let mut r = Cursor::new(ping_bytes(4));
        let err = read_reply(&mut r, &Limits::DEFAULT).unwrap_err();
        assert!(matches!(
            err,
            RecvError::Unexpected {
                request_id: 4,
                kind: Kind::Ping,
                expected: "reply"
            }
        ));
        assert!(err.is_recoverable());
        assert_eq!(err.code(), ErrorCode::UnexpectedMessage);

        let mut buf = Vec::new();
        encode_reply(&Reply::FetchMiss, 8, &mut buf).unwrap();
        let err = read_request(&mut Cursor::new(buf), &Limits::DEFAULT).unwrap_err();
        assert!(matches!(
            err,
            RecvError::Unexpected {
                request_id: 8,
                kind: Kind::FetchMiss,
                expected: "request"
            }
        ));
    }

    #[test]
    fn garbage_header_is_fatal() {
        let err =
            read_frame(&mut Cursor::new(b"GET / HTTP/1.1\r\n"), &Limits::DEFAULT).unwrap_err();
        assert!(matches!(
            err,
            RecvError::Header(ProtoError::BadMagic { .. })
        ));
        assert!(!err.is_recoverable());
        assert_eq!(err.code(), ErrorCode::BadFrame);
        assert_eq!(err.request_id(), None);
    }

    #[test]
    fn encode_failure_writes_nothing() {
        let mut out = Vec::new();
        let hello = Request::Hello(crate::Hello::new("x".repeat(300)));
        let err = write_request(&mut out, 1, &hello).unwrap_err();
        assert!(matches!(
            err,
            SendError::Encode(EncodeError::FieldTooLarge { .. })
        ));
        assert!(out.is_empty());
    }

    /// Retries `Interrupted` and short reads: one byte at a time, with an EINTR before each.
    struct Stuttering<'a> {
        bytes: &'a [u8],
        interrupt: bool,
    }

    impl Read for Stuttering<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            match (self.bytes.split_first(), buf.first_mut()) {
                (Some((b, rest)), Some(slot)) => {
                    *slot = *b;
                    self.bytes = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn survives_short_reads_and_interrupts() {
        let mut buf = Vec::new();
        let reply = Reply::Pong {
            epoch: 3,
            heartbeat_ms: 1_700_000_000_000,
        };
        encode_reply(&reply, 77, &mut buf).unwrap();
        let mut r = Stuttering {
            bytes: &buf,
            interrupt: false,
        };
        assert_eq!(read_reply(&mut r, &Limits::DEFAULT).unwrap(), (77, reply));
    }

    #[test]
    fn round_trip_over_a_unix_socket() {
        let (mut client, mut daemon) = UnixStream::pair().unwrap();
        let watchdog = Some(std::time::Duration::from_secs(10));
        client.set_read_timeout(watchdog).unwrap();
        daemon.set_read_timeout(watchdog).unwrap();
        let limits = Limits::DEFAULT;
        let fetch = Request::Fetch {
            namespace: "app".into(),
            key: b"user:1".to_vec(),
        };
        write_request(&mut client, 42, &fetch).unwrap();
        let (id, got) = read_request(&mut daemon, &limits).unwrap();
        assert_eq!((id, &got), (42, &fetch));
        let hit = Reply::FetchHit(crate::FetchHit {
            value: vec![7; 100_000],
            created_ms: 1,
            expires_ms: Some(2),
            grace_until_ms: None,
            stale: false,
            version: 0,
        });
        // Bigger than a socket buffer: write from a thread while this one reads.
        let writer = std::thread::spawn({
            let hit = hit.clone();
            move || {
                write_frame(
                    &mut daemon,
                    &Frame {
                        request_id: id,
                        message: Message::Reply(hit),
                    },
                )
            }
        });
        assert_eq!(read_reply(&mut client, &limits).unwrap(), (42, hit));
        writer.join().unwrap().unwrap();
        assert!(matches!(
            read_frame(&mut client, &limits),
            Err(RecvError::Closed)
        ));
    }
}
