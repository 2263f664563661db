//! SCAN, DELETE_MATCHING and NAMESPACES: walks of this host's table, a bounded slice of the
//! index per request (or per hold of the writer lock), so a walk of a large table never stops
//! the writer for long.

use crate::daemon::{bump, Daemon};
use cachekit_proto::{
    glob, scan_item_len, ErrorCode, NamespaceInfo, Reply, ScanItem, ScanRequest, Selection,
    MAX_NAMESPACE_LIST, MAX_SCAN_PAGE,
};
use cachekit_shm::{Filter, InvalidateMode, TagError};
use std::collections::HashMap;

/// Index slots one request (or one hold of the lock) visits at most: 64 Ki slots, a few
/// milliseconds of work at worst (see docs/PERFORMANCE.md for the measured pause).
pub const SLOTS_PER_PAGE: u64 = 1 << 16;

/// Items a SCAN returns when its `count` is 0.
const DEFAULT_COUNT: usize = 100;

/// DELETE_MATCHING cursors at or above this walk Redis (its SCAN cursor in the low bits);
/// below it, the table's index.
const REDIS_PHASE: u64 = 1 << 62;

fn filter<'a>(ns: &'a str, sel: &'a Selection, key: &'a dyn Fn(&[u8]) -> bool) -> Filter<'a> {
    Filter {
        namespace: ns,
        key: (!sel.pattern.is_empty()).then_some(key),
        tag: (!sel.tag.is_empty()).then(|| {
            let mode = match sel.exact {
                true => InvalidateMode::Exact,
                false => InvalidateMode::Hierarchical,
            };
            (sel.tag.as_str(), mode)
        }),
    }
}

fn tag_error(e: TagError) -> Reply {
    Reply::error(ErrorCode::InvalidArgument, e.to_string())
}

/// SCAN: one page.
pub fn scan(d: &Daemon, s: &ScanRequest) -> Reply {
    bump(&d.counters.scans);
    let matcher = |k: &[u8]| glob::matches(&s.selection.pattern, k);
    let f = filter(&s.namespace, &s.selection, &matcher);
    let l = &d.limits;
    // Keep the reply frame under max_frame_bytes: every item fits in (its fixed part + the
    // longest key), and the list's own header and the frame header take the rest.
    let worst_item = 42 + l.max_key_bytes;
    let fit = (l.max_frame_bytes.saturating_sub(64) / worst_item).clamp(1, MAX_SCAN_PAGE);
    let count = match s.count {
        0 => DEFAULT_COUNT,
        n => n as usize,
    }
    .min(fit);
    match d
        .table
        .read(|t| t.scan(&f, s.cursor, count, SLOTS_PER_PAGE))
    {
        Ok((cursor, entries)) => {
            let items: Vec<ScanItem> = entries
                .into_iter()
                .map(|e| ScanItem {
                    key: e.key,
                    value_len: e.value_len,
                    created_ms: e.created_ms,
                    expires_ms: e.expires_ms,
                    grace_until_ms: e.grace_until_ms,
                    version: e.stamp,
                })
                .collect();
            debug_assert!(items.iter().map(scan_item_len).sum::<u64>() < l.max_frame_bytes as u64);
            Reply::ScanPage { cursor, items }
        }
        Err(e) => tag_error(e),
    }
}

/// DELETE_MATCHING: one page; first the table, then (with a tier) Redis.
pub fn delete_matching(d: &Daemon, s: &ScanRequest) -> Reply {
    bump(&d.counters.deletes_matching);
    if s.cursor >= REDIS_PHASE {
        let Some(t) = &d.tier else {
            return Reply::error(
                ErrorCode::InvalidArgument,
                "this cursor is not one this daemon handed out (no Redis tier): start again from 0",
            );
        };
        return match super::atomic_redis::delete_matching(d, t, s, s.cursor - REDIS_PHASE) {
            Ok((0, deleted)) => Reply::DeletedMany { cursor: 0, deleted },
            Ok((next, deleted)) => Reply::DeletedMany {
                cursor: REDIS_PHASE | next,
                deleted,
            },
            Err(message) => Reply::error(ErrorCode::Unavailable, message),
        };
    }
    let matcher = |k: &[u8]| glob::matches(&s.selection.pattern, k);
    let f = filter(&s.namespace, &s.selection, &matcher);
    match d
        .table
        .change(|t| t.delete_matching(&f, s.cursor, SLOTS_PER_PAGE))
    {
        Ok((0, deleted)) if d.tier.is_some() => Reply::DeletedMany {
            cursor: REDIS_PHASE,
            deleted,
        },
        Ok((cursor, deleted)) => Reply::DeletedMany { cursor, deleted },
        Err(e) => tag_error(e),
    }
}

/// NAMESPACES: the census of the whole table, taken a slice at a time with the lock released
/// in between, so the figures are approximate while writers run.
pub fn namespaces(d: &Daemon) -> Reply {
    let mut seen: HashMap<Vec<u8>, (u64, u64)> = HashMap::new();
    let mut cursor = 0;
    loop {
        cursor = d.table.read(|t| {
            t.namespace_census(cursor, SLOTS_PER_PAGE, |ns, bytes| {
                let e = seen.entry(ns.to_vec()).or_default();
                e.0 += 1;
                e.1 += bytes;
            })
        });
        if cursor == 0 {
            break;
        }
    }
    let mut list: Vec<NamespaceInfo> = seen
        .into_iter()
        .filter_map(|(ns, (entries, bytes))| {
            Some(NamespaceInfo {
                namespace: String::from_utf8(ns).ok()?,
                entries,
                bytes,
            })
        })
        .collect();
    list.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.namespace.cmp(&b.namespace)));
    // Largest first; cut to the protocol's count and the frame.
    list.truncate(MAX_NAMESPACE_LIST);
    let mut size = 64;
    let keep = list
        .iter()
        .take_while(|n| {
            size += 20 + n.namespace.len();
            size <= d.limits.max_frame_bytes
        })
        .count();
    list.truncate(keep);
    Reply::NamespaceList { namespaces: list }
}
