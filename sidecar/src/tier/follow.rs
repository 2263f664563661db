//! Following the other hosts: every namespace this host has used has a cursor in its
//! stream (`ck:{ns}:inv`); the follower reads the events after it and applies those of
//! other writers to the table.
//!
//! - **Doorbell.** Every write script publishes the namespace on `ck:doorbell`; the
//!   follower reads that namespace's stream at once (one round trip).
//! - **Catch-up.** After (re)subscribing, and every `redis_poll_ms`, it reads every followed
//!   stream from its cursor: what pub/sub dropped while disconnected is replayed from the
//!   stream.
//! - **Gaps.** The events carry consecutive clock values; a jump means entries were trimmed
//!   (or Redis lost its data) before this host read them: the namespace is cleared locally.
//! - **Failover** (Sentinel). When the store finds a primary with another history
//!   ([`cachekit_redis::AsyncStore::epoch`]), the new primary may lack writes the old one
//!   acknowledged, and its clock may hand out again values this host already applied. Before
//!   reading any stream on it, the follower raises each followed namespace's clock past what
//!   this host saw and, if it was below (this host saw events the new primary lacks), clears
//!   the namespace in Redis; then takes a new cursor and clears the namespace locally. Fills
//!   wait for that (`Tier::read_through`).
//! - **Outage bound.** After `redis_stale_bound_ms` without a complete read, every followed
//!   namespace is cleared locally (and again every as long while it lasts), so nothing
//!   another host invalidated is served past that bound.
//! - **Positions.** After each batch is applied, the position the table reflects (stream ID
//!   and clock) is recorded in the segment's header page for a restarted daemon's replay
//!   (`resume.rs`); never past an own event whose request may not have changed the table yet
//!   (`note_position`).

use super::breaker::State;
use super::{bump, Follow, Tier};
use crate::table::SharedTable;
use cachekit_redis::WriteOp;
use cachekit_redis::{Continuity, Cursor, EventKind};
use cachekit_shm::now_ms;
use futures_util::{FutureExt, Stream, StreamExt};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, info, warn};

/// Events read per XRANGE.
pub(super) const BATCH: usize = 1000;

type Bell = Pin<Box<dyn Stream<Item = String> + Send>>;

async fn next_ring(bell: &mut Option<Bell>) -> Option<String> {
    match bell {
        Some(b) => b.next().await,
        None => std::future::pending().await,
    }
}

/// The follower task: runs for the life of the daemon.
pub(super) async fn run(tier: Arc<Tier>, table: Arc<SharedTable>) {
    let (t, d) = (&*tier, &*table);
    let mut tick = tokio::time::interval(t.cfg.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ok = Instant::now();
    let mut last_flush = Instant::now();
    loop {
        let mut bell: Option<Bell> = match t.store.doorbell().await {
            Ok(s) => Some(Box::pin(s)),
            Err(e) => {
                t.failed(&e);
                None
            }
        };
        if catch_up(d, t, true).await {
            last_ok = Instant::now();
            t.caught_up();
        }
        loop {
            tokio::select! {
                ring = next_ring(&mut bell) => match ring {
                    Some(ns) => {
                        // Take every ring already here, then read each namespace once.
                        let mut names = vec![ns];
                        if let Some(b) = bell.as_mut() {
                            while let Some(Some(more)) = b.next().now_or_never() {
                                if !names.contains(&more) {
                                    names.push(more);
                                }
                            }
                        }
                        for ns in names {
                            let _ = poll_ns(d, t, &ns, false).await;
                        }
                    }
                    None => {
                        bump(&t.c.doorbell_reconnects);
                        warn!("lost the doorbell subscription; resubscribing and catching up from the streams");
                        break;
                    }
                },
                _ = tick.tick() => {
                    if catch_up(d, t, true).await {
                        last_ok = Instant::now();
                        t.caught_up();
                    } else if let Some(bound) = t.cfg.stale_bound {
                        if last_ok.elapsed() > bound && last_flush.elapsed() > bound {
                            let names = followed(t);
                            warn!(namespaces = names.len(), bound_ms = bound.as_millis() as u64,
                                "cannot read the invalidation streams for longer than redis_stale_bound_ms: clearing the followed namespaces on this host");
                            for ns in &names {
                                flush_local(d, ns);
                            }
                            bump(&t.c.flushes_for_outage);
                            last_flush = Instant::now();
                        }
                    }
                    if t.breaker.state() != State::Closed && t.breaker.allow() {
                        match t.store.ping().await {
                            Ok(()) => t.breaker.success(),
                            Err(e) => t.failed(&e),
                        }
                    }
                    if bell.is_none() {
                        break;
                    }
                }
            }
        }
    }
}

fn followed(t: &Tier) -> Vec<String> {
    t.follows
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .cloned()
        .collect()
}

/// Reads every followed stream; true when all reads succeeded.
async fn catch_up(d: &SharedTable, t: &Tier, replay: bool) -> bool {
    let mut ok = true;
    for ns in followed(t) {
        ok &= poll_ns(d, t, &ns, replay).await.is_ok();
    }
    ok
}

fn cursor_of(t: &Tier, ns: &str) -> Option<Option<Cursor>> {
    t.follows
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(ns)
        .map(|f| f.cursor.clone())
}

/// Stores `new` as the cursor of `ns`, unless someone moved it since `old` was read (a new
/// registration with an earlier starting point: the next read starts there).
fn advance(t: &Tier, ns: &str, old: Option<&Cursor>, new: Cursor) {
    let mut f = t.follows.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(f) = f.get_mut(ns) {
        if f.cursor.as_ref() == old {
            f.cursor = Some(new);
        }
    }
}

/// After a failover (the store's epoch moved): for each followed namespace, raise the new
/// primary's clock past every value this host saw, clear the namespace in Redis, take a new
/// cursor, clear the namespace locally. Then fills may go on.
///
/// The Redis clear is unconditional: the new primary may lack an invalidation another host
/// had acknowledged (never replicated), and comparing its clock with what this host saw cannot
/// tell: writes of hosts that reconnected first may already have raised it past the lost
/// event's clock. Clearing invalidates every record the new primary holds from before, so no
/// host refills what a lost invalidation covered; it costs misses after each failover.
async fn after_failover(d: &SharedTable, t: &Tier) -> Result<(), ()> {
    let epoch = t.store.epoch();
    if epoch == t.seen_epoch.load(Ordering::SeqCst) {
        return Ok(());
    }
    let names = followed(t);
    for ns in &names {
        let known = t
            .follows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(ns)
            .map_or(0, |f| f.cursor.as_ref().map_or(0, |c| c.seq).max(f.written));
        let before = t
            .store
            .raise_clock(ns, known)
            .await
            .map_err(|e| t.failed(&e))?;
        if before < known {
            warn!(
                namespace = ns,
                new_primary_clock = before,
                seen = known,
                "the new primary lacks events this host saw (acknowledged by the old primary, never replicated)"
            );
        }
        t.store
            .write(&WriteOp::Clear { ns: ns.clone() }, now_ms())
            .await
            .map_err(|e| t.failed(&e))?;
        bump(&t.c.failover_clears);
        // The cursor before the local clear: what comes after it is applied to the cleared
        // table, what came before is covered by the clear.
        let c = t.store.follow_start(ns).await.map_err(|e| t.failed(&e))?;
        flush_local(d, ns);
        // The cleared table reflects the new primary's stream up to `c` (what came before is
        // covered by the clear), own events included: recorded at once, so a successor
        // replays this primary's stream, not the old one's position.
        let recorded =
            stream_id(&c.id).is_some_and(|(ms, seq)| d.record_stream_position(ns, ms, seq, c.seq));
        if let Some(f) = t
            .follows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(ns)
        {
            // Positions in the old primary's stream mean nothing on this one.
            f.pending.clear();
            f.recorded = recorded.then(|| c.clone());
            f.cursor = Some(c);
        }
    }
    t.seen_epoch.store(epoch, Ordering::SeqCst);
    bump(&t.c.flushes_for_failover);
    warn!(
        namespaces = names.len(),
        "failover: cleared the followed namespaces on this host; following the new primary"
    );
    Ok(())
}

/// Reads and applies everything after the cursor of `ns`.
async fn poll_ns(d: &SharedTable, t: &Tier, ns: &str, replay: bool) -> Result<(), ()> {
    after_failover(d, t).await?;
    loop {
        let cursor = match cursor_of(t, ns) {
            None => return Ok(()), // not a namespace this host uses
            Some(Some(c)) => c,
            Some(None) => {
                // First used while Redis was unreachable: what happened since is unknown.
                let c = t.store.follow_start(ns).await.map_err(|e| t.failed(&e))?;
                flush_local(d, ns);
                bump(&t.c.flushes_for_unknown_start);
                info!(
                    namespace = ns,
                    "now following the namespace's stream; cleared it locally (used while Redis was unreachable)"
                );
                advance(t, ns, None, c);
                continue;
            }
        };
        let events = t
            .store
            .read_since(ns, &cursor, BATCH)
            .await
            .map_err(|e| t.failed(&e))?;
        t.breaker.success();
        if t.store.epoch() != t.seen_epoch.load(Ordering::SeqCst) {
            // Perhaps read from a new primary with the old one's cursor: handled next round.
            return Err(());
        }
        let n = events.len();
        let mut cur = cursor.clone();
        // Whether the batch holds an event of this host's (see `note_position`).
        let mut own = false;
        for e in events {
            own |= e.origin == t.origin;
            match cur.continuity(e.seq) {
                Continuity::Gap => {
                    warn!(
                        namespace = ns,
                        after = cur.seq,
                        next = e.seq,
                        "events missing from the stream (trimmed before this host read them, or Redis lost data): clearing the namespace locally"
                    );
                    flush_local(d, ns);
                    bump(&t.c.flushes_for_gap);
                }
                Continuity::Next if e.origin != t.origin => {
                    apply_event(d, ns, &e.kind, e.seq);
                    bump(&t.c.events);
                    if replay {
                        bump(&t.c.replayed);
                    }
                }
                Continuity::Next => {}
            }
            cur = Cursor {
                id: e.id,
                seq: e.seq,
            };
        }
        if n > 0 {
            advance(t, ns, Some(&cursor), cur.clone());
            // Wakes holders waiting for another host's fill (`lease.rs`).
            t.events_applied();
        }
        note_position(d, t, ns, cur, own);
        if n < BATCH {
            return Ok(());
        }
    }
}

/// Positions a namespace keeps waiting for write requests (`Follow::pending`); when full, the
/// newest replaces the last (the recorded position then lags, which is safe).
const PENDING_POSITIONS: usize = 64;

/// Records in the table how far it reflects the stream of `ns`, for a successor's replay
/// (`resume.rs`); called after the events read up to `reached` were applied. Never ahead of
/// the table: this host's own events are skipped here because their request applies them, so
/// a position past one of them (`own`: read in this batch) is recorded only once every write
/// request issued before it was read is done. One small store per batch read.
fn note_position(d: &SharedTable, t: &Tier, ns: &str, reached: Cursor, own: bool) {
    // After the read: a request whose event it returned was numbered before Redis ran it.
    let (issued, oldest) = t.in_flight.marks();
    let pos = {
        let mut follows = t.follows.lock().unwrap_or_else(|p| p.into_inner());
        let Some(f) = follows.get_mut(ns) else {
            return;
        };
        match recordable(f, reached, own, issued, oldest) {
            Some(p) => p,
            None => return,
        }
    };
    let Some((id_ms, id_seq)) = stream_id(&pos.id) else {
        return;
    };
    if d.record_stream_position(ns, id_ms, id_seq, pos.seq) {
        if let Some(f) = t
            .follows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(ns)
        {
            f.recorded = Some(pos);
        }
    } else {
        debug!(
            namespace = ns,
            "no free stream-position record (64 namespaces have one): a warm restart clears this namespace"
        );
    }
}

/// The position `note_position` may record now, if any (and newer than the one recorded):
/// `reached` was read after `issued` write requests had been numbered, and every request
/// numbered below `oldest` is done.
fn recordable(
    f: &mut Follow,
    reached: Cursor,
    own: bool,
    issued: u64,
    oldest: u64,
) -> Option<Cursor> {
    let mut pos = None;
    let full = f.pending.len() >= PENDING_POSITIONS;
    match (own, f.pending.back_mut()) {
        (false, None) => pos = Some(reached),
        // No new own event: the last waiting position moves on, waiting for no more.
        (false, Some(last)) => last.1 = reached,
        (true, Some(last)) if full => {
            // Full: the newest takes the last one's place (later, and waiting for as many
            // requests or more), so no own event is ever left uncovered.
            *last = (issued, reached);
        }
        (true, _) => f.pending.push_back((issued, reached)),
    }
    while f.pending.front().is_some_and(|(i, _)| *i <= oldest) {
        pos = f.pending.pop_front().map(|(_, c)| c);
    }
    pos.filter(|p| f.recorded.as_ref() != Some(p))
}

/// The two numbers of a stream entry ID `ms-seq`.
pub(super) fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Applies another host's event (namespace clock `clock`) to the table.
pub(super) fn apply_event(table: &SharedTable, ns: &str, kind: &EventKind, clock: u64) {
    table.change(|t| match kind {
        EventKind::Key(k) => t.key_event(ns, k, clock),
        EventKind::Tags { tags, exact } => t.tags_event(ns, tags, *exact, clock),
        EventKind::Clear => t.clear(ns, Some(clock)),
    });
}

/// Clears `ns` on this host only (a gap in its stream, or Redis unreadable too long).
pub(super) fn flush_local(table: &SharedTable, ns: &str) {
    table.change(|t| t.clear(ns, None));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seq: u64) -> Cursor {
        Cursor {
            id: format!("{seq}-0"),
            seq,
        }
    }

    #[test]
    fn a_position_past_own_events_waits_for_the_requests_issued_before_its_read() {
        let mut f = Follow::default();
        // Other hosts' events only, nothing in flight: recorded at once.
        assert_eq!(recordable(&mut f, at(3), false, 0, 0), Some(at(3)));
        f.recorded = Some(at(3));
        // An own event read after requests 0..5 were numbered, request 4 not done.
        assert_eq!(recordable(&mut f, at(5), true, 5, 4), None);
        // More events of other hosts: still waiting (the own event is before them).
        assert_eq!(recordable(&mut f, at(7), false, 6, 4), None);
        // Request 4 done, a new one (6) started since: 5 and 7 are both covered.
        assert_eq!(recordable(&mut f, at(7), false, 7, 6), Some(at(7)));
        assert!(f.pending.is_empty());
        f.recorded = Some(at(7));
        // Nothing new: nothing to record again.
        assert_eq!(recordable(&mut f, at(7), false, 7, 7), None);
    }

    #[test]
    fn when_full_the_newest_waits_in_the_last_place() {
        let mut f = Follow::default();
        for i in 0..PENDING_POSITIONS as u64 + 10 {
            assert_eq!(recordable(&mut f, at(10 + i), true, 100 + i, 0), None);
        }
        assert_eq!(f.pending.len(), PENDING_POSITIONS);
        let last = PENDING_POSITIONS as u64 + 9;
        assert_eq!(f.pending.back(), Some(&(100 + last, at(10 + last))));
        // Everything before the last waiting number done: all but the last recordable.
        let before_last = f.pending[PENDING_POSITIONS - 2].clone();
        assert_eq!(
            recordable(&mut f, at(10 + last), false, 200, 100 + last - 1),
            Some(before_last.1)
        );
        assert_eq!(
            recordable(&mut f, at(10 + last), false, 200, 200),
            Some(at(10 + last))
        );
    }
}
