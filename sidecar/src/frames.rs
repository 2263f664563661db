//! Reading frames from one connection: buffered, so a whole small frame costs one `recv`;
//! a frame must start within the daemon's `idle_timeout_ms` (if set), and must then finish
//! within its `frame_timeout_ms`. The header is checked against the limits before the body
//! is allocated.

use cachekit_proto::{Header, Limits, HEADER_LEN};
use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

pub enum FrameError {
    /// The header is bad (with its kind byte, for the error message).
    Header(cachekit_proto::ProtoError, u8),
    Io(io::Error),
    /// No frame started within the idle timeout.
    Idle,
}

/// Reads frames from one connection through a buffer, so a whole small frame costs one
/// `recv`, and touches the socket's timeout only when a frame arrives in pieces.
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// SO_RCVTIMEO as currently set on the socket (`None`: no timeout).
    timeout: Option<Duration>,
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader {
            buf: vec![0; 16 << 10],
            start: 0,
            end: 0,
            timeout: None,
        }
    }

    /// Sets SO_RCVTIMEO, unless it is set to `t` already.
    fn set_timeout(&mut self, stream: &UnixStream, t: Option<Duration>) -> Result<(), FrameError> {
        if t != self.timeout {
            stream.set_read_timeout(t).map_err(FrameError::Io)?;
            self.timeout = t;
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

    /// Reads one frame. Waits for its first byte up to `idle` (`None`: as long as the client
    /// likes), else [`FrameError::Idle`]; from then on the whole frame must arrive within
    /// `timeout`. `Ok(None)`: the client closed the connection between frames.
    pub fn next(
        &mut self,
        stream: &mut UnixStream,
        limits: &Limits,
        timeout: Duration,
        idle: Option<Duration>,
    ) -> Result<Option<(Header, Vec<u8>)>, FrameError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // A whole frame per `recv` leaves the idle timeout in place: no syscall here.
            self.set_timeout(stream, idle)?;
            match self.read_more(stream) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(FrameError::Io(e))
                    if idle.is_some()
                        && matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                {
                    return Err(FrameError::Idle)
                }
                Err(e) => return Err(e),
            }
        }
        let deadline = Instant::now() + timeout;
        self.fill(stream, HEADER_LEN, deadline)?;
        let hb = &self.buf[self.start..self.start + HEADER_LEN];
        let header = match cachekit_proto::decode_header(hb, limits) {
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
