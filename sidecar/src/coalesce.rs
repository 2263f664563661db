//! Coalescing of concurrent misses: one lookup per key at a time, however many clients
//! ask. The first asker (the leader) runs the lookup; the others wait for its answer.

use cachekit_proto::{ErrorCode, Reply};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long a follower waits for the leader before giving up with UNAVAILABLE.
const FOLLOWER_WAIT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Flight {
    /// The daemon's write generation when the lookup started.
    gen: u64,
    done: Mutex<Option<Reply>>,
    cv: Condvar,
}

type FlightKey = (String, Vec<u8>);

#[derive(Default)]
pub struct Coalescer {
    inflight: Mutex<HashMap<FlightKey, Arc<Flight>>>,
}

impl Coalescer {
    /// Runs `load` for `(ns, key)` unless a lookup of the same key that started at the same
    /// write generation `gen` is already running, in which case its answer is shared.
    /// Returns the answer and whether it was shared.
    pub fn fetch(
        &self,
        ns: &str,
        key: &[u8],
        gen: u64,
        load: impl FnOnce() -> Reply,
    ) -> (Reply, bool) {
        let id = (ns.to_owned(), key.to_vec());
        let (flight, leader) = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(&id) {
                Some(f) if f.gen == gen => (f.clone(), false),
                _ => {
                    // None running, or one that may predate a write: start a fresh one (the
                    // older one still answers its own followers).
                    let f = Arc::new(Flight {
                        gen,
                        ..Flight::default()
                    });
                    map.insert(id.clone(), f.clone());
                    (f, true)
                }
            }
        };
        if leader {
            // Removes the flight even if `load` panics, so followers are not stranded.
            struct Done<'a>(&'a Coalescer, &'a FlightKey, &'a Arc<Flight>, Option<Reply>);
            impl Drop for Done<'_> {
                fn drop(&mut self) {
                    let mut map = self.0.inflight.lock().unwrap_or_else(|p| p.into_inner());
                    if map.get(self.1).is_some_and(|f| Arc::ptr_eq(f, self.2)) {
                        map.remove(self.1);
                    }
                    drop(map);
                    let r = self
                        .3
                        .take()
                        .unwrap_or_else(|| Reply::error(ErrorCode::Internal, "the lookup failed"));
                    *self.2.done.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                    self.2.cv.notify_all();
                }
            }
            let mut guard = Done(self, &id, &flight, None);
            let reply = load();
            guard.3 = Some(reply.clone());
            drop(guard);
            return (reply, false);
        }
        let done = flight.done.lock().unwrap_or_else(|p| p.into_inner());
        let (done, _) = flight
            .cv
            .wait_timeout_while(done, FOLLOWER_WAIT, |d| d.is_none())
            .unwrap_or_else(|p| p.into_inner());
        match &*done {
            Some(r) => (r.clone(), true),
            None => (
                Reply::error(
                    ErrorCode::Unavailable,
                    "timed out waiting for a concurrent lookup of the same key",
                ),
                true,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;

    #[test]
    fn concurrent_fetches_of_one_key_run_one_lookup() {
        let c = Arc::new(Coalescer::default());
        let loads = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (c, loads, gate) = (c.clone(), loads.clone(), gate.clone());
                std::thread::spawn(move || {
                    gate.wait();
                    c.fetch("ns", b"k", 0, || {
                        loads.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        Reply::FetchMiss
                    })
                })
            })
            .collect();
        let shared = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|(_, s)| *s)
            .count();
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert_eq!(shared, 7);
    }

    #[test]
    fn a_fetch_after_a_write_does_not_join_an_older_lookup() {
        let c = Arc::new(Coalescer::default());
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let c2 = c.clone();
        let old = std::thread::spawn(move || {
            c2.fetch("ns", b"k", 0, || {
                started_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(200));
                Reply::FetchMiss
            })
        });
        started_rx.recv().unwrap();
        // A write happened (generation 1): this fetch must run its own lookup.
        let (r, shared) = c.fetch("ns", b"k", 1, || Reply::Ok);
        assert!(!shared);
        assert_eq!(r, Reply::Ok);
        assert_eq!(old.join().unwrap(), (Reply::FetchMiss, false));
    }
}
