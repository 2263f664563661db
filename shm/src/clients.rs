//! Host-wide counters as the daemon sees them: the shared client area's header, and the
//! counters file of each client process.
//!
//! Nothing a client writes is trusted. The client area is writable by every client: the
//! daemon checks its header and rewrites it when it changed (nothing reads it; attach checks
//! only the area's size, the geometry comes from the sealed table header and this build's
//! layout constants). A counters file ([`CounterFile`]) is writable by the one process it
//! was handed to: the daemon sums its counters as untrusted numbers (saturating), checks its
//! header the same way, and never reads a length or an offset from it.

use crate::geometry::{client_header_words, write_client_header, Geometry};
use crate::layout::{
    CounterStripe, CountersHeader, COUNTERS_BYTES, COUNTERS_MAGIC, COUNTERS_STRIPES_OFF,
    COUNTERS_TAGS_OFF, COUNTER_STRIPES, LAYOUT_VERSION, NAMESPACE_SLOTS,
};
use crate::region::Memory;
use crate::sync::Ordering;
use core::mem::{offset_of, size_of};
use std::sync::Arc;

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

/// What one counters file holds: per namespace tag (see [`ClientArea::namespace_tag`]) and
/// unattributed (namespaces that found no slot), every stripe summed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordTallies {
    /// `(tag, tallies)` of each claimed slot, as the client wrote them (a tag may repeat
    /// or name no namespace: the client writes these words).
    pub namespaces: Vec<(u64, Tallies)>,
    /// Lookups counted without a namespace.
    pub unattributed: Tallies,
}

/// A handle on the shared client area, for the daemon (see
/// [`Writer::client_area`](crate::Writer::client_area)): its header, and the tags clients
/// count namespaces under. Only stores or loads single words: it needs no lock against the
/// writer.
#[derive(Clone)]
pub struct ClientArea {
    client: Arc<Memory>,
    geo: Geometry,
}

impl ClientArea {
    pub(crate) fn new(client: Arc<Memory>, geo: Geometry) -> ClientArea {
        ClientArea { client, geo }
    }

    /// The tag a client counts namespace `ns` under in its counters file.
    pub fn namespace_tag(&self, ns: &str) -> u64 {
        crate::hash::namespace_hash(self.geo.seed, ns.as_bytes()) | 1
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

/// Word index of `field` of stripe `stripe` of a counters file.
pub(crate) const fn stripe_word(stripe: usize, field: usize) -> usize {
    (COUNTERS_STRIPES_OFF as usize + stripe * size_of::<CounterStripe>() + field) / 8
}

/// Word index of namespace slot `i`'s tag in a counters file.
pub(crate) const fn tag_word(i: usize) -> usize {
    COUNTERS_TAGS_OFF as usize / 8 + i
}

/// The header words (word index, value) of the counters file of process `pid`, record
/// `record`.
fn counters_header_words(pid: u64, record: u32) -> [(usize, u64); 7] {
    [
        (offset_of!(CountersHeader, magic) / 8, COUNTERS_MAGIC),
        (
            offset_of!(CountersHeader, layout_version) / 8,
            LAYOUT_VERSION,
        ),
        (offset_of!(CountersHeader, pid) / 8, pid),
        (offset_of!(CountersHeader, record) / 8, u64::from(record)),
        (offset_of!(CountersHeader, total_bytes) / 8, COUNTERS_BYTES),
        (
            offset_of!(CountersHeader, stripe_count) / 8,
            COUNTER_STRIPES as u64,
        ),
        (
            offset_of!(CountersHeader, stripes_off) / 8,
            COUNTERS_STRIPES_OFF,
        ),
    ]
}

/// The counters file of one client process, as the daemon holds it: a memfd of
/// [`COUNTERS_BYTES`] sealed against growing, shrinking and further seals, and the daemon's
/// own read-write mapping of it. Made at the process's first HELLO, sent to it (and only
/// to it) with HELLO_OK; dropping it closes the descriptor and unmaps the file.
#[cfg(not(loom))]
pub struct CounterFile {
    fd: std::os::fd::OwnedFd,
    mem: Memory,
    pid: u64,
    record: u32,
}

#[cfg(not(loom))]
impl CounterFile {
    /// A new, zeroed counters file for process `pid`, record `record`, its header written.
    pub fn create(pid: u64, record: u32) -> std::io::Result<CounterFile> {
        let (fd, mem) = crate::shared::create(
            "cachekit-counters",
            COUNTERS_BYTES,
            crate::shared::client_seals(),
        )?;
        let f = CounterFile {
            fd,
            mem,
            pid,
            record,
        };
        f.write_header();
        Ok(f)
    }

    fn write_header(&self) {
        let r = self.mem.region();
        for (w, v) in counters_header_words(self.pid, self.record) {
            r.store(w, v, Ordering::Relaxed);
        }
    }

    /// The descriptor to send to the client (with HELLO_OK).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// The process this file counts for.
    pub fn pid(&self) -> u64 {
        self.pid
    }

    /// Whether the header still holds what the daemon wrote; when it does not, it is
    /// rewritten and `false` is returned. Informational only: no client reads it.
    pub fn check_header(&self) -> bool {
        let r = self.mem.region();
        let intact = counters_header_words(self.pid, self.record)
            .iter()
            .all(|&(w, v)| r.load(w, Ordering::Relaxed) == Some(v));
        if !intact {
            self.write_header();
        }
        intact
    }

    /// What the file's counters hold now, every stripe summed (saturating: the client
    /// writes these words). Reads words only.
    pub fn tallies(&self) -> RecordTallies {
        let r = self.mem.region();
        let read = |w: usize| r.load(w, Ordering::Relaxed).unwrap_or(0);
        let sum = |field: usize| {
            (0..COUNTER_STRIPES).fold(Tallies::default(), |acc, s| {
                let w = stripe_word(s, field);
                acc.saturating_add(Tallies::from_words([read(w), read(w + 1), read(w + 2)]))
            })
        };
        let mut out = RecordTallies {
            namespaces: Vec::new(),
            unattributed: sum(offset_of!(CounterStripe, unattributed)),
        };
        for i in 0..NAMESPACE_SLOTS {
            let t = sum(offset_of!(CounterStripe, counts) + i * 24);
            match read(tag_word(i)) {
                0 => out.unattributed = out.unattributed.saturating_add(t),
                tag => out.namespaces.push((tag, t)),
            }
        }
        out
    }

    /// Writes `value` over every word of the file (header, tags, counters): how a test
    /// plays a client scribbling over its own counters.
    #[cfg(feature = "testing")]
    pub fn scribble(&self, value: u64) {
        let r = self.mem.region();
        for w in 0..COUNTERS_BYTES as usize / 8 {
            r.store(w, value, Ordering::Relaxed);
        }
    }
}
