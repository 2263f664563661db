//! The client area is writable by every client, so nothing in it may decide whether another
//! client attaches or what it reads; and each live connection owns a record of it of its own.
//! Real daemon, raw protocol connections and the Rust client; every wait is bounded.

mod common;

use cachekit_client::{Client as App, ClientOptions, SetOptions};
use cachekit_shm::layout::{ClientAreaHeader, ClientRecord, CLIENT_RECORDS};
use cachekit_testkit::eventually;
use common::{Connect, Daemon, Site, WATCHDOG};
use std::mem::size_of;
use std::os::fd::OwnedFd;

/// `client_slot` when every record is taken.
const NO_RECORD: u32 = u32::MAX;

fn app(d: &Daemon) -> App {
    let opts = ClientOptions::new().socket(d.socket()).namespace("area");
    App::connect(opts).expect("connecting the Rust client")
}

/// The pid word of `record` in the client area, read through the fd a client was handed.
fn record_pid(area: &OwnedFd, record: u32) -> u64 {
    let off = size_of::<ClientAreaHeader>() + record as usize * size_of::<ClientRecord>();
    let mut word = [0u8; 8];
    rustix::io::pread(area, &mut word, off as u64).expect("reading the client area");
    u64::from_le_bytes(word)
}

#[test]
fn a_client_that_scribbles_over_the_whole_client_area_cannot_switch_off_the_fast_path() {
    let d = Daemon::start("area-garbage", &[]);
    let writer = app(&d);
    writer.set("k", b"v", &SetOptions::new()).expect("set k");

    // A hostile client (any uid that can open the socket) overwrites every byte of the
    // area it was handed: header, every record, the access bitmap.
    let hostile = d.client("hostile");
    let len = hostile.hello.client_area_size as usize;
    let garbage: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(151) ^ 0xA5)
        .collect();
    let written = rustix::io::pwrite(&hostile.fds[1], &garbage, 0).expect("writing the area");
    assert_eq!(written, len, "the client area is writable by design");

    // A client that attaches afterwards still serves hits from shared memory.
    let late = app(&d);
    let hit = late.get_local("k").expect("get_local");
    assert_eq!(
        hit.as_ref().map(|v| v.as_ref()),
        Some(&b"v"[..]),
        "a client attaching after the area was overwritten must hit in shared memory"
    );
    // So does one on the raw path (`Client::attach` maps and validates it).
    let raw = d.client("late-raw");
    assert_ne!(raw.hello.client_slot, NO_RECORD);

    // The daemon counts what was damaged, once each (it rewrites it): the header and every
    // record, whether owned or free.
    let mut probe = d.client("probe");
    let want = 1 + CLIENT_RECORDS;
    assert!(
        eventually(WATCHDOG, || probe.stat("client_area_damaged") == want),
        "client_area_damaged = {}, want {want} (the header and {CLIENT_RECORDS} records)",
        probe.stat("client_area_damaged")
    );
    // ... and the records it rewrote hold their owners again.
    assert_eq!(
        record_pid(&raw.fds[1], raw.hello.client_slot),
        u64::from(std::process::id())
    );
    assert_eq!(
        record_pid(&raw.fds[1], hostile.hello.client_slot),
        u64::from(std::process::id())
    );
    drop(writer);
}

#[test]
fn every_connection_of_a_process_shares_its_record_which_outlives_them_while_it_lives() {
    // Records are per process (`sidecar/src/slots.rs`): its segment reader counts into the
    // record of the connection that attached it, and pooled connections come and go (the
    // idle timeout closes them), so the record must not go with a connection. Distinct
    // processes and the count limit are covered by the unit tests of `slots.rs` (fake
    // pids) and by python/tests/test_metrics.py (real client processes that exit).
    let d = Site::new("area-slots").start(&[]);
    let mut conns: Vec<common::Client> = (0..300).map(|i| d.client(&format!("c{i}"))).collect();
    let slot = conns[0].hello.client_slot;
    assert_ne!(slot, NO_RECORD, "a process gets a record");
    assert!(
        conns.iter().all(|c| c.hello.client_slot == slot),
        "every connection of one process names the same record: {:?}",
        conns
            .iter()
            .map(|c| c.hello.client_slot)
            .collect::<Vec<_>>()
    );
    let me = u64::from(std::process::id());
    let area = conns[0].fds[1].try_clone().unwrap();
    assert_eq!(record_pid(&area, slot), me, "the record names its owner");
    let last = conns.last_mut().unwrap();
    assert_eq!(last.ping(), last.hello.daemon_epoch);
    assert_eq!(last.stat("client_records_in_use"), 1);

    // Every connection closes; this process still lives, so it keeps its record (checked
    // past a few heartbeats' audits), and its next connection is handed the same one.
    drop(conns);
    let mut probe = d.client("probe");
    assert_eq!(probe.hello.client_slot, slot, "the same record again");
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(record_pid(&area, slot), me, "kept while the process lives");
    assert_eq!(probe.stat("client_records_in_use"), 1);
    assert_eq!(probe.stat("client_area_damaged"), 0, "nothing was damaged");
}
