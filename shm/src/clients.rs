//! The per-client records of the client area, as the daemon sees them.
//!
//! The client area is writable by every client, so nothing here is trusted: the daemon
//! remembers who owns which record in its own memory, and a record (or the header) that no
//! longer holds what the daemon wrote is counted as damaged and rewritten. Nothing a client
//! reads or attaches with depends on these words (attach checks only the area's size; the
//! geometry comes from the sealed table header and this build's layout constants).

use crate::geometry::{
    client_header_words, client_ns_off, write_client_header, Geometry, CLIENT_RECORDS_OFF,
};
use crate::layout::{ClientNamespaces, ClientRecord, CLIENT_RECORDS, NAMESPACE_SLOTS};
use crate::region::Memory;
use crate::sync::Ordering;
use core::mem::{offset_of, size_of};
use std::sync::Arc;

/// Words of one record.
const RECORD_WORDS: usize = size_of::<ClientRecord>() / 8;

/// Hits, stale hits and misses, as a client claimed them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tallies {
    /// Lookups that hit (fresh or stale).
    pub hits: u64,
    /// Of those, hits inside the grace window.
    pub stale_hits: u64,
    /// Lookups that missed.
    pub misses: u64,
}

impl Tallies {
    /// `self + other`, saturating: the numbers come from clients and are not trusted.
    pub fn saturating_add(self, o: Tallies) -> Tallies {
        Tallies {
            hits: self.hits.saturating_add(o.hits),
            stale_hits: self.stale_hits.saturating_add(o.stale_hits),
            misses: self.misses.saturating_add(o.misses),
        }
    }

    fn from_words(w: [u64; 3]) -> Tallies {
        Tallies {
            hits: w[0],
            stale_hits: w[1],
            misses: w[2],
        }
    }
}

/// What one record's counters hold: per namespace tag (see [`ClientRecords::namespace_tag`])
/// and unattributed (namespaces that found no slot).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordTallies {
    /// `(tag, tallies)` of each claimed slot, as the client wrote them (a tag may repeat
    /// or name no namespace: the client writes these words).
    pub namespaces: Vec<(u64, Tallies)>,
    /// The record's own counters.
    pub unattributed: Tallies,
}

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

    /// First word of `record`'s namespace table.
    fn ns_word(&self, record: u32) -> usize {
        (client_ns_off(self.geo.bucket_count) as usize
            + record as usize * size_of::<ClientNamespaces>())
            / 8
    }

    /// The tag a client writes for namespace `ns` in its namespace table.
    pub fn namespace_tag(&self, ns: &str) -> u64 {
        crate::hash::namespace_hash(self.geo.seed, ns.as_bytes()) | 1
    }

    /// What `record`'s counters hold now (a word outside the mapping reads as 0). With
    /// `take`, each counter is swapped for 0 as it is read, so nothing a client adds
    /// meanwhile is lost: it is in the next read. Out of range is empty.
    pub fn tallies(&self, record: u32, take: bool) -> RecordTallies {
        let mut out = RecordTallies::default();
        if record >= self.count() {
            return out;
        }
        let r = self.client.region();
        let read = |w: usize| match r.word(w) {
            Some(a) if take => a.swap(0, Ordering::Relaxed),
            Some(a) => a.load(Ordering::Relaxed),
            None => 0,
        };
        let own = Self::word(record, offset_of!(ClientRecord, hits));
        out.unattributed = Tallies::from_words([read(own), read(own + 1), read(own + 2)]);
        let ns = self.ns_word(record);
        let counts = ns + offset_of!(ClientNamespaces, counts) / 8;
        for i in 0..NAMESPACE_SLOTS {
            let tag = r.load(ns + i, Ordering::Relaxed).unwrap_or(0);
            let c = counts + 3 * i;
            let t = Tallies::from_words([read(c), read(c + 1), read(c + 2)]);
            if tag != 0 {
                out.namespaces.push((tag, t));
            } else {
                out.unattributed = out.unattributed.saturating_add(t);
            }
        }
        out
    }

    /// Writes `value` over every counter word of `record` (its own and its namespace
    /// table's counts): how a test plays a client scribbling over its record.
    #[cfg(feature = "testing")]
    pub fn scribble_counters(&self, record: u32, value: u64) {
        if record >= self.count() {
            return;
        }
        let r = self.client.region();
        let own = Self::word(record, offset_of!(ClientRecord, hits));
        let counts = self.ns_word(record) + offset_of!(ClientNamespaces, counts) / 8;
        for w in (own..own + 5).chain(counts..counts + 3 * NAMESPACE_SLOTS) {
            if let Some(a) = r.word(w) {
                a.store(value, Ordering::Relaxed);
            }
        }
    }

    /// Rewrites `record` whole: `pid` (0 = free), zero counters and an empty namespace
    /// table. Out of range is ignored.
    pub fn reset(&self, record: u32, pid: u64) {
        if record >= self.count() {
            return;
        }
        let r = self.client.region();
        let first = Self::word(record, 0);
        for w in 0..RECORD_WORDS {
            r.store(first + w, 0, Ordering::Relaxed);
        }
        let ns = self.ns_word(record);
        for w in 0..size_of::<ClientNamespaces>() / 8 {
            // An area made by an older layout has no namespace tables: nothing to clear.
            if let Some(a) = r.word(ns + w) {
                a.store(0, Ordering::Relaxed);
            }
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
