//! Client-area records: one per live connection that said HELLO.
//!
//! A connection owns its record from HELLO until it closes (`Lease` is dropped when
//! `socket::serve` returns); the record is then zeroed and handed to a later connection,
//! lowest free index first. Past `CLIENT_RECORDS` live connections a HELLO gets
//! [`NO_RECORD`]: the connection works as any other, its client just has no record (the Rust
//! client keeps its counters in-process and does not use the record in any case).
//!
//! Who owns which record is kept here, in the daemon's memory; the records themselves are in
//! the client area, which every client may write. So they are checked, never trusted: a
//! record whose pid word is not what the daemon wrote (the owner's pid, or 0 when free), or a
//! client-area header that changed, is counted in `client_area_damaged` and rewritten.

use cachekit_shm::ClientRecords;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// `client_slot` of a HELLO_OK when every record is taken.
pub const NO_RECORD: u32 = u32::MAX;

pub struct Slots {
    records: ClientRecords,
    /// The pid of each record's owner; `None` when free.
    owners: Mutex<Vec<Option<u64>>>,
    damaged: AtomicU64,
}

/// A connection's record; dropping it frees the record.
pub struct Lease {
    slots: Arc<Slots>,
    record: u32,
    pid: u64,
}

impl Lease {
    pub fn record(&self) -> u32 {
        self.record
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.slots.release(self.record, self.pid);
    }
}

impl Slots {
    pub fn new(records: ClientRecords) -> Slots {
        let n = records.count() as usize;
        Slots {
            records,
            owners: Mutex::new(vec![None; n]),
            damaged: AtomicU64::new(0),
        }
    }

    fn owners(&self) -> MutexGuard<'_, Vec<Option<u64>>> {
        // A panic while holding this lock leaves the vector consistent (each change is one
        // assignment): go on with it.
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lowest free record, now owned by `pid`; `None` when all are taken.
    pub fn claim(self: &Arc<Self>, pid: u64) -> Option<Lease> {
        let mut owners = self.owners();
        let record = owners.iter().position(Option::is_none)? as u32;
        owners[record as usize] = Some(pid);
        self.check(record, 0);
        self.records.reset(record, pid);
        Some(Lease {
            slots: self.clone(),
            record,
            pid,
        })
    }

    fn release(&self, record: u32, pid: u64) {
        let mut owners = self.owners();
        self.check(record, pid);
        self.records.reset(record, 0);
        owners[record as usize] = None;
    }

    /// Counts `record` as damaged when its pid word is not `pid`.
    fn check(&self, record: u32, pid: u64) {
        if !self.records.holds(record, pid) {
            self.damaged.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Checks the header and every record against what the daemon wrote, rewriting what
    /// differs; returns how many were damaged (each damage is counted once: it is repaired).
    pub fn audit(&self) -> u64 {
        let owners = self.owners();
        let mut bad = u64::from(!self.records.check_header());
        for (record, owner) in owners.iter().enumerate() {
            let pid = owner.unwrap_or(0);
            if !self.records.holds(record as u32, pid) {
                self.records.reset(record as u32, pid);
                bad += 1;
            }
        }
        self.damaged.fetch_add(bad, Ordering::Relaxed);
        bad
    }

    /// Records and headers found damaged since the start.
    pub fn damaged(&self) -> u64 {
        self.damaged.load(Ordering::Relaxed)
    }

    /// Records owned by a live connection.
    pub fn in_use(&self) -> u64 {
        self.owners().iter().filter(|o| o.is_some()).count() as u64
    }
}
