//! systemd's file-descriptor store: where the segment's memfds outlive the daemon under
//! systemd (`FileDescriptorStoreMax=` in the unit).
//!
//! After it made its segment, the daemon sends `FDSTORE=1` with each memfd to `$NOTIFY_SOCKET`
//! (one datagram per descriptor, named by `FDNAME`). When systemd starts the service again it
//! hands them back as fds 3, 4, … with `LISTEN_PID` (ours), `LISTEN_FDS` (how many) and
//! `LISTEN_FDNAMES` (their names, `:`-separated). The daemon takes the table's as the old
//! segment and removes them from the store at once (`FDSTOREREMOVE=1`: a segment whose carry
//! kills the daemon is not handed to the next start), then stores its new ones.

use crate::fdpass;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The name of the table memfd in the store.
pub const TABLE_NAME: &str = "cachekit-table";
/// The name of the client-area memfd in the store.
pub const CLIENTS_NAME: &str = "cachekit-clients";

/// Whether the daemon runs under a service manager that has a notify socket.
pub fn available() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

fn socket() -> io::Result<UnixDatagram> {
    let path = std::env::var_os("NOTIFY_SOCKET")
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "NOTIFY_SOCKET is not set"))?;
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        Some(abs) => SocketAddr::from_abstract_name(abs.as_bytes())?,
        None => SocketAddr::from_pathname(&path)?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.connect_addr(&addr)?;
    Ok(sock)
}

/// The descriptors systemd handed over at start, by name. Empty when there are none for us
/// (`LISTEN_PID` is another process's, or unset).
pub fn take_listen_fds() -> Vec<(String, OwnedFd)> {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    // Read once: a child this daemon starts (the keeper) must not take them for its own.
    // Edition 2021: remove_var is safe; this runs at start, before the daemon starts a thread
    // that reads the environment.
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    if !ours || count <= 0 {
        return Vec::new();
    }
    let mut names = names.split(':');
    (0..count.min(64))
        .filter_map(|i| {
            let name = names.next().unwrap_or("unknown").to_string();
            match cachekit_shm::take_inherited_fd(3 + i) {
                Ok(fd) => Some((name, fd)),
                Err(e) => {
                    tracing::warn!(
                        fd = 3 + i,
                        "LISTEN_FDS names a descriptor that is not a segment memfd: {e}"
                    );
                    None
                }
            }
        })
        .collect()
}

/// Removes the stored memfds (`FDSTOREREMOVE=1`). Done as soon as the daemon has taken them
/// at start, before it carries the segment: a daemon that dies while carrying it (a damaged
/// segment meeting a bug) leaves nothing for the next start to try again.
pub fn forget() -> io::Result<()> {
    remove(&socket()?)
}

fn remove(sock: &UnixDatagram) -> io::Result<()> {
    for name in [TABLE_NAME, CLIENTS_NAME] {
        fdpass::send(
            sock,
            format!("FDSTOREREMOVE=1\nFDNAME={name}").as_bytes(),
            &[],
        )?;
    }
    Ok(())
}

/// Replaces the stored memfds with `table` and `clients`.
pub fn store(table: impl AsFd, clients: impl AsFd) -> io::Result<()> {
    let sock = socket()?;
    remove(&sock)?;
    for (name, fd) in [(TABLE_NAME, table.as_fd()), (CLIENTS_NAME, clients.as_fd())] {
        // FDPOLL=0: a memfd never reports an error or hang-up for systemd to drop it on.
        fdpass::send(
            &sock,
            format!("FDSTORE=1\nFDNAME={name}\nFDPOLL=0").as_bytes(),
            &[fd],
        )?;
    }
    Ok(())
}
