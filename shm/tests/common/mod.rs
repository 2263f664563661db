//! Shared helpers: every conformance test runs on both backings.
#![allow(dead_code)]

use cachekit_shm::{Backing, Reader, TableConfig, Writer};

/// The backings every conformance test runs on.
#[cfg(not(miri))]
pub const BACKINGS: [Backing; 2] = [Backing::Heap, Backing::Memfd];
/// Under Miri, the heap only: Miri cannot create or map memfds.
#[cfg(miri)]
pub const BACKINGS: [Backing; 1] = [Backing::Heap];

/// A writer and a reader on `backing`. With memfd, the reader maps the fds read-only as
/// another process would.
pub fn table(cfg: &TableConfig, backing: Backing) -> (Writer, Reader) {
    let w = Writer::create(cfg, backing).expect("create table");
    let r = match backing {
        Backing::Heap => w.reader(),
        Backing::Memfd => {
            let fds = w.fds().expect("memfd backing has fds");
            Reader::attach(fds.table_fd(), Some(fds.client_fd())).expect("attach")
        }
    };
    (w, r)
}

/// A small table: 16 segments of 64 KiB, values up to 16 KiB.
pub fn small() -> TableConfig {
    TableConfig {
        arena_bytes: 1 << 20,
        segment_bytes: Some(64 << 10),
        max_value_bytes: 16 << 10,
        tag_counters: 1 << 16,
        hash_seed: Some(0x5eed),
        ..TableConfig::default()
    }
}
