//! VERIFY: one page of an integrity walk of the live table, each slot and entry checked as a
//! warm restart's carry checks them (`cachekit_shm::Writer::verify_page`); with `repair` (a
//! write: the permission check already ran) the damaged entries are dropped.

use crate::daemon::Daemon;
use cachekit_proto::{Reply, VerifyBad, VerifyReport, VerifyRequest, MAX_VERIFY_SAMPLE};
use cachekit_shm::now_ms;

/// Slots a page visits when the request leaves it to the daemon: the writer's lock is held for
/// the page, and 64k slots (8k buckets) take about a millisecond.
const DEFAULT_SLOTS: u64 = 1 << 16;
/// The most a request may ask for, so one page never holds the writer for long.
const MAX_SLOTS: u64 = 1 << 20;

pub fn run(d: &Daemon, v: &VerifyRequest) -> Reply {
    let slots = match v.max_slots {
        0 => DEFAULT_SLOTS,
        n => n.min(MAX_SLOTS),
    };
    let page = d
        .table
        .change(|t| t.verify_page(v.cursor, slots, now_ms(), v.repair, MAX_VERIFY_SAMPLE));
    Reply::VerifyReport(VerifyReport {
        next: page.next,
        examined: page.examined,
        repaired: page.repaired,
        counts: page
            .counts
            .named()
            .into_iter()
            .map(|(name, n)| (name.to_string(), n))
            .collect(),
        sample: page
            .sample
            .into_iter()
            .map(|b| {
                let (mut namespace, mut key) = (b.namespace, b.key);
                if namespace.len() > d.limits.max_namespace_bytes {
                    namespace.clear();
                }
                key.truncate(d.limits.max_key_bytes);
                VerifyBad {
                    slot: b.slot,
                    reason: b.reason.name().to_string(),
                    namespace,
                    key,
                }
            })
            .collect(),
    })
}
