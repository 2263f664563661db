//! Fill leases: how long the callers waiting for a key's computation take to get its value
//! once the holder fills it, next to a plain hit on the same daemon.
//!
//! Each round takes the lease of a fresh key, lets `waiters` threads (each its own `Client`,
//! each LEASE on a connection of its own, as in N processes) block in LEASE on it, waits until
//! the daemon counts them all waiting (`leases_waited`), then fills. Measured: from just
//! before the LEASE_FILL request to each waiter's return with the value, and to the last one's
//! (every waiter served).

use crate::daemon::Daemon;
use crate::timing::{time_ops, Summary};
use cachekit_client::{Client, LeaseOptions, LeaseOutcome, SetOptions};
use serde_json::{json, Value};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

fn waited(client: &Client) -> u64 {
    let stats = client.stats().expect("STATS of the bench daemon");
    stats
        .daemon
        .iter()
        .find(|(name, _)| name == "leases_waited")
        .map(|(_, v)| *v)
        .expect("the daemon reports leases_waited")
}

/// Runs `rounds` fills of a key `waiters` callers wait for, and `hit_ops` plain hits.
pub fn fill_to_waiters(daemon: &Daemon, waiters: usize, rounds: usize, hit_ops: usize) -> Value {
    let ns = "lease-bench";
    let holder = daemon.client(ns);
    let opts = LeaseOptions {
        wait_timeout: Duration::from_secs(10),
        ..LeaseOptions::default()
    };
    let set = SetOptions::new().ttl(Duration::from_secs(3600));
    let value = vec![7u8; 100];
    // The key of the round, and when its fill started; each waiter's return time.
    let key: Arc<Mutex<Vec<u8>>> = Arc::default();
    let returned: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let start = Arc::new(Barrier::new(waiters + 1));
    let done = Arc::new(Barrier::new(waiters + 1));
    let threads: Vec<_> = (0..waiters)
        .map(|_| {
            let (client, key, returned) = (daemon.client(ns), key.clone(), returned.clone());
            let (start, done, opts) = (start.clone(), done.clone(), opts.clone());
            std::thread::spawn(move || {
                for _ in 0..rounds {
                    start.wait();
                    let k = key.lock().unwrap().clone();
                    match client.lease(&k, &opts) {
                        Ok(LeaseOutcome::Hit(v)) => assert_eq!(v.bytes.len(), 100),
                        Ok(LeaseOutcome::Granted(_)) => panic!("a waiter was granted the lease"),
                        Ok(LeaseOutcome::Busy) => panic!("a waiter timed out"),
                        Err(e) => panic!("LEASE: {e}"),
                    }
                    returned.lock().unwrap().push(Instant::now());
                    done.wait();
                }
            })
        })
        .collect();
    let mut each = Vec::with_capacity(rounds * waiters);
    let mut last = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let k = format!("lease-fill-{round}").into_bytes();
        let lease = match holder.lease(&k, &opts).expect("LEASE") {
            LeaseOutcome::Granted(l) => l,
            _ => panic!("the holder did not get the lease of a fresh key"),
        };
        *key.lock().unwrap() = k;
        let before = waited(&holder);
        start.wait();
        let until = Instant::now() + Duration::from_secs(10);
        while waited(&holder) < before + waiters as u64 {
            assert!(Instant::now() < until, "the waiters did not block in LEASE");
            std::thread::sleep(Duration::from_micros(200));
        }
        let t0 = Instant::now();
        lease.fill(&value, &set).expect("LEASE_FILL");
        done.wait();
        let mut r = returned.lock().unwrap();
        let ns: Vec<u64> = r
            .drain(..)
            .map(|t| t.duration_since(t0).as_nanos() as u64)
            .collect();
        last.push(*ns.iter().max().unwrap());
        each.extend(ns);
    }
    for t in threads {
        t.join().expect("a waiter thread");
    }
    // A plain hit of the same daemon, in the same run.
    holder.set(b"lease-hit", &value, &set).expect("SET");
    let hit = time_ops(hit_ops, || {
        let v = holder.get(b"lease-hit").expect("GET");
        assert!(v.is_some());
    });
    json!({
        "waiters": waiters,
        "rounds": rounds,
        "value_bytes": value.len(),
        "each_waiter": Summary::of(each).json(),
        "all_waiters": Summary::of(last).json(),
        "hit": hit.json(),
    })
}
