//! Who is on the other end of a connection: its credentials, whether it may write, and the
//! supplementary groups of its process.
//!
//! The kernel has them (`getsockopt(SO_PEERGROUPS)`, the groups of the same credentials as
//! `SO_PEERCRED`), but rustix 1.1 exposes no such call and this crate has no `unsafe`. So they
//! are read from `/proc/<pid>/status`, with the pid race closed as far as a safe route can:
//!
//! 1. `pidfd_open(pid)` refers to the process that has the pid now; once it exits, the
//!    pidfd becomes readable (its pid can be reused only after that);
//! 2. `/proc/<pid>/status` is read: its `Uid:`/`Gid:` lines (real, effective, saved,
//!    filesystem) and its `Groups:` line;
//! 3. the pidfd is polled: if the process exited meanwhile, the file may have been another
//!    process's, so the groups are not used;
//! 4. the effective uid and gid in the file must be the ones `SO_PEERCRED` gave for the
//!    connection, else the groups are not used.
//!
//! What stays open: the peer exited before step 1 and a process with the same effective uid
//! and gid took its pid (pids are handed out in order, so this takes a wrap of `pid_max`
//! between `accept` and step 1). And the groups are the ones the process has when the
//! connection is accepted, not when it connected; a process that drops groups after
//! connecting loses them here too, which only ever refuses more.
//!
//! When the groups cannot be read (the peer exited, `/proc` mounted with `hidepid=`, a peer in
//! another pid namespace, whose pid reads as 0) none are counted: the peer may still write by
//! its uid or its primary gid.

use std::io;

/// Who is on the other end of a connection (from SO_PEERCRED).
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// This connection's number (for the fill leases it holds).
    pub conn: u64,
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    pub may_write: bool,
}

/// The supplementary groups of the peer process `pid`, whose effective uid and gid
/// `SO_PEERCRED` reported as `uid` and `gid`. An error says why they cannot be trusted.
pub fn supplementary_groups(pid: i32, uid: u32, gid: u32) -> io::Result<Vec<u32>> {
    let no_pid = || io::Error::other("the peer's pid is not visible from here (0)");
    let pid_n = rustix::process::Pid::from_raw(pid).ok_or_else(no_pid)?;
    let pidfd = rustix::process::pidfd_open(pid_n, rustix::process::PidfdFlags::empty())?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let mut poll = [rustix::event::PollFd::new(
        &pidfd,
        rustix::event::PollFlags::IN,
    )];
    let now = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if rustix::event::poll(&mut poll, Some(&now))? != 0 {
        return Err(io::Error::other(
            "the peer exited while its groups were read",
        ));
    }
    parse_status(&status, uid, gid)
}

/// The `Groups:` of a `/proc/<pid>/status` text whose effective uid and gid are `uid` and
/// `gid`.
fn parse_status(status: &str, uid: u32, gid: u32) -> io::Result<Vec<u32>> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .ok_or_else(|| io::Error::other(format!("no {name} line in /proc/<pid>/status")))
    };
    let numbers = |text: &str| -> io::Result<Vec<u32>> {
        text.split_whitespace()
            .map(|n| {
                n.parse()
                    .map_err(|_| io::Error::other(format!("{n:?} in /proc/<pid>/status")))
            })
            .collect()
    };
    // Real, effective, saved, filesystem: SO_PEERCRED reports the effective ids.
    let effective = |name: &str| -> io::Result<u32> {
        numbers(field(name)?)?
            .get(1)
            .copied()
            .ok_or_else(|| io::Error::other(format!("short {name} line in /proc/<pid>/status")))
    };
    if effective("Uid:")? != uid || effective("Gid:")? != gid {
        return Err(io::Error::other(
            "the process with the peer's pid is no longer the peer (other uid or gid)",
        ));
    }
    numbers(field("Groups:")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tcat\nUid:\t1000\t1001\t1001\t1001\nGid:\t50\t51\t51\t51\nGroups:\t4 24 27 \nNgid:\t0\n";

    #[test]
    fn the_groups_of_a_status_whose_effective_ids_match() {
        assert_eq!(parse_status(STATUS, 1001, 51).unwrap(), [4, 24, 27]);
        let none = STATUS.replace("Groups:\t4 24 27 ", "Groups:\t");
        assert_eq!(parse_status(&none, 1001, 51).unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn another_process_or_a_strange_file_gives_no_groups() {
        assert!(
            parse_status(STATUS, 1000, 51).is_err(),
            "real uid, not effective"
        );
        assert!(parse_status(STATUS, 1001, 50).is_err());
        assert!(parse_status("Uid:\t1\t1\t1\t1\n", 1, 1).is_err());
        let bad = STATUS.replace("24", "x");
        assert!(parse_status(&bad, 1001, 51).is_err());
    }

    #[test]
    fn this_process_reads_its_own_groups() {
        let me = std::process::id() as i32;
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        let got = supplementary_groups(me, uid, gid).unwrap();
        let mut want: Vec<u32> = rustix::process::getgroups()
            .unwrap()
            .iter()
            .map(|g| g.as_raw())
            .collect();
        let mut got_sorted = got.clone();
        got_sorted.sort_unstable();
        want.sort_unstable();
        assert_eq!(got_sorted, want);
        assert!(supplementary_groups(me, uid.wrapping_add(1), gid).is_err());
        assert!(supplementary_groups(0, uid, gid).is_err());
    }
}
