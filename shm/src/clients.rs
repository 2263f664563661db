//! The per-client records of the client area, as the daemon sees them.
//!
//! The client area is writable by every client, so nothing here is trusted: the daemon
//! remembers who owns which record in its own memory, and a record (or the header) that no
//! longer holds what the daemon wrote is counted as damaged and rewritten. Nothing a client
//! reads or attaches with depends on these words (attach checks only the area's size; the
//! geometry comes from the sealed table header and this build's layout constants).

use crate::geometry::{client_header_words, write_client_header, Geometry, CLIENT_RECORDS_OFF};
use crate::layout::{ClientRecord, CLIENT_RECORDS};
use crate::region::Memory;
use crate::sync::Ordering;
use core::mem::{offset_of, size_of};
use std::sync::Arc;

/// Words of one record.
const RECORD_WORDS: usize = size_of::<ClientRecord>() / 8;

/// A handle on the client area's records, shared with the writer's mapping (see
/// [`Writer::client_records`](crate::Writer::client_records)). Every method only stores
/// or loads single words of the client area: it needs no lock against the writer.
#[derive(Clone)]
pub struct ClientRecords {
    client: Arc<Memory>,
    geo: Geometry,
}

impl ClientRecords {
    pub(crate) fn new(client: Arc<Memory>, geo: Geometry) -> ClientRecords {
        ClientRecords { client, geo }
    }

    /// Number of records ([`CLIENT_RECORDS`]).
    pub fn count(&self) -> u32 {
        CLIENT_RECORDS as u32
    }

    fn word(record: u32, field: usize) -> usize {
        (CLIENT_RECORDS_OFF as usize + record as usize * size_of::<ClientRecord>() + field) / 8
    }

    /// Whether `record` holds `pid` in its pid word (0 for a free record). Out of range is
    /// `false`.
    pub fn holds(&self, record: u32, pid: u64) -> bool {
        record < self.count()
            && self.client.region().load(
                Self::word(record, offset_of!(ClientRecord, pid)),
                Ordering::Relaxed,
            ) == Some(pid)
    }

    /// Rewrites `record` whole: `pid` (0 = free) and zero counters. Out of range is ignored.
    pub fn reset(&self, record: u32, pid: u64) {
        if record >= self.count() {
            return;
        }
        let r = self.client.region();
        let first = Self::word(record, 0);
        for w in 0..RECORD_WORDS {
            r.store(first + w, 0, Ordering::Relaxed);
        }
        r.store(
            Self::word(record, offset_of!(ClientRecord, pid)),
            pid,
            Ordering::Relaxed,
        );
    }

    /// Whether the header still holds what the daemon wrote at creation; when it does not,
    /// it is rewritten and `false` is returned. Informational only: no client reads it.
    pub fn check_header(&self) -> bool {
        let r = self.client.region();
        let words = client_header_words(&self.geo);
        let intact = words
            .iter()
            .all(|&(w, v)| r.load(w, Ordering::Relaxed) == Some(v));
        if !intact {
            write_client_header(&self.geo, r);
        }
        intact
    }
}
