//! Fill leases: one computation per key per host.
//!
//! A caller that misses a key asks for its lease (LEASE). The first gets it and computes; every
//! other caller, from any process, waits on the key's condition variable in its own connection
//! thread until the holder fills (they then read the value from the table), releases (one of
//! them takes the lease over), dies (its connection closes: released at once) or runs past its
//! lease time (the next waiter takes over; the late fill is refused). A wait never outlasts
//! the caller's `wait_ms`.
//!
//! Lock order: a key's state lock, then (inside `grant`) the table's lock. The table's lock is
//! never held while taking a key's state lock.

use crate::changes::Snapshot;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What a lease remembers from its grant, for its fill.
#[derive(Clone, Copy, Debug)]
pub struct Grant {
    /// The table stamp reserved at the grant: the fill is written with it, so an invalidation
    /// made while the value was being computed covers it.
    pub stamp: u64,
    /// The key's change counters at the grant: a write or delete of the key since refuses the
    /// fill.
    pub before: Snapshot,
}

/// The Redis side of a lease (with a Redis tier): what its fill is checked against there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteGrant {
    /// A namespace clock value from no later than the grant: the fill is refused in Redis if
    /// the key, or anything covering it, changed after it.
    pub since: u64,
    /// Whether this host also holds the key's lease in Redis (`LEASE_GLOBAL`).
    pub global: bool,
}

struct Holder {
    token: u64,
    conn: u64,
    until: Instant,
    grant: Grant,
    remote: Option<RemoteGrant>,
}

#[derive(Default)]
struct State {
    holder: Option<Holder>,
    /// Bumped by every fill that was stored: waiters then read the table.
    filled: u64,
    waiters: usize,
}

#[derive(Default)]
struct KeyLease {
    state: Mutex<State>,
    changed: Condvar,
}

impl KeyLease {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How [`Leases::acquire`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Acquired {
    /// The caller holds the lease: compute, then fill or release.
    Granted { token: u64 },
    /// A fill was stored while the caller waited (or before it came): read the table.
    Filled,
    /// Another caller holds the lease and no fill came within the wait.
    Busy,
}

/// Counters, in STATS.
#[derive(Default)]
pub struct LeaseCounters {
    pub granted: AtomicU64,
    pub waited: AtomicU64,
    pub handed_over: AtomicU64,
    pub expired: AtomicU64,
    pub holders_gone: AtomicU64,
    pub busy: AtomicU64,
    pub fills: AtomicU64,
    pub fills_refused: AtomicU64,
    pub releases: AtomicU64,
}

/// (namespace, key) → its lease.
type KeyMap = HashMap<(String, Vec<u8>), Arc<KeyLease>>;

/// Every key's lease.
#[derive(Default)]
pub struct Leases {
    keys: Mutex<KeyMap>,
    next_token: AtomicU64,
    pub counters: LeaseCounters,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Leases {
    fn keys(&self) -> MutexGuard<'_, KeyMap> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key(&self, ns: &str, key: &[u8]) -> Arc<KeyLease> {
        self.keys()
            .entry((ns.to_owned(), key.to_vec()))
            .or_default()
            .clone()
    }

    /// Forgets `key`'s entry when nobody holds or waits for its lease.
    /// Gives back the caller's reference to `key`'s entry, and forgets the entry when nobody
    /// else holds one and nobody holds or waits for its lease. The reference is dropped under
    /// the map's lock, so of several callers finishing at once the last one sees itself last
    /// (no idle entry is left behind).
    fn tidy(&self, ns: &str, key: &[u8], k: Arc<KeyLease>) {
        let mut keys = self.keys();
        drop(k);
        let name = (ns.to_owned(), key.to_vec());
        let idle = keys.get(&name).is_some_and(|e| {
            Arc::strong_count(e) == 1 && {
                let st = e.lock();
                st.holder.is_none() && st.waiters == 0
            }
        });
        if idle {
            keys.remove(&name);
        }
    }

    /// Runs `f` on `key`'s state, if it has an entry, then tidies.
    fn with_state<R>(&self, ns: &str, key: &[u8], f: impl FnOnce(&mut State) -> R) -> Option<R> {
        let k = self.keys().get(&(ns.to_owned(), key.to_vec())).cloned()?;
        let r = f(&mut k.lock());
        self.tidy(ns, key, k);
        Some(r)
    }

    /// The lease of `key` for connection `conn`, waiting up to `wait` for another holder's
    /// fill. `grant` runs (under the key's lock) when the lease is granted, and reserves what
    /// the fill will need.
    pub fn acquire(
        &self,
        ns: &str,
        key: &[u8],
        conn: u64,
        lease_for: Duration,
        wait: Duration,
        grant: impl FnOnce() -> Option<Grant>,
    ) -> Acquired {
        let k = self.key(ns, key);
        let deadline = Instant::now() + wait;
        let outcome = {
            let mut st = k.lock();
            let seen = st.filled;
            let mut grant = Some(grant);
            let mut waited = false;
            loop {
                if st.filled != seen {
                    break Acquired::Filled;
                }
                let now = Instant::now();
                if st.holder.as_ref().is_some_and(|h| now >= h.until) {
                    st.holder = None;
                    bump(&self.counters.expired);
                }
                if st.holder.is_none() {
                    // `None`: a value arrived since the caller looked (a fill that landed just
                    // before this caller came to wait): it is the answer, not a computation.
                    let Some(g) = grant.take().expect("granted once")() else {
                        break Acquired::Filled;
                    };
                    let token = self.next_token.fetch_add(1, Ordering::Relaxed) + 1;
                    st.holder = Some(Holder {
                        token,
                        conn,
                        until: now + lease_for,
                        grant: g,
                        remote: None,
                    });
                    bump(&self.counters.granted);
                    if waited {
                        bump(&self.counters.handed_over);
                    }
                    break Acquired::Granted { token };
                }
                if now >= deadline {
                    bump(&self.counters.busy);
                    break Acquired::Busy;
                }
                let until = st
                    .holder
                    .as_ref()
                    .map_or(deadline, |h| h.until.min(deadline));
                if !waited {
                    waited = true;
                    bump(&self.counters.waited);
                }
                st.waiters += 1;
                st = k
                    .changed
                    .wait_timeout(st, until.saturating_duration_since(now))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                st.waiters -= 1;
            }
        };
        self.tidy(ns, key, k);
        outcome
    }

    /// The grant of the lease `token` of `key`, if it still holds it.
    pub fn holding(&self, ns: &str, key: &[u8], token: u64) -> Option<Grant> {
        self.with_state(ns, key, |st| {
            st.holder
                .as_ref()
                .filter(|h| h.token == token && Instant::now() < h.until)
                .map(|h| h.grant)
        })
        .flatten()
    }

    /// Notes the Redis side of the lease `token` of `key` and restarts its time from now
    /// (`lease_for`): the Redis lease was just taken, possibly after a long wait for another
    /// host, and the computation starts now. False when `token` no longer holds the lease.
    pub fn set_remote(
        &self,
        ns: &str,
        key: &[u8],
        token: u64,
        remote: RemoteGrant,
        lease_for: Duration,
    ) -> bool {
        self.restart(ns, key, token, lease_for, Some(remote))
    }

    /// Restarts the lease `token`'s time from now; false when it no longer holds it.
    pub fn renew(&self, ns: &str, key: &[u8], token: u64, lease_for: Duration) -> bool {
        self.restart(ns, key, token, lease_for, None)
    }

    fn restart(
        &self,
        ns: &str,
        key: &[u8],
        token: u64,
        lease_for: Duration,
        remote: Option<RemoteGrant>,
    ) -> bool {
        self.with_state(ns, key, |st| {
            let now = Instant::now();
            let held = st
                .holder
                .as_mut()
                .filter(|h| h.token == token && now < h.until);
            held.map(|h| {
                h.until = now + lease_for;
                if remote.is_some() {
                    h.remote = remote;
                }
            })
            .is_some()
        })
        .unwrap_or(false)
    }

    /// The Redis side of the lease `token` of `key`, if it still holds and has one.
    pub fn remote(&self, ns: &str, key: &[u8], token: u64) -> Option<RemoteGrant> {
        self.with_state(ns, key, |st| {
            st.holder
                .as_ref()
                .filter(|h| h.token == token)
                .and_then(|h| h.remote)
        })
        .flatten()
    }

    /// Ends the lease `token` of `key`: `stored` (a fill was stored: the waiters read it) or
    /// not (a release, or a fill that could not be stored: one waiter takes the lease over).
    /// Whether `token` still held the lease.
    pub fn finish(&self, ns: &str, key: &[u8], token: u64, stored: bool) -> bool {
        let Some(k) = self.keys().get(&(ns.to_owned(), key.to_vec())).cloned() else {
            return false;
        };
        let held = {
            let mut st = k.lock();
            let held = st.holder.as_ref().is_some_and(|h| h.token == token);
            if held {
                st.holder = None;
                if stored {
                    st.filled += 1;
                }
            }
            held
        };
        if held {
            k.changed.notify_all();
        }
        self.tidy(ns, key, k);
        held
    }

    /// Releases every lease held by connection `conn` (it closed: its holder is gone).
    /// Returns those it also held in Redis (namespace, key, token), to release there.
    pub fn release_connection(&self, conn: u64) -> Vec<(String, Vec<u8>, u64)> {
        let mut global = Vec::new();
        let keys: Vec<_> = self
            .keys()
            .iter()
            .map(|(n, k)| (n.clone(), k.clone()))
            .collect();
        for ((ns, key), k) in keys {
            let released = {
                let mut st = k.lock();
                let mine = st.holder.take_if(|h| h.conn == conn);
                if let Some(h) = &mine {
                    if h.remote.is_some_and(|r| r.global) {
                        global.push((ns.clone(), key.clone(), h.token));
                    }
                }
                mine.is_some()
            };
            if released {
                bump(&self.counters.holders_gone);
                k.changed.notify_all();
            }
            self.tidy(&ns, &key, k);
        }
        global
    }

    /// Keys with a lease entry (held or waited for), for STATS.
    pub fn active(&self) -> u64 {
        self.keys().len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::Changes;
    use std::sync::atomic::AtomicUsize;

    fn grant() -> Option<Grant> {
        Some(Grant {
            stamp: 1,
            before: Changes::default().snapshot("ns", b"k"),
        })
    }

    const LONG: Duration = Duration::from_secs(30);

    #[test]
    fn one_holder_and_the_others_get_the_fill() {
        let l = Leases::default();
        let Acquired::Granted { token } = l.acquire("ns", b"k", 1, LONG, LONG, grant) else {
            panic!("the first caller holds the lease")
        };
        let granted = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let waiters: Vec<_> = (0..8)
                .map(|c| {
                    let (l, granted) = (&l, &granted);
                    s.spawn(move || {
                        let a = l.acquire("ns", b"k", 10 + c, LONG, LONG, || {
                            granted.fetch_add(1, Ordering::Relaxed);
                            grant()
                        });
                        assert_eq!(a, Acquired::Filled);
                    })
                })
                .collect();
            while l
                .keys()
                .values()
                .next()
                .is_some_and(|k| k.lock().waiters < 8)
            {
                std::thread::yield_now();
            }
            assert!(l.holding("ns", b"k", token).is_some());
            assert!(l.finish("ns", b"k", token, true));
            for w in waiters {
                w.join().unwrap();
            }
        });
        assert_eq!(granted.load(Ordering::Relaxed), 0);
        assert_eq!(l.active(), 0, "nothing left behind");
    }

    #[test]
    fn a_release_or_a_dead_holder_hands_the_lease_to_one_waiter() {
        let l = Leases::default();
        let Acquired::Granted { token } = l.acquire("ns", b"k", 1, LONG, LONG, grant) else {
            panic!()
        };
        std::thread::scope(|s| {
            let w = s.spawn(|| l.acquire("ns", b"k", 2, LONG, LONG, grant));
            while l
                .keys()
                .values()
                .next()
                .is_some_and(|k| k.lock().waiters < 1)
            {
                std::thread::yield_now();
            }
            assert!(l.finish("ns", b"k", token, false), "released");
            let Acquired::Granted { token: second } = w.join().unwrap() else {
                panic!("the waiter takes the lease over")
            };
            assert_ne!(second, token);
            assert!(!l.finish("ns", b"k", token, true), "the old token is dead");
            let w = s.spawn(|| l.acquire("ns", b"k", 3, LONG, LONG, grant));
            while l
                .keys()
                .values()
                .next()
                .is_some_and(|k| k.lock().waiters < 1)
            {
                std::thread::yield_now();
            }
            l.release_connection(2);
            assert!(matches!(w.join().unwrap(), Acquired::Granted { .. }));
        });
        assert_eq!(l.counters.holders_gone.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn waits_end_at_the_wait_or_the_lease_time() {
        let l = Leases::default();
        let short = Duration::from_millis(30);
        assert!(matches!(
            l.acquire("ns", b"k", 1, short, LONG, grant),
            Acquired::Granted { .. }
        ));
        assert_eq!(
            l.acquire("ns", b"k", 2, LONG, Duration::ZERO, grant),
            Acquired::Busy
        );
        // The holder runs past its lease time: the waiter takes over.
        assert!(matches!(
            l.acquire("ns", b"k", 2, LONG, LONG, grant),
            Acquired::Granted { .. }
        ));
        assert_eq!(l.counters.expired.load(Ordering::Relaxed), 1);
    }
}
