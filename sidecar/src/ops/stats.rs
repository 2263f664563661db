//! STATS and PING: the daemon's counters, and a liveness check.

use crate::daemon::Daemon;
use cachekit_proto::Reply;
use std::sync::atomic::{AtomicU64, Ordering};

pub fn stats(d: &Daemon) -> Reply {
    Reply::Stats {
        counters: counters(d),
    }
}

pub fn ping(d: &Daemon) -> Reply {
    Reply::Pong {
        epoch: d.epoch,
        heartbeat_ms: d.table.reader().heartbeat_ms(),
    }
}

/// Every counter, named as STATS reports it.
pub fn counters(d: &Daemon) -> Vec<(String, u64)> {
    let c = &d.counters;
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut out: Vec<(String, u64)> = d
        .table
        .stats()
        .into_iter()
        .map(|(k, v)| (format!("table_{k}"), v))
        .collect();
    out.extend([
        ("epoch".into(), d.epoch),
        ("memory_bytes".into(), d.cfg.memory_bytes),
        ("max_value_bytes".into(), d.cfg.max_value_bytes),
        ("heartbeat_ms".into(), d.table.reader().heartbeat_ms()),
        ("connections_total".into(), l(&c.connections_total)),
        ("connections_open".into(), d.admission.open() as u64),
        ("connections_refused".into(), l(&c.connections_refused)),
        (
            "connections_idle_closed".into(),
            l(&c.connections_idle_closed),
        ),
        ("requests".into(), l(&c.requests)),
        ("sets".into(), l(&c.sets)),
        ("deletes".into(), l(&c.deletes)),
        ("invalidates".into(), l(&c.invalidates)),
        ("clears".into(), l(&c.clears)),
        ("fetches".into(), l(&c.fetches)),
        ("fetch_hits".into(), l(&c.fetch_hits)),
        ("fetch_coalesced".into(), l(&c.fetch_coalesced)),
        ("atomic_ops".into(), l(&c.atomic_ops)),
        ("scans".into(), l(&c.scans)),
        ("deletes_matching".into(), l(&c.deletes_matching)),
        ("leases".into(), l(&c.leases)),
        ("leases_granted".into(), l(&d.leases.counters.granted)),
        ("leases_waited".into(), l(&d.leases.counters.waited)),
        (
            "leases_handed_over".into(),
            l(&d.leases.counters.handed_over),
        ),
        ("leases_expired".into(), l(&d.leases.counters.expired)),
        (
            "leases_holders_gone".into(),
            l(&d.leases.counters.holders_gone),
        ),
        ("leases_busy".into(), l(&d.leases.counters.busy)),
        ("lease_fills".into(), l(&d.leases.counters.fills)),
        (
            "lease_fills_refused".into(),
            l(&d.leases.counters.fills_refused),
        ),
        ("lease_releases".into(), l(&d.leases.counters.releases)),
        ("leases_active".into(), d.leases.active()),
        ("bad_frames".into(), l(&c.bad_frames)),
        ("not_permitted".into(), l(&c.not_permitted)),
        ("errors".into(), l(&c.errors)),
        ("client_records_in_use".into(), d.slots.in_use()),
    ]);
    // Host-wide: every client process's counters file, plus those of exited ones (`slots.rs`).
    let host = d.slots.host().total();
    out.extend([
        ("host_hits".into(), host.hits),
        ("host_stale_hits".into(), host.stale_hits),
        ("host_misses".into(), host.misses),
        ("client_area_damaged".into(), d.slots.damaged()),
    ]);
    if let Some(t) = &d.tier {
        t.stats(&mut out);
    }
    out
}
