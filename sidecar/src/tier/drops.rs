//! The failed-write journal's drops, taken to Redis (see `journal.rs`, [`Drops`]): the writes
//! clients journaled while no daemon ran never reached Redis through a daemon, so Redis still
//! holds what they removed; this host's read-through, and every other host, would serve it.
//!
//! Called once at start, after the journal was applied to the table and before any client is
//! accepted. Each drop goes through the write queue ([`Tier::enqueue`]), in order before any
//! client's write, and is counted pending there until Redis has it: until then a miss of its
//! key (or, for an invalidation or a clear, of its namespace) is answered without reading
//! Redis (`redis_pending_misses`). The start then waits, at most [`SEND_WAIT`] and only while
//! the breaker is closed, for the queue to reach Redis, so that once this daemon serves, no
//! host reads the dropped records from Redis (when Redis answers).

use super::{Tier, WriteOutcome};
use crate::journal::Drops;
use cachekit_redis::WriteOp;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// How long a start waits for the journal's drops to reach Redis (Redis answers in well under
/// a millisecond a batch of 512; 2 s leaves room for a loaded machine and a large journal).
const SEND_WAIT: Duration = Duration::from_secs(2);

/// The writes that drop from Redis what `drops` dropped from the table: a delete per key, an
/// invalidation per invalidation, a clear per cleared namespace; with `drops.everything`, a
/// clear of every namespace of `carried` (the namespaces the table held at start) and of every
/// namespace a record names. At most `room` writes: past it, the namespaces with the most
/// writes become one clear each (wider, so still safe), largest first.
pub(super) fn writes_for(drops: &Drops, carried: &[String], room: usize) -> Vec<WriteOp> {
    let mut per_ns: Vec<(String, Vec<WriteOp>)> = Vec::new();
    let clear = |ns: &str| vec![WriteOp::Clear { ns: ns.to_owned() }];
    for (ns, d) in &drops.namespaces {
        let ops = if d.clear || drops.everything {
            clear(ns)
        } else {
            let keys = d.keys.iter().map(|k| WriteOp::Delete {
                ns: ns.clone(),
                key: k.clone(),
            });
            let invs = d
                .invalidations
                .iter()
                .map(|(tags, exact)| WriteOp::Invalidate {
                    ns: ns.clone(),
                    tags: tags.clone(),
                    exact: *exact,
                });
            keys.chain(invs).collect()
        };
        per_ns.push((ns.clone(), ops));
    }
    if drops.everything {
        for ns in carried {
            if !drops.namespaces.contains_key(ns) {
                per_ns.push((ns.clone(), clear(ns)));
            }
        }
    }
    let mut total: usize = per_ns.iter().map(|(_, o)| o.len()).sum();
    if total > room {
        per_ns.sort_by_key(|(_, o)| std::cmp::Reverse(o.len()));
        for (ns, ops) in per_ns.iter_mut() {
            if total <= room || ops.len() <= 1 {
                break;
            }
            total -= ops.len() - 1;
            *ops = clear(ns);
        }
    }
    per_ns.into_iter().flat_map(|(_, o)| o).collect()
}

impl Tier {
    /// Queues for Redis the drops of the failed-write journal (see the module); `carried`: the
    /// namespaces the table held at start ([`Tier::resume`]). Waits at most [`SEND_WAIT`] for
    /// them to reach Redis.
    pub fn send_journal_drops(&self, drops: &Drops, carried: &[String]) {
        if drops.is_empty() {
            return;
        }
        let room = self.cfg.queue.saturating_sub(self.queue.len());
        let writes = writes_for(drops, carried, room);
        let (mut queued, mut refused) = (0u64, 0u64);
        for op in writes {
            let ns = op.namespace().to_owned();
            match self.enqueue(op) {
                WriteOutcome::Failed(why) => {
                    refused += 1;
                    error!(namespace = %ns, "a drop of the failed-write journal cannot be sent to Redis: {why}; until it is cleared there (`cachekit clear` on any host), hosts may read from Redis what a failed write removed");
                }
                _ => queued += 1,
            }
        }
        self.c.journal_drops.fetch_add(queued, Ordering::Relaxed);
        let start = Instant::now();
        while self.queue.len() > 0
            && start.elapsed() < SEND_WAIT
            && self.breaker.state() == super::breaker::State::Closed
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        let left = self.queue.len();
        if left > 0 {
            warn!(
                writes = left,
                "the failed-write journal's drops have not reached Redis yet; they stay queued (this host answers misses for their keys until Redis has them)"
            );
        }
        info!(
            queued,
            refused,
            everything = drops.everything,
            elapsed_ms = start.elapsed().as_millis() as u64,
            "sent {queued} drop(s) of the failed-write journal to Redis"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cachekit_proto::journal::JournalRecord;

    fn drops(records: &[JournalRecord]) -> Drops {
        let mut d = Drops::default();
        for r in records {
            d.add(r);
        }
        d
    }

    fn del(ns: &str, key: &str) -> JournalRecord {
        JournalRecord::DropKey {
            namespace: ns.into(),
            key: key.as_bytes().to_vec(),
        }
    }

    #[test]
    fn each_record_becomes_its_redis_write() {
        let d = drops(&[
            del("a", "k"),
            del("a", "k"),
            JournalRecord::Invalidate {
                namespace: "a".into(),
                tags: vec!["t".into()],
                exact: true,
            },
            JournalRecord::ClearNamespace {
                namespace: "b".into(),
            },
            del("b", "x"),
        ]);
        let w = writes_for(&d, &["c".into()], 100);
        assert_eq!(
            w,
            vec![
                WriteOp::Delete {
                    ns: "a".into(),
                    key: b"k".to_vec()
                },
                WriteOp::Invalidate {
                    ns: "a".into(),
                    tags: vec!["t".into()],
                    exact: true
                },
                WriteOp::Clear { ns: "b".into() },
            ],
            "a key twice is one delete; a cleared namespace is one clear; carried namespaces only with everything"
        );
    }

    #[test]
    fn clear_all_clears_the_carried_and_the_named_namespaces() {
        let d = drops(&[del("a", "k"), JournalRecord::ClearAll]);
        let mut w = writes_for(&d, &["a".into(), "c".into()], 100);
        w.sort_by(|x, y| x.namespace().cmp(y.namespace()));
        assert_eq!(
            w,
            vec![
                WriteOp::Clear { ns: "a".into() },
                WriteOp::Clear { ns: "c".into() }
            ]
        );
    }

    #[test]
    fn too_many_writes_become_clears_largest_first() {
        let mut recs: Vec<_> = (0..10).map(|i| del("big", &format!("k{i}"))).collect();
        recs.push(del("small", "k"));
        let w = writes_for(&drops(&recs), &[], 5);
        assert!(w.contains(&WriteOp::Clear { ns: "big".into() }));
        assert!(w.contains(&WriteOp::Delete {
            ns: "small".into(),
            key: b"k".to_vec()
        }));
        assert_eq!(w.len(), 2);
        // Past the per-namespace bound the namespace is one clear already.
        let recs: Vec<_> = (0..=crate::journal::MAX_DROPS_PER_NAMESPACE)
            .map(|i| del("n", &format!("k{i}")))
            .collect();
        assert_eq!(
            writes_for(&drops(&recs), &[], usize::MAX),
            vec![WriteOp::Clear { ns: "n".into() }]
        );
    }
}
