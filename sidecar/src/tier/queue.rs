//! The bounded queue of writes waiting for Redis (write-behind, or Redis unreachable), the
//! task that drains it in order (batches of up to [`MAX_BATCH`] writes per round trip), the
//! write-through callers waiting behind a backlog, the pending counters that keep fills
//! away from keys whose latest write Redis may not have yet, and the lanes that make sending
//! a write again harmless ([`Sequence`]: Redis skips what a lane already applied).

use super::{bump, Tier, WriteOutcome};
use cachekit_redis::{Sequence, Sequenced, WriteOp, Written, MAX_BATCH, RESEND_WINDOW};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tracing::{error, warn};

/// Slots of the pending counters, per namespace and per key. A collision only costs a fill
/// (answered as a miss instead), never a stale value.
const NS_SLOTS: usize = 1024;
const KEY_SLOTS: usize = 8192;

fn slot<T: std::hash::Hash + ?Sized>(x: &T, slots: usize) -> usize {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    x.hash(&mut h);
    (h.finish() % slots as u64) as usize
}

/// Writes queued for Redis but not acknowledged by it yet.
pub struct Pending {
    ns: Box<[AtomicU32]>,
    key: Box<[AtomicU32]>,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            ns: (0..NS_SLOTS).map(|_| AtomicU32::new(0)).collect(),
            key: (0..KEY_SLOTS).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

impl Pending {
    fn counter(&self, op: &WriteOp) -> &AtomicU32 {
        match op {
            WriteOp::Set { ns, key, .. } | WriteOp::Delete { ns, key } => {
                &self.key[slot(&(ns.as_str(), key.as_slice()), KEY_SLOTS)]
            }
            WriteOp::Invalidate { ns, .. } | WriteOp::Clear { ns } => {
                &self.ns[slot(ns.as_str(), NS_SLOTS)]
            }
        }
    }

    // SeqCst: a fill checks `any` under the table lock after a queued write counted itself
    // here and before that write changed the table; the total order makes the fill see it.
    fn add(&self, op: &WriteOp) {
        self.counter(op).fetch_add(1, Ordering::SeqCst);
    }

    fn done(&self, op: &WriteOp) {
        self.counter(op).fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether Redis may still lack a write to this key or its namespace.
    pub fn any(&self, ns: &str, key: &[u8]) -> bool {
        self.ns[slot(ns, NS_SLOTS)].load(Ordering::SeqCst) != 0
            || self.key[slot(&(ns, key), KEY_SLOTS)].load(Ordering::SeqCst) != 0
    }
}

/// Who waits for a queued write to reach Redis (a write-through caller behind a backlog),
/// and hears what Redis said.
type Reply = std::sync::mpsc::Sender<Result<Written, String>>;

struct Queued {
    op: WriteOp,
    /// Its place in its lane: lane 0 (the drainer's, numbered in queue order) for a write
    /// queued at once; a write-through send's own lane for a send that failed or timed out.
    seq: Sequence,
    /// When it was first sent (Redis may have applied it since, unseen): the drainer sends a
    /// set as a delete once this is older than [`RESEND_WINDOW`].
    first_sent: Option<Instant>,
    reply: Option<Reply>,
}

/// The lanes of write-through sends (lane 0 is the drainer's) and the sequence numbers of
/// every lane. A lane is taken for one send and given back once its write is resolved (the
/// answer came, Redis refused it, or the queue sent or dropped it), so each lane has at most
/// one unresolved write and sends in increasing numbers: what [`Sequence`] needs. Lanes are
/// reused (a stack), so their count stays at the most sends ever in flight at once.
pub struct Lanes {
    free: Mutex<Vec<u32>>,
    made: AtomicU32,
    /// One counter for every lane: increasing within each lane is all that is needed.
    next: AtomicU64,
}

impl Default for Lanes {
    fn default() -> Self {
        Lanes {
            free: Mutex::new(Vec::new()),
            made: AtomicU32::new(0),
            next: AtomicU64::new(1),
        }
    }
}

impl Lanes {
    fn number(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// A free lane of its own for one write-through send, with the write's number.
    pub fn take(&self) -> Sequence {
        let lane = self
            .free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_else(|| self.made.fetch_add(1, Ordering::Relaxed) + 1);
        Sequence {
            lane,
            seq: self.number(),
        }
    }

    /// Gives a write-through lane back once its write is resolved.
    pub fn give_back(&self, seq: Sequence) {
        if seq.lane != 0 {
            self.free
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(seq.lane);
        }
    }
}

/// The writes waiting for Redis, oldest first.
#[derive(Default)]
pub struct Queue {
    writes: Mutex<VecDeque<Queued>>,
    wake: tokio::sync::Notify,
    pub pending: Pending,
    pub lanes: Lanes,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Queued>> {
        self.writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Tier {
    /// Queues `op` for Redis, unless the queue is full; with `reply`, the drainer says there
    /// what Redis answered once the write got there.
    pub(super) fn enqueue_with(&self, op: WriteOp, reply: Option<Reply>) -> WriteOutcome {
        self.push(op, None, reply)
    }

    /// Queues a write whose write-through send failed or timed out (Redis may have applied
    /// it): it keeps its lane and number, so the drainer's send of it is skipped if the first
    /// one was applied.
    pub(super) fn enqueue_sent(&self, w: Sequenced, sent: Instant) -> WriteOutcome {
        let seq = w.seq;
        let out = self.push(w.op, Some((seq, sent)), None);
        if matches!(out, WriteOutcome::Failed(_)) {
            // Not queued: the lane is free again. Should the first send still be applied
            // late, after a later send of the lane, it is skipped: a write the caller was
            // told failed.
            self.queue.lanes.give_back(seq);
        }
        out
    }

    fn push(
        &self,
        op: WriteOp,
        sent: Option<(Sequence, Instant)>,
        reply: Option<Reply>,
    ) -> WriteOutcome {
        let mut q = self.queue.lock();
        if q.len() >= self.cfg.queue {
            bump(&self.c.queue_full);
            return WriteOutcome::Failed(format!(
                "Redis at {} is unreachable and {} writes already wait for it (redis_queue); the {} was applied on this host only: retry later, or raise redis_queue",
                self.cfg.target.shown,
                q.len(),
                op.name()
            ));
        }
        self.queue.pending.add(&op);
        // Lane 0 is numbered under the queue's lock: in queue order, which is the drainer's
        // sending order.
        let (seq, first_sent) = match sent {
            Some((seq, at)) => (seq, Some(at)),
            None => (
                Sequence {
                    lane: 0,
                    seq: self.queue.lanes.number(),
                },
                None,
            ),
        };
        q.push_back(Queued {
            op,
            seq,
            first_sent,
            reply,
        });
        drop(q);
        bump(&self.c.queued);
        self.queue.wake.notify_one();
        WriteOutcome::Queued
    }

    /// Queues `op` for Redis and acknowledges it at once (write-behind, or Redis down).
    pub(super) fn enqueue(&self, op: WriteOp) -> WriteOutcome {
        self.enqueue_with(op, None)
    }

    /// A write-through write while writes are still queued (Redis is back, the drainer is
    /// catching up): it goes behind them, and the caller waits for the drainer to send it,
    /// at most `redis_timeout_ms`, so a backlog is never overtaken and cannot keep growing
    /// while Redis answers. Answers Redis's result, or `Queued` when the wait ran out (the
    /// write stays queued, acknowledged as in an outage).
    pub(super) fn write_behind_backlog(&self, op: WriteOp) -> WriteOutcome {
        let ns = op.namespace().to_owned();
        let (tx, rx) = std::sync::mpsc::channel();
        match self.enqueue_with(op, Some(tx)) {
            WriteOutcome::Queued => {}
            other => return other,
        }
        bump(&self.c.backlog_waits);
        match rx.recv_timeout(self.cfg.target.timeout) {
            // Skipped: an earlier send of it was applied, at a clock not known here.
            Ok(Ok(w)) if w.clock == 0 => WriteOutcome::Queued,
            Ok(Ok(w)) => {
                self.wrote(&ns, w.clock);
                WriteOutcome::Done {
                    existed: w.existed,
                    clock: w.clock,
                }
            }
            Ok(Err(message)) => WriteOutcome::Failed(message),
            Err(_) => {
                bump(&self.c.backlog_wait_timeouts);
                WriteOutcome::Queued
            }
        }
    }

    /// The next batch: up to [`MAX_BATCH`] writes from the front of the queue, all of the
    /// front write's namespace (one script runs in one namespace's slot), with their places
    /// in their lanes. Each is marked sent now if it never was; a set first sent more than
    /// [`RESEND_WINDOW`] ago goes as a delete of its key (see [`RESEND_WINDOW`]).
    fn next_batch(&self) -> Vec<Sequenced> {
        let mut q = self.queue.lock();
        let Some(first) = q.front() else {
            return Vec::new();
        };
        let ns = first.op.namespace().to_owned();
        let now = Instant::now();
        q.iter_mut()
            .take(MAX_BATCH)
            .take_while(|w| w.op.namespace() == ns)
            .map(|w| {
                let first_sent = *w.first_sent.get_or_insert(now);
                Sequenced {
                    op: resend_form(&w.op, now.duration_since(first_sent)),
                    seq: w.seq,
                }
            })
            .collect()
    }

    /// Removes the front write (sent, or refused for good), frees its lane and tells its
    /// waiter.
    fn pop_front(&self, result: Result<Written, String>) {
        let Some(w) = self.queue.lock().pop_front() else {
            return;
        };
        self.queue.pending.done(&w.op);
        self.queue.lanes.give_back(w.seq);
        if let Some(reply) = w.reply {
            let _ = reply.send(result); // the caller may have stopped waiting
        }
    }

    /// One write's answer: counted, and its clock noted as this host's (a failover that
    /// lost it is then seen: `follow.rs`, `after_failover`). Clock 0: skipped, an earlier
    /// send of it was applied.
    fn drained(&self, ns: &str, w: Written) {
        if w.clock == 0 {
            bump(&self.c.resends_skipped);
        } else {
            self.wrote(ns, w.clock);
            bump(&self.c.writes);
        }
        self.pop_front(Ok(w));
    }

    /// Sends queued writes to Redis, in order, forever: a batch of up to [`MAX_BATCH`]
    /// consecutive writes of one namespace per round trip (one script applying them in
    /// order), so a backlog drains much faster than writes arrive. Order matters within a
    /// namespace (a set then an invalidation must reach Redis in that order); the drainer is
    /// the only one that removes writes, and it removes them in order.
    pub(super) async fn drain(&self) {
        loop {
            if self.queue.len() == 0 {
                self.queue.wake.notified().await;
                continue;
            }
            // Asked before taking a batch: `next_batch` marks its writes sent, which a write
            // held back by the open breaker is not (a set marked sent more than
            // `RESEND_WINDOW` ago goes as a delete).
            if !self.breaker.allow() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            // Not empty: only the drainer removes writes.
            let batch = self.next_batch();
            match self
                .store
                .write_sequenced(&batch, cachekit_shm::now_ms())
                .await
            {
                Ok(written) => {
                    self.breaker.success();
                    bump(&self.c.drain_batches);
                    let ns = batch[0].op.namespace();
                    for w in written {
                        self.drained(ns, w);
                    }
                }
                Err(e) if e.is_outage() => {
                    // Redis may have applied all of the batch or none of it (the script is
                    // atomic) and the answer was lost: sending it again is harmless, Redis
                    // skips every write the first send applied (`Sequence`).
                    self.failed(&e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    // Refused (ACL, script error): find the write Redis refuses by sending
                    // them one at a time (the script stopped at it, and recorded the numbers
                    // of those before it, which are skipped now).
                    self.failed(&e);
                    self.drain_one_by_one(batch).await;
                }
            }
        }
    }

    async fn drain_one_by_one(&self, batch: Vec<Sequenced>) {
        for w in batch {
            let op = &w.op;
            match self
                .store
                .write_sequenced(std::slice::from_ref(&w), cachekit_shm::now_ms())
                .await
            {
                Ok(written) => {
                    self.breaker.success();
                    for done in written {
                        self.drained(op.namespace(), done);
                    }
                }
                Err(e) if e.is_outage() => {
                    self.failed(&e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    return;
                }
                Err(e) => {
                    self.failed(&e);
                    bump(&self.c.writes_dropped);
                    error!(error = %e, operation = op.name(), namespace = op.namespace(), "Redis refused a queued write; dropped");
                    self.pop_front(Err(format!(
                        "{e} (the {} was applied on this host only)",
                        op.name()
                    )));
                }
            }
        }
    }

    /// Waits (at most `limit`) for the queued writes to reach Redis; logs what is left.
    pub fn finish_queue(&self, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        while self.queue.len() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let left = self.queue.len();
        if left > 0 {
            warn!(
                writes = left,
                "stopping with writes that never reached Redis (it is unreachable); other hosts will not see them"
            );
        }
    }
}

/// What the drainer sends for `op`, first sent `age` ago: itself, or, for a set first sent
/// more than [`RESEND_WINDOW`] ago, a delete of its key (Redis may have forgotten that the
/// first send was applied; a delete is a miss on every host, never an older value).
fn resend_form(op: &WriteOp, age: Duration) -> WriteOp {
    match op {
        WriteOp::Set { ns, key, .. } if age > RESEND_WINDOW => WriteOp::Delete {
            ns: ns.clone(),
            key: key.clone(),
        },
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cachekit_redis::Record;

    #[test]
    fn only_old_sets_are_sent_as_deletes() {
        let set = WriteOp::Set {
            ns: "n".into(),
            key: b"k".to_vec(),
            record: Record::new(1, None, 0, vec![], b"v".to_vec()),
        };
        let inv = WriteOp::Invalidate {
            ns: "n".into(),
            tags: vec!["t".into()],
            exact: false,
        };
        let fresh = RESEND_WINDOW - Duration::from_secs(1);
        let old = RESEND_WINDOW + Duration::from_secs(1);
        assert_eq!(resend_form(&set, fresh), set);
        assert_eq!(
            resend_form(&set, old),
            WriteOp::Delete {
                ns: "n".into(),
                key: b"k".to_vec()
            }
        );
        assert_eq!(resend_form(&inv, old), inv);
    }

    /// A write held back by the open breaker is not marked sent: marked, it would go to
    /// Redis as a delete after an outage longer than `RESEND_WINDOW`, though never sent.
    #[test]
    fn writes_held_back_by_the_open_breaker_are_not_marked_sent() {
        use crate::config::{RedisConfig, WriteMode};
        use cachekit_redis::Target;
        use std::sync::Arc;
        // Nothing is sent: the breaker is open for the whole test (port 1 answers nothing).
        let t = Arc::new(
            Tier::new(RedisConfig {
                target: Target::parse("redis://127.0.0.1:1", false, Duration::from_millis(300))
                    .unwrap(),
                write_mode: WriteMode::Behind,
                breaker_failures: 1,
                breaker_open: Duration::from_secs(600),
                queue: 100,
                stream_maxlen: 10_000,
                poll: Duration::from_secs(1),
                stale_bound: None,
                sweep: None,
            })
            .unwrap(),
        );
        t.breaker.failure();
        assert!(!t.breaker.allow(), "the breaker is open");
        let set = WriteOp::Set {
            ns: "n".into(),
            key: b"k".to_vec(),
            record: Record::new(1, None, 0, vec![], b"v".to_vec()),
        };
        assert!(matches!(t.enqueue(set), WriteOutcome::Queued));
        let d = t.clone();
        t.rt.spawn(async move { d.drain().await });
        // The drainer looks every 20 ms while the breaker is open.
        std::thread::sleep(Duration::from_millis(200));
        let q = t.queue.lock();
        assert_eq!(q.len(), 1);
        assert!(
            q[0].first_sent.is_none(),
            "a write the open breaker held back was marked sent"
        );
    }

    #[test]
    fn lanes_are_reused_and_numbers_increase() {
        let l = Lanes::default();
        let a = l.take();
        let b = l.take();
        assert_ne!(a.lane, b.lane);
        assert!(a.lane != 0 && b.lane != 0, "lane 0 is the drainer's");
        l.give_back(a);
        let c = l.take();
        assert_eq!(c.lane, a.lane, "a free lane is reused");
        assert!(c.seq > b.seq && b.seq > a.seq);
        l.give_back(Sequence { lane: 0, seq: 9 });
        assert_ne!(l.take().lane, 0, "lane 0 is never handed out");
    }
}
