//! The C ABI of cachekit: `libcachekit.so` (SONAME `libcachekit.so.0`) and `libcachekit.a`,
//! described by `include/cachekit.h`, which cbindgen 0.29.4 generates from this crate
//! (`ffi/cbindgen.toml`; `scripts/test-c` fails when the checked-in header is out of date,
//! `scripts/test-c --update-header` rewrites it).
//!
//! A thin layer over [`cachekit_client`]: every export checks its pointers, converts its
//! arguments, calls the Rust client and maps its `Error` to a `cachekit_result`, one code per
//! variant. The conventions C callers rely on (ownership, buffers, threads, results, the
//! thread-local last error) are written at the top of the header (`header` in
//! `cbindgen.toml`), and enforced here:
//!
//! - every export runs inside `panic::ffi_boundary` (a unit test checks that no export is
//!   left out);
//! - every pointer argument goes through `args.rs`, the one place that checks NULL, lengths
//!   and UTF-8;
//! - outputs are written only after the work succeeded.
//!
//! One C object per file: `client.rs` (`cachekit_client`), `options.rs`
//! (`cachekit_options`), `value.rs` (gets, `cachekit_value_info`), `buf.rs`
//! (library-allocated buffers), `batch.rs` (`cachekit_batch`), `stats.rs`
//! (`cachekit_stats`), `error.rs` (`cachekit_result`, last error), `version.rs`, `atomic.rs`
//! (the atomic writes and `cachekit_set_options`), `scan.rs` (`cachekit_scan`, delete by
//! pattern), `namespaces.rs` (`cachekit_namespaces`), `lease.rs` (`cachekit_lease`, fill leases
//! and `cachekit_query`).

// Declared in the order the header lists them (cbindgen keeps source order).
mod batch;
mod batch_write;
mod buf;
mod client;
mod error;
mod options;
mod stats;
mod value;
mod version;

mod atomic;
mod namespaces;
mod scan;

mod lease;

mod args;
mod panic;
