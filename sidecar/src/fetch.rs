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
    done: Mutex<Option<Reply>>,
    cv: Condvar,
}

#[derive(Default)]
pub struct Coalescer {
    inflight: Mutex<HashMap<(String, Vec<u8>), Arc<Flight>>>,
}

impl Coalescer {
    /// Runs `load` for `(ns, key)` unless a lookup of the same key is already running, in
    /// which case its answer is shared. Returns the answer and whether it was shared.
    pub fn fetch(&self, ns: &str, key: &[u8], load: impl FnOnce() -> Reply) -> (Reply, bool) {
        let id = (ns.to_owned(), key.to_vec());
        let (flight, leader) = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(&id) {
                Some(f) => (f.clone(), false),
                None => {
                    let f = Arc::new(Flight::default());
                    map.insert(id.clone(), f.clone());
                    (f, true)
                }
            }
        };
        if leader {
            // Removes the flight even if `load` panics, so followers are not stranded.
            struct Done<'a>(&'a Coalescer, &'a (String, Vec<u8>), &'a Flight, Option<Reply>);
            impl Drop for Done<'_> {
                fn drop(&mut self) {
                    self.0.inflight.lock().unwrap_or_else(|p| p.into_inner()).remove(self.1);
                    let r = self.3.take().unwrap_or_else(|| Reply::error(ErrorCode::Internal, "the lookup failed"));
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
            None => (Reply::error(ErrorCode::Unavailable, "timed out waiting for a concurrent lookup of the same key"), true),
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
                    c.fetch("ns", b"k", || {
                        loads.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        Reply::FetchMiss
                    })
                })
            })
            .collect();
        let shared = threads.into_iter().map(|t| t.join().unwrap()).filter(|(_, s)| *s).count();
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert_eq!(shared, 7);
    }
}
