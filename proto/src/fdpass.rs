//! Frames with file descriptors attached (SCM_RIGHTS), for HELLO_OK.
//!
//! The daemon sends the whole HELLO_OK frame in one `sendmsg` carrying the descriptors
//! (table segment first, then the client area). The client receives with `recvmsg`, which
//! collects the descriptors with the first bytes, then reads the rest of the frame, if
//! any, with plain reads.

use std::io::{self, IoSlice, IoSliceMut, Read};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::frame::{decode_frame, Frame};
use crate::header::HEADER_LEN;
use crate::io::RecvError;
use crate::limits::Limits;

/// Most descriptors one frame may carry.
pub const MAX_FDS: usize = 4;

/// Sends `frame` (already encoded) with `fds` attached to its first byte.
pub fn send_with_fds<S: AsFd>(sock: S, frame: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    assert!(
        fds.len() <= MAX_FDS,
        "at most {MAX_FDS} descriptors per frame"
    );
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut anc = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !anc.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("ancillary buffer too small"));
    }
    let mut sent = loop {
        match sendmsg(&sock, &[IoSlice::new(frame)], &mut anc, SendFlags::NOSIGNAL) {
            Ok(n) => break n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    // The descriptors went with the first chunk; the rest is plain bytes.
    while sent < frame.len() {
        let mut none = SendAncillaryBuffer::default();
        match sendmsg(
            &sock,
            &[IoSlice::new(&frame[sent..])],
            &mut none,
            SendFlags::NOSIGNAL,
        ) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Receives one frame and the descriptors that came with it (close-on-exec).
///
/// `sock` must be readable both with `recvmsg` (through `AsFd`) and `Read` (for the rest
/// of a frame that arrives in pieces); a `&UnixStream` is both.
pub fn recv_with_fds<S>(mut sock: S, limits: &Limits) -> Result<(Frame, Vec<OwnedFd>), RecvError>
where
    S: AsFd + Read,
{
    let mut buf = vec![0u8; 4096];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut anc = RecvAncillaryBuffer::new(&mut space);
    let n = loop {
        match recvmsg(
            &sock,
            &mut [IoSliceMut::new(&mut buf)],
            &mut anc,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(r) => break r.bytes,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(RecvError::Io(e.into())),
        }
    };
    let mut fds = Vec::new();
    for msg in anc.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = msg {
            fds.extend(rights);
        }
    }
    if n == 0 {
        return Err(RecvError::Closed);
    }
    let mut have = n;
    loop {
        match decode_frame(&buf[..have], limits) {
            Ok(Some((frame, used))) => {
                if used != have {
                    return Err(RecvError::Io(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bytes after the HELLO reply before the next request",
                    )));
                }
                return Ok((frame, fds));
            }
            Ok(None) => {
                let want = if have >= HEADER_LEN {
                    HEADER_LEN + u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize
                } else {
                    HEADER_LEN
                };
                if buf.len() < want {
                    buf.resize(want, 0);
                }
                let got = sock.read(&mut buf[have..want.max(have + 1)])?;
                if got == 0 {
                    return Err(RecvError::Io(io::ErrorKind::UnexpectedEof.into()));
                }
                have += got;
            }
            Err(e) => return Err(RecvError::Header(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_reply;
    use crate::frame::Message;
    use crate::reply::Reply;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn descriptors_travel_with_the_frame() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut frame = Vec::new();
        encode_reply(&Reply::Ok, 7, &mut frame).unwrap();
        let f = tempfile_fd();
        send_with_fds(&a, &frame, &[f.as_fd()]).unwrap();
        let (got, fds) = recv_with_fds(&b, &Limits::DEFAULT).unwrap();
        assert_eq!(got.request_id, 7);
        assert!(matches!(got.message, Message::Reply(Reply::Ok)));
        assert_eq!(fds.len(), 1);
    }

    #[test]
    fn a_frame_in_pieces_is_reassembled() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut frame = Vec::new();
        encode_reply(
            &Reply::error(crate::reply::ErrorCode::Internal, "x".repeat(100)),
            9,
            &mut frame,
        )
        .unwrap();
        let t = std::thread::spawn(move || {
            a.write_all(&frame[..5]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            a.write_all(&frame[5..]).unwrap();
        });
        let (got, fds) = recv_with_fds(&b, &Limits::DEFAULT).unwrap();
        t.join().unwrap();
        assert_eq!(got.request_id, 9);
        assert!(fds.is_empty());
    }

    fn tempfile_fd() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }
}
