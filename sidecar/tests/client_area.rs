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
fn each_live_connection_owns_a_record_past_the_count_none_and_a_closed_ones_is_reused() {
    let d = Site::new("area-slots").start(&[]);
    let mut conns: Vec<common::Client> = (0..300).map(|i| d.client(&format!("c{i}"))).collect();
    let slots: Vec<u32> = conns.iter().map(|c| c.hello.client_slot).collect();
    let records = CLIENT_RECORDS as usize;
    let mut first: Vec<u32> = slots[..records].to_vec();
    first.sort_unstable();
    assert_eq!(
        first,
        (0..CLIENT_RECORDS as u32).collect::<Vec<_>>(),
        "the first {records} connections each own a different record"
    );
    assert!(
        slots[records..].iter().all(|&s| s == NO_RECORD),
        "past {records} live connections a HELLO gets no record: {:?}",
        &slots[records..]
    );
    let me = u64::from(std::process::id());
    let area = conns[0].fds[1].try_clone().unwrap();
    assert_eq!(
        record_pid(&area, slots[17]),
        me,
        "the record names its owner"
    );
    // A connection without a record is served like any other.
    let last = conns.last_mut().unwrap();
    assert_eq!(last.ping(), last.hello.daemon_epoch);

    // Close the connection that owns record 17: its record is zeroed and is the next one
    // handed out (the lowest free).
    let owner = slots.iter().position(|&s| s == 17).unwrap();
    drop(conns.remove(owner));
    let mut probe = conns.pop().unwrap(); // holds no record
    assert!(
        eventually(WATCHDOG, || probe.stat("client_records_in_use")
            == CLIENT_RECORDS - 1),
        "client_records_in_use = {} after one owner closed",
        probe.stat("client_records_in_use")
    );
    assert_eq!(record_pid(&area, 17), 0, "a freed record is zeroed");
    let next = d.client("next");
    assert_eq!(next.hello.client_slot, 17, "the freed record is reused");
    assert_eq!(record_pid(&area, 17), me);
    assert_eq!(probe.stat("client_area_damaged"), 0, "nothing was damaged");
}
