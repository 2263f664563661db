//! `cachekit_stats`: a snapshot of counters as (name, value) pairs, so new counters need no
//! new struct and no new function.
//!
//! Names: `daemon.<name>` for each counter cachekitd reports (in its order), then
//! `client.<name>` for this process's own counters (`client.segment_hits`,
//! `client.fetches`, ...), then, when a segment is attached, `segment.epoch`,
//! `segment.heartbeat_ms`, `segment.heartbeat_timeout_ms` and `segment.live` (1 or 0).

use std::ffi::{c_char, CString};

use ::cachekit_client::Stats;

use crate::args::{handle, out_ptr, str_in, write_out};
use crate::client::cachekit_client;
use crate::error::{cachekit_result, Failure};
use crate::panic::ffi_boundary;

/// A snapshot of counters. Opaque; read with `cachekit_stats_len`, `cachekit_stats_entry`
/// and `cachekit_stats_lookup`, free with `cachekit_stats_free`. Immutable: any number of
/// threads may read one snapshot at once.
#[allow(non_camel_case_types)]
pub struct cachekit_stats {
    entries: Vec<(CString, u64)>,
}

impl cachekit_stats {
    fn from_stats(s: &Stats) -> cachekit_stats {
        let mut entries: Vec<(String, u64)> = s
            .daemon
            .iter()
            .map(|(name, v)| (format!("daemon.{name}"), *v))
            .collect();
        let l = &s.local;
        for (name, v) in [
            ("requests", l.requests),
            ("connects", l.connects),
            ("connect_failures", l.connect_failures),
            ("retries", l.retries),
            ("segment_hits", l.segment_hits),
            ("segment_stale_hits", l.segment_stale_hits),
            ("segment_misses", l.segment_misses),
            ("segment_corrupt", l.segment_corrupt),
            ("fetches", l.fetches),
            ("fetch_hits", l.fetch_hits),
            ("fetch_misses", l.fetch_misses),
            ("unavailable_misses", l.unavailable_misses),
            ("stale_heartbeat", l.stale_heartbeat),
            ("reattaches", l.reattaches),
            ("attach_failures", l.attach_failures),
            ("decode_errors", l.decode_errors),
        ] {
            entries.push((format!("client.{name}"), v));
        }
        if let Some(seg) = s.segment {
            entries.push(("segment.epoch".into(), seg.epoch));
            entries.push(("segment.heartbeat_ms".into(), seg.heartbeat_ms));
            entries.push((
                "segment.heartbeat_timeout_ms".into(),
                seg.heartbeat_timeout_ms,
            ));
            entries.push(("segment.live".into(), u64::from(seg.live)));
        }
        cachekit_stats {
            entries: entries
                .into_iter()
                // Names come from the daemon and from this file: a NUL would be a bug there;
                // drop such a counter rather than fail the whole snapshot.
                .filter_map(|(n, v)| CString::new(n).ok().map(|n| (n, v)))
                .collect(),
        }
    }
}

/// Asks the daemon for its counters and adds this client's own (see the names above). On
/// `CACHEKIT_OK`, `*out` receives a snapshot to free with `cachekit_stats_free`.
/// Errors: `CACHEKIT_UNAVAILABLE`, `CACHEKIT_TIMEOUT`, `CACHEKIT_NULL_ARGUMENT`.
///
/// # Safety
///
/// `client` must be a live handle; `out` must point to a writable `cachekit_stats *`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_stats_fetch(
    client: *const cachekit_client,
    out: *mut *mut cachekit_stats,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let c = unsafe { handle(client, "client") }?;
        let out = out_ptr(out, "out")?;
        let stats = cachekit_stats::from_stats(&c.client.stats()?);
        // SAFETY: `out` is non-NULL and writable, the caller promises.
        unsafe { write_out(out, Box::into_raw(Box::new(stats))) };
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

/// The number of counters in a snapshot; 0 for NULL.
///
/// # Safety
///
/// `stats` must be NULL or a live snapshot.
#[no_mangle]
pub unsafe extern "C" fn cachekit_stats_len(stats: *const cachekit_stats) -> usize {
    ffi_boundary(|| {
        // SAFETY: the caller promises NULL or a live snapshot.
        unsafe { stats.as_ref() }.map_or(0, |s| s.entries.len())
    })
}

/// Counter `index`: `*name` receives its NUL-terminated name (owned by the snapshot, valid
/// until `cachekit_stats_free`) and `*value` its value. `CACHEKIT_INVALID_ARGUMENT` when
/// `index` is out of range.
///
/// # Safety
///
/// `stats` must be a live snapshot; `name` must point to a writable `const char *`, `value`
/// to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_stats_entry(
    stats: *const cachekit_stats,
    index: usize,
    name: *mut *const c_char,
    value: *mut u64,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises NULL or a live snapshot.
        let s = unsafe { handle(stats, "stats") }?;
        let name = out_ptr(name, "name")?;
        let value = out_ptr(value, "value")?;
        let (n, v) = s.entries.get(index).ok_or_else(|| {
            Failure::invalid(format!(
                "index {index} is out of range: the snapshot has {} counters",
                s.entries.len()
            ))
        })?;
        // SAFETY: both outputs are non-NULL and writable, the caller promises; the name lives
        // in the snapshot, which the caller keeps alive.
        unsafe {
            write_out(name, n.as_ptr());
            write_out(value, *v);
        }
        Ok(cachekit_result::CACHEKIT_OK)
    })
}

/// The value of the counter called `name` (e.g. "daemon.table_live_entries"):
/// `CACHEKIT_OK` with `*value` set, or `CACHEKIT_MISS` when the snapshot has no such counter.
///
/// # Safety
///
/// `stats` must be a live snapshot; `name` a NUL-terminated string; `value` must point to a
/// writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn cachekit_stats_lookup(
    stats: *const cachekit_stats,
    name: *const c_char,
    value: *mut u64,
) -> cachekit_result {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let s = unsafe { handle(stats, "stats") }?;
        // SAFETY: the caller promises NULL or a NUL-terminated string at `name`.
        let name = unsafe { str_in(name, "name") }?;
        let value = out_ptr(value, "value")?;
        match s
            .entries
            .iter()
            .find(|(n, _)| n.as_bytes() == name.as_bytes())
        {
            Some((_, v)) => {
                // SAFETY: non-NULL and writable, the caller promises.
                unsafe { write_out(value, *v) };
                Ok(cachekit_result::CACHEKIT_OK)
            }
            None => Ok(cachekit_result::CACHEKIT_MISS),
        }
    })
}

/// Frees a snapshot. NULL is a no-op.
///
/// # Safety
///
/// `stats` must be NULL or a live snapshot from `cachekit_stats_fetch`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn cachekit_stats_free(stats: *mut cachekit_stats) {
    ffi_boundary(|| {
        if !stats.is_null() {
            // SAFETY: made by `Box::into_raw` in `cachekit_stats_fetch`, freed once (the
            // caller's promise).
            drop(unsafe { Box::from_raw(stats) });
        }
    })
}
