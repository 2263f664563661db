//! The bounded queue of writes waiting for Redis (write-behind, or Redis unreachable), the
//! task that drains it in order (batches of up to [`MAX_BATCH`] writes per round trip), the
//! write-through callers waiting behind a backlog, and the pending counters that keep fills
//! away from keys whose latest write Redis may not have yet.

use super::{bump, Tier, WriteOutcome};
use cachekit_redis::{WriteOp, Written, MAX_BATCH};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
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
    reply: Option<Reply>,
}

/// The writes waiting for Redis, oldest first.
#[derive(Default)]
pub struct Queue {
    writes: Mutex<VecDeque<Queued>>,
    wake: tokio::sync::Notify,
    pub pending: Pending,
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
        q.push_back(Queued { op, reply });
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
    /// front write's namespace (one script runs in one namespace's slot).
    fn next_batch(&self) -> Vec<WriteOp> {
        let q = self.queue.lock();
        let Some(first) = q.front() else {
            return Vec::new();
        };
        let ns = first.op.namespace();
        q.iter()
            .take(MAX_BATCH)
            .take_while(|w| w.op.namespace() == ns)
            .map(|w| w.op.clone())
            .collect()
    }

    /// Removes the front write (sent, or refused for good) and tells its waiter.
    fn pop_front(&self, result: Result<Written, String>) {
        let Some(w) = self.queue.lock().pop_front() else {
            return;
        };
        self.queue.pending.done(&w.op);
        if let Some(reply) = w.reply {
            let _ = reply.send(result); // the caller may have stopped waiting
        }
    }

    /// Sends queued writes to Redis, in order, forever: a batch of up to [`MAX_BATCH`]
    /// consecutive writes of one namespace per round trip (one script applying them in
    /// order), so a backlog drains much faster than writes arrive. Order matters within a
    /// namespace (a set then an invalidation must reach Redis in that order); the drainer is
    /// the only one that removes writes, and it removes them in order.
    pub(super) async fn drain(&self) {
        loop {
            let batch = self.next_batch();
            if batch.is_empty() {
                self.queue.wake.notified().await;
                continue;
            }
            if !self.breaker.allow() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            match self.store.write_batch(&batch, cachekit_shm::now_ms()).await {
                Ok(written) => {
                    self.breaker.success();
                    bump(&self.c.drain_batches);
                    // A batch is one namespace. Its clocks count as this host's writes, so
                    // a failover that lost them is seen (`follow.rs`, `after_failover`).
                    let ns = batch[0].namespace().to_owned();
                    for w in written {
                        self.wrote(&ns, w.clock);
                        bump(&self.c.writes);
                        self.pop_front(Ok(w));
                    }
                }
                Err(e) if e.is_outage() => {
                    // Nothing of the batch, or all of it, was applied (the script is atomic);
                    // sending it again applies it again in the same order, which leaves
                    // Redis as once would.
                    self.failed(&e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    // Refused (ACL, script error): find the write Redis refuses by sending
                    // them one at a time (the script stopped at it: those before it are
                    // applied again, in order, which changes nothing).
                    self.failed(&e);
                    self.drain_one_by_one(batch).await;
                }
            }
        }
    }

    async fn drain_one_by_one(&self, batch: Vec<WriteOp>) {
        for op in batch {
            match self.store.write(&op, cachekit_shm::now_ms()).await {
                Ok(w) => {
                    self.breaker.success();
                    self.wrote(op.namespace(), w.clock);
                    bump(&self.c.writes);
                    self.pop_front(Ok(w));
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
