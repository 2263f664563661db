//! Real shared memory: sealed memfds that the writer maps read-write and readers map
//! read-only.
//!
//! The table memfd is sealed with `F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW |
//! F_SEAL_SEAL` after the writer mapped it: the writer's mapping stays writable, every
//! later writable mapping (and `mprotect(PROT_WRITE)`) fails, and nobody can shrink it
//! under a reader (which would turn reads into SIGBUS). The client area is sealed
//! against resizing only: every client may write it.

use crate::region::Memory;
use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{fstat, ftruncate, memfd_create, MemfdFlags, SealFlags};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The two file descriptors a client needs: the table (read-only) and the client area.
#[derive(Debug)]
pub struct SegmentFds {
    /// The table memfd, sealed against writes.
    pub table: OwnedFd,
    /// The client area memfd.
    pub client: OwnedFd,
}

impl SegmentFds {
    /// Duplicates both descriptors (close-on-exec).
    pub fn try_clone(&self) -> io::Result<SegmentFds> {
        Ok(SegmentFds {
            table: self.table.try_clone()?,
            client: self.client.try_clone()?,
        })
    }
}

/// Creates a memfd of `bytes`, maps it read-write, and applies `seals`.
pub(crate) fn create(name: &str, bytes: u64, seals: SealFlags) -> io::Result<(OwnedFd, Memory)> {
    let fd = memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    ftruncate(&fd, bytes)?;
    let file = File::from(fd);
    let map = MmapOptions::new().len(bytes as usize).map_raw(&file)?;
    rustix::fs::fcntl_add_seals(&file, seals)?;
    Ok((OwnedFd::from(file), Memory::mapped(map)))
}

pub(crate) fn table_seals() -> SealFlags {
    SealFlags::SHRINK | SealFlags::GROW | SealFlags::FUTURE_WRITE | SealFlags::SEAL
}

pub(crate) fn client_seals() -> SealFlags {
    SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL
}

/// Maps a whole file descriptor, read-only or read-write.
pub(crate) fn map(fd: BorrowedFd<'_>, writable: bool) -> io::Result<Memory> {
    let len = fstat(fd)?.st_size;
    if len <= 0 || len % 8 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("segment of {len} bytes"),
        ));
    }
    // Shrinking would turn our reads into SIGBUS: refuse segments that allow it.
    // A file that cannot carry seals (not a memfd) answers EINVAL: not sealed either.
    let seals = rustix::fs::fcntl_get_seals(fd).unwrap_or(SealFlags::empty());
    if !seals.contains(SealFlags::SHRINK) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "segment is not sealed against shrinking; refusing to map it",
        ));
    }
    let file = File::from(fd.try_clone_to_owned()?);
    let opts = {
        let mut o = MmapOptions::new();
        o.len(len as usize);
        o
    };
    let map: MmapRaw = if writable {
        opts.map_raw(&file)?
    } else {
        opts.map_raw_read_only(&file)?
    };
    Ok(Memory::mapped(map))
}

/// Borrowed views of the fds, for passing over a socket.
impl SegmentFds {
    /// The table descriptor.
    pub fn table_fd(&self) -> BorrowedFd<'_> {
        self.table.as_fd()
    }
    /// The client-area descriptor.
    pub fn client_fd(&self) -> BorrowedFd<'_> {
        self.client.as_fd()
    }
}

/// The seals every segment memfd carries (the table's and the client area's): what an
/// inherited descriptor must show to be taken.
fn inherited_seals() -> SealFlags {
    SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL
}

/// Takes ownership of descriptor `fd`, which this process inherited when it was executed
/// (systemd's `LISTEN_FDS` hands stored descriptors over as fds 3, 4, …), after checking that
/// it is a segment memfd; marks it close-on-exec.
///
/// Refused (`Err`, and the descriptor is left alone): 0, 1, 2 and negative numbers; a number
/// that is not open; a descriptor that is not a memfd sealed against shrinking, growing and
/// further sealing (as every segment memfd is).
///
/// # Why this is a safe function
///
/// Taking ownership of a descriptor is sound only if nothing else in the process owns it
/// (`OwnedFd` closes it on drop). This function is safe (the daemon, which calls it, forbids
/// `unsafe`), so it cannot rely on that promise; the checks make a violation need a sealed
/// memfd this process made itself, and the crate that makes those (this one) keeps each one in
/// a `Writer` or `SegmentFds`. What remains is the caller's duty, stated, not enforced: take
/// each number once, at start, before any segment is created (the daemon does it before it
/// builds its table). The descriptors the std, the runtime or other libraries open (files,
/// sockets, epoll, eventfd, /dev/urandom) carry no seals and are refused.
pub fn take_inherited_fd(fd: std::os::fd::RawFd) -> io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    if fd < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor {fd} is not an inherited one (they start at 3)"),
        ));
    }
    // SAFETY:
    // - the borrow lives only for the fcntl calls below, which fail with EBADF (and do
    //   nothing) if the number is not open;
    // - nothing here closes it, and a concurrent close by its owner, if it had one, is ruled
    //   out by the documented duty (taken once, at start, before any segment exists).
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_getfd(borrowed)?;
    // EINVAL: a file that cannot carry seals (not a memfd).
    let seals = rustix::fs::fcntl_get_seals(borrowed).unwrap_or(SealFlags::empty());
    if !seals.contains(inherited_seals()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor {fd} is not a sealed segment memfd (seals {seals:?}); left alone"),
        ));
    }
    rustix::io::fcntl_setfd(borrowed, rustix::io::FdFlags::CLOEXEC)?;
    // SAFETY:
    // - `fd` is open (checked above);
    // - it is a sealed memfd, which only this crate makes and keeps owned, and the caller takes
    //   inherited numbers before any is made (see "Why this is a safe function"), so this
    //   OwnedFd is its only owner and closing it on drop closes nobody else's descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, IntoRawFd};

    #[test]
    fn a_sealed_memfd_is_taken() {
        let (fd, _mem) = create("t", 4096, client_seals()).expect("memfd");
        let raw = fd.into_raw_fd();
        let back = take_inherited_fd(raw).expect("taken");
        assert_eq!(back.as_raw_fd(), raw);
    }

    #[test]
    fn standard_streams_plain_files_and_unsealed_memfds_are_refused() {
        for fd in [-1, 0, 1, 2] {
            assert!(take_inherited_fd(fd).is_err(), "fd {fd}");
        }
        let file = tempfile::tempfile().expect("tempfile");
        assert!(take_inherited_fd(file.as_raw_fd()).is_err());
        // Still open: a refused descriptor is left to its owner.
        rustix::io::fcntl_getfd(&file).expect("still open");
        let unsealed = memfd_create("u", MemfdFlags::CLOEXEC).expect("memfd");
        assert!(take_inherited_fd(unsealed.as_raw_fd()).is_err());
    }
}
