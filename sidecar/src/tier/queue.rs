//! The bounded queue of writes waiting for Redis (write-behind, or Redis unreachable), the
//! task that drains it in order, and the pending counters that keep fills away from keys
//! whose latest write Redis may not have yet.

use super::{bump, Tier, WriteOutcome};
use cachekit_redis::WriteOp;
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

/// The writes waiting for Redis, oldest first.
#[derive(Default)]
pub struct Queue {
    writes: Mutex<VecDeque<WriteOp>>,
    wake: tokio::sync::Notify,
    pub pending: Pending,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, VecDeque<WriteOp>> {
        self.writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Tier {
    /// Queues `op` for Redis, unless the queue is full.
    pub(super) fn enqueue(&self, op: WriteOp) -> WriteOutcome {
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
        q.push_back(op);
        drop(q);
        bump(&self.c.queued);
        self.queue.wake.notify_one();
        WriteOutcome::Queued
    }

    /// Sends queued writes to Redis, in order, forever. One at a time: order matters within
    /// a namespace (a set then an invalidation must reach Redis in that order).
    pub(super) async fn drain(&self) {
        loop {
            let front = self.queue.lock().front().cloned();
            let Some(op) = front else {
                self.queue.wake.notified().await;
                continue;
            };
            if !self.breaker.allow() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            match self.store.write(&op, cachekit_shm::now_ms()).await {
                Ok(_) => {
                    self.breaker.success();
                    bump(&self.c.writes);
                }
                Err(e) if e.is_outage() => {
                    self.failed(&e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                Err(e) => {
                    self.failed(&e);
                    bump(&self.c.writes_dropped);
                    error!(error = %e, operation = op.name(), namespace = op.namespace(), "Redis refused a queued write; dropped");
                }
            }
            self.queue.lock().pop_front();
            self.queue.pending.done(&op);
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
