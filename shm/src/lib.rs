//! The cachekit shared-memory table: one writer (the daemon), many lock-free readers in
//! other processes.
//!
//! - [`Writer`] owns the table: insert with TTL, grace and hierarchical tags; delete;
//!   invalidate a tag in O(1); clear a namespace in O(1); clear all; expire; evict.
//! - [`Reader`] maps it read-only and serves hits with no syscall and no lock. It never
//!   trusts the segment: a corrupted segment gives misses and a counter, never a crash,
//!   a hang or a wrong value.
//!
//! The byte layout and the protocol are drawn in `docs/ARCHITECTURE.md`; the layout in
//! code is in [`layout`].

mod arena;
mod carry;
mod check;
mod clients;
mod entry;
mod error;
mod geometry;
mod ghost;
mod hash;
mod index;
pub mod layout;
mod reader;
mod region;
#[cfg(not(loom))]
mod shared;
mod sync;
mod tags;
#[cfg(feature = "testing")]
pub mod testing;
mod time;
mod verify;
mod walk;
mod writer;

pub use carry::{carry, CarryReport, OldTable, RefSpace, StreamPosition};
pub use check::{CarriedEntry, CarriedRef, DropCounts, DropReason};
#[cfg(not(loom))]
pub use clients::CounterFile;
pub use clients::{ClientArea, RecordTallies, Tallies};
pub use entry::{
    ENTRY_HEADER_BYTES, MAX_KEY_BYTES, MAX_NAMESPACE_BYTES, MAX_REFS, VALUE_LEN_CEILING,
};
pub use error::{AttachError, CreateError, InsertError, TagError};
pub use geometry::{TableConfig, INDEX_LOAD_TARGET, MIN_BUCKETS};
pub use layout::Stat;
pub use reader::{HitMeta, Lookup, Reader, ReaderStats, MAX_RETRIES};
#[cfg(not(loom))]
pub use shared::{take_inherited_fd, SegmentFds};
pub use tags::{validate_tag, InvalidateMode, MAX_TAGS, MAX_TAG_BYTES, MAX_TAG_DEPTH};
pub use time::now_ms;
pub use verify::{BadEntry, VerifyPage};
pub use walk::{Cursor as WalkCursor, EntryView, Filter, ScanEntry};
pub use writer::{Backing, InsertOptions, Writer};

#[cfg(loom)]
#[doc(hidden)]
pub use sync::weaken;
