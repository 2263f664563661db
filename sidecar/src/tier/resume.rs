//! A warm restart with a Redis tier: before anyone is served, bring every namespace of the
//! carried (or snapshot-loaded) table up to date with what other hosts did while no daemon
//! followed its stream, or clear it.
//!
//! The previous daemon recorded in its segment, per followed namespace, the last stream entry
//! its table reflected (`follow.rs`, `note_position`): the entry's ID and its namespace clock.
//! For each namespace with a live entry in the table:
//!
//! - **No recorded position**: cleared (its stream was never read, or the 64 records were
//!   taken).
//! - **Redis unreachable** (this call or an earlier one of the start): cleared. The table is
//!   not served before this runs, so no carried entry of a followed namespace is ever served
//!   unchecked; the outage rule (`redis_stale_bound_ms`) is for a daemon that was following.
//! - **The namespace clock in Redis is below the recorded one**: Redis lost its data (restart
//!   without persistence, flush) or is another primary: what happened is unknown; cleared.
//! - **The recorded entry is gone from the stream, or has another clock** (`XRANGE id id`):
//!   cleared. Entry IDs order one primary's history only: after a failover that lost the
//!   stream's tail while no daemon followed, new entries can take IDs below the recorded one
//!   while the clock runs back up to the recorded value, and reading after the ID would miss
//!   them. (A recorded `0-0`, an empty stream then, needs no check: every entry is after it.)
//!   An entry trimmed by `redis_stream_maxlen` reads the same way (cleared).
//! - Otherwise the events after the position are read (`XRANGE`, 1000 a call, until the clock
//!   read first is reached) and applied
//!   exactly as the follower applies another host's, *whatever their origin*: the previous
//!   daemon's own writes may have reached Redis without reaching its table (killed between
//!   the two), and applying an event only ever drops entries. Their clocks must run on from
//!   the recorded one without a jump and reach the namespace clock read first; a jump means
//!   events were trimmed (`redis_stream_maxlen`) or lost before this host read them: cleared.
//!   Then the namespace is followed from where the replay ended.
//!
//! A `clear` by another host is an event of the stream, so it is replayed like the others.
//! The sweep raising a namespace's floor is not an event, and needs none: it only passes
//! records that were restamped (still valid) or already invalid, so it changes no answer a
//! replayed table gives. A failover while this host was down: the hosts that saw it raised
//! the namespace clock and cleared the namespace in Redis (`follow.rs`, `after_failover`),
//! which reads here as a jump or a clear event.

use super::follow::{apply_event, flush_local, stream_id, BATCH};
use super::{bump, Follow, Tier};
use crate::table::SharedTable;
use cachekit_redis::{Continuity, Cursor, StoreError};
use cachekit_shm::StreamPosition;
use std::collections::HashMap;
use std::time::Instant;
use tracing::{info, warn};

/// Why a namespace is cleared instead of replayed.
const NO_POSITION: &str = "no stream position recorded for it";
const UNREACHABLE: &str = "Redis is unreachable";
const CLOCK_BEHIND: &str =
    "the namespace clock in Redis is below the recorded one (Redis lost its data, or is another primary)";
const POSITION_GONE: &str =
    "the recorded stream entry is gone from the stream (trimmed, or lost in a failover no daemon saw: later events may have IDs below it)";
const MOVED: &str = "the recorded stream entry has another clock value (another primary's history)";
const TRIMMED: &str =
    "events after the recorded position are gone from the stream (trimmed, or lost) before they could be replayed";

impl Tier {
    /// Replays (or clears) every namespace of `table` from the positions its previous daemon
    /// recorded; call before the table is served and before [`Tier::start`]. See the module.
    /// Returns the namespaces the table held (for [`Tier::send_journal_drops`]).
    pub fn resume(&self, table: &SharedTable) -> Vec<String> {
        let started = Instant::now();
        let (names, positions) = table.read(|t| (t.namespaces(), t.stream_positions()));
        if names.is_empty() && positions.is_empty() {
            return names;
        }
        let by_hash: HashMap<u64, StreamPosition> =
            positions.iter().map(|p| (p.namespace_hash, *p)).collect();
        let mut kept = Vec::new();
        let mut reachable = true;
        let mut events = 0u64;
        let mut cleared = 0u64;
        for ns in &names {
            let why = match by_hash.get(&StreamPosition::namespace_hash(ns)) {
                None => Some(NO_POSITION),
                Some(_) if !reachable => Some(UNREACHABLE),
                Some(p) => match self.block_on(self.replay(table, ns, p)) {
                    Ok(Ok((cursor, n))) => {
                        events += n;
                        let (id_ms, id_seq) = stream_id(&cursor.id).unwrap_or((0, 0));
                        kept.push(StreamPosition {
                            namespace_hash: p.namespace_hash,
                            id_ms,
                            id_seq,
                            clock: cursor.seq,
                        });
                        self.follows().insert(
                            ns.clone(),
                            Follow {
                                cursor: Some(cursor.clone()),
                                recorded: Some(cursor),
                                ..Follow::default()
                            },
                        );
                        None
                    }
                    Ok(Err(why)) => Some(why),
                    Err(e) => {
                        self.failed(&e);
                        warn!(error = %e, "cannot read the invalidation streams to replay them");
                        reachable = false;
                        Some(UNREACHABLE)
                    }
                },
            };
            if let Some(why) = why {
                flush_local(table, ns);
                cleared += 1;
                bump(&self.c.resume_clears);
                warn!(
                    namespace = ns,
                    "warm restart: cleared the namespace's carried entries: {why}"
                );
            }
        }
        // From here the table reflects each kept namespace up to its replay's end; the others
        // have no position until the follower records one.
        table.change(|t| t.reset_stream_positions(&kept));
        self.c
            .resume_events
            .fetch_add(events, std::sync::atomic::Ordering::Relaxed);
        self.c
            .resumed_namespaces
            .fetch_add(kept.len() as u64, std::sync::atomic::Ordering::Relaxed);
        info!(
            kept = kept.len(),
            cleared,
            events,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "warm restart: replayed {events} invalidation events onto {} carried namespaces in {:?}; cleared {cleared}",
            kept.len(),
            started.elapsed()
        );
        names
    }

    /// Applies the events of `ns` after `p` to the table. `Ok(Ok((where it ended, events
    /// applied)))`, `Ok(Err(why it cannot be replayed))`, or the store's error.
    async fn replay(
        &self,
        table: &SharedTable,
        ns: &str,
        p: &StreamPosition,
    ) -> Result<Result<(Cursor, u64), &'static str>, StoreError> {
        // The clock first: every event up to it must be read below.
        let end = self.store.follow_start(ns).await?;
        if end.seq < p.clock {
            return Ok(Err(CLOCK_BEHIND));
        }
        let mut cur = Cursor {
            id: format!("{}-{}", p.id_ms, p.id_seq),
            seq: p.clock,
        };
        // The recorded entry must still be there with its clock: entry IDs only order one
        // primary's history. After a failover that lost the stream's tail while no daemon
        // followed (so nobody cleared the namespace), new entries can take IDs below the
        // recorded one (the new primary's clock behind the old one's) and the clock can run
        // back up to the recorded value: reading after the ID would miss them. (`0-0`: the
        // stream was empty then; every entry comes after it.)
        if (p.id_ms, p.id_seq) != (0, 0) {
            match self.store.entry_at(ns, &cur.id).await? {
                Some(e) if e.seq == p.clock => {}
                Some(_) => return Ok(Err(MOVED)),
                None => return Ok(Err(POSITION_GONE)),
            }
        }
        // Read up to where the stream ended at the start (`end`): later entries are the
        // follower's.
        let mut n = 0u64;
        while cur.seq < end.seq {
            let events = self.store.read_since(ns, &cur, BATCH).await?;
            let len = events.len();
            for e in events {
                if cur.continuity(e.seq) == Continuity::Gap {
                    return Ok(Err(TRIMMED));
                }
                apply_event(table, ns, &e.kind, e.seq);
                n += 1;
                cur = Cursor {
                    id: e.id,
                    seq: e.seq,
                };
            }
            if len < BATCH {
                break;
            }
        }
        if cur.seq < end.seq {
            // The stream ends before the clock: its last entries are gone.
            return Ok(Err(TRIMMED));
        }
        Ok(Ok((cur, n)))
    }
}
